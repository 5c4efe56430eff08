"""The round's rules restated as exact numbers: eligibility, award options, bounds, merit.

This is the one place that turns a ``Round`` into what the solver model, the
solution builder and the reports work with. All arithmetic is exact
(``fractions.Fraction`` of the decimals as written), so the same round gives
the same numbers on every machine. ``verify`` deliberately does not use this
module: it recomputes every rule on its own.

Conversions (documented in the README):

- a proposal asking R reference GPU-hours with minimum r may get, on machine m
  with exchange rate e and award unit u, between ceil(r / (e*u)) and
  floor(R / (e*u)) award units, further capped by the machine's per-proposal
  cap, floor(cap / u);
- its merit weight is ((score - scale.min) / (scale.max - scale.min)) ** exponent;
- one award unit is worth, in the objective, weight * e*u / R (value
  'fraction') or weight * e*u (value 'hours'), scaled to an integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from allocopt.round import Machine, Proposal, Round

# Integer scale of one objective point: 'fraction' counts 1e-8 of a fully
# funded top-score proposal, 'hours' counts 1e-3 of a reference GPU-hour.
OBJECTIVE_SCALE = {"fraction": 10**8, "hours": 10**3}
STACK_NAMES = {"cuda": "CUDA", "rocm": "ROCm"}


def exact(value: float | int) -> Fraction:
    """The decimal as written in the file, as an exact fraction."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def round_half_up(x: Fraction) -> int:
    """Nearest integer, halves rounded up (no banker's rounding, no floats)."""
    return math.floor(x + Fraction(1, 2))


@dataclass(frozen=True)
class Reason:
    """Why a proposal is not funded in full: a code for machines, a sentence for people."""

    code: str
    detail: str


@dataclass(frozen=True)
class Option:
    """One way to fund a proposal: a machine and a range of award units."""

    proposal_id: str
    machine_id: str
    unit_hours: int  # GPU-hours in one award unit on this machine
    min_units: int
    max_units: int  # the request rounded down, and the machine's cap
    request_units: int  # the request rounded down to whole award units
    ref_per_unit: Fraction  # reference GPU-hours one award unit is worth
    coef: int  # scaled objective value of one award unit

    @property
    def capped(self) -> bool:
        """True when the machine's per-proposal cap, not the request, bounds the award."""
        return self.max_units < self.request_units


@dataclass(frozen=True)
class Assessment:
    """What the rules make of one proposal before any hours are shared out."""

    proposal: Proposal
    weight: Fraction
    commercial: bool
    group_id: str | None
    options: tuple[Option, ...]
    ineligible: tuple[Reason, ...] = ()

    @property
    def eligible(self) -> bool:
        return not self.ineligible


@dataclass(frozen=True)
class GroupBound:
    """A share group's bounds in reference GPU-hours (exact)."""

    group_id: str
    name: str
    min_ref: Fraction
    max_ref: Fraction


@dataclass
class Terms:
    """Every number the solver and the reports need, derived once from a round."""

    round: Round
    total_ref: Fraction  # the round's capacity in reference GPU-hours
    commercial_cap_hours: dict[str, int]
    groups: dict[str, GroupBound]
    assessments: dict[str, Assessment]
    options: list[Option] = field(default_factory=list)

    def options_of(self, proposal_id: str) -> tuple[Option, ...]:
        return self.assessments[proposal_id].options


def derive(rnd: Round) -> Terms:
    """Derive the exact terms of a round (expects a validated round)."""
    total_ref = sum((m.gpu_hours * exact(m.exchange_rate) for m in rnd.machines), Fraction(0))
    groups = {
        g.id: GroupBound(g.id, g.name, exact(g.min_share) * total_ref, exact(g.max_share) * total_ref)
        for g in rnd.policy.share_groups
    }
    assessments = {p.id: _assess(rnd, p) for p in rnd.proposals}
    return Terms(
        round=rnd,
        total_ref=total_ref,
        commercial_cap_hours={m.id: math.floor(exact(m.commercial_cap) * m.gpu_hours) for m in rnd.machines},
        groups=groups,
        assessments=assessments,
        options=[o for a in assessments.values() for o in a.options],
    )


def merit_weight(rnd: Round, proposal: Proposal) -> Fraction:
    """((score - min) / (max - min)) ** exponent, exactly."""
    lo, hi = exact(rnd.score_scale.min), exact(rnd.score_scale.max)
    return ((exact(proposal.score) - lo) / (hi - lo)) ** rnd.policy.merit.exponent


def is_commercial(rnd: Round, proposal: Proposal) -> bool:
    """True when the publication commitment does not qualify for free access."""
    pub = proposal.publication
    if pub.commitment == "open":
        return False
    if pub.commitment == "confidential":
        return True
    limit = rnd.policy.free_access.max_embargo_months
    return limit is None or (pub.embargo_months or 0) > limit


