"""The round's rules restated as exact numbers: eligibility, award options, bounds, merit.

This is the one place that turns a ``Round`` into what the solver model, the
solution builder and the reports work with. All arithmetic is exact
(``fractions.Fraction`` of the decimals as written), so the same round gives
the same numbers on every machine. ``verify`` deliberately does not use this
module: it recomputes every rule on its own.

Conversions and the merit of one award unit are documented in the README
("What best means" and "The full policy language"): every option is a
(proposal, machine) pair with its unit range, the fraction of the request and
of the minimum one unit covers (f, g), the reference GPU-hours it delivers (d)
and the capacity it uses, in reference GPU-hours (e*u).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from allocopt.calibrate import scored
from allocopt.round import Loc, Machine, Pin, Proposal, Round

# Integer scale of one objective point: 'fraction' counts 1e-8 of a fully
# funded top-score proposal, 'hours' counts 1e-3 of a reference GPU-hour.
OBJECTIVE_SCALE = {"fraction": 10**8, "hours": 10**3}
# Each award unit's merit is rounded to an integer. Where award units are tiny against the
# requests (1 GPU-h units for a 10-million-hour request), the scale grows tenfold, up to
# SCALE_STEPS times, until every compatible unit is worth at least LEAST_UNIT_WORTH points:
# the rounding then moves no unit's merit by more than 1/4,000 of it. It never grows past
# OBJECTIVE_CEILING for the most merit the round could hold, where CP-SAT's doubles stop being
# exact. Only proposals the threshold and the publication rule admit count.
LEAST_UNIT_WORTH = 2000
SCALE_STEPS = 6
OBJECTIVE_CEILING = 2**52


def scale_steps(least_worth: Fraction | None, most_merit: Fraction) -> int:
    """How many tenfold steps the objective scale takes, given (at the base scale) the least merit
    of a compatible award unit and the sum of each proposal's most merit (its whole request on its
    best machine), over the proposals with merit weight that pass the score threshold and the
    publication rule."""
    steps = 0
    while (
        least_worth is not None
        and steps < SCALE_STEPS
        and least_worth * 10**steps < LEAST_UNIT_WORTH
        and most_merit * 10 ** (steps + 1) <= OBJECTIVE_CEILING
    ):
        steps += 1
    return steps


STACK_NAMES = {"cuda": "CUDA", "rocm": "ROCm"}


# A round has few distinct rates, efficiencies and caps but up to millions of (proposal, machine)
# pairs: parsing the same decimal or recomputing the same cap for each pair dominated derive().
@functools.lru_cache(maxsize=4096, typed=True)
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
    min_units: int  # the minimum on this machine alone (single-machine awards)
    max_units: int  # the request rounded down, and the machine's per-proposal cap
    request_units: int  # the request rounded down to whole award units
    ref_per_unit: Fraction  # capacity one unit uses, in reference GPU-hours (e*u)
    f: Fraction  # fraction of the request one unit covers
    g: Fraction  # fraction of the minimum one unit covers
    d: Fraction  # reference GPU-hours of work one unit delivers (e*s*u)
    preference: Fraction
    coef: int  # scaled merit of one award unit
    worth: Fraction = Fraction(0)  # its merit at the base scale, exactly (coef before rounding)

    @cached_property
    def key(self) -> tuple[str, str]:
        # Cached: models look options up by key millions of times in a large round.
        return (self.proposal_id, self.machine_id)

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
    pin: Pin | None = None
    requested_ref: Fraction = Fraction(0)  # the request in reference GPU-hours, for reports

    @property
    def eligible(self) -> bool:
        return not self.ineligible

    @property
    def split(self) -> bool:
        """True when the award may be spread over several machines."""
        return self.proposal.max_machines > 1

    @property
    def organisation(self) -> str:
        return self.proposal.applicant.name


@dataclass(frozen=True)
class GroupBound:
    """A share group's bounds: as exact fractions, and in reference GPU-hours of capacity."""

    group_id: str
    name: str
    min_share: Fraction
    max_share: Fraction
    min_ref: Fraction  # min_share x capacity (basis 'capacity')
    max_ref: Fraction
    penalty: int | None  # scaled merit points per reference GPU-hour outside soft bounds

    @property
    def soft(self) -> bool:
        return self.penalty is not None


