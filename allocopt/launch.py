"""The `allocopt` program's entry point: Ctrl-C while the libraries load ends quietly too."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main() -> None:
    # While the libraries load, Ctrl-C is only noted: raised inside a library's start-up code it
    # would turn into that library's import error (a traceback).
    pressed: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        pressed.append(signum)

    signal.signal(signal.SIGINT, note)
    from allocopt.cli import main as run

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        print("interrupted before there was anything to write; nothing was written", file=sys.stderr)
        sys.exit(1)
    run()
