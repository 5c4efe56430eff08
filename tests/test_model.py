"""The CP-SAT model's contract with the process around it: Ctrl-C."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from allocopt.files import read_round
from allocopt.generate import generate_round
from allocopt.model import AllocationModel, OptionKey
from allocopt.options import SolveOptions
from allocopt.terms import derive
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


def _rounds_and_neighbourhoods() -> list[tuple[str, AllocationModel, dict[OptionKey, int]]]:
    """Whole-round and neighbourhood models of the shipped round (a soft share with a penalty)
    and a generated one, with an allocation found by solving."""
    cases = []
    for name, rnd in (
        ("shipped", read_round(ROOT / "instances" / "eurohpc-2026.json")),
        ("generated", generate_round(120, 4, 7)),
    ):
        terms = derive(rnd.canonical())
        whole = AllocationModel(terms)
        whole.maximise_merit()
        units = whole.solve(SolveOptions(work_limit=1)).units
        cases.append((name, whole, units))
        free = sorted(terms.assessments)[::3]
        cases.append((f"{name}, a neighbourhood", AllocationModel(terms, free=free, around=units), units))
    return cases


CASES = _rounds_and_neighbourhoods()


@pytest.mark.parametrize(("name", "model", "units"), CASES, ids=[c[0] for c in CASES])
def test_the_merit_objective_is_written_as_maximize_writes_it(
    name: str, model: AllocationModel, units: dict[OptionKey, int]
) -> None:
    """maximise_merit writes the objective straight into the model (for speed); CP-SAT must see
    exactly what ``maximize(merit_expr())`` gives it, fixed awards' merit and penalties included."""
    reference = copy.deepcopy(model)
    reference.model.maximize(reference.merit_expr())
    model.maximise_merit()
    assert str(model.model.proto.objective) == str(reference.model.proto.objective)
    assert model.model.proto.objective.vars  # not trivially equal


@pytest.mark.parametrize(("name", "model", "units"), CASES, ids=[c[0] for c in CASES])
def test_a_hint_gives_every_variable_its_value_once(
    name: str, model: AllocationModel, units: dict[OptionKey, int]
) -> None:
    """Each option's units as given, its machine literal set exactly when it has units, each
    proposal's funded literal set exactly when it has units anywhere; nothing hinted twice."""
    model.hint(units)
    hint = model.model.proto.solution_hint
    given = dict(zip(hint.vars, hint.values, strict=True))
    assert len(given) == len(hint.vars)
    expected = {}
    for key, u in model.u.items():
        expected[u.index] = units.get(key, 0)
        expected[model.x[key].index] = int(units.get(key, 0) > 0)
    for pid, y in model.y.items():
        expected[y.index] = int(any(v > 0 for (p, _), v in units.items() if p == pid))
    assert given == expected
    assert any(given.values())
