"""The CP-SAT optimum equals an independent brute-force optimum on tiny rounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from allocopt import Round, Solution, solve
from allocopt.errors import InfeasibleError
from allocopt.verify import verify
from tests.bruteforce import best_plan, brute_force
from tests.strategies import tiny_rounds

TINY_OPTIMUM = 325_500_000


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
