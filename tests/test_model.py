"""The CP-SAT model's contract with the process around it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

AFTER_A_SOLVE = f"""
import signal
from allocopt.files import read_round
from allocopt.solve import solve
solve(read_round({str(ROOT / "instances" / "tiny.json")!r}))
try:
    signal.raise_signal(signal.SIGINT)
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


def test_ctrl_c_after_a_solve_is_a_keyboard_interrupt_again() -> None:
    """CP-SAT leaves Ctrl-C at the system default, which ends the process silently (and left a
    sweep's or a stability run's workers running): Python's handler must be back after a solve."""
    done = subprocess.run([sys.executable, "-c", AFTER_A_SOLVE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "KeyboardInterrupt"
