"""The CP-SAT optimum equals an independent brute-force optimum on tiny rounds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocopt.errors import InfeasibleError, InputError
from allocopt.files import validate_round
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve
from allocopt.terms import derive
from allocopt.verify import Facts, verify
from tests.bruteforce import PinError, best_plan, brute_force, brute_force_rank, scale_of
from tests.strategies import policy_rounds, tiny_rounds

TINY_OPTIMUM = 325_500_000
T = TypeVar("T")


def describe(rnd: Round) -> str:
    """The round as JSON, to reproduce a failure."""
    return rnd.model_dump_json(exclude_defaults=True)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(tiny_rounds())
def test_solver_optimum_equals_brute_force(rnd: Round) -> None:
    """solve() is infeasible exactly when brute force finds no plan, and otherwise proves the
    brute-force optimum, with a solution that passes verify."""
    expected = brute_force(rnd)
    if expected is None:
        with pytest.raises(InfeasibleError):
            solve(rnd)
        return
    solution = solve(rnd)
    assert solution.solver.status == "optimal", describe(rnd)
    assert solution.objective.scaled == expected, describe(rnd)
    assert solution.objective.best_bound_scaled == expected, describe(rnd)
    assert sum(r.objective_contribution for r in solution.proposals) == expected, describe(rnd)
    assert verify(rnd, solution) == [], describe(rnd)


def test_tiny_optimum_by_brute_force(tiny: Round) -> None:
    """Brute force finds the optimum of the shipped tiny round worked out in the README: 3.255."""
    best = best_plan(tiny)
    assert best is not None
    points, plan = best
    assert points == TINY_OPTIMUM
    assert points / 10**8 == pytest.approx(3.255)
    assert {a.proposal_id for a in plan} == {"P-01", "P-02", "P-03", "P-04", "P-05"}


def test_tiny_optimum_by_solve(tiny: Round, tiny_solution: Solution) -> None:
    """solve() proves the same optimum on the tiny round, and its solution passes verify."""
    solution = tiny_solution
    assert solution.solver.status == "optimal"
    assert solution.objective.scaled == TINY_OPTIMUM
    assert solution.objective.value == 3.255
    assert verify(tiny, solution) == []


# --- the full policy language -----------------------------------------------------------------


def refused(rnd: Round, options: SolveOptions | None, compute: Callable[[Round], T | None]) -> T | None:
    """Brute force's answer; when it is bad input or infeasible, first check solve refuses the round
    the same way."""
    try:
        expected = compute(rnd)
    except PinError:
        # The README calls it an error; the solver reports it as InfeasibleError naming the pin.
        with pytest.raises((InputError, InfeasibleError), match="pin"):
            solve(rnd, options)
        return None
    if expected is None:
        with pytest.raises(InfeasibleError):
            solve(rnd, options)
    return expected


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.one_of(policy_rounds(), policy_rounds(split=True)))
def test_merit_with_policy_language_equals_brute_force(rnd: Round) -> None:
    """Machine options, efficiency, split awards, soft shares with penalties, the share basis,
    pins, exclusivity and organisation caps: solve() proves the brute-force optimum of merit minus
    penalties, and its solution passes verify."""
    expected = refused(rnd, None, brute_force)
    if expected is None:
        return
    solution = solve(rnd)
    objective = solution.objective
    assert solution.solver.status == "optimal", describe(rnd)
    assert objective.kind == "merit", describe(rnd)
    assert objective.scaled == expected, describe(rnd)
    assert objective.best_bound_scaled == expected, describe(rnd)
    assert objective.merit_scaled - objective.penalty_scaled == objective.scaled, describe(rnd)
    assert sum(r.objective_contribution for r in solution.proposals) == objective.merit_scaled, describe(rnd)
    assert verify(rnd, solution) == [], describe(rnd)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.one_of(policy_rounds(), policy_rounds(split=True)))
def test_rank_equals_brute_force(rnd: Round) -> None:
    """Objective 'rank': the funded set and every proposal's fraction of its request are those of
    the three-step definition, computed by brute force; every step is proven; verify passes."""
    options = SolveOptions(objective="rank")
    expected = refused(rnd, options, brute_force_rank)
    if expected is None:
        return
    solution = solve(rnd, options)
    assert solution.objective.kind == "rank", describe(rnd)
    assert solution.solver.status == "optimal", describe(rnd)
    assert solution.rank is not None, describe(rnd)
    assert solution.rank.all_proven, describe(rnd)
    assert all(step.proven for step in solution.rank.steps), describe(rnd)
    # The solver's order lists the same proposals in the same relative order.
    mine = [pid for pid in expected.order if pid in set(solution.rank.order)]
    assert solution.rank.order == mine, describe(rnd)
    funded = {r.id for r in solution.proposals if r.decision.value in ("funded", "reduced")}
    assert funded == expected.funded, describe(rnd)
    for r in solution.proposals:
        want = float(expected.fractions.get(r.id, 0))
        assert r.fraction_of_request == pytest.approx(want, abs=1e-6), (r.id, describe(rnd))
    assert verify(rnd, solution) == [], describe(rnd)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(policy_rounds(), st.data())
def test_the_adaptive_scale_is_the_same_in_every_implementation(rnd: Round, data: st.DataObject) -> None:
    """Scores near the scale's minimum (and a steep exponent) make units worth a few points: the
    solver's terms, verify and the brute force must grow the scale alike, and the solve stays
    the brute-force optimum."""
    low = data.draw(st.sampled_from([0.001, 0.01, 0.05]))
    policy = rnd.policy.model_copy(
        update={"score_threshold": 0.0, "merit": rnd.policy.merit.model_copy(update={"exponent": 3})}
    )
    proposals = [
        p.model_copy(update={"score": low * (i + 1), "committee_rank": None})
        for i, p in enumerate(rnd.proposals)
    ]
    try:
        rnd = validate_round(
            rnd.model_copy(update={"policy": policy, "proposals": proposals}).model_dump(mode="json"), "test"
        )
    except InputError:
        return  # a pin or rule the new scores make invalid
    scale = derive(rnd).scale
    assert scale == Facts.of(rnd, "merit").scale == scale_of(rnd)
    try:
        solution = solve(rnd, SolveOptions(objective="merit", gap_limit=0))
    except InfeasibleError:
        assert brute_force(rnd) is None
        return
    assert solution.objective.scale == scale
    assert verify(rnd, solution) == []
    assert solution.objective.scaled == brute_force(rnd)