@dataclass
class Terms:
    """Every number the solver and the reports need, derived once from a round."""

    round: Round
    total_ref: Fraction  # the round's capacity in reference GPU-hours
    commercial_cap_hours: dict[str, int]
    groups: dict[str, GroupBound]
    assessments: dict[str, Assessment]
    order: list[str]  # every proposal id in ranking order (see rank_key)
    problems: list[tuple[Loc, str]]  # pins that cannot be honoured as stated, with their location
    options: list[Option] = field(default_factory=list)
    objective_scale: int = 0  # points of one unit of merit (0: the base scale of the merit value)

    @property
    def scale(self) -> int:
        return self.objective_scale or OBJECTIVE_SCALE[self.round.policy.merit.value]

    @property
    def share_basis(self) -> str:
        return self.round.policy.share_basis

    # Lookups the neighbourhood search needs on every step, computed once per round.

    @cached_property
    def share_scale(self) -> int:
        """The least integer that makes every option's reference GPU-hours per unit whole."""
        scale = 1
        for o in self.options:
            scale = math.lcm(scale, o.ref_per_unit.denominator)
        return scale

    @cached_property
    def scaled_ref(self) -> dict[tuple[str, str], int]:
        """Each option's reference GPU-hours per unit times ``share_scale`` (a whole number)."""
        scale = self.share_scale
        return {o.key: int(o.ref_per_unit * scale) for o in self.options}

    @cached_property
    def option_of(self) -> dict[tuple[str, str], Option]:
        """Each option by its (proposal id, machine id)."""
        return {o.key: o for o in self.options}

    @cached_property
    def options_on(self) -> dict[str, list[Option]]:
        """Each machine's options (every machine named, in option order)."""
        on: dict[str, list[Option]] = {m.id: [] for m in self.round.machines}
        for o in self.options:
            on[o.machine_id].append(o)
        return on


def derive(rnd: Round) -> Terms:
    """Derive the exact terms of a round (expects a validated round). Under a review
    calibration, ``terms.round`` carries each proposal's calibrated score."""
    rnd = scored(rnd)
    total_ref = sum((m.gpu_hours * exact(m.exchange_rate) for m in rnd.machines), Fraction(0))
    pins = {pin.proposal: pin for pin in rnd.policy.pins}
    least: list[tuple[Fraction, Fraction]] = []  # per counted proposal (see scale_steps)
    assessments = {p.id: _assess(rnd, p, pins.get(p.id), least) for p in rnd.proposals}
    steps = scale_steps(min((w for w, _ in least), default=None), sum((m for _, m in least), Fraction(0)))
    scale = OBJECTIVE_SCALE[rnd.policy.merit.value] * 10**steps
    if steps:  # rare: the units' merit rounded again at the larger scale
        assessments = {pid: _rescaled(a, 10**steps) for pid, a in assessments.items()}
    groups = {
        g.id: GroupBound(
            g.id,
            g.name,
            exact(g.min_share),
            exact(g.max_share),
            exact(g.min_share) * total_ref,
            exact(g.max_share) * total_ref,
            round_half_up(scale * exact(g.penalty)) if g.soft and g.penalty is not None else None,
        )
        for g in rnd.policy.share_groups
    }
    order = sorted(assessments, key=lambda pid: rank_key(assessments[pid].proposal))
    return Terms(
        round=rnd,
        total_ref=total_ref,
        commercial_cap_hours={m.id: math.floor(exact(m.commercial_cap) * m.gpu_hours) for m in rnd.machines},
        groups=groups,
        assessments=assessments,
        order=order,
        problems=[
            (("policy", "pins", i), msg)
            for i, pin in enumerate(rnd.policy.pins)
            for msg in _pin_problems(rnd, assessments[pin.proposal])
        ],
        options=[o for a in assessments.values() for o in a.options],
        objective_scale=scale,
    )


def _rescaled(a: Assessment, factor: int) -> Assessment:
    """The assessment with each option's merit rounded at ``factor`` times the base scale."""
    options = tuple(dataclasses.replace(o, coef=round_half_up(o.worth * factor)) for o in a.options)
    return dataclasses.replace(a, options=options)


