"""Check a solution against a round: every rule, every award bound and the objective.

``verify`` is the independent check of a solution. It shares no code with the
solver side (``terms``, ``model``, ``outcome``, ``solve``, ``diagnose``): it
reads the round the user gives and recomputes each rule from the round alone,
in exact fractions of the decimals as written. A mistake in how the solver
derives its terms, builds its model or writes its solution therefore cannot
hide: to slip through, the same mistake would have to be made twice, in two
separately written pieces of code. The solution's embedded ``input`` is not
trusted either; only its hash is compared with the round's.

``verify`` returns a list of ``Violation`` (empty: the solution is valid). Each
names a rule code from ``RULES``, the proposal, machine or share group it is
about ("" for the whole round), and one sentence with the numbers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction

from allocopt.files import sha256_of
from allocopt.round import Machine, Proposal, Round
from allocopt.solution import Decision, ProposalResult, Solution

# Integer points per unit of objective value, by the policy's merit value.
SCALES = {"fraction": 10**8, "hours": 10**3}
# Relative tolerance for figures a solution reports as floats.
TOLERANCE = Fraction(1, 10**6)

RULES: dict[str, str] = {
    "input_hash": "the solution was made from this round",
    "missing_proposal": "every proposal of the round has a decision",
    "duplicate_proposal": "no proposal has more than one decision",
    "unknown_proposal": "every decision is about a proposal of the round",
    "unknown_machine": "every allocation names a machine of the round",
    "below_threshold": "funded proposals score at least the threshold",
    "publication": "commercial proposals are not funded when the policy excludes them",
    "incompatible": "proposals are funded only on machines their code can use",
    "two_machines": "a proposal is funded on one machine at most",
    "zero_award": "no allocation of zero GPU-hours is listed",
    "award_unit": "awards are whole multiples of the machine's award unit",
    "below_minimum": "awards reach the proposal's minimum (and at least one award unit)",
    "above_request": "awards do not exceed the request, rounded down to whole award units",
    "above_cap": "awards do not exceed the machine's per-proposal cap",
    "capacity": "a machine's awards fit in its GPU-hours",
    "commercial_cap": "a machine's commercial awards fit in its commercial cap",
    "share_min": "each share group gets at least its minimum share",
    "share_max": "each share group gets at most its maximum share",
    "objective": "the reported objective is the recomputed one",
    "objective_scale": "the objective scale matches the policy's merit value",
    "value_basis": "the objective's value basis is the policy's merit value",
    "best_bound": "the best bound is not below the objective",
    "contribution": "each proposal's objective contribution is the recomputed one",
    "reference_hours": "reported reference GPU-hours match the awards",
    "figures": "reported facts about a proposal match the round",
    "decision": "each decision follows from the round and the awards",
    "reasons": "every decision but 'funded' gives its reasons, and 'funded' gives none",
    "metrics": "the round's metrics match the awards",
}


@dataclass(frozen=True)
class Violation:
    """One broken rule: its code, what it is about and a sentence with the numbers."""

    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass(frozen=True)
class Award:
    """One listed allocation of a proposal of the round on a machine of the round."""

    proposal: Proposal
    machine: Machine
    gpu_hours: int

    @property
    def units(self) -> Fraction:
        """Award units (a whole number unless the award-unit rule is broken)."""
        return Fraction(self.gpu_hours, self.machine.award_unit)

    @property
    def reference(self) -> Fraction:
        """The award in reference GPU-hours, exactly."""
        return self.gpu_hours * exact(self.machine.exchange_rate)


@dataclass(frozen=True)
class Listed:
    """A decision of the solution on a proposal of the round, with its awards."""

    result: ProposalResult
    proposal: Proposal
    awards: tuple[Award, ...]  # allocations on machines of the round, zero-hour ones too
    complete: bool  # False when an allocation names an unknown machine

    @property
    def positive(self) -> tuple[Award, ...]:
        """The awards of more than zero GPU-hours."""
        return tuple(a for a in self.awards if a.gpu_hours > 0)


@dataclass(frozen=True)
class Bounds:
    """What one award of a proposal on a machine may be, in award units."""

    ref_per_unit: Fraction
    request_units: int
    min_units: int
    cap_units: int | None

    @property
    def max_units(self) -> int:
        return self.request_units if self.cap_units is None else min(self.request_units, self.cap_units)


def verify(rnd: Round, solution: Solution) -> list[Violation]:
    """Every rule the solution breaks against this round (empty: the solution is valid)."""
    listed = _listed(rnd, solution)
    return [
        *check_input_hash(rnd, solution),
        *check_coverage(rnd, solution),
        *check_eligibility(rnd, listed),
        *check_one_machine(listed),
        *check_award_sizes(listed),
        *check_capacity(rnd, listed),
        *check_commercial_cap(rnd, listed),
        *check_shares(rnd, listed),
        *check_objective(rnd, solution, listed),
        *check_reported_figures(rnd, listed),
        *check_decisions(rnd, listed),
        *check_metrics(rnd, solution, listed),
    ]


# --- the round's rules, recomputed -------------------------------------------------------------


def exact(value: float | int) -> Fraction:
    """A number as written in the round file, as an exact fraction."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def is_commercial(rnd: Round, p: Proposal) -> bool:
    """True when the proposal's publication commitment does not qualify for free access."""
    commitment = p.publication.commitment
    if commitment == "open":
        return False
    if commitment == "confidential":
        return True
    limit = rnd.policy.free_access.max_embargo_months
    months = p.publication.embargo_months
    return limit is None or months is None or months > limit


