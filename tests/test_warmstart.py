"""The warm start: its allocation satisfies every rule, and it never changes the optimum."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings

from allocopt.generate import generate_round
from allocopt.model import AllocationModel, RawResult
from allocopt.options import SolveOptions
from allocopt.options import SolveOptions as Options
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve
from allocopt.terms import Terms, derive
from allocopt.verify import verify
from allocopt.warmstart import Units, _Builder, feasible, lp_units, merit, rounded, warm_start
from tests.bruteforce import PinError, brute_force
from tests.helpers import group, machine, make_round, pin, proposal
from tests.strategies import policy_rounds

ROUNDS = [(40, 3, 1, False), (60, 4, 2, False), (40, 3, 1, True), (80, 5, 3, True), (120, 6, 4, True)]


def _solution_of(
    rnd: Round, monkeypatch: pytest.MonkeyPatch, build: Callable[[Terms], Units | None] = warm_start
) -> Solution:
    """The warm start (or another ``build``) turned into a Solution by the normal pipeline
    (CP-SAT replaced by it)."""

    def fake_solve(self: object, options: Options, on_progress: object = None, **_: object) -> RawResult:
        terms = self.terms  # type: ignore[attr-defined]
        units = build(terms)
        assert units is not None
        value = merit(terms, units)
        return RawResult("feasible", "work_limit", units=units, objective=value, bound=value)

    monkeypatch.setattr(AllocationModel, "solve", fake_solve)
    return solve(rnd, SolveOptions(warm_start=False))


@pytest.mark.parametrize(("proposals", "machines", "seed", "fuller"), ROUNDS)
def test_warm_start_satisfies_every_rule(
    proposals: int, machines: int, seed: int, fuller: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On generated rounds (core and fuller policy language) the warm start exists, its own
    check accepts it, and verify, which recomputes every rule independently, agrees."""
    rnd = generate_round(proposals, machines, seed, policy_language=fuller)
    terms = derive(rnd.canonical())
    units = warm_start(terms)
    assert units is not None
    assert feasible(terms, units)
    solution = _solution_of(rnd, monkeypatch)
    violations = verify(rnd, solution)
    assert not violations, "\n".join(map(str, violations))


def _rounded(terms: Terms) -> Units | None:
    relaxation = lp_units(terms)
    return None if relaxation is None else rounded(terms, relaxation)


@pytest.mark.parametrize(("proposals", "machines", "seed", "fuller"), ROUNDS)
def test_the_lp_rounded_satisfies_every_rule_or_is_refused(
    proposals: int, machines: int, seed: int, fuller: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LP rounded without the MILP (the probe's hint on small rounds) is handed on only when
    it satisfies every rule: verify, which recomputes every rule independently, agrees. It is
    never worth more than the LP bound."""
    rnd = generate_round(proposals, machines, seed, policy_language=fuller)
    terms = derive(rnd.canonical())
    relaxation = lp_units(terms)
    assert relaxation is not None
    units = rounded(terms, relaxation)
    if units is None:  # refused only when the rounding broke a rule (the full warm start takes over)
        assert not feasible(terms, _Builder(terms).build(relaxation, repair=False))
        return
    assert merit(terms, units) <= relaxation.bound
    violations = verify(rnd, _solution_of(rnd, monkeypatch, _rounded))
    assert not violations, "\n".join(map(str, violations))


def test_the_lp_rounded_is_an_allocation_on_most_rounds() -> None:
    """The rounding is the probe's hint on every small round, so refusals must be the exception."""
    given = 0
    for proposals, machines, seed, fuller in ROUNDS:
        terms = derive(generate_round(proposals, machines, seed, policy_language=fuller).canonical())
        relaxation = lp_units(terms)
        given += relaxation is not None and rounded(terms, relaxation) is not None
    assert given >= len(ROUNDS) - 1


def test_feasible_rejects_broken_allocations() -> None:
    """feasible() catches capacity, minimum, machine count, pins and share minimums."""
    rnd = make_round(
        machines=[machine("m1"), machine("m2")],
        proposals=[proposal("P1", request=6000, minimum=3000), proposal("P2", kind="industry", request=4000)],
        groups=[group("ind", ["industry"], min_share=0.1)],
        pins=[pin("P1", machine="m1")],
    )
    terms = derive(rnd.canonical())
    good = {("P1", "m1"): 6, ("P2", "m2"): 2}
    assert feasible(terms, good)
    assert not feasible(terms, {("P1", "m1"): 2, ("P2", "m2"): 2})  # below P1's minimum
    assert not feasible(terms, {("P1", "m2"): 6, ("P2", "m1"): 2})  # P1 is pinned to m1
    assert not feasible(terms, {("P1", "m1"): 6, ("P1", "m2"): 1, ("P2", "m2"): 2})  # two machines
    assert not feasible(terms, {("P1", "m1"): 6})  # the industry share minimum (2,000 h)
    assert not feasible(terms, {("P2", "m2"): 2})  # the fund pin


@pytest.mark.parametrize(("proposals", "machines", "seed", "fuller"), ROUNDS[:4])
def test_same_optimum_with_and_without_warm_start(
    proposals: int, machines: int, seed: int, fuller: bool
) -> None:
    """The warm start is only a hint: proven optima are the same with it and without it."""
    rnd = generate_round(proposals, machines, seed, policy_language=fuller)
    on = solve(rnd, SolveOptions(gap_limit=0.0, warm_start=True))
    off = solve(rnd, SolveOptions(gap_limit=0.0, warm_start=False))
    assert on.solver.status == off.solver.status == "optimal"
    assert on.objective.scaled == off.objective.scaled
    assert not verify(rnd, on)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(policy_rounds())
def test_lp_bound_is_never_below_the_brute_force_optimum(rnd: Round) -> None:
    """The LP relaxation's bound, which the solver is told, cuts off no allowed allocation: it is
    at least the brute-force optimum (merit less penalties) on tiny rounds of the whole policy
    language (split awards, pins, exclusivity, soft shares, the awarded share basis)."""
    try:
        expected = brute_force(rnd)
    except PinError:  # a pin the round cannot honour: bad input, nothing to bound
        return
    if expected is None:
        return
    relaxation = lp_units(derive(rnd.canonical()))
    if relaxation is None:  # no option at all: nothing to bound (solve adds no constraint)
        assert not derive(rnd.canonical()).options
        return
    assert relaxation.bound >= expected, rnd.model_dump_json(exclude_defaults=True)
