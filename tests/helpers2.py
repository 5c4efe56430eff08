"""Builders for rounds in the full policy language, and hand-built solutions for verify's tests.

``proposal2`` and ``make_round2`` extend ``tests.helpers`` (same defaults) with machine
options, efficiency, split awards, committee ranks, organisations, soft groups, the share
basis, pins, exclusive groups, organisation caps and the objective.

``hand_solution`` writes the solution file a correct solver would write for a given
allocation, so that a test can break exactly one thing in it. Its derived figures come from
``allocopt.verify``'s own recomputation; the tests that check the recomputation itself state
the expected numbers by hand.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from allocopt.files import sha256_of
from allocopt.round import Proposal, Round
from allocopt.solution import (
    Allocation,
    Decision,
    GroupMetrics,
    MachineMetrics,
    Metrics,
    ObjectiveOut,
    PinOut,
    ProposalResult,
    Provenance,
    RankOut,
    RankStep,
    ReasonOut,
    Solution,
    SolverOut,
    Timing,
)
from allocopt.verify import (
    Facts,
    commercial_cap_hours,
    deviations,
    exact,
    is_commercial,
    merit_weight,
    rank_key,
    rank_positions,
    round_half_up,
    share_group,
    unit_coefficient,
)
from tests.helpers import group, machine, proposal

__all__ = ["group", "hand_solution", "machine", "make_round2", "option", "pin", "proposal2", "soft_group"]

# proposal id -> machine id -> GPU-hours
Awards = Mapping[str, Mapping[str, int]]


def option(machine_id: str, gpu_hours: int, minimum: int, preference: float = 1.0) -> dict[str, Any]:
    """A machine option as round data."""
    return {
        "machine": machine_id,
        "gpu_hours": gpu_hours,
        "minimum_gpu_hours": minimum,
        "preference": preference,
    }


def proposal2(
    id: str = "P1",
    *,
    organisation: str | None = None,
    options: Sequence[dict[str, Any]] | None = None,
    efficiency: Mapping[str, float] | None = None,
    max_machines: int = 1,
    committee_rank: int | None = None,
    **base: Any,
) -> dict[str, Any]:
    """A proposal as round data: ``tests.helpers.proposal`` plus the full policy language."""
    data = proposal(id, **base)
    if organisation is not None:
        data["applicant"]["name"] = organisation
    if options is not None:
        data["request"] = {"machine_options": list(options)}
    if efficiency:
        data["efficiency"] = dict(efficiency)
    if max_machines != 1:
        data["max_machines"] = max_machines
    if committee_rank is not None:
        data["committee_rank"] = committee_rank
    return data


def soft_group(
    id: str, kinds: Sequence[str], min_share: float = 0.0, max_share: float = 1.0, *, penalty: float
) -> dict[str, Any]:
    """A soft share group as round data."""
    return {**group(id, kinds, min_share, max_share), "soft": True, "penalty": penalty}


def pin(
    proposal_id: str,
    action: str = "fund",
    *,
    machine_id: str | None = None,
    gpu_hours: int | None = None,
    reason: str = "committee decision",
) -> dict[str, Any]:
    """A pin as round data."""
    data: dict[str, Any] = {"proposal": proposal_id, "action": action, "reason": reason}
    if machine_id is not None:
        data["machine"] = machine_id
    if gpu_hours is not None:
        data["gpu_hours"] = gpu_hours
    return data


def make_round2(
    *,
    machines: Sequence[dict[str, Any]] | None = None,
    proposals: Sequence[dict[str, Any]] | None = None,
    groups: Sequence[dict[str, Any]] = (),
    threshold: float = 0.0,
    commercial: str = "within_cap",
    value: str = "fraction",
    exponent: int = 1,
    objective: str = "merit",
    share_basis: str = "capacity",
    pins: Sequence[dict[str, Any]] = (),
    exclusive: Sequence[dict[str, Any]] = (),
    max_per_organisation: int | None = None,
) -> Round:
    """A validated round in canonical order, from the settings the tests vary."""
    data = {
        "id": "policy-test",
        "name": "Policy language test round",
        "machines": list(machines) if machines is not None else [machine()],
        "policy": {
            "score_threshold": threshold,
            "share_groups": list(groups),
            "commercial": commercial,
            "merit": {"value": value, "exponent": exponent},
            "objective": objective,
            "share_basis": share_basis,
            "pins": list(pins),
            "exclusive": list(exclusive),
            "max_awards_per_organisation": max_per_organisation,
        },
        "proposals": list(proposals) if proposals is not None else [proposal2()],
    }
    return Round.model_validate(data).canonical()


def hand_solution(rnd: Round, awards: Awards, *, kind: str | None = None) -> Solution:
    """The solution a correct solver writes for this allocation (``kind``: the round's objective).

    Under 'rank' the walk record has a proven fund step per eligible proposal and a proven raise
    step per funded one, each with the final fraction. Every decision but 'funded' gets one
    placeholder reason.
    """
    kind = kind or rnd.policy.objective
    facts = Facts.of(rnd, kind)
    value = rnd.policy.merit.value
    scale = facts.scale
    positions = rank_positions(rnd)
    rates = {m.id: exact(m.exchange_rate) for m in rnd.machines}
    pins = {p.proposal: p for p in rnd.policy.pins}

    results: list[ProposalResult] = []
    fractions: dict[str, Fraction] = {}
    held: defaultdict[str | None, Fraction] = defaultdict(Fraction)
    for p in rnd.proposals:
        mine = dict(sorted(awards.get(p.id, {}).items()))
        options = facts.options[p.id]
        units = {
            mid: Fraction(h, options[mid].machine.award_unit) for mid, h in mine.items() if mid in options
        }
        fraction = sum((options[mid].f * u for mid, u in units.items()), Fraction(0))
        fractions[p.id] = fraction
        contribution = sum(unit_coefficient(rnd, p, options[mid], scale) * u for mid, u in units.items())
        reference = sum((h * rates[mid] for mid, h in mine.items()), Fraction(0))
        held[share_group(rnd, p)] += reference
        if facts.ineligible[p.id]:
            decision = Decision.NOT_ELIGIBLE
        elif not mine:
            decision = Decision.NOT_FUNDED
        elif fraction + min(options[mid].f for mid in units) > 1:
            decision = Decision.FUNDED
        else:
            decision = Decision.REDUCED
        the_pin = pins.get(p.id)
        results.append(
            ProposalResult(
                id=p.id,
                decision=decision,
                allocations=[
                    Allocation(machine=mid, gpu_hours=h, reference_gpu_hours=float(h * rates[mid]))
                    for mid, h in mine.items()
                ],
                reference_gpu_hours=float(reference),
                requested_reference_gpu_hours=_requested(rnd, p.id),
                fraction_of_request=round(float(fraction), 6),
                score=p.score,
                merit_weight=float(merit_weight(rnd, p)),
                objective_contribution=int(contribution),
                group=share_group(rnd, p),
                rank_position=positions[p.id],
                pin=None if the_pin is None else PinOut(action=the_pin.action, reason=the_pin.reason),
                commercial=is_commercial(rnd, p),
                reasons=[]
                if decision == Decision.FUNDED
                else [ReasonOut(code=code, detail="hand-built placeholder") for code in _codes(facts, p)],
            )
        )

    awarded = sum((h * rates[mid] for a in awards.values() for mid, h in a.items()), Fraction(0))
    basis = facts.basis(awarded)
    penalty = 0
    groups = []
    for g in rnd.policy.share_groups:
        short, over = deviations(g, held[g.id], basis) if g.soft else (0, 0)
        if g.soft and g.penalty is not None:
            penalty += round_half_up(scale * exact(g.penalty)) * (short + over)
        groups.append(
            GroupMetrics(
                id=g.id,
                name=g.name,
                reference_gpu_hours=float(held[g.id]),
                share=float(held[g.id] / basis) if basis else 0.0,
                min_share=g.min_share,
                max_share=g.max_share,
                soft=g.soft,
                shortfall_reference_gpu_hours=short,
                excess_reference_gpu_hours=over,
                proposals_funded=sum(1 for r in results if r.allocations and r.group == g.id),
            )
        )
    used: Counter[str] = Counter()
    commercial: Counter[str] = Counter()
    funded_on: Counter[str] = Counter()
    for r in results:
        for alloc in r.allocations:
            used[alloc.machine] += alloc.gpu_hours
            funded_on[alloc.machine] += 1
            if r.commercial:
                commercial[alloc.machine] += alloc.gpu_hours
    merit = sum(r.objective_contribution for r in results)
    scaled = merit - penalty
    metrics = Metrics(
        share_basis=rnd.policy.share_basis,
        capacity_reference_gpu_hours=float(facts.capacity),
        requested_reference_gpu_hours=sum(r.requested_reference_gpu_hours for r in results),
        awarded_reference_gpu_hours=float(awarded),
        decisions={d.value: sum(1 for r in results if r.decision == d) for d in Decision},
        groups=groups,
        machines=[
            MachineMetrics(
                id=m.id,
                name=m.name,
                gpu_hours=m.gpu_hours,
                awarded_gpu_hours=used[m.id],
                idle_gpu_hours=m.gpu_hours - used[m.id],
                utilisation=used[m.id] / m.gpu_hours if m.gpu_hours else 0.0,
                commercial_gpu_hours=commercial[m.id],
                commercial_cap_gpu_hours=commercial_cap_hours(m),
                proposals_funded=funded_on[m.id],
            )
            for m in rnd.machines
        ],
    )
    rank = None
    if kind == "rank":
        order = [p.id for p in sorted(rnd.proposals, key=rank_key) if not facts.ineligible[p.id]]
        funded = [pid for pid in order if awards.get(pid)]
        steps = [
            RankStep(
                position=positions[pid],
                proposal=pid,
                phase="fund",
                outcome="funded" if pid in funded else "not_funded",
                fraction_of_request=round(float(fractions[pid]), 6),
                settled_by="solver",
                proven=True,
            )
            for pid in order
        ] + [
            RankStep(
                position=positions[pid],
                proposal=pid,
                phase="raise",
                outcome="raised",
                fraction_of_request=round(float(fractions[pid]), 6),
                settled_by="solver",
                proven=True,
            )
            for pid in funded
        ]
        rank = RankOut(order=order, steps=steps, all_proven=True)
    return Solution(
        round_id=rnd.id,
        round_name=rnd.name,
        objective=ObjectiveOut(
            kind="rank" if kind == "rank" else "merit",
            value_basis=value,
            scale=scale,
            merit_scaled=merit,
            penalty_scaled=penalty,
            scaled=scaled,
            value=scaled / scale,
            best_bound_scaled=None if kind == "rank" else scaled,
            gap=None if kind == "rank" else 0.0,
        ),
        rank=rank,
        proposals=results,
        metrics=metrics,
        solver=SolverOut(
            status="optimal", stop_reason="finished", deterministic_seconds=0.0, options_considered=0
        ),
        timing=Timing(solve_seconds=0.0, total_seconds=0.0),
        provenance=Provenance(
            input_sha256=sha256_of(rnd.canonical()),
            allocopt_version="test",
            ortools_version="test",
            scipy_version="test",
            python_version="test",
            options={"objective": kind},
            seed=0,
        ),
        input=rnd.canonical(),
    )


def _requested(rnd: Round, pid: str) -> int:
    """The request in reference GPU-hours: the total, or the largest option converted."""
    p = rnd.proposal(pid)
    if p.request.reference_gpu_hours is not None:
        return p.request.reference_gpu_hours
    rates = {m.id: exact(m.exchange_rate) for m in rnd.machines}
    return max(math.ceil(o.gpu_hours * rates[o.machine]) for o in p.request.machine_options or [])


def _codes(facts: Facts, p: Proposal) -> list[str]:
    """The eligibility reasons verify recomputes, else a placeholder 'capacity'."""
    rnd = facts.rnd
    codes = []
    if Fraction(str(p.score)) < Fraction(str(rnd.policy.score_threshold)):
        codes.append("below_threshold")
    if rnd.policy.commercial == "exclude" and is_commercial(rnd, p):
        codes.append("publication")
    if not facts.options[p.id]:
        codes.append("incompatible")
    return codes or ["capacity"]