def rank_key(p: Proposal) -> tuple[bool, int, Fraction, str]:
    """Ranking order: committee rank (none last), then score (higher first), then id."""
    return (p.committee_rank is None, p.committee_rank or 0, -exact(p.score), p.id)


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


@functools.lru_cache(maxsize=4096)
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


def _assess(rnd: Round, p: Proposal, pin: Pin | None, least: list[tuple[Fraction, Fraction]]) -> Assessment:
    """What the rules make of one proposal. For the objective scale, appends to ``least`` the
    least merit at the base scale of a unit on a compatible machine and the most merit of its
    whole request on one, when it has merit weight and passes the threshold and publication rule."""
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

    wanted = p.request.machine_options
    listed = {o.machine for o in wanted} if wanted is not None else None
    compatible = [
        m for m in rnd.machines if not hardware_mismatch(m, p) and (listed is None or m.id in listed)
    ]
    options = [_option(rnd, p, m, weight) for m in compatible]
    if options and weight > 0 and not reasons:  # reasons so far: the threshold, the publication rule
        least.append((min(o.worth for o in options), max(o.worth * o.request_units for o in options)))
    viable, too_small, over_cap = [], [], []
    for o, m in zip(options, compatible, strict=True):
        lowest = 1 if p.max_machines > 1 else o.min_units
        if o.request_units < lowest:
            too_small.append(m.name)
        elif o.max_units < lowest:
            over_cap.append(f"{m.name} caps awards at {(cap_units(m) or 0) * m.award_unit:,} GPU-h")
        else:
            viable.append(o)
    unreachable = p.max_machines > 1 and bool(viable) and not split_reachable(viable, p.max_machines)
    if unreachable:
        viable = []
    if not compatible:
        where = "none of its machine options" if listed is not None else "no machine in this round"
        reasons.append(Reason("incompatible", f"needs {needs(p)}: {where} matches"))
    elif unreachable:
        reasons.append(
            Reason(
                "too_small",
                f"on up to {p.max_machines} machines, no whole award units reach the minimum "
                "without passing the request",
            )
        )
    elif not viable:
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
        options=tuple(viable) if not reasons else (),
        ineligible=tuple(reasons),
        pin=pin,
        requested_ref=_requested_ref(rnd, p),
    )


def split_reachable(options: list[Option], k: int, budget: int = 100_000) -> bool:
    """Can whole units on at most k options cover the minimum (sum g*u >= 1) within the
    request (sum f*u <= 1)? A depth-first search, largest awards first; past its budget of
    steps it answers True and leaves the question to the solver."""
    steps = 0

    def search(i: int, used: int, f_sum: Fraction, g_sum: Fraction) -> bool:
        nonlocal steps
        if g_sum >= 1:
            return True
        if i == len(options) or used == k:
            return False
        o = options[i]
        most = min(o.max_units, math.floor((1 - f_sum) / o.f))
        if max(1, math.ceil((1 - g_sum) / o.g)) <= most:
            return True  # this option alone completes the minimum within the request
        if used + 1 == k or i + 1 == len(options):
            # It cannot complete the minimum, and no option may follow it: only skipping it is left.
            return search(i + 1, used, f_sum, g_sum)
        # Partial awards here, each finished by later options. Every try counts against the
        # budget (counting calls only let one level loop over millions of units unchecked).
        for units in range(most, 0, -1):
            steps += 1
            if steps > budget:
                return True
            if search(i + 1, used + 1, f_sum + units * o.f, g_sum + units * o.g):
                return True
        return search(i + 1, used, f_sum, g_sum)

    return search(0, 0, Fraction(0), Fraction(0))


def most_fraction(a: Assessment) -> Fraction:
    """An upper bound on the fraction of its request a proposal can get, alone on the machines."""
    if not a.options:
        return Fraction(0)
    if not a.split:
        return max(o.max_units * o.f for o in a.options)
    best = sorted((o.max_units * o.f for o in a.options), reverse=True)[: a.proposal.max_machines]
    return min(Fraction(1), sum(best, Fraction(0)))


