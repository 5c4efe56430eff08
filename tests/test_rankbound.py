"""LP bounds of the rank walk's raise steps: never below an allowed allocation, and a step they
settle ends as a CP-SAT check would have ended it."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import allocopt.rank as rank_module
from allocopt import Round, SolveOptions, solve
from allocopt.generate import generate_round
from allocopt.model import AllocationModel
from allocopt.rank import walk
from allocopt.rankbound import RaiseBounds, next_level
from allocopt.terms import derive
from allocopt.verify import verify
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


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(st.one_of(policy_rounds(), policy_rounds(split=True)))
def test_a_raise_bound_is_never_below_what_the_final_allocation_gives(rnd: Round) -> None:
    """With the walk's funded set fixed and each better-ranked funded proposal kept at its final
    fraction, the bound on a funded proposal's fraction is at least what the walk's final
    allocation gives it: that allocation obeys every one of those decisions."""
    terms = derive(rnd.canonical())
    record = walk(terms, SolveOptions(objective="rank"))
    if record is None:
        return
    fund_steps = [s for s in record.steps if s.phase == "fund"]
    funded = [s.proposal for s in fund_steps if s.outcome == "funded"]
    unfunded = {s.proposal for s in fund_steps} - set(funded)
    bounds = RaiseBounds(terms, frozenset(funded), frozenset(unfunded))
    model = AllocationModel(terms, soft_shares=False)
    for pid in funded:
        a = terms.assessments[pid]
        scale = model.fraction_expr(a)[1]
        gains = {o.key: int(o.f * scale) for o in a.options}
        value = sum(g * record.units.get(key, 0) for key, g in gains.items())
        most = bounds.most(gains)
        assert most is not None and most >= value, (pid, rnd.model_dump_json(exclude_defaults=True))
        bounds.keep(gains, value)


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
