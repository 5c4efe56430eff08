"""Turn awarded units into decisions, reasons and metrics (no solver involved).

Given the round's terms and the units awarded per option, this says for every
proposal what it got and, when it did not get its full request, every rule
that stopped it, with the numbers. The rules checked here are exactly the
model's: if no rule blocks one more award unit, the only remaining causes are
an unproven solve or a zero merit weight, and the reason says so.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

from allocopt.solution import (
    Allocation,
    Decision,
    GroupMetrics,
    MachineMetrics,
    Metrics,
    ProposalResult,
    ReasonOut,
)
from allocopt.terms import Assessment, Option, Terms, exact

Units = dict[tuple[str, str], int]


class Ledger:
    """Hours used and left per machine, per machine's commercial cap and per group."""

    def __init__(self, terms: Terms, units: Units) -> None:
        self.terms = terms
        self.machine_used: dict[str, int] = defaultdict(int)
        self.commercial_used: dict[str, int] = defaultdict(int)
        self.group_ref: dict[str, Fraction] = defaultdict(Fraction)
        for o in terms.options:
            u = units.get((o.proposal_id, o.machine_id), 0)
            if not u:
                continue
            a = terms.assessments[o.proposal_id]
            self.machine_used[o.machine_id] += u * o.unit_hours
            if a.commercial:
                self.commercial_used[o.machine_id] += u * o.unit_hours
            if a.group_id is not None:
                self.group_ref[a.group_id] += u * o.ref_per_unit

    def machine_left(self, machine_id: str) -> int:
        return self.terms.round.machine(machine_id).gpu_hours - self.machine_used[machine_id]

    def commercial_left(self, machine_id: str) -> int:
        return self.terms.commercial_cap_hours[machine_id] - self.commercial_used[machine_id]

    def group_left(self, group_id: str) -> Fraction:
        return self.terms.groups[group_id].max_ref - self.group_ref[group_id]

    def blockers(self, a: Assessment, o: Option, units: int) -> list[tuple[str, str]]:
        """The rules that forbid adding `units` award units on option o, as (code, detail)."""
        m = self.terms.round.machine(o.machine_id)
        hours = units * o.unit_hours
        out: list[tuple[str, str]] = []
        if self.machine_left(m.id) < hours:
            out.append(("capacity", f"{m.name} has {self.machine_left(m.id):,} GPU-h left"))
        if a.commercial and self.commercial_left(m.id) < hours:
            cap = self.terms.commercial_cap_hours[m.id]
            out.append(
                (
                    "commercial_cap",
                    f"{m.name}'s commercial share is full "
                    f"({self.commercial_used[m.id]:,} of {cap:,} GPU-h used)",
                )
            )
        capped_group = a.group_id is not None and self.terms.groups[a.group_id].max_ref < self.terms.total_ref
        if capped_group and a.group_id is not None and self.group_left(a.group_id) < units * o.ref_per_unit:
            g = self.terms.groups[a.group_id]
            share = self.terms.round.policy.share_groups
            max_share = next(s.max_share for s in share if s.id == g.group_id)
            out.append(
                (
                    "share_max",
                    f"the {g.name} share is at its {max_share:.0%} maximum "
                    f"({float(self.group_left(g.group_id)):,.0f} reference GPU-h left)",
                )
            )
        return out


def proposal_results(terms: Terms, units: Units, optimal: bool, gap: float) -> list[ProposalResult]:
    """Every proposal's decision, allocations and reasons, in id order."""
    ledger = Ledger(terms, units)
    return [_result(terms, ledger, a, units, optimal, gap) for a in terms.assessments.values()]


def _result(
    terms: Terms, ledger: Ledger, a: Assessment, units: Units, optimal: bool, gap: float
) -> ProposalResult:
    p = a.proposal
    awarded = [(o, units.get((o.proposal_id, o.machine_id), 0)) for o in a.options]
    awarded = [(o, u) for o, u in awarded if u > 0]
    ref = sum((u * o.ref_per_unit for o, u in awarded), Fraction(0))
    contribution = sum(u * o.coef for o, u in awarded)
    if not a.eligible:
        decision = Decision.NOT_ELIGIBLE
        reasons = [ReasonOut(code=r.code, detail=r.detail) for r in a.ineligible]
    elif not awarded:
        decision = Decision.NOT_FUNDED
        reasons = _why_not_funded(terms, ledger, a, optimal, gap)
    elif all(u == o.request_units for o, u in awarded):
        decision, reasons = Decision.FUNDED, []
    else:
        decision = Decision.REDUCED
        reasons = _why_reduced(terms, ledger, a, awarded[0][0], awarded[0][1], optimal, gap)
    return ProposalResult(
        id=p.id,
        decision=decision,
        allocations=[
            Allocation(
                machine=o.machine_id,
                gpu_hours=u * o.unit_hours,
                reference_gpu_hours=_float(u * o.ref_per_unit),
            )
            for o, u in awarded
        ],
        reference_gpu_hours=_float(ref),
        requested_reference_gpu_hours=p.request.reference_gpu_hours,
        fraction_of_request=_float(ref / p.request.reference_gpu_hours),
        score=p.score,
        merit_weight=_float(a.weight),
        objective_contribution=contribution,
        group=a.group_id,
        commercial=a.commercial,
        reasons=reasons,
    )


