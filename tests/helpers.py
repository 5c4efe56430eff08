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

from allocopt.errors import InfeasibleError
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve
from allocopt.verify import verify
from tests.bruteforce import brute_force, brute_force_rank


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
    options: Sequence[dict[str, Any]] | None = None,
    efficiency: dict[str, float] | None = None,
    max_machines: int = 1,
    committee_rank: int | None = None,
    organisation: str | None = None,
) -> dict[str, Any]:
    """A proposal as round data, from the few fields the rule tests vary.

    ``options`` (see ``option``) replaces the reference-hour request; ``organisation`` is the
    applicant's name (default: one of its own).
    """
    publication: dict[str, Any] = {"commitment": commitment}
    if embargo_months is not None:
        publication["embargo_months"] = embargo_months
    data: dict[str, Any] = {
        "id": id,
        "title": f"Proposal {id}",
        "applicant": {"name": organisation or f"Applicant of {id}", "kind": kind, "country": "DE"},
        "score": score,
        "publication": publication,
        "requirements": {"stacks": list(stacks), "cpu_archs": list(archs), "min_gpu_memory_gb": memory},
        "request": {"reference_gpu_hours": request, "minimum_reference_gpu_hours": minimum},
    }
    if options is not None:
        data["request"] = {"machine_options": list(options)}
    if efficiency is not None:
        data["efficiency"] = efficiency
    if max_machines != 1:
        data["max_machines"] = max_machines
    if committee_rank is not None:
        data["committee_rank"] = committee_rank
    return data


def option(machine: str, gpu_hours: int, minimum: int, preference: float = 1.0) -> dict[str, Any]:
    """One machine option of a proposal, in that machine's own GPU-hours."""
    return {
        "machine": machine,
        "gpu_hours": gpu_hours,
        "minimum_gpu_hours": minimum,
        "preference": preference,
    }


def pin(
    proposal: str, action: str = "fund", machine: str | None = None, gpu_hours: int | None = None
) -> dict[str, Any]:
    """A committee pin as round data."""
    data: dict[str, Any] = {
        "proposal": proposal,
        "action": action,
        "reason": f"committee: {action} {proposal}",
    }
    if machine is not None:
        data["machine"] = machine
    if gpu_hours is not None:
        data["gpu_hours"] = gpu_hours
    return data


def group(
    id: str,
    kinds: Sequence[str],
    min_share: float = 0.0,
    max_share: float = 1.0,
    penalty: float | None = None,
) -> dict[str, Any]:
    """A share group as round data; soft when a penalty is given."""
    data: dict[str, Any] = {
        "id": id,
        "name": f"Group {id}",
        "kinds": list(kinds),
        "min_share": min_share,
        "max_share": max_share,
    }
    if penalty is not None:
        data["soft"] = True
        data["penalty"] = penalty
    return data


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
    objective: str = "merit",
    share_basis: str = "capacity",
    pins: Sequence[dict[str, Any]] = (),
    exclusive: Sequence[Sequence[str]] = (),
    max_awards_per_organisation: int | None = None,
) -> Round:
    """A validated round from machines, proposals and the policy settings the tests vary.

    ``exclusive`` lists groups of proposal ids (ids x1, x2, ... in order).
    """
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
            "objective": objective,
            "share_basis": share_basis,
            "pins": list(pins),
            "exclusive": [
                {"id": f"x{i}", "proposals": list(ids), "reason": "the same work twice"}
                for i, ids in enumerate(exclusive, start=1)
            ],
            "max_awards_per_organisation": max_awards_per_organisation,
        },
        "proposals": list(proposals) if proposals is not None else [proposal()],
    }
    return Round.model_validate(data)


def rank_options() -> SolveOptions:
    """Solve options overriding the round's objective with 'rank'."""
    return SolveOptions(objective="rank")


def solve_checked(rnd: Round) -> Solution:
    """Solve under merit; the solution must be proven optimal, pass verify and match brute force."""
    solution = solve(rnd)
    assert solution.objective.kind == "merit"
    assert solution.solver.status == "optimal"
    assert verify(rnd, solution) == []
    assert solution.objective.scaled == brute_force(rnd)
    return solution


def solve_rank_checked(rnd: Round, via_policy: bool = False) -> Solution:
    """Solve under the rank objective (the round's own policy.objective with ``via_policy``, else
    the solve option); every step must be proven, verify must pass, and the funded set and
    fractions must be brute force's."""
    solution = solve(rnd, None if via_policy else rank_options())
    assert solution.objective.kind == "rank"
    assert solution.solver.status == "optimal"
    assert solution.rank is not None and solution.rank.all_proven
    assert verify(rnd, solution) == []
    expected = brute_force_rank(rnd)
    assert expected is not None
    assert funded(solution) == set(expected.funded)
    for r in solution.proposals:
        assert r.fraction_of_request == pytest.approx(float(expected.fractions.get(r.id, 0)), abs=1e-6), r.id
    return solution


def assert_infeasible(rnd: Round, rank: bool = False) -> None:
    """solve (under merit, or rank) must refuse the round, and brute force must agree that no
    plan exists."""
    with pytest.raises(InfeasibleError):
        solve(rnd, rank_options() if rank else None)
    assert (brute_force_rank(rnd) if rank else brute_force(rnd)) is None


def funded(solution: Solution) -> set[str]:
    """Ids of the proposals with an award."""
    return {r.id for r in solution.proposals if r.decision.value in ("funded", "reduced")}


def fraction(solution: Solution, proposal_id: str) -> float:
    """A proposal's awarded fraction of its request."""
    return solution.result(proposal_id).fraction_of_request


def hours(solution: Solution, proposal_id: str) -> dict[str, int]:
    """GPU-hours awarded to a proposal, by machine id."""
    return {a.machine: a.gpu_hours for a in solution.result(proposal_id).allocations}


def codes(solution: Solution, proposal_id: str) -> list[str]:
    """The reason codes given for a proposal, in order."""
    return [r.code for r in solution.result(proposal_id).reasons]


def decision(solution: Solution, proposal_id: str) -> str:
    """A proposal's decision as its string value."""
    return solution.result(proposal_id).decision.value
