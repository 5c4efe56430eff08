"""LP bounds of the rank walk's raise steps: never below an allowed allocation, and a step they
settle ends as a CP-SAT check would have ended it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import allocopt.rank as rank_module
from allocopt.generate import generate_round
from allocopt.model import AllocationModel
from allocopt.options import SolveOptions
from allocopt.rank import walk
from allocopt.rankbound import RaiseBounds, next_level
from allocopt.round import Round
from allocopt.solve import solve
from allocopt.terms import derive
from allocopt.verify import verify
from tests.conftest import ROOT
from tests.strategies import policy_rounds


@pytest.mark.parametrize(
    ("gains", "current", "split", "expected"),
    [
        ({("P", "A"): 10}, 30, False, 40),  # one option: the next multiple of its step
        ({("P", "A"): 10}, 35, False, 40),
        ({("P", "A"): 10, ("P", "B"): 4}, 30, False, 32),  # the nearer of the two options' steps
        ({("P", "A"): 6, ("P", "B"): 4}, 30, True, 32),  # split: multiples of their gcd, 2
        ({("P", "A"): 0}, 0, False, math.inf),  # nothing it could get counts
    ],
)
def test_next_level_is_the_least_value_above_the_current_one(
    gains: dict[tuple[str, str], int], current: int, split: bool, expected: float
) -> None:
    assert next_level(gains, current, split) == expected


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(1, 3), st.integers(0, 4)), min_size=1, max_size=3),
    st.integers(0, 60),
    st.booleans(),
)
def test_next_level_is_never_above_an_achievable_value(
    options: list[tuple[int, int, int]], current: int, split: bool
) -> None:
    """Against every value an award could have (one option's gain times its units, from its
    minimum to its maximum; split, any sum of those over the options): none lies strictly
    between ``current`` and next_level."""
    gains = {("P", f"M{i}"): g for i, (g, _, _) in enumerate(options)}
    ranges = [[0, *range(low, low + extra + 1)] for _, low, extra in options]
    if split:
        values = {sum(g * u for (g, _, _), u in zip(options, us, strict=True)) for us in product(*ranges)}
    else:
        values = {g * u for (g, _, _), us in zip(options, ranges, strict=True) for u in us}
    above = [v for v in values if v > current]
    assert all(v >= next_level(gains, current, split) for v in above)


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(st.one_of(policy_rounds(), policy_rounds(split=True)))
def test_a_raise_bound_is_never_below_what_cp_sat_proves(rnd: Round) -> None:
    """For a walk decided by CP-SAT alone (no bound settles or cuts anything), with its funded
    set fixed and each better-ranked funded proposal kept at its proven fraction, the bound on
    each funded proposal's fraction is at least that proposal's proven fraction."""
    terms = derive(rnd.canonical())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rank_module.RaiseBounds, "most", lambda self, gains, time_limit=None: None)
        record = walk(terms, SolveOptions(objective="rank"))
    if record is None:
        return
    assert all(s.proven for s in record.steps)
    fund_steps = [s for s in record.steps if s.phase == "fund"]
    funded = [s.proposal for s in fund_steps if s.outcome == "funded"]
    unfunded = {s.proposal for s in fund_steps} - set(funded)
    bounds = RaiseBounds(terms, frozenset(funded), frozenset(unfunded))
    model = AllocationModel(terms, soft_shares=False)
    for pid in funded:
        a = terms.assessments[pid]
        scale = model.fraction_expr(a)[1]
        gains = {o.key: int(o.f * scale) for o in a.options}
        proven = sum(g * record.units.get(key, 0) for key, g in gains.items())
        most = bounds.most(gains)
        assert most is not None and most >= proven, (pid, rnd.model_dump_json(exclude_defaults=True))
        bounds.keep(gains, proven)


def test_steps_the_bound_settles_end_as_checks_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a generated round where the LP bound settles raise steps, the walk without it (every
    such step a CP-SAT check) funds the same proposals with the same fractions, every step
    proven either way, and checks more."""
    rnd = generate_round(60, 4, 2)
    options = SolveOptions(objective="rank")
    with_bounds = solve(rnd, options)
    monkeypatch.setattr(rank_module.RaiseBounds, "most", lambda self, gains, time_limit=None: None)
    without = solve(rnd, options)
    assert with_bounds.rank is not None and without.rank is not None
    settled = Counter(s.settled_by for s in with_bounds.rank.steps)
    assert settled["bound"] > 0
    assert "bound" not in {s.settled_by for s in without.rank.steps}
    assert with_bounds.rank.all_proven and without.rank.all_proven

    def outcome(steps: list[rank_module.RankStep]) -> list[tuple[str, str, str, float]]:
        return [(s.phase, s.proposal, s.outcome, s.fraction_of_request) for s in steps]

    assert outcome(with_bounds.rank.steps) == outcome(without.rank.steps)
    checks = Counter(s.settled_by for s in without.rank.steps)["solver"]
    assert settled["solver"] < checks


def test_ctrl_c_during_a_raise_bound_leaves_the_rest_unproven(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the LP of a raise step runs: the walk stops there as after a Ctrl-C in a
    check. The allocation found so far is kept, the steps left are marked unproven, no more LPs
    are solved, and the solution says it was interrupted."""
    calls: list[int] = []

    def interrupted(self: RaiseBounds, gains: object, time_limit: float | None = None) -> None:
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(rank_module.RaiseBounds, "most", interrupted)
    rnd = generate_round(60, 4, 2)
    solution = solve(rnd, SolveOptions(objective="rank"))
    assert solution.rank is not None and calls == [1]
    assert solution.solver.stop_reason == "interrupted"
    assert not solution.rank.all_proven
    raised = [s for s in solution.rank.steps if s.phase == "raise"]
    assert any(not s.proven for s in raised) and all(s.settled_by != "bound" for s in raised)
    assert verify(rnd, solution) == []


_BOUND_ALONE = """
import sys
from allocopt.generate import generate_round
from allocopt.rankbound import RaiseBounds
from allocopt.terms import derive
terms = derive(generate_round(30, 3, 1))
bounds = RaiseBounds(terms, frozenset(terms.order[:5]), frozenset())
a = terms.assessments[terms.order[0]]
print("bound", bounds.most({o.key: 1 for o in a.options}), file=sys.stderr)
"""


def test_the_bounds_print_nothing() -> None:
    """HiGHS announces itself on standard output as its first model is made (once per process,
    so in a fresh one); a committee's terminal, or a piped table, must not show it."""
    done = subprocess.run(
        [sys.executable, "-c", _BOUND_ALONE], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("bound ") and "None" not in done.stderr


def test_the_bounds_work_without_a_standard_output() -> None:
    """A rank solve run with its standard output closed (``>&-``) still gets its bounds."""
    done = subprocess.run(
        [sys.executable, "-c", _BOUND_ALONE],
        stdout=None,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("bound ") and "None" not in done.stderr


def test_a_time_limit_is_for_this_bound_not_all_so_far() -> None:
    """The HiGHS model is kept for the whole walk, and HiGHS counts its time limit from the first
    solve: each step's limit must still give that step its own seconds."""
    terms = derive(generate_round(300, 8, 1))
    bounds = RaiseBounds(terms, frozenset(), frozenset())
    steps = [{o.key: 1 for o in terms.assessments[pid].options} for pid in terms.order[:150]]
    i = 0
    while bounds.highs.getRunTime() < 0.2:  # each bound a few milliseconds, from the last basis
        assert bounds.most(steps[i % len(steps)]) is not None
        i += 1
    assert bounds.most(steps[(i + 1) % len(steps)], time_limit=0.1) is not None