def share_group(rnd: Round, p: Proposal) -> str | None:
    """The id of the share group whose kinds include the applicant's kind, if any."""
    return next((g.id for g in rnd.policy.share_groups if p.applicant.kind in g.kinds), None)


def mismatches(p: Proposal, m: Machine) -> list[str]:
    """What the proposal's code needs that the machine lacks (empty: compatible)."""
    req = p.requirements
    out: list[str] = []
    if m.stack not in req.stacks:
        out.append(f"its stack is {m.stack}, the code runs on {' or '.join(req.stacks)}")
    if m.cpu_arch not in req.cpu_archs:
        out.append(f"its CPUs are {m.cpu_arch}, the code runs on {' or '.join(req.cpu_archs)}")
    if exact(m.gpu_memory_gb) < exact(req.min_gpu_memory_gb):
        out.append(f"it has {_n(m.gpu_memory_gb)} GB per GPU, the code needs {_n(req.min_gpu_memory_gb)}")
    return out


def bounds(p: Proposal, m: Machine) -> Bounds:
    """The award-unit bounds of proposal p on machine m, from the request and the machine's caps."""
    ref_per_unit = exact(m.exchange_rate) * m.award_unit
    caps: list[int] = []
    if m.max_award_gpu_hours is not None:
        caps.append(m.max_award_gpu_hours)
    if m.max_award_fraction is not None:
        caps.append(math.floor(exact(m.max_award_fraction) * m.gpu_hours))
    return Bounds(
        ref_per_unit=ref_per_unit,
        request_units=math.floor(p.request.reference_gpu_hours / ref_per_unit),
        min_units=max(1, math.ceil(p.request.minimum_reference_gpu_hours / ref_per_unit)),
        cap_units=min(caps) // m.award_unit if caps else None,
    )


def ineligibility(rnd: Round, p: Proposal) -> list[str]:
    """Why the proposal cannot be funded at all, in words (empty: eligible)."""
    out: list[str] = []
    if exact(p.score) < exact(rnd.policy.score_threshold):
        out.append(f"its score {_n(p.score)} is below the threshold {_n(rnd.policy.score_threshold)}")
    if rnd.policy.commercial == "exclude" and is_commercial(rnd, p):
        out.append("it is commercial and the policy excludes commercial proposals")
    if not any(
        not mismatches(p, m) and bounds(p, m).min_units <= bounds(p, m).max_units for m in rnd.machines
    ):
        out.append("no compatible machine can give it a whole number of award units within its bounds")
    return out


