"""Turn awarded units into decisions, reasons and metrics (no solver involved).

Given the round's terms and the units awarded per option, this says for every
proposal what it got and, when it did not get its full request, every rule
that stops it from getting more, with the numbers. The rules checked are the
model's, one at a time, against the final allocation. When no single rule
blocks a proposal, the reason says what is left: an unproven solve, a zero
merit weight, the rank walk, or the rules only in combination.
"""

from __future__ import annotations

import gc
import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction

from allocopt.calibrate import calibrate
from allocopt.solution import (
    Allocation,
    CalibratedOut,
    Decision,
    GroupMetrics,
    MachineMetrics,
    Metrics,
    PinOut,
    ProposalResult,
    ReasonOut,
)
from allocopt.terms import Assessment, Option, Terms, split_reachable

Units = dict[tuple[str, str], int]


class Ledger:
    """Hours used and left per machine, commercial cap, group and organisation."""

    def __init__(self, terms: Terms, units: Units) -> None:
        self.terms = terms
        self.units = units
        self.machine_used: dict[str, int] = defaultdict(int)
        self.commercial_used: dict[str, int] = defaultdict(int)
        self.group_ref: dict[str, Fraction] = defaultdict(Fraction)
        self.awarded_ref = Fraction(0)
        self.funded: set[str] = set()
        self.org_funded: dict[str, int] = defaultdict(int)
        for o in terms.options:
            u = units.get(o.key, 0)
            if not u:
                continue
            a = terms.assessments[o.proposal_id]
            self.machine_used[o.machine_id] += u * o.unit_hours
            if a.commercial:
                self.commercial_used[o.machine_id] += u * o.unit_hours
            if a.group_id is not None:
                self.group_ref[a.group_id] += u * o.ref_per_unit
            self.awarded_ref += u * o.ref_per_unit
            if o.proposal_id not in self.funded:
                self.funded.add(o.proposal_id)
                self.org_funded[a.organisation] += 1

    def machine_left(self, machine_id: str) -> int:
        return self.terms.round.machine(machine_id).gpu_hours - self.machine_used[machine_id]

    def commercial_left(self, machine_id: str) -> int:
        return self.terms.commercial_cap_hours[machine_id] - self.commercial_used[machine_id]

    def room(self, a: Assessment, o: Option, limits: tuple[str, ...]) -> int:
        """Units option o could still take under the named limits (machine, commercial, share)."""
        units = min(o.max_units, self.machine_left(o.machine_id) // o.unit_hours)
        if "commercial" in limits and a.commercial:
            units = min(units, self.commercial_left(o.machine_id) // o.unit_hours)
        if "share" in limits and a.group_id is not None and self.terms.share_basis == "capacity":
            g = self.terms.groups[a.group_id]
            if g.max_share < 1 and not g.soft:
                units = min(units, math.floor((g.max_ref - self.group_ref[g.group_id]) / o.ref_per_unit))
        return max(0, units)

    def fraction(self, a: Assessment) -> Fraction:
        """The proposal's awarded fraction of its request."""
        return sum((o.f * u for o in a.options if (u := self.units.get(o.key, 0))), Fraction(0))

    def blockers(self, a: Assessment, o: Option, units: int, *, adding: bool) -> list[tuple[str, str]]:
        """The rules that forbid `units` more award units on option o, as (code, detail).

        ``adding`` is True when the proposal is not funded yet, so rules on the
        number of funded proposals (exclusivity, organisations) apply too.
        """
        m = self.terms.round.machine(o.machine_id)
        hours, ref = units * o.unit_hours, units * o.ref_per_unit
        out: list[tuple[str, str]] = []
        if a.pin is not None and a.pin.action == "exclude":
            out.append(("pinned", f"pinned not to be funded: {a.pin.reason}"))
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
        out += self._share_blockers(a, ref)
        if adding:
            out += self._count_blockers(a)
        return out

    def _share_blockers(self, a: Assessment, ref: Fraction) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        basis_after = self.terms.total_ref if self.terms.share_basis == "capacity" else self.awarded_ref + ref
        if a.group_id is not None:
            g = self.terms.groups[a.group_id]
            after = self.group_ref[g.group_id] + ref
            if g.max_share < 1 and after > g.max_share * basis_after:
                kind = "soft maximum (each hour over costs merit)" if g.soft else "maximum"
                basis_now = self.terms.total_ref if self.terms.share_basis == "capacity" else self.awarded_ref
                now = float(self.group_ref[g.group_id] / basis_now) if basis_now else 0.0
                out.append(
                    (
                        "share_max",
                        f"the {g.name} share is {now:.1%}; {float(ref):,.0f} more reference GPU-h would "
                        f"pass its {float(g.max_share):.0%} {kind}",
                    )
                )
        if self.terms.share_basis == "awarded":
            # Under the 'awarded' basis, more hours for one group lower every other group's share.
            for g in self.terms.groups.values():
                if g.group_id == a.group_id or g.min_share == 0:
                    continue
                if self.group_ref[g.group_id] < g.min_share * basis_after:
                    out.append(
                        (
                            "share_min",
                            f"the {g.name} share would fall below its {float(g.min_share):.0%} minimum "
                            "of the hours awarded",
                        )
                    )
        return out

    def _count_blockers(self, a: Assessment) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for group in self.terms.round.policy.exclusive:
            if a.proposal.id in group.proposals:
                rivals = sorted(p for p in group.proposals if p in self.funded and p != a.proposal.id)
                if rivals:
                    why = f" ({group.reason})" if group.reason else ""
                    out.append(
                        (
                            "exclusive",
                            f"at most one of {', '.join(group.proposals)} may be funded{why}: {rivals[0]} is",
                        )
                    )
        k = self.terms.round.policy.max_awards_per_organisation
        if k is not None and self.org_funded[a.organisation] >= k:
            out.append(
                ("organisation_cap", f"{a.organisation} already has {k} funded proposal(s), the most allowed")
            )
        return out


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while. Building tens of thousands of result
    objects (none of them in a reference cycle) triggers its full passes, and each one walks the
    whole heap, the round's terms included: at 10,000 proposals that doubled the time per option.
    The switch is process-wide: a caller solving in several threads at once may see it off, or
    turned back on by another thread, for a moment; either is harmless."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


@_collector_paused()
def proposal_results(
    terms: Terms,
    units: Units,
    *,
    objective: str,
    optimal: bool,
    gap: float,
    unproven: frozenset[str] = frozenset(),
) -> list[ProposalResult]:
    """Every proposal's decision, allocations and reasons, in id order. Under 'rank', a
    proposal's decision counts as proven unless one of its steps is in ``unproven``."""
    ledger = Ledger(terms, units)
    position = {pid: i + 1 for i, pid in enumerate(terms.order)}

    def settled(pid: str) -> bool:
        return pid not in unproven if objective == "rank" else optimal

    results = [
        _result(terms, ledger, a, position[a.proposal.id], objective, settled(a.proposal.id), gap)
        for a in terms.assessments.values()
    ]
    if not any(p.reviews for p in terms.round.proposals):
        return results
    method = terms.round.policy.reviews.calibration
    calibrated = calibrate(terms.round)
    return [
        r.model_copy(
            update={
                "calibrated": CalibratedOut(
                    method=method,
                    **{k: v for k, v in vars(calibrated[r.id]).items() if k != "sd"},
                )
            }
        )
        for r in results
    ]


def _result(
    terms: Terms, ledger: Ledger, a: Assessment, position: int, objective: str, optimal: bool, gap: float
) -> ProposalResult:
    p = a.proposal
    awarded = [(o, ledger.units.get(o.key, 0)) for o in a.options]
    awarded = [(o, u) for o, u in awarded if u > 0]
    fraction = ledger.fraction(a)
    ref = sum((u * o.ref_per_unit for o, u in awarded), Fraction(0))
    if not a.eligible:
        decision = Decision.NOT_ELIGIBLE
        reasons = [ReasonOut(code=r.code, detail=r.detail) for r in a.ineligible]
    elif not awarded:
        decision = Decision.NOT_FUNDED
        reasons = _why_not_funded(ledger, a, objective, optimal, gap)
    elif fraction + min(o.f for o, _ in awarded) > 1:
        decision, reasons = Decision.FUNDED, []
    else:
        decision = Decision.REDUCED
        reasons = _why_reduced(terms, ledger, a, awarded, objective, optimal, gap)
    if objective == "rank" and not optimal and reasons and all(r.code != "not_reached" for r in reasons):
        # A rule that blocks it in this allocation is not the whole story: its own check ran out,
        # so another allocation might have given it more.
        reasons.append(_unexplained(a, objective, optimal, gap))
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
        requested_reference_gpu_hours=math.ceil(a.requested_ref),
        fraction_of_request=_float(fraction),
        score=p.score,
        merit_weight=_float(a.weight),
        objective_contribution=sum(u * o.coef for o, u in awarded),
        group=a.group_id,
        rank_position=position,
        pin=PinOut(action=a.pin.action, reason=a.pin.reason) if a.pin else None,
        commercial=a.commercial,
        reasons=reasons,
    )


def _why_not_funded(
    ledger: Ledger, a: Assessment, objective: str, optimal: bool, gap: float
) -> list[ReasonOut]:
    if a.split:
        return _why_split_not_funded(ledger, a, objective, optimal, gap)
    by_code: dict[str, list[str]] = defaultdict(list)
    everywhere: set[str] | None = None
    for o in a.options:
        lowest = 1 if a.split else o.min_units
        blockers = ledger.blockers(a, o, lowest, adding=True)
        if not blockers:
            return [_unexplained(a, objective, optimal, gap)]
        for code, detail in blockers:
            if detail not in by_code[code]:
                by_code[code].append(detail)
        codes = {c for c, _ in blockers}
        everywhere = codes if everywhere is None else everywhere & codes
    minimum = _minimum_words(ledger.terms, a)
    heads = {
        "pinned": "",
        "capacity": f"every compatible machine is too full for the minimum viable award ({minimum})",
        "commercial_cap": "commercial use is capped",
        "share_max": "its share group is full",
        "share_min": "another group's minimum share needs the hours",
        "exclusive": "",
        "organisation_cap": "",
    }
    # Rules that block every option alone come first: each decides the case by itself; a pin first of all.
    order = sorted(by_code, key=lambda c: (c != "pinned", c not in (everywhere or set()), c))
    return [ReasonOut(code=c, detail=_join(heads[c], by_code[c])) for c in order]


def _why_split_not_funded(
    ledger: Ledger, a: Assessment, objective: str, optimal: bool, gap: float
) -> list[ReasonOut]:
    """A split award needs its minimum from up to k machines together: check the room left."""
    first = ledger.blockers(a, a.options[0], 0, adding=True)
    counted = [
        ReasonOut(code=c, detail=d) for c, d in first if c in ("pinned", "exclusive", "organisation_cap")
    ]
    if counted:
        return counted
    k = a.proposal.max_machines
    for code, limits in (("capacity", ("machine",)), ("commercial_cap", ("machine", "commercial"))):
        rooms = [replace(o, max_units=ledger.room(a, o, limits)) for o in a.options]
        if not split_reachable([o for o in rooms if o.max_units > 0], k):
            left = "; ".join(
                f"{ledger.terms.round.machine(o.machine_id).name} has "
                + (
                    f"{ledger.machine_left(o.machine_id):,} GPU-h left"
                    if code == "capacity"
                    else f"{ledger.commercial_left(o.machine_id):,} commercial GPU-h left"
                )
                for o in a.options
            )
            return [
                ReasonOut(
                    code=code,
                    detail=f"on up to {k} machines together, the hours left do not reach the minimum "
                    f"viable award ({_minimum_words(ledger.terms, a)}): {left}",
                )
            ]
    rooms = [replace(o, max_units=ledger.room(a, o, ("machine", "commercial", "share"))) for o in a.options]
    if a.group_id is not None and not split_reachable([o for o in rooms if o.max_units > 0], k):
        g = ledger.terms.groups[a.group_id]
        return [
            ReasonOut(
                code="share_max", detail=f"its share group is full: the {g.name} share is at its maximum"
            )
        ]
    return [_unexplained(a, objective, optimal, gap)]


def _why_reduced(
    terms: Terms,
    ledger: Ledger,
    a: Assessment,
    awarded: list[tuple[Option, int]],
    objective: str,
    optimal: bool,
    gap: float,
) -> list[ReasonOut]:
    reasons: list[ReasonOut] = []
    if a.pin is not None and a.pin.action == "fund" and a.pin.gpu_hours is not None:
        return [
            ReasonOut(
                code="pinned", detail=f"the award is pinned at {a.pin.gpu_hours:,} GPU-h: {a.pin.reason}"
            )
        ]
    fraction = ledger.fraction(a)
    used = {o.key for o, _ in awarded}
    candidates = [o for o in a.options if o.key in used or (a.split and len(used) < a.proposal.max_machines)]
    for o in candidates:
        if fraction + o.f > 1:
            continue  # one more unit here would pass the request
        units = ledger.units.get(o.key, 0)
        m = terms.round.machine(o.machine_id)
        if units >= o.max_units and o.capped:
            reasons.append(
                ReasonOut(
                    code="cap",
                    detail=f"{m.name} caps one proposal's award at {o.max_units * o.unit_hours:,} GPU-h",
                )
            )
            continue
        if units >= o.max_units:
            continue
        blockers = ledger.blockers(a, o, 1, adding=False)
        if not blockers:
            return [*reasons, _unexplained(a, objective, optimal, gap)]
        reasons += [ReasonOut(code=c, detail=d) for c, d in blockers if all(r.detail != d for r in reasons)]
    return reasons or [_unexplained(a, objective, optimal, gap)]


def _unexplained(a: Assessment, objective: str, optimal: bool, gap: float) -> ReasonOut:
    """No single rule blocks more hours: say what else it is."""
    if objective == "keep":
        return ReasonOut(
            code="kept",
            detail="room was left: this re-solve kept close to the previous solution, within its merit "
            "tolerance, rather than reshuffle awards",
        )
    if objective == "rank" and not optimal:
        return ReasonOut(
            code="not_reached",
            detail="room may be left: the rank walk's check for it ran out of its work limit, so it was "
            "treated as not funded (or not raised); raise --work-limit",
        )
    if objective == "rank":
        return ReasonOut(
            code="rank",
            detail="better-ranked proposals come first: with their awards fixed, the rules together leave "
            "no room (each step checked by the solver)",
        )
    if a.weight == 0:
        return ReasonOut(code="zero_merit", detail="its score is the scale minimum: its merit weight is 0")
    if not optimal:
        return ReasonOut(
            code="not_reached",
            detail=f"room was left, but the solve stopped before proving optimality (gap {gap:.4%})",
        )
    return ReasonOut(
        code="combined_rules",
        detail="no single rule blocks it, but the rules together leave no room that would add merit "
        "(e.g. moving hours would break a share bound or a soft share costs more than it gains)",
    )


def _minimum_words(terms: Terms, a: Assessment) -> str:
    """The minimum viable award on each machine the proposal can use (an option whose minimum is
    above the machine's cap on one award is no option, and is not named)."""
    r = a.proposal.request
    if r.minimum_reference_gpu_hours is not None:
        return f"{r.minimum_reference_gpu_hours:,} reference GPU-h"
    usable = {o.machine_id for o in a.options}
    return "; ".join(
        f"{o.minimum_gpu_hours:,} GPU-h on {terms.round.machine(o.machine).name}"
        for o in r.machine_options or []
        if o.machine in usable
    )


def _join(head: str, details: list[str]) -> str:
    return f"{head}: {'; '.join(details)}" if head else "; ".join(details)


def metrics(terms: Terms, results: list[ProposalResult]) -> Metrics:
    """Round-level figures recomputed from the decisions."""
    rnd = terms.round
    rate = {m.id: Fraction(str(m.exchange_rate)) for m in rnd.machines}
    machine_used: dict[str, int] = defaultdict(int)
    commercial_used: dict[str, int] = defaultdict(int)
    machine_count: dict[str, int] = defaultdict(int)
    group_ref: dict[str, Fraction] = defaultdict(Fraction)
    group_count: dict[str, int] = defaultdict(int)
    decisions = {d.value: 0 for d in Decision}
    awarded = Fraction(0)
    for r in results:
        decisions[r.decision.value] += 1
        for alloc in r.allocations:
            machine_used[alloc.machine] += alloc.gpu_hours
            machine_count[alloc.machine] += 1
            awarded += alloc.gpu_hours * rate[alloc.machine]
            if r.commercial:
                commercial_used[alloc.machine] += alloc.gpu_hours
            if r.group is not None:
                group_ref[r.group] += alloc.gpu_hours * rate[alloc.machine]
        if r.group is not None and r.allocations:
            group_count[r.group] += 1
    basis = terms.total_ref if terms.share_basis == "capacity" else awarded
    groups = []
    for g in rnd.policy.share_groups:
        bound = terms.groups[g.id]
        held = group_ref[g.id]
        short, over = deviations(bound.min_share, bound.max_share, held, basis) if g.soft else (0, 0)
        groups.append(
            GroupMetrics(
                id=g.id,
                name=g.name,
                reference_gpu_hours=_float(held),
                share=_float(held / basis) if basis else 0.0,
                min_share=g.min_share,
                max_share=g.max_share,
                soft=g.soft,
                shortfall_reference_gpu_hours=short,
                excess_reference_gpu_hours=over,
                proposals_funded=group_count[g.id],
            )
        )
    return Metrics(
        share_basis=terms.round.policy.share_basis,
        capacity_reference_gpu_hours=_float(terms.total_ref),
        requested_reference_gpu_hours=sum(math.ceil(a.requested_ref) for a in terms.assessments.values()),
        awarded_reference_gpu_hours=_float(awarded),
        decisions=decisions,
        groups=groups,
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


def deviations(lo: Fraction, hi: Fraction, held: Fraction, basis: Fraction) -> tuple[int, int]:
    """Whole reference GPU-hours below the minimum and above the maximum (rounded up)."""
    return math.ceil(max(Fraction(0), lo * basis - held)), math.ceil(max(Fraction(0), held - hi * basis))


def penalty_scaled(terms: Terms, results: list[ProposalResult]) -> int:
    """The scaled penalty of every soft group's deviation."""
    return sum(
        (terms.groups[g.id].penalty or 0) * (g.shortfall_reference_gpu_hours + g.excess_reference_gpu_hours)
        for g in metrics(terms, results).groups
    )


def _float(x: Fraction) -> float:
    """Six decimals: enough for hours and shares, and stable across platforms."""
    return round(float(x), 6)
