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


def _lp_bound_and_optimum(rnd: Round) -> tuple[int, int]:
    relaxation = lp_units(derive(rnd.canonical()))
    optimum = brute_force(rnd)
    assert relaxation is not None and optimum is not None
    return relaxation.bound, optimum


def _confidential_beside_open(commercial_cap: float) -> Round:
    """One 10,000 GPU-h machine; P1, confidential (a commercial award) and of high merit, asks
    8,000 with a minimum of 3,000; P2, open, asks for the whole machine at less merit."""
    return make_round(
        machines=[machine("m1", gpu_hours=10_000, commercial_cap=commercial_cap)],
        proposals=[
            proposal("P1", kind="start-up", commitment="confidential", score=5.0, request=8000, minimum=3000),
            proposal("P2", score=2.0, request=10_000, minimum=1000),
        ],
    )


def test_lp_bound_leaves_out_awards_whose_minimum_exceeds_the_commercial_cap() -> None:
    """A confidential proposal whose minimum (3,000 GPU-h) exceeds the machine's commercial cap
    (2,000) can never be funded; the LP used to take 2,000 GPU-h of it anyway, at its high merit.
    Now its bound is the optimum (up to its allowance for floating-point error)."""
    rnd = _confidential_beside_open(commercial_cap=0.2)
    bound, optimum = _lp_bound_and_optimum(rnd)
    assert optimum <= bound <= optimum * (1 + 1e-7)


def test_the_lp_guide_is_the_first_optimum_and_only_its_bound_is_tightened() -> None:
    """The rounding and the search follow the first LP optimum (each option bounded by its
    max_units alone); the tighter program, solved because that optimum breaks it, gives the
    bound only. Where nothing is broken, one solve gives both."""
    rnd = _confidential_beside_open(commercial_cap=0.2)
    relaxation = lp_units(derive(rnd.canonical()))
    assert relaxation is not None
    assert relaxation.units == pytest.approx({("P1", "m1"): 2.0, ("P2", "m1"): 8.0})
    assert relaxation.bound <= brute_force(rnd) * (1 + 1e-7)  # type: ignore[operator]

    fits = _confidential_beside_open(commercial_cap=0.5)
    relaxation = lp_units(derive(fits.canonical()))
    assert relaxation is not None
    assert relaxation.units == pytest.approx({("P1", "m1"): 5.0, ("P2", "m1"): 5.0})


def test_lp_bound_leaves_out_options_whose_minimum_exceeds_the_machine() -> None:
    """P1's minimum (6,000 GPU-h) fits on m1 but not on the smaller m2: the LP may not put part
    of P1 on m2 (nor count m2's room as P1's, in its one-machine row), so its bound is the
    optimum: P1 whole on m1, P2 on m2."""
    rnd = make_round(
        machines=[machine("m1", gpu_hours=8000), machine("m2", gpu_hours=4000)],
        proposals=[
            proposal("P1", score=5.0, request=12_000, minimum=6000),
            proposal("P2", score=1.0, request=4000, minimum=1000),
        ],
    )
    bound, optimum = _lp_bound_and_optimum(rnd)
    assert optimum <= bound <= optimum * (1 + 1e-7)
