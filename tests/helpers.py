"""Builders for small hand-made rounds, and checks every rule test runs on a solve.

Defaults: one CUDA / x86_64 machine with 80 GB per GPU, 10,000 GPU-hours at an
exchange rate of 1, award unit 1,000 and the EU commercial cap of 0.2; an open,
academic proposal scoring 4 that asks 2,000 reference GPU-hours with a minimum
of 1,000; no score threshold, no share groups, value 'fraction', exponent 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from allocopt import Round, Solution, solve
from allocopt.errors import InfeasibleError
from allocopt.verify import verify
from tests.bruteforce import brute_force


def machine(id: str = "m1", **overrides: Any) -> dict[str, Any]:
    """A machine as round data; any field can be overridden."""
    data: dict[str, Any] = {
        "id": id,
        "name": f"Machine {id}",
        "site": "Test site",
        "accelerator": "Test GPU",
        "stack": "cuda",
        "cpu_arch": "x86_64",
        "gpu_memory_gb": 80.0,
        "gpu_hours": 10_000,
        "exchange_rate": 1.0,
        "award_unit": 1000,
        "commercial_cap": 0.2,
    }
    data.update(overrides)
    return data


def proposal(
    id: str = "P1",
    *,
    kind: str = "academic",
    score: float = 4.0,
    commitment: str = "open",
    embargo_months: int | None = None,
    stacks: Sequence[str] = ("cuda",),
    archs: Sequence[str] = ("x86_64",),
    memory: float = 0.0,
    request: int = 2000,
    minimum: int = 1000,
) -> dict[str, Any]:
    """A proposal as round data, from the few fields the rule tests vary."""
    publication: dict[str, Any] = {"commitment": commitment}
    if embargo_months is not None:
        publication["embargo_months"] = embargo_months
    return {
        "id": id,
        "title": f"Proposal {id}",
        "applicant": {"name": f"Applicant of {id}", "kind": kind, "country": "DE"},
        "score": score,
        "publication": publication,
        "requirements": {"stacks": list(stacks), "cpu_archs": list(archs), "min_gpu_memory_gb": memory},
        "request": {"reference_gpu_hours": request, "minimum_reference_gpu_hours": minimum},
    }


def group(id: str, kinds: Sequence[str], min_share: float = 0.0, max_share: float = 1.0) -> dict[str, Any]:
    """A share group as round data."""
    return {
        "id": id,
        "name": f"Group {id}",
        "kinds": list(kinds),
        "min_share": min_share,
        "max_share": max_share,
    }


def make_round(
    *,
    machines: Sequence[dict[str, Any]] | None = None,
    proposals: Sequence[dict[str, Any]] | None = None,
    groups: Sequence[dict[str, Any]] = (),
    threshold: float = 0.0,
    commercial: str = "within_cap",
    max_embargo_months: int | None = 12,
    value: str = "fraction",
    exponent: int = 1,
) -> Round:
    """A validated round from machines, proposals and the policy settings the tests vary."""
    data = {
        "id": "rule-test",
        "name": "Rule test round",
        "machines": list(machines) if machines is not None else [machine()],
        "policy": {
            "score_threshold": threshold,
            "share_groups": list(groups),
            "free_access": {"max_embargo_months": max_embargo_months},
            "commercial": commercial,
            "merit": {"value": value, "exponent": exponent},
        },
        "proposals": list(proposals) if proposals is not None else [proposal()],
    }
    return Round.model_validate(data)


def solve_checked(rnd: Round) -> Solution:
    """Solve; the solution must be proven optimal, pass verify and match brute force."""
    solution = solve(rnd)
    assert solution.solver.status == "optimal"
    assert verify(rnd, solution) == []
    assert solution.objective.scaled == brute_force(rnd)
    return solution


def assert_infeasible(rnd: Round) -> None:
    """solve must refuse the round, and brute force must agree that no plan exists."""
    with pytest.raises(InfeasibleError):
        solve(rnd)
    assert brute_force(rnd) is None


def hours(solution: Solution, proposal_id: str) -> dict[str, int]:
    """GPU-hours awarded to a proposal, by machine id."""
    return {a.machine: a.gpu_hours for a in solution.result(proposal_id).allocations}


def codes(solution: Solution, proposal_id: str) -> list[str]:
    """The reason codes given for a proposal, in order."""
    return [r.code for r in solution.result(proposal_id).reasons]


def decision(solution: Solution, proposal_id: str) -> str:
    """A proposal's decision as its string value."""
    return solution.result(proposal_id).decision.value