def merit_weight(rnd: Round, p: Proposal) -> Fraction:
    """((score - scale.min) / (scale.max - scale.min)) ** exponent, exactly."""
    lo, hi = exact(rnd.score_scale.min), exact(rnd.score_scale.max)
    return ((exact(p.score) - lo) / (hi - lo)) ** rnd.policy.merit.exponent


def unit_coefficient(rnd: Round, p: Proposal, m: Machine) -> int:
    """Scaled objective points of one award unit of proposal p on machine m."""
    value = rnd.policy.merit.value
    per_unit = bounds(p, m).ref_per_unit
    if value == "fraction":
        per_unit /= p.request.reference_gpu_hours
    return math.floor(SCALES[value] * merit_weight(rnd, p) * per_unit + Fraction(1, 2))


def total_reference(rnd: Round) -> Fraction:
    """The round's capacity in reference GPU-hours, exactly."""
    return sum((m.gpu_hours * exact(m.exchange_rate) for m in rnd.machines), Fraction(0))


# --- the checks, one per rule family ------------------------------------------------------------


def check_input_hash(rnd: Round, solution: Solution) -> list[Violation]:
    """The solution's input hash is the hash of this round in canonical form."""
    expected = sha256_of(rnd.canonical())
    found = solution.provenance.input_sha256
    if found == expected:
        return []
    return [
        Violation(
            "input_hash",
            "",
            f"the solution was made from a different round (input sha256 {found[:12]}..., "
            f"this round's {expected[:12]}...); the rest is checked against this round",
        )
    ]


def check_coverage(rnd: Round, solution: Solution) -> list[Violation]:
    """Each proposal of the round is decided exactly once; no unknown proposals or machines."""
    out: list[Violation] = []
    counts = Counter(r.id for r in solution.proposals)
    known = {p.id for p in rnd.proposals}
    machines = {m.id for m in rnd.machines}
    for p in rnd.proposals:
        if counts[p.id] == 0:
            out.append(Violation("missing_proposal", p.id, f"proposal '{p.id}' has no decision"))
        elif counts[p.id] > 1:
            out.append(
                Violation(
                    "duplicate_proposal",
                    p.id,
                    f"proposal '{p.id}' has {counts[p.id]:,} decisions; it must have exactly 1",
                )
            )
    for ident in sorted(counts.keys() - known):
        out.append(
            Violation("unknown_proposal", ident, f"proposal '{ident}' is decided but is not in the round")
        )
    for r in solution.proposals:
        for alloc in r.allocations:
            if alloc.machine not in machines:
                out.append(
                    Violation(
                        "unknown_machine",
                        r.id,
                        f"proposal '{r.id}' has {alloc.gpu_hours:,} GPU-h on machine '{alloc.machine}', "
                        "which is not in the round",
                    )
                )
    return out