def _why_not_funded(
    terms: Terms, ledger: Ledger, a: Assessment, optimal: bool, gap: float
) -> list[ReasonOut]:
    by_code: dict[str, list[str]] = defaultdict(list)
    blocked_everywhere: set[str] | None = None
    for o in a.options:
        blockers = ledger.blockers(a, o, o.min_units)
        if not blockers:
            return [_unexplained(a, optimal, gap)]
        for code, detail in blockers:
            if detail not in by_code[code]:
                by_code[code].append(detail)
        codes = {c for c, _ in blockers}
        blocked_everywhere = codes if blocked_everywhere is None else blocked_everywhere & codes
    minimum = a.proposal.request.minimum_reference_gpu_hours
    heads = {
        "capacity": "every compatible machine is too full for the minimum viable award "
        f"({minimum:,} reference GPU-h)",
        "commercial_cap": "commercial use is capped",
        "share_max": "its share group is full",
    }
    # Rules that block every option alone come first: each decides the case by itself.
    order = sorted(by_code, key=lambda c: (c not in (blocked_everywhere or set()), c))
    return [ReasonOut(code=c, detail=f"{heads[c]}: " + "; ".join(by_code[c])) for c in order]


def _why_reduced(
    terms: Terms,
    ledger: Ledger,
    a: Assessment,
    o: Option,
    units: int,
    optimal: bool,
    gap: float,
) -> list[ReasonOut]:
    m = terms.round.machine(o.machine_id)
    if units == o.max_units and o.capped:
        return [
            ReasonOut(
                code="cap",
                detail=f"{m.name} caps one proposal's award at {o.max_units * o.unit_hours:,} GPU-h",
            )
        ]
    blockers = ledger.blockers(a, o, 1)
    if not blockers:
        return [_unexplained(a, optimal, gap)]
    return [ReasonOut(code=code, detail=detail) for code, detail in blockers]


def _unexplained(a: Assessment, optimal: bool, gap: float) -> ReasonOut:
    if a.weight == 0:
        return ReasonOut(code="zero_merit", detail="its score is the scale minimum: its merit weight is 0")
    assert not optimal, "an optimal solution leaves no room a positive-merit award could use"
    return ReasonOut(
        code="not_reached",
        detail=f"room was left, but the solve stopped before proving optimality (gap {gap:.4%})",
    )


def metrics(terms: Terms, results: list[ProposalResult]) -> Metrics:
    """Round-level figures recomputed from the decisions."""
    rnd = terms.round
    machine_used: dict[str, int] = defaultdict(int)
    commercial_used: dict[str, int] = defaultdict(int)
    machine_count: dict[str, int] = defaultdict(int)
    group_ref: dict[str, Fraction] = defaultdict(Fraction)
    group_count: dict[str, int] = defaultdict(int)
    decisions = {d.value: 0 for d in Decision}
    for r in results:
        decisions[r.decision.value] += 1
        for alloc in r.allocations:
            machine_used[alloc.machine] += alloc.gpu_hours
            machine_count[alloc.machine] += 1
            if r.commercial:
                commercial_used[alloc.machine] += alloc.gpu_hours
            if r.group is not None:
                m = rnd.machine(alloc.machine)
                group_ref[r.group] += alloc.gpu_hours * exact(m.exchange_rate)
        if r.group is not None and r.allocations:
            group_count[r.group] += 1
    total = terms.total_ref
    return Metrics(
        capacity_reference_gpu_hours=_float(total),
        requested_reference_gpu_hours=sum(p.request.reference_gpu_hours for p in rnd.proposals),
        awarded_reference_gpu_hours=_float(
            sum((exact(m.exchange_rate) * machine_used[m.id] for m in rnd.machines), Fraction(0))
        ),
        decisions=decisions,
        groups=[
            GroupMetrics(
                id=g.id,
                name=g.name,
                reference_gpu_hours=_float(group_ref[g.id]),
                share=_float(group_ref[g.id] / total) if total else 0.0,
                min_share=g.min_share,
                max_share=g.max_share,
                proposals_funded=group_count[g.id],
            )
            for g in rnd.policy.share_groups
        ],
        machines=[
            MachineMetrics(
                id=m.id,
                name=m.name,
                gpu_hours=m.gpu_hours,
                awarded_gpu_hours=machine_used[m.id],
                idle_gpu_hours=m.gpu_hours - machine_used[m.id],
                utilisation=round(machine_used[m.id] / m.gpu_hours, 6) if m.gpu_hours else 0.0,
                commercial_gpu_hours=commercial_used[m.id],
                commercial_cap_gpu_hours=terms.commercial_cap_hours[m.id],
                proposals_funded=machine_count[m.id],
            )
            for m in rnd.machines
        ],
    )


def _float(x: Fraction) -> float:
    """Six decimals: enough for hours and shares, and stable across platforms."""
    return round(float(x), 6)
