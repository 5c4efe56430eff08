"""The CP-SAT model's contract with the process around it: Ctrl-C."""

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

DURING_A_SECOND_SOLVE = """
import signal, threading, time
from allocopt.generate import generate_round
from allocopt.model import AllocationModel
from allocopt.options import SolveOptions
from allocopt.terms import derive
model = AllocationModel(derive(generate_round(1500, 10, 3)))
model.maximise_merit()
model.solve(SolveOptions(work_limit=0.5))
threading.Timer(3, signal.raise_signal, (signal.SIGINT,)).start()
started = time.perf_counter()
second = model.solve(SolveOptions(work_limit=10_000, gap_limit=0))
print(second.stop_reason, time.perf_counter() - started < 10)
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_ctrl_c_after_a_solve_is_a_keyboard_interrupt_again() -> None:
    """CP-SAT's own Ctrl-C handling left the system default behind, which ends the process
    silently (and left a sweep's or a stability run's workers running)."""
    done = _python(AFTER_A_SOLVE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "KeyboardInterrupt"


def test_ctrl_c_stops_a_later_solve_with_its_best_allocation() -> None:
    """Ctrl-C during any solve, not only the first, stops the search at once (with the best
    allocation found, if any): the main thread handles it and tells CP-SAT to stop."""
    done = _python(DURING_A_SECOND_SOLVE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["interrupted", "True"]