def check_eligibility(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """Funded proposals reach the threshold, may be funded under the policy, and fit their machine."""
    out: list[Violation] = []
    threshold = rnd.policy.score_threshold
    for item in listed:
        p = item.proposal
        if not item.positive:
            continue
        if exact(p.score) < exact(threshold):
            out.append(
                Violation(
                    "below_threshold",
                    p.id,
                    f"proposal '{p.id}' is funded with score {_n(p.score)}, "
                    f"below the threshold {_n(threshold)}",
                )
            )
        if rnd.policy.commercial == "exclude" and is_commercial(rnd, p):
            out.append(
                Violation(
                    "publication",
                    p.id,
                    f"proposal '{p.id}' is funded ({_n(_hours(item.positive))} GPU-h) but is commercial "
                    f"({_commitment(p)}) and the policy excludes commercial proposals",
                )
            )
        for a in item.positive:
            problems = mismatches(p, a.machine)
            if problems:
                out.append(
                    Violation(
                        "incompatible",
                        p.id,
                        f"proposal '{p.id}' has {a.gpu_hours:,} GPU-h on machine '{a.machine.id}', "
                        f"which its code cannot use: {'; '.join(problems)}",
                    )
                )
    return out


def check_one_machine(listed: list[Listed]) -> list[Violation]:
    """At most one machine per proposal, and no zero-hour allocations."""
    out: list[Violation] = []
    for item in listed:
        r = item.result
        machines = [a.machine for a in r.allocations]
        if len(machines) > 1:
            out.append(
                Violation(
                    "two_machines",
                    r.id,
                    f"proposal '{r.id}' has {len(machines):,} allocations "
                    f"({', '.join(repr(m) for m in machines)}); at most 1 machine is allowed",
                )
            )
        for alloc in r.allocations:
            if alloc.gpu_hours == 0:
                out.append(
                    Violation(
                        "zero_award",
                        r.id,
                        f"proposal '{r.id}' lists an allocation of 0 GPU-h on machine '{alloc.machine}'",
                    )
                )
    return out


def check_award_sizes(listed: list[Listed]) -> list[Violation]:
    """Awards are whole award units, at least the minimum, at most the request and the cap."""
    out: list[Violation] = []
    for item in listed:
        p = item.proposal
        for a in item.positive:
            m, b, units = a.machine, bounds(p, a.machine), a.units
            award = f"proposal '{p.id}' has {a.gpu_hours:,} GPU-h on machine '{m.id}'"
            if units.denominator != 1:
                out.append(
                    Violation(
                        "award_unit",
                        p.id,
                        f"{award}, not a whole multiple of its award unit of {m.award_unit:,} GPU-h",
                    )
                )
            if units < b.min_units:
                out.append(
                    Violation(
                        "below_minimum",
                        p.id,
                        f"{award} ({_n(units)} award units), below the minimum of {b.min_units:,} units "
                        f"(minimum {p.request.minimum_reference_gpu_hours:,} reference GPU-h at "
                        f"{_n(b.ref_per_unit)} per unit)",
                    )
                )
            if units > b.request_units:
                out.append(
                    Violation(
                        "above_request",
                        p.id,
                        f"{award} ({_n(units)} award units), above the request of "
                        f"{b.request_units:,} units ({p.request.reference_gpu_hours:,} reference GPU-h "
                        f"at {_n(b.ref_per_unit)} per unit)",
                    )
                )
            if b.cap_units is not None and units > b.cap_units:
                out.append(
                    Violation(
                        "above_cap",
                        p.id,
                        f"{award} ({_n(units)} award units), above the machine's per-proposal cap of "
                        f"{b.cap_units:,} units ({b.cap_units * m.award_unit:,} GPU-h)",
                    )
                )
    return out


def check_capacity(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """Each machine's awards add up to at most its GPU-hours."""
    used = _machine_hours(listed, commercial_only=None)
    return [
        Violation(
            "capacity",
            m.id,
            f"machine '{m.id}': {used[m.id]:,} GPU-h awarded, capacity {m.gpu_hours:,}",
        )
        for m in rnd.machines
        if used[m.id] > m.gpu_hours
    ]


def check_commercial_cap(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """Each machine's awards to commercial proposals add up to at most its commercial cap."""
    used = _machine_hours(listed, commercial_only=rnd)
    out: list[Violation] = []
    for m in rnd.machines:
        cap = math.floor(exact(m.commercial_cap) * m.gpu_hours)
        if used[m.id] > cap:
            out.append(
                Violation(
                    "commercial_cap",
                    m.id,
                    f"machine '{m.id}': {used[m.id]:,} GPU-h awarded to commercial proposals, "
                    f"cap {cap:,} ({_n(m.commercial_cap)} of {m.gpu_hours:,})",
                )
            )
    return out


def check_shares(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """Each share group's reference GPU-hours lie between its minimum and maximum share."""
    total = total_reference(rnd)
    got = _group_reference(rnd, listed)
    out: list[Violation] = []
    for g in rnd.policy.share_groups:
        low, high = exact(g.min_share) * total, exact(g.max_share) * total
        if got[g.id] < low:
            out.append(
                Violation(
                    "share_min",
                    g.id,
                    f"share group '{g.id}': {_n(got[g.id])} reference GPU-h awarded, minimum {_n(low)} "
                    f"({_n(g.min_share)} of {_n(total)})",
                )
            )
        if got[g.id] > high:
            out.append(
                Violation(
                    "share_max",
                    g.id,
                    f"share group '{g.id}': {_n(got[g.id])} reference GPU-h awarded, maximum {_n(high)} "
                    f"({_n(g.max_share)} of {_n(total)})",
                )
            )
    return out


def check_objective(rnd: Round, solution: Solution, listed: list[Listed]) -> list[Violation]:
    """The scaled objective, its scale, basis and bound, and each proposal's contribution."""
    obj = solution.objective
    value = rnd.policy.merit.value
    out: list[Violation] = []
    if obj.value_basis != value:
        out.append(
            Violation(
                "value_basis",
                "",
                f"the objective's value basis is '{obj.value_basis}', the policy's merit value is '{value}'",
            )
        )
    if obj.scale != SCALES[value]:
        out.append(
            Violation(
                "objective_scale",
                "",
                f"the objective scale is {obj.scale:,}, expected {SCALES[value]:,} for merit value '{value}'",
            )
        )
    total = Fraction(0)
    for item in listed:
        part = sum(
            (unit_coefficient(rnd, item.proposal, a.machine) * a.units for a in item.awards), Fraction(0)
        )
        total += part
        if item.complete and item.result.objective_contribution != part:
            out.append(
                Violation(
                    "contribution",
                    item.proposal.id,
                    f"proposal '{item.proposal.id}': objective contribution "
                    f"{item.result.objective_contribution:,}, recomputed {_n(part)}",
                )
            )
    if obj.scaled != total:
        out.append(
            Violation("objective", "", f"the scaled objective is {obj.scaled:,}, recomputed {_n(total)}")
        )
    if obj.scale > 0 and not _close(obj.value, Fraction(obj.scaled, obj.scale)):
        out.append(
            Violation(
                "objective",
                "",
                f"the objective value is {_n(obj.value)}, but {obj.scaled:,} / {obj.scale:,} "
                f"is {_n(Fraction(obj.scaled, obj.scale))}",
            )
        )
    if obj.best_bound_scaled < obj.scaled:
        out.append(
            Violation(
                "best_bound",
                "",
                f"the best bound {obj.best_bound_scaled:,} is below the objective {obj.scaled:,}",
            )
        )
    return out


def check_reported_figures(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """Each decision's reference GPU-hours and facts about the proposal match the round."""
    out: list[Violation] = []
    for item in listed:
        r, p = item.result, item.proposal
        for a, alloc in zip(item.awards, [x for x in r.allocations if _known(rnd, x.machine)], strict=True):
            if not _close(alloc.reference_gpu_hours, a.reference):
                out.append(
                    Violation(
                        "reference_hours",
                        p.id,
                        f"proposal '{p.id}': {a.gpu_hours:,} GPU-h on machine '{a.machine.id}' reported as "
                        f"{_n(alloc.reference_gpu_hours)} reference GPU-h, recomputed {_n(a.reference)}",
                    )
                )
        if not item.complete:
            continue
        reference = sum((a.reference for a in item.awards), Fraction(0))
        if not _close(r.reference_gpu_hours, reference):
            out.append(
                Violation(
                    "reference_hours",
                    p.id,
                    f"proposal '{p.id}': {_n(r.reference_gpu_hours)} reference GPU-h reported, "
                    f"recomputed {_n(reference)}",
                )
            )
        expected: dict[str, tuple[object, object]] = {
            "requested_reference_gpu_hours": (r.requested_reference_gpu_hours, p.request.reference_gpu_hours),
            "score": (r.score, p.score),
            "group": (r.group, share_group(rnd, p)),
            "commercial": (r.commercial, is_commercial(rnd, p)),
        }
        for field, (found, want) in expected.items():
            if found != want:
                out.append(
                    Violation(
                        "figures", p.id, f"proposal '{p.id}': {field} is {found!r}, the round gives {want!r}"
                    )
                )
        close: dict[str, tuple[float, Fraction]] = {
            "merit_weight": (r.merit_weight, merit_weight(rnd, p)),
            "fraction_of_request": (r.fraction_of_request, reference / p.request.reference_gpu_hours),
        }
        for field, (got, exact_value) in close.items():
            if not _close(got, exact_value):
                out.append(
                    Violation(
                        "figures",
                        p.id,
                        f"proposal '{p.id}': {field} is {_n(got)}, recomputed {_n(exact_value)}",
                    )
                )
    return out


def check_decisions(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """Each decision follows from eligibility and the awards; non-full decisions give reasons."""
    out: list[Violation] = []
    for item in listed:
        r, p = item.result, item.proposal
        if r.decision == Decision.FUNDED and r.reasons:
            out.append(
                Violation(
                    "reasons",
                    p.id,
                    f"proposal '{p.id}' is funded in full but lists {len(r.reasons):,} reasons",
                )
            )
        if r.decision != Decision.FUNDED and not r.reasons:
            out.append(Violation("reasons", p.id, f"proposal '{p.id}' is '{r.decision}' but gives no reason"))
        if not item.complete:
            continue
        expected, because = _expected_decision(rnd, item)
        if r.decision != expected:
            out.append(
                Violation(
                    "decision",
                    p.id,
                    f"proposal '{p.id}' is reported '{r.decision}' but is '{expected}': {because}",
                )
            )
    return out


def check_metrics(rnd: Round, solution: Solution, listed: list[Listed]) -> list[Violation]:
    """The machine, group and round metrics match the recomputed awards."""
    out: list[Violation] = []
    met = solution.metrics

    def compare(subject: str, what: str, field: str, found: float, want: Fraction | int) -> None:
        if not _close(found, Fraction(want)):
            out.append(
                Violation(
                    "metrics", subject, f"metrics of {what}: {field} is {_n(found)}, recomputed {_n(want)}"
                )
            )

    used = _machine_hours(listed, commercial_only=None)
    commercial = _machine_hours(listed, commercial_only=rnd)
    counts: Counter[str] = Counter(a.machine.id for item in listed for a in item.positive)
    reported_machines = {x.id: x for x in met.machines}
    for m in rnd.machines:
        what = f"machine '{m.id}'"
        x = reported_machines.get(m.id)
        if x is None:
            out.append(Violation("metrics", m.id, f"metrics of {what} are missing"))
            continue
        compare(m.id, what, "gpu_hours", x.gpu_hours, m.gpu_hours)
        compare(m.id, what, "awarded_gpu_hours", x.awarded_gpu_hours, used[m.id])
        compare(m.id, what, "idle_gpu_hours", x.idle_gpu_hours, m.gpu_hours - used[m.id])
        compare(m.id, what, "commercial_gpu_hours", x.commercial_gpu_hours, commercial[m.id])
        cap = math.floor(exact(m.commercial_cap) * m.gpu_hours)
        compare(m.id, what, "commercial_cap_gpu_hours", x.commercial_cap_gpu_hours, cap)
        compare(m.id, what, "proposals_funded", x.proposals_funded, counts[m.id])
    for ident in sorted(reported_machines.keys() - {m.id for m in rnd.machines}):
        out.append(Violation("metrics", ident, f"metrics list machine '{ident}', which is not in the round"))

    total = total_reference(rnd)
    group_ref = _group_reference(rnd, listed)
    group_counts: Counter[str | None] = Counter(
        share_group(rnd, item.proposal) for item in listed if item.positive
    )
    reported_groups = {x.id: x for x in met.groups}
    for g in rnd.policy.share_groups:
        what = f"share group '{g.id}'"
        y = reported_groups.get(g.id)
        if y is None:
            out.append(Violation("metrics", g.id, f"metrics of {what} are missing"))
            continue
        compare(g.id, what, "reference_gpu_hours", y.reference_gpu_hours, group_ref[g.id])
        compare(g.id, what, "share", y.share, group_ref[g.id] / total if total else Fraction(0))
        compare(g.id, what, "proposals_funded", y.proposals_funded, group_counts[g.id])
    for ident in sorted(reported_groups.keys() - {g.id for g in rnd.policy.share_groups}):
        out.append(
            Violation("metrics", ident, f"metrics list share group '{ident}', which is not in the round")
        )

    awarded = sum((a.reference for item in listed for a in item.awards), Fraction(0))
    requested = sum(p.request.reference_gpu_hours for p in rnd.proposals)
    compare("", "the round", "capacity_reference_gpu_hours", met.capacity_reference_gpu_hours, total)
    compare("", "the round", "requested_reference_gpu_hours", met.requested_reference_gpu_hours, requested)
    compare("", "the round", "awarded_reference_gpu_hours", met.awarded_reference_gpu_hours, awarded)
    decided = Counter(r.decision.value for r in solution.proposals)
    for key in sorted({d.value for d in Decision} | met.decisions.keys()):
        compare("", "the round", f"decisions['{key}']", met.decisions.get(key, 0), decided[key])
    return out


# --- helpers -------------------------------------------------------------------------------------


def _listed(rnd: Round, solution: Solution) -> list[Listed]:
    """The solution's decisions on proposals of the round, with awards on machines of the round."""
    proposals = {p.id: p for p in rnd.proposals}
    machines = {m.id: m for m in rnd.machines}
    out: list[Listed] = []
    for r in solution.proposals:
        p = proposals.get(r.id)
        if p is None:
            continue
        awards = tuple(
            Award(p, machines[alloc.machine], alloc.gpu_hours)
            for alloc in r.allocations
            if alloc.machine in machines
        )
        out.append(Listed(r, p, awards, complete=len(awards) == len(r.allocations)))
    return out


def _known(rnd: Round, machine_id: str) -> bool:
    """True when the round has a machine with this id."""
    return any(m.id == machine_id for m in rnd.machines)


def _machine_hours(listed: list[Listed], commercial_only: Round | None) -> defaultdict[str, int]:
    """GPU-hours awarded per machine; only to commercial proposals when given the round."""
    used: defaultdict[str, int] = defaultdict(int)
    for item in listed:
        if commercial_only is not None and not is_commercial(commercial_only, item.proposal):
            continue
        for a in item.awards:
            used[a.machine.id] += a.gpu_hours
    return used


def _group_reference(rnd: Round, listed: list[Listed]) -> defaultdict[str | None, Fraction]:
    """Reference GPU-hours awarded per share group (None: no group)."""
    got: defaultdict[str | None, Fraction] = defaultdict(Fraction)
    for item in listed:
        group = share_group(rnd, item.proposal)
        for a in item.awards:
            got[group] += a.reference
    return got


def _expected_decision(rnd: Round, item: Listed) -> tuple[Decision, str]:
    """The decision the round's rules and the awards imply, and why in words."""
    p = item.proposal
    why = ineligibility(rnd, p)
    if why:
        return Decision.NOT_ELIGIBLE, "; ".join(why)
    if not item.positive:
        return Decision.NOT_FUNDED, "it is eligible and has no award"
    for a in item.positive:
        if a.units == bounds(p, a.machine).request_units:
            return (
                Decision.FUNDED,
                f"{_n(a.units)} award units on machine '{a.machine.id}' is its full request",
            )
    shown = ", ".join(
        f"{_n(a.units)} award units on machine '{a.machine.id}', where its full request is "
        f"{bounds(p, a.machine).request_units:,}"
        for a in item.positive
    )
    return Decision.REDUCED, f"it has {shown}"


def _hours(awards: tuple[Award, ...]) -> int:
    """The GPU-hours of these awards together."""
    return sum(a.gpu_hours for a in awards)


def _commitment(p: Proposal) -> str:
    """The publication commitment in a few words."""
    pub = p.publication
    if pub.commitment == "embargo":
        return f"embargo of {pub.embargo_months} months"
    return pub.commitment


def _close(found: float | int, want: Fraction) -> bool:
    """True when a reported float is within the relative tolerance of the exact value."""
    return abs(Fraction(found) - want) <= TOLERANCE * max(Fraction(1), abs(want))


def _n(x: Fraction | float | int) -> str:
    """A number with thousands separators and at most 6 decimals, e.g. '12,345.5'."""
    q = exact(x) if isinstance(x, float | int) else x
    if q.denominator == 1:
        return f"{q.numerator:,}"
    return f"{float(q):,.6f}".rstrip("0").rstrip(".")