def _option(rnd: Round, p: Proposal, m: Machine, weight: Fraction) -> Option:
    unit = m.award_unit
    per_unit = _per_unit(m.exchange_rate, unit)  # reference GPU-hours of one award unit
    wanted = p.request.machine_options
    if wanted is None:
        assert p.request.reference_gpu_hours and p.request.minimum_reference_gpu_hours
        delivered = _delivered(m.exchange_rate, p.efficiency.get(m.stack, 1.0), unit)
        request, minimum = p.request.reference_gpu_hours, p.request.minimum_reference_gpu_hours
        preference = Fraction(1)
        f, g = delivered / request, delivered / minimum
        request_units = math.floor(request / delivered)
        min_units = max(1, math.ceil(minimum / delivered))
    else:
        choice = next(o for o in wanted if o.machine == m.id)
        delivered = per_unit
        preference = exact(choice.preference)
        f, g = Fraction(unit, choice.gpu_hours), Fraction(unit, choice.minimum_gpu_hours)
        request_units = choice.gpu_hours // unit
        min_units = max(1, -(-choice.minimum_gpu_hours // unit))
    cap = cap_units(m)
    value = f if rnd.policy.merit.value == "fraction" else delivered
    worth = OBJECTIVE_SCALE[rnd.policy.merit.value] * weight * value
    return Option(
        proposal_id=p.id,
        machine_id=m.id,
        unit_hours=unit,
        min_units=min_units,
        max_units=request_units if cap is None else min(request_units, cap),
        request_units=request_units,
        ref_per_unit=per_unit,
        f=f,
        g=g,
        d=delivered,
        preference=preference,
        coef=round_half_up(worth if wanted is None else worth * preference),
        worth=worth if wanted is None else worth * preference,
    )


@functools.lru_cache(maxsize=4096, typed=True)
def _per_unit(rate: float, unit: int) -> Fraction:
    """Reference GPU-hours of one award unit of a machine at this exchange rate."""
    return exact(rate) * unit


@functools.lru_cache(maxsize=4096, typed=True)
def _delivered(rate: float, speed: float, unit: int) -> Fraction:
    """Reference GPU-hours one award unit delivers to a proposal running at this speed."""
    return exact(rate) * exact(speed) * unit


def _requested_ref(rnd: Round, p: Proposal) -> Fraction:
    """The request in reference GPU-hours: the total, or the first-choice option converted."""
    if p.request.machine_options is None:
        return Fraction(p.request.reference_gpu_hours or 0)
    first = max(p.request.machine_options, key=lambda o: (exact(o.preference), o.machine))
    return first.gpu_hours * exact(rnd.machine(first.machine).exchange_rate)


def _pin_problems(rnd: Round, a: Assessment) -> list[str]:
    """Why a 'fund' pin cannot be honoured as stated (empty when it can)."""
    pin = a.pin
    if pin is None or pin.action != "fund":
        return []
    who = f"the pin funding '{pin.proposal}'"
    if not a.eligible:
        return [f"{who} cannot hold: the proposal is not eligible ({a.ineligible[0].detail}); remove the pin"]
    if pin.machine is None:
        return []
    option = next((o for o in a.options if o.machine_id == pin.machine), None)
    if option is None:
        return [f"{who} names machine '{pin.machine}', which the proposal cannot use; change the machine"]
    if pin.gpu_hours is None:
        return []
    units, left = divmod(pin.gpu_hours, option.unit_hours)
    lowest = 1 if a.split else option.min_units
    if left or not lowest <= units <= option.max_units:
        lo, hi = lowest * option.unit_hours, option.max_units * option.unit_hours
        return [
            f"{who} asks {pin.gpu_hours:,} GPU-h on '{pin.machine}'; allowed are whole multiples of "
            f"{option.unit_hours:,} from {lo:,} to {hi:,}"
        ]
    return []


def _commitment(p: Proposal) -> str:
    pub = p.publication
    if pub.commitment == "embargo":
        return f"publication after a {pub.embargo_months}-month embargo"
    return "confidential work" if pub.commitment == "confidential" else "open publication"