def group_of(rnd: Round, proposal: Proposal) -> str | None:
    """The share group the applicant's kind belongs to, if any."""
    for g in rnd.policy.share_groups:
        if proposal.applicant.kind in g.kinds:
            return g.id
    return None


def hardware_mismatch(machine: Machine, proposal: Proposal) -> list[str]:
    """What about the machine the proposal's code cannot use (empty: compatible)."""
    req = proposal.requirements
    out = []
    if machine.stack not in req.stacks:
        out.append(f"{STACK_NAMES[machine.stack]} stack")
    if machine.cpu_arch not in req.cpu_archs:
        out.append(f"{machine.cpu_arch} CPUs")
    if machine.gpu_memory_gb < req.min_gpu_memory_gb:
        out.append(f"{machine.gpu_memory_gb:g} GB per GPU")
    return out


def cap_units(machine: Machine) -> int | None:
    """The per-proposal cap on this machine in award units (None: no cap)."""
    caps = []
    if machine.max_award_gpu_hours is not None:
        caps.append(machine.max_award_gpu_hours)
    if machine.max_award_fraction is not None:
        caps.append(math.floor(exact(machine.max_award_fraction) * machine.gpu_hours))
    return min(caps) // machine.award_unit if caps else None


def needs(proposal: Proposal) -> str:
    """The proposal's hardware needs in words, e.g. 'CUDA on x86_64 with >= 80 GB per GPU'."""
    req = proposal.requirements
    stacks = " or ".join(STACK_NAMES[s] for s in req.stacks)
    archs = " or ".join(req.cpu_archs)
    mem = f" with >= {req.min_gpu_memory_gb:g} GB per GPU" if req.min_gpu_memory_gb else ""
    return f"{stacks} on {archs}{mem}"


def _assess(rnd: Round, p: Proposal) -> Assessment:
    weight = merit_weight(rnd, p)
    commercial = is_commercial(rnd, p)
    reasons: list[Reason] = []
    if p.score < rnd.policy.score_threshold:
        reasons.append(
            Reason(
                "below_threshold",
                f"below the score threshold ({p.score:g} < {rnd.policy.score_threshold:g})",
            )
        )
    if commercial and rnd.policy.commercial == "exclude":
        reasons.append(Reason("publication", f"{_commitment(p)}: this round funds only open work"))

    options: list[Option] = []
    compatible = [m for m in rnd.machines if not hardware_mismatch(m, p)]
    too_small: list[str] = []
    over_cap: list[str] = []
    for m in compatible:
        option = _option(rnd, p, m, weight)
        if option.request_units < option.min_units:
            too_small.append(m.name)
        elif option.max_units < option.min_units:
            over_cap.append(f"{m.name} caps awards at {(cap_units(m) or 0) * m.award_unit:,} GPU-h")
        else:
            options.append(option)
    if not compatible:
        reasons.append(Reason("incompatible", f"needs {needs(p)}: no machine in this round matches"))
    elif not options:
        if too_small:
            reasons.append(
                Reason(
                    "too_small",
                    "between the minimum and the request there is no whole award unit on "
                    + ", ".join(too_small),
                )
            )
        if over_cap:
            reasons.append(Reason("cap", "the minimum viable award is above the cap: " + "; ".join(over_cap)))
    return Assessment(
        proposal=p,
        weight=weight,
        commercial=commercial,
        group_id=group_of(rnd, p),
        options=tuple(options) if not reasons else (),
        ineligible=tuple(reasons),
    )


def _option(rnd: Round, p: Proposal, m: Machine, weight: Fraction) -> Option:
    ref_per_unit = exact(m.exchange_rate) * m.award_unit
    request_units = math.floor(p.request.reference_gpu_hours / ref_per_unit)
    min_units = max(1, math.ceil(p.request.minimum_reference_gpu_hours / ref_per_unit))
    cap = cap_units(m)
    max_units = request_units if cap is None else min(request_units, cap)
    value = rnd.policy.merit.value
    per_unit = ref_per_unit / p.request.reference_gpu_hours if value == "fraction" else ref_per_unit
    return Option(
        proposal_id=p.id,
        machine_id=m.id,
        unit_hours=m.award_unit,
        min_units=min_units,
        max_units=max_units,
        request_units=request_units,
        ref_per_unit=ref_per_unit,
        coef=round_half_up(OBJECTIVE_SCALE[value] * weight * per_unit),
    )


def _commitment(p: Proposal) -> str:
    pub = p.publication
    if pub.commitment == "embargo":
        return f"publication after a {pub.embargo_months}-month embargo"
    return "confidential work" if pub.commitment == "confidential" else "open publication"
