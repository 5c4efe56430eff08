"""The `allocopt` program's entry point: Ctrl-C while the libraries load ends quietly too."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from allocopt.cli import main as run
    except KeyboardInterrupt:
        print("interrupted before there was anything to write; nothing was written", file=sys.stderr)
        sys.exit(1)
    run()
