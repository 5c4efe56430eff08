"""Check a solution against a round: every rule, every award bound and the objective.

``verify`` is the independent check of a solution. It shares no code with the
solver side (``terms``, ``model``, ``outcome``, ``rank``, ``solve``,
``diagnose``): it reads the round the user gives and recomputes each rule from
the round alone, in exact fractions of the decimals as written, following the
README ("What best means" and "The full policy language"). A mistake in how the
solver derives its terms, builds its model or writes its solution therefore
cannot hide: to slip through, the same mistake would have to be made twice, in
two separately written pieces of code. The solution's embedded ``input`` is not
trusted either; only its hash is compared with the round's.

Under the rank objective the walk's record is checked for consistency, and the
allocation for the rank property with a sufficient test that needs no solver:
no unfunded proposal could be added at its minimum, and no funded one below its
request could take one more unit, with the rest unchanged and every rule
(share bounds hard) still holding. Either would mean the walk missed it.

Where the README leaves a reading open, verify takes this one:

- ``rank_position`` (and a rank step's ``position``) is the proposal's 1-based
  place among *all* proposals of the round in the ranking order; ``rank.order``
  lists the eligible ones. Every step reports the proposal's final fraction.
- A ``fund`` pin with a machine needs an award on that machine (with exactly
  ``gpu_hours`` there, when given); a split proposal may have more machines.
- With machine options a request has no single size in reference GPU-hours, so
  ``requested_reference_gpu_hours`` is checked for total requests only.
- Whether a split proposal can be funded at all is decided exactly, unless the
  search exceeds ``SPLIT_SEARCH_BUDGET`` partial awards; then its eligibility is
  left unsettled, and 'not_funded' and 'not_eligible' are both accepted.

``verify`` returns a list of ``Violation`` (empty: the solution is valid). Each
names a rule code from ``RULES``, the proposal, machine, share group,
exclusive group or organisation it is about ("" for the whole round), and one
sentence with the numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from allocopt.calibrate import calibrate, scored
from allocopt.files import sha256_of
from allocopt.round import Machine, Pin, Proposal, Round, ShareGroup
from allocopt.solution import Decision, ProposalResult, Solution

# Integer points per unit of objective value, by the policy's merit value.
SCALES = {"fraction": 10**8, "hours": 10**3}
# The README's integer scaling: the scale grows tenfold, at most six times, while a compatible
# award unit of an admitted proposal with merit weight is worth fewer than 2,000 points, and
# never so far that the admitted proposals' whole requests could be worth more than 2^52 points.
LEAST_UNIT_POINTS = 2000
MOST_SCALE_STEPS = 6
MOST_POINTS = 2**52
# Relative tolerance for figures a solution reports as floats.
TOLERANCE = Fraction(1, 10**6)
# Partial awards the search for a split award may try before it leaves eligibility unsettled.
SPLIT_SEARCH_BUDGET = 100_000

RULES: dict[str, str] = {
    "input_hash": "the solution was made from this round",
    "missing_proposal": "every proposal of the round has a decision",
    "duplicate_proposal": "no proposal has more than one decision",
    "unknown_proposal": "every decision is about a proposal of the round",
    "unknown_machine": "every allocation names a machine of the round",
    "below_threshold": "funded proposals score at least the threshold",
    "publication": "commercial proposals are not funded when the policy excludes them",
    "incompatible": "proposals are funded only on machines their code can use",
    "no_option": "a proposal that lists machine options is funded only on machines it lists",
    "too_many_machines": "a proposal is funded on at most max_machines machines (1 unless it may split)",
    "duplicate_allocation": "a proposal lists each machine at most once",
    "zero_award": "no allocation of zero GPU-hours is listed",
    "award_unit": "awards are whole multiples of the machine's award unit",
    "below_minimum": "awards reach the minimum: its minimum units on one machine, or, split, "
    "sum(g x units) >= 1",
    "above_request": "awards do not exceed the request: its request units on each machine, and, split, "
    "sum(f x units) <= 1",
    "above_cap": "awards do not exceed the machine's per-proposal cap",
    "capacity": "a machine's awards fit in its GPU-hours",
    "commercial_cap": "a machine's commercial awards fit in its commercial cap",
    "share_min": "each hard share group (every group under 'rank') gets at least its minimum share",
    "share_max": "each hard share group (every group under 'rank') gets at most its maximum share",
    "pin_fund": "a proposal pinned 'fund' is funded",
    "pin_exclude": "a proposal pinned 'exclude' is not funded",
    "pin_machine": "a proposal pinned 'fund' on a machine has its whole award on that machine",
    "pin_hours": "a proposal pinned 'fund' with gpu_hours has exactly those GPU-hours on the machine",
    "exclusive": "at most one proposal of each exclusive group is funded",
    "organisation_cap": "at most max_awards_per_organisation proposals per applicant name are funded",
    "objective_kind": "the objective is the one the solve options or the round's policy ask for",
    "objective": "the reported merit and objective are the recomputed ones",
    "penalty": "the reported soft-share penalty is the recomputed one",
    "objective_scale": "the objective scale matches the policy's merit value",
    "value_basis": "the objective's value basis is the policy's merit value",
    "best_bound": "under 'merit' the best bound is given and not below the objective; under 'rank' "
    "bound and gap are null",
    "contribution": "each proposal's objective contribution is the recomputed one",
    "reference_hours": "reported reference GPU-hours match the awards",
    "figures": "reported facts about a proposal (request, score, group, pin, fractions) match the round",
    "decision": "each decision follows from the round and the awards",
    "reasons": "every decision but 'funded' gives its reasons, and 'funded' gives none",
    "reason_codes": "the reasons naming the threshold, publication, compatibility, a pin, exclusivity or the "
    "organisation cap hold exactly when those rules do",
    "metrics": "the round's metrics match the awards",
    "rank_position": "each proposal's rank position is its place among all proposals in the ranking order",
    "rank_record": "a rank record is given exactly when the objective is 'rank'",
    "rank_sequence": "the rank order lists the eligible proposals by committee rank, score and id",
    "rank_steps": "the walk has a fund step per eligible proposal, then a raise step per funded one, "
    "in order, each matching the decision",
    "rank_proven": "all_proven, and the solver status, say whether every step was proven",
    "rank_order": "under 'rank' no unfunded proposal could be added at its minimum with every rule holding",
    "rank_hours": "under 'rank' no funded proposal below its request could take one more unit with every "
    "rule holding",
    "lottery": "a lottery is recorded exactly when the policy asks for one under 'rank', with the policy's "
    "seed and bounds, an eligible grey zone within them, and the draw recomputed from the seed",
    "calibration": "each proposal's calibrated score and interval are the ones recomputed from its reviews",
}

# The rules about the allocation itself; the rank property is only tested on an allocation
# that breaks none of them.
ALLOCATION_RULES = frozenset(
    {
        "unknown_proposal",
        "duplicate_proposal",
        "unknown_machine",
        "below_threshold",
        "publication",
        "incompatible",
        "no_option",
        "too_many_machines",
        "duplicate_allocation",
        "award_unit",
        "below_minimum",
        "above_request",
        "above_cap",
        "capacity",
        "commercial_cap",
        "share_min",
        "share_max",
        "pin_fund",
        "pin_exclude",
        "pin_machine",
        "pin_hours",
        "exclusive",
        "organisation_cap",
    }
)


@dataclass(frozen=True)
class Violation:
    """One broken rule: its code, what it is about and a sentence with the numbers."""

    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass(frozen=True)
class Option:
    """One (proposal, machine) option, with the README's derived numbers, exactly."""

    machine: Machine
    f: Fraction  # fraction of the request one unit covers
    g: Fraction  # fraction of the minimum one unit covers
    d: Fraction  # reference GPU-hours of work one unit delivers (value 'hours')
    preference: Fraction
    request_units: int
    min_units: int
    cap_units: int | None  # the machine's per-proposal cap in units (None: no cap)

    @property
    def max_units(self) -> int:
        """The request units, capped by the machine's per-proposal cap."""
        return self.request_units if self.cap_units is None else min(self.request_units, self.cap_units)

    @property
    def share_per_unit(self) -> Fraction:
        """Reference GPU-hours one unit counts for capacity and shares: e u, whatever the efficiency."""
        return exact(self.machine.exchange_rate) * self.machine.award_unit


@dataclass(frozen=True)
class Award:
    """One listed allocation of a proposal of the round on a machine of the round."""

    proposal: Proposal
    machine: Machine
    gpu_hours: int
    option: Option | None  # None: the machine is not one the proposal may use

    @property
    def units(self) -> Fraction:
        """Award units (a whole number unless the award-unit rule is broken)."""
        return Fraction(self.gpu_hours, self.machine.award_unit)

    @property
    def reference(self) -> Fraction:
        """The award in reference GPU-hours (e u per unit), exactly."""
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

    @property
    def parts(self) -> tuple[tuple[Award, Option], ...]:
        """The positive awards on options the proposal may use, each with its option."""
        return tuple((a, a.option) for a in self.positive if a.option is not None)

    @property
    def funded(self) -> bool:
        """True when the proposal has an award of more than zero GPU-hours."""
        return bool(self.positive)

    @property
    def fraction(self) -> Fraction:
        """The awarded fraction of the request: sum(f x units) over its options."""
        return sum((o.f * a.units for a, o in self.parts), Fraction(0))


@dataclass(frozen=True)
class Facts:
    """What the round says, recomputed once: options, eligibility, pins and the capacity."""

    rnd: Round
    kind: str  # the objective the solution claims: 'merit' or 'rank'
    options: dict[str, dict[str, Option]]  # proposal id -> machine id -> option it may use
    ineligible: dict[str, list[str]]  # proposal id -> why it cannot be funded (empty: eligible)
    unsettled: frozenset[str]  # eligible unless no split award exists, which the search left open
    pins: dict[str, Pin]
    capacity: Fraction  # the round's capacity in reference GPU-hours
    machines: dict[str, Machine]
    scale: int  # points of one unit of merit (objective_scale)

    @classmethod
    def of(cls, rnd: Round, kind: str) -> Facts:
        options = {p.id: options_of(rnd, p) for p in rnd.proposals}
        assessed = {p.id: ineligibility(rnd, p, options[p.id]) for p in rnd.proposals}
        return cls(
            rnd=rnd,
            kind=kind,
            scale=objective_scale(rnd, options),
            options=options,
            ineligible={pid: why for pid, (why, _) in assessed.items()},
            unsettled=frozenset(pid for pid, (_, settled) in assessed.items() if not settled),
            pins={pin.proposal: pin for pin in rnd.policy.pins},
            capacity=total_reference(rnd),
            machines={m.id: m for m in rnd.machines},
        )

    def hard(self, g: ShareGroup) -> bool:
        """True when the group's bounds must hold: it is not soft, or the objective is 'rank'."""
        return not g.soft or self.kind == "rank"

    def basis(self, awarded: Fraction) -> Fraction:
        """What shares are measured against: the capacity, or the reference GPU-hours awarded."""
        return self.capacity if self.rnd.policy.share_basis == "capacity" else awarded

    def basis_words(self, basis: Fraction) -> str:
        what = "capacity" if self.rnd.policy.share_basis == "capacity" else "awarded"
        return f"{_n(basis)} reference GPU-h {what}"


def verify(rnd: Round, solution: Solution) -> list[Violation]:
    """Every rule the solution breaks against this round (empty: the solution is valid)."""
    hash_and_coverage = [
        *check_input_hash(rnd, solution),
        *check_coverage(rnd, solution),
        *check_calibration(rnd, solution),
    ]
    # Under a review calibration every rule reads the calibrated scores (recomputed here).
    rnd = scored(rnd)
    facts = Facts.of(rnd, solution.objective.kind)
    listed = _listed(facts, solution)
    found = [
        *hash_and_coverage,
        *check_eligibility(facts, listed),
        *check_machines_per_proposal(listed),
        *check_award_sizes(listed),
        *check_capacity(rnd, listed),
        *check_commercial_cap(rnd, listed),
        *check_shares(facts, listed),
        *check_pins(facts, listed),
        *check_exclusive(rnd, listed),
        *check_organisations(rnd, listed),
        *check_objective(facts, solution, listed),
        *check_reported_figures(facts, listed),
        *check_decisions(facts, listed),
        *check_reason_codes(facts, listed),
        *check_metrics(facts, solution, listed),
        *check_rank_record(facts, solution, listed),
        *check_lottery(facts, solution),
    ]
    if facts.kind == "rank" and not any(v.rule in ALLOCATION_RULES for v in found):
        found += check_rank_property(facts, solution, listed)
    return found


# --- the round's rules, recomputed -------------------------------------------------------------


def exact(value: float | int) -> Fraction:
    """A number as written in the round file, as an exact fraction."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def round_half_up(x: Fraction) -> int:
    """The nearest integer, halves rounded up."""
    return math.floor(x + Fraction(1, 2))


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


def cap_units(m: Machine) -> int | None:
    """The machine's per-proposal cap in whole award units (None: no cap)."""
    caps: list[int] = []
    if m.max_award_gpu_hours is not None:
        caps.append(m.max_award_gpu_hours)
    if m.max_award_fraction is not None:
        caps.append(math.floor(exact(m.max_award_fraction) * m.gpu_hours))
    return min(caps) // m.award_unit if caps else None


def options_of(rnd: Round, p: Proposal) -> dict[str, Option]:
    """The proposal's options, by machine id: every compatible machine for a total request, and
    for machine options the listed machines of the round that its requirements allow."""
    out: dict[str, Option] = {}
    req = p.request
    if req.machine_options is None:
        big, small = req.reference_gpu_hours, req.minimum_reference_gpu_hours
        if big is None or small is None:
            return out
        for m in rnd.machines:
            if mismatches(p, m):
                continue
            speed = exact(p.efficiency.get(m.stack, 1.0))
            per_unit = exact(m.exchange_rate) * speed * m.award_unit
            out[m.id] = Option(
                machine=m,
                f=per_unit / big,
                g=per_unit / small,
                d=per_unit,
                preference=Fraction(1),
                request_units=math.floor(big / per_unit),
                min_units=max(1, math.ceil(small / per_unit)),
                cap_units=cap_units(m),
            )
        return out
    machines = {m.id: m for m in rnd.machines}
    for choice in req.machine_options:
        mm = machines.get(choice.machine)
        if mm is None or mismatches(p, mm):
            continue  # never an allowed option
        unit = mm.award_unit
        out[mm.id] = Option(
            machine=mm,
            f=Fraction(unit, choice.gpu_hours),
            g=Fraction(unit, choice.minimum_gpu_hours),
            d=exact(mm.exchange_rate) * unit,
            preference=exact(choice.preference),
            request_units=choice.gpu_hours // unit,
            min_units=max(1, math.ceil(Fraction(choice.minimum_gpu_hours, unit))),
            cap_units=cap_units(mm),
        )
    return out


def fundable(options: Iterable[Option], max_machines: int) -> bool | None:
    """True when some award satisfies the proposal's own rules (machines, units, minimum, request);
    None when the search for a split award ran out of its budget (``SPLIT_SEARCH_BUDGET``).

    One machine: an option whose minimum units are within its capped request units. Split: up to
    ``max_machines`` options, each with 1 to its capped request units, with sum(g x units) >= 1
    and sum(f x units) <= 1. That is decided exactly by a dynamic programme over the options (best
    ratio g / f first, in integers over a common denominator) that keeps the partial awards no
    other beats on sum f, sum g and machines used at once; each first tries to finish with one
    more option in one step, and those that cannot reach the minimum even with fractional units
    (the linear relaxation) are dropped.
    """
    usable = sorted((o for o in options if o.max_units >= 1), key=lambda o: (-o.g / o.f, o.machine.id))
    if any(o.min_units <= o.max_units for o in usable):
        return True
    if max_machines == 1 or len(usable) < 2:
        return False
    scale = math.lcm(*(o.f.denominator for o in usable), *(o.g.denominator for o in usable))
    # (a, b, most units): sum(a x units) <= scale is the request, sum(b x units) >= scale the minimum
    items = [(int(o.f * scale), int(o.g * scale), o.max_units) for o in usable]
    if not _reaches(items, scale, 0, scale):
        return False
    budget = SPLIT_SEARCH_BUDGET
    states: list[tuple[int, int, int]] = [(0, 0, 0)]  # (sum a x units, sum b x units, machines)
    for i, (a, b, top) in enumerate(items):
        rest = items[i + 1 :]
        grown = list(states)
        for f_sum, g_sum, used in states:
            if used >= max_machines:
                continue
            most = min(top, (scale - f_sum) // a)
            if max(1, -(-(scale - g_sum) // b)) <= most:
                return True  # this option alone completes the award
            if not rest or used + 1 >= max_machines:
                continue
            for units in range(1, most + 1):
                budget -= 1
                if budget < 0:
                    return None
                f_new, g_new = f_sum + a * units, g_sum + b * units
                if _reaches(rest, scale - f_new, g_new, scale):
                    grown.append((f_new, g_new, used + 1))
        states = _undominated(grown, max_machines)
    return False


def _reaches(items: list[tuple[int, int, int]], room: int, g_sum: int, target: int) -> bool:
    """True when g_sum plus the most sum(b x units) within sum(a x units) <= room, units being
    fractions of at most ``most`` each (items sorted by b / a, best first), reaches target."""
    for a, b, most in items:
        if g_sum >= target or room <= 0:
            break
        whole = min(most, room // a)
        g_sum, room = g_sum + b * whole, room - a * whole
        if whole < most and room > 0:
            return (g_sum * a + b * room) >= target * a  # the fractional unit that fills the room
    return g_sum >= target


def _undominated(states: list[tuple[int, int, int]], max_machines: int) -> list[tuple[int, int, int]]:
    """The partial awards no other beats with at most its sum f, at least its sum g and at most
    its number of machines."""
    out: list[tuple[int, int, int]] = []
    best = [-1] * (max_machines + 1)  # per number of machines, the best sum g kept so far
    for f_sum, g_sum, used in sorted(states, key=lambda s: (s[0], -s[1], s[2])):
        if max(best[: used + 1]) < g_sum:
            out.append((f_sum, g_sum, used))
            best[used] = max(best[used], g_sum)
    return out


def ineligibility(rnd: Round, p: Proposal, options: dict[str, Option]) -> tuple[list[str], bool]:
    """Why the proposal cannot be funded at all, in words (empty: eligible), and whether that is
    settled (False when the search for a split award ran out of its budget)."""
    out: list[str] = []
    if exact(p.score) < exact(rnd.policy.score_threshold):
        out.append(f"its score {_n(p.score)} is below the threshold {_n(rnd.policy.score_threshold)}")
    if rnd.policy.commercial == "exclude" and is_commercial(rnd, p):
        out.append("it is commercial and the policy excludes commercial proposals")
    if not options:
        out.append("no machine it may use is compatible with its code")
        return out, True
    possible = fundable(options.values(), p.max_machines)
    if possible is False:
        out.append("no award on the machines it may use reaches its minimum without passing its request")
    return out, possible is not None or bool(out)


def merit_weight(rnd: Round, p: Proposal) -> Fraction:
    """((score - scale.min) / (scale.max - scale.min)) ** exponent, exactly."""
    lo, hi = exact(rnd.score_scale.min), exact(rnd.score_scale.max)
    return ((exact(p.score) - lo) / (hi - lo)) ** rnd.policy.merit.exponent


def unit_merit(rnd: Round, p: Proposal, o: Option) -> Fraction:
    """Merit of one award unit of an option, exactly: w x p x f, or w x p x d."""
    worth = o.f if rnd.policy.merit.value == "fraction" else o.d
    return merit_weight(rnd, p) * o.preference * worth


def objective_scale(rnd: Round, options: dict[str, dict[str, Option]]) -> int:
    """S: the merit value's base scale, times ten while (at most six times) a proposal admitted by
    the score threshold and the publication rule, with merit weight, has a compatible award unit
    worth fewer than 2,000 points, unless the admitted proposals' whole requests (each on its best
    machine) would then be worth more than 2^52 points."""
    base = SCALES[rnd.policy.merit.value]
    least: Fraction | None = None
    most = Fraction(0)
    for p in rnd.proposals:
        admitted = exact(p.score) >= exact(rnd.policy.score_threshold) and not (
            rnd.policy.commercial == "exclude" and is_commercial(rnd, p)
        )
        if not admitted or merit_weight(rnd, p) <= 0 or not options[p.id]:
            continue
        worths = [(base * unit_merit(rnd, p, o), o.request_units) for o in options[p.id].values()]
        low = min(w for w, _ in worths)
        least = low if least is None else min(least, low)
        most += max(w * units for w, units in worths)
    if least is None:
        return base
    # Set-wise rather than step by step (as the solver's terms do it): the powers the 2^52 ceiling
    # allows, and the least of them at which every unit is worth enough, else the largest allowed.
    allowed = [k for k in range(MOST_SCALE_STEPS + 1) if k == 0 or most * 10**k <= MOST_POINTS]
    enough = [k for k in allowed if least * 10**k >= LEAST_UNIT_POINTS]
    return base * 10 ** (min(enough) if enough else max(allowed))


def unit_coefficient(rnd: Round, p: Proposal, o: Option, scale: int) -> int:
    """Scaled merit of one award unit of an option: round(S x w x p x f) or round(S x w x p x d)."""
    return round_half_up(scale * unit_merit(rnd, p, o))


def total_reference(rnd: Round) -> Fraction:
    """The round's capacity in reference GPU-hours, exactly."""
    return sum((m.gpu_hours * exact(m.exchange_rate) for m in rnd.machines), Fraction(0))


def commercial_cap_hours(m: Machine) -> int:
    """The GPU-hours of the machine that may go to commercial work."""
    return math.floor(exact(m.commercial_cap) * m.gpu_hours)


def deviations(g: ShareGroup, held: Fraction, basis: Fraction) -> tuple[int, int]:
    """A group's shortfall and excess in whole reference GPU-hours, rounded up."""
    low, high = exact(g.min_share) * basis, exact(g.max_share) * basis
    return math.ceil(max(Fraction(0), low - held)), math.ceil(max(Fraction(0), held - high))


def rank_key(p: Proposal) -> tuple[bool, int, Fraction, str]:
    """The ranking order: committee rank (none last), then score (higher first), then id."""
    return (p.committee_rank is None, p.committee_rank or 0, -exact(p.score), p.id)


def rank_positions(rnd: Round, solution: Solution | None = None) -> dict[str, int]:
    """Each proposal's place (1 = best) among all proposals of the round in the ranking order,
    after the recorded lottery's draw, if any (see ``check_lottery``)."""
    order = [p.id for p in sorted(rnd.proposals, key=rank_key)]
    lottery = solution.lottery if solution is not None else None
    if lottery is not None:
        grey = {g.proposal for g in lottery.grey_zone}
        drawn = iter(sorted(grey, key=lambda pid: lottery_lot(lottery.seed, pid)))
        order = [next(drawn) if pid in grey else pid for pid in order]
    return {pid: i + 1 for i, pid in enumerate(order)}


def check_calibration(rnd: Round, solution: Solution) -> list[Violation]:
    """Each proposal's calibrated score, interval and rank are the ones its reviews give, and
    are given exactly when the round has reviews."""
    reviewed = any(p.reviews for p in rnd.proposals)
    expected = calibrate(rnd) if reviewed else {}
    out: list[Violation] = []
    for r in solution.proposals:
        c = r.calibrated
        if c is None and not reviewed:
            continue
        want = expected.get(r.id)
        got = None if c is None else (c.score, c.low, c.high, c.expected_rank, c.rank_low, c.rank_high)
        wanted = (
            None
            if want is None
            else (want.score, want.low, want.high, want.expected_rank, want.rank_low, want.rank_high)
        )
        if got != wanted or (c is not None and c.method != rnd.policy.reviews.calibration):
            out.append(
                Violation(
                    "calibration",
                    r.id,
                    f"proposal '{r.id}' reports calibration {got}, recomputed from its reviews: {wanted}",
                )
            )
    return out


def lottery_lot(seed: int, proposal_id: str) -> str:
    """A proposal's lot: the sha256 of '<seed>:<proposal id>' in hex."""
    return hashlib.sha256(f"{seed}:{proposal_id}".encode()).hexdigest()


def check_lottery(facts: Facts, solution: Solution) -> list[Violation]:
    """The recorded lottery: only under 'rank' with a lottery policy, with the policy's seed and
    bounds; its grey zone eligible, in ranking order, within the bounds; its lots and draw
    recomputed from the seed. (Who is in the grey zone comes from a stability run, which only
    ``reproduce`` can re-run.)"""
    rnd, lottery = facts.rnd, solution.lottery
    policy = rnd.policy.lottery
    if lottery is None:
        if facts.kind == "rank" and policy is not None:
            return [
                Violation("lottery", "", "the policy asks for a lottery under 'rank' but none is recorded")
            ]
        return []
    if facts.kind != "rank" or policy is None:
        return [
            Violation("lottery", "", "a lottery is recorded but the policy has none under this objective")
        ]
    out: list[Violation] = []
    if (lottery.seed, lottery.low, lottery.high, lottery.samples) != (
        policy.seed,
        policy.low,
        policy.high,
        policy.samples,
    ):
        out.append(
            Violation("lottery", "", "the recorded lottery's seed, bounds or samples are not the policy's")
        )
    plain = [p.id for p in sorted(rnd.proposals, key=rank_key)]
    ids = [g.proposal for g in lottery.grey_zone]
    if ids != [pid for pid in plain if pid in set(ids)]:
        out.append(Violation("lottery", "", "the grey zone is not listed in ranking order"))
    for g in lottery.grey_zone:
        if g.proposal not in facts.ineligible or facts.ineligible[g.proposal]:
            out.append(
                Violation("lottery", g.proposal, f"'{g.proposal}' is in the grey zone but not eligible")
            )
        elif not lottery.low <= g.probability_funded <= lottery.high:
            out.append(
                Violation(
                    "lottery",
                    g.proposal,
                    f"'{g.proposal}' is in the grey zone with probability {g.probability_funded}, outside "
                    f"[{lottery.low}, {lottery.high}]",
                )
            )
        if g.lot != lottery_lot(lottery.seed, g.proposal):
            out.append(
                Violation("lottery", g.proposal, f"the lot of '{g.proposal}' is not sha256('seed:id')")
            )
    if lottery.drawn != sorted(ids, key=lambda pid: lottery_lot(lottery.seed, pid)):
        out.append(
            Violation("lottery", "", "the drawn order is not the grey zone in increasing order of lots")
        )
    return out


def expected_objective_kind(rnd: Round, solution: Solution) -> str:
    """The objective asked for: the solve option recorded in the provenance, else the policy's."""
    asked = solution.provenance.options.get("objective")
    if isinstance(asked, str) and asked in ("merit", "rank"):
        return asked
    return rnd.policy.objective


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


def check_eligibility(facts: Facts, listed: list[Listed]) -> list[Violation]:
    """Funded proposals reach the threshold, may be funded under the policy, and use only
    machines their code can run on and, with machine options, that they list."""
    rnd = facts.rnd
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
        listed_machines = (
            None if p.request.machine_options is None else {o.machine for o in p.request.machine_options}
        )
        for a in item.positive:
            problems = mismatches(p, a.machine)
            award = f"proposal '{p.id}' has {a.gpu_hours:,} GPU-h on machine '{a.machine.id}'"
            if problems:
                out.append(
                    Violation(
                        "incompatible", p.id, f"{award}, which its code cannot use: {'; '.join(problems)}"
                    )
                )
            elif listed_machines is not None and a.machine.id not in listed_machines:
                out.append(
                    Violation(
                        "no_option",
                        p.id,
                        f"{award}, which is not among its machine options "
                        f"({', '.join(repr(m) for m in sorted(listed_machines))})",
                    )
                )
    return out


def check_machines_per_proposal(listed: list[Listed]) -> list[Violation]:
    """At most max_machines machines per proposal, each listed once, and no zero-hour allocations."""
    out: list[Violation] = []
    for item in listed:
        r, k = item.result, item.proposal.max_machines
        used = sorted({alloc.machine for alloc in r.allocations if alloc.gpu_hours > 0})
        if len(used) > k:
            out.append(
                Violation(
                    "too_many_machines",
                    r.id,
                    f"proposal '{r.id}' is funded on {len(used):,} machines "
                    f"({', '.join(repr(m) for m in used)}); at most {k:,} "
                    f"{'is' if k == 1 else 'are'} allowed (max_machines)",
                )
            )
        for machine, times in sorted(Counter(alloc.machine for alloc in r.allocations).items()):
            if times > 1:
                out.append(
                    Violation(
                        "duplicate_allocation",
                        r.id,
                        f"proposal '{r.id}' lists machine '{machine}' {times:,} times; list it once",
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
    """Awards are whole award units within the request, the minimum and the machine's cap: on one
    machine between its minimum and request units; split, each part at most its request units and
    together sum(g x units) >= 1 and sum(f x units) <= 1."""
    out: list[Violation] = []
    for item in listed:
        p = item.proposal
        split = p.max_machines > 1
        over_option = False
        for a in item.positive:
            m, units = a.machine, a.units
            award = f"proposal '{p.id}' has {a.gpu_hours:,} GPU-h on machine '{m.id}'"
            if units.denominator != 1:
                out.append(
                    Violation(
                        "award_unit",
                        p.id,
                        f"{award}, not a whole multiple of its award unit of {m.award_unit:,} GPU-h",
                    )
                )
            o = a.option
            if o is None:
                continue  # on a machine it may not use: reported as incompatible or no_option
            if not split and units < o.min_units:
                out.append(
                    Violation(
                        "below_minimum",
                        p.id,
                        f"{award} ({_n(units)} award units), below its minimum of {o.min_units:,} units "
                        f"there ({_minimum_words(p, m)})",
                    )
                )
            if units > o.request_units:
                over_option = True
                out.append(
                    Violation(
                        "above_request",
                        p.id,
                        f"{award} ({_n(units)} award units), above its request of {o.request_units:,} units "
                        f"there ({_request_words(p, m)})",
                    )
                )
            if o.cap_units is not None and units > o.cap_units:
                out.append(
                    Violation(
                        "above_cap",
                        p.id,
                        f"{award} ({_n(units)} award units), above the machine's per-proposal cap of "
                        f"{o.cap_units:,} units ({o.cap_units * m.award_unit:,} GPU-h)",
                    )
                )
        if not split or not item.parts:
            continue
        of_minimum = sum((o.g * a.units for a, o in item.parts), Fraction(0))
        if of_minimum < 1:
            out.append(
                Violation(
                    "below_minimum",
                    p.id,
                    f"proposal '{p.id}' (split) has {_parts_words(item)}, {_pct(of_minimum)} of its minimum; "
                    "together its parts must reach 100%",
                )
            )
        if item.fraction > 1 and not over_option:
            out.append(
                Violation(
                    "above_request",
                    p.id,
                    f"proposal '{p.id}' (split) has {_parts_words(item)}, {_pct(item.fraction)} of its "
                    "request; together its parts may not pass 100%",
                )
            )
    return out


def check_capacity(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """Each machine's awards add up to at most its GPU-hours."""
    used = _machine_hours(rnd, listed, commercial_only=False)
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
    used = _machine_hours(rnd, listed, commercial_only=True)
    out: list[Violation] = []
    for m in rnd.machines:
        cap = commercial_cap_hours(m)
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


def check_shares(facts: Facts, listed: list[Listed]) -> list[Violation]:
    """Each hard share group's reference GPU-hours lie between its minimum and maximum share of
    the basis; soft groups only cost a penalty, except under 'rank', where every bound is hard."""
    got = _group_reference(facts.rnd, listed)
    basis = facts.basis(_awarded(listed))
    out: list[Violation] = []
    for g in facts.rnd.policy.share_groups:
        if not facts.hard(g):
            continue
        low, high = exact(g.min_share) * basis, exact(g.max_share) * basis
        soft = " (soft, hard under 'rank')" if g.soft else ""
        if got[g.id] < low:
            out.append(
                Violation(
                    "share_min",
                    g.id,
                    f"share group '{g.id}'{soft}: {_n(got[g.id])} reference GPU-h awarded, minimum "
                    f"{_n(low)} ({_n(g.min_share)} of {facts.basis_words(basis)})",
                )
            )
        if got[g.id] > high:
            out.append(
                Violation(
                    "share_max",
                    g.id,
                    f"share group '{g.id}'{soft}: {_n(got[g.id])} reference GPU-h awarded, maximum "
                    f"{_n(high)} ({_n(g.max_share)} of {facts.basis_words(basis)})",
                )
            )
    return out


def check_pins(facts: Facts, listed: list[Listed]) -> list[Violation]:
    """Pinned 'fund': funded, on the pinned machine, with exactly the pinned GPU-hours there.
    Pinned 'exclude': not funded."""
    out: list[Violation] = []
    for item in listed:
        p = item.proposal
        pin = facts.pins.get(p.id)
        if pin is None:
            continue
        why = f"(pin: {pin.reason})"
        if pin.action == "exclude":
            if item.positive:
                out.append(
                    Violation(
                        "pin_exclude",
                        p.id,
                        f"proposal '{p.id}' is pinned 'exclude' but has {_n(_hours(item.positive))} GPU-h "
                        f"{why}",
                    )
                )
            continue
        if not item.positive:
            out.append(
                Violation("pin_fund", p.id, f"proposal '{p.id}' is pinned 'fund' but has no award {why}")
            )
            continue
        if pin.machine is None:
            continue
        there = [a for a in item.positive if a.machine.id == pin.machine]
        if len(there) != len(item.positive):
            elsewhere = ", ".join(f"'{a.machine.id}'" for a in item.positive)
            out.append(
                Violation(
                    "pin_machine",
                    p.id,
                    f"proposal '{p.id}' is pinned 'fund' on machine '{pin.machine}' only but is funded on "
                    f"{elsewhere} {why}",
                )
            )
        elif pin.gpu_hours is not None and _hours(tuple(there)) != pin.gpu_hours:
            out.append(
                Violation(
                    "pin_hours",
                    p.id,
                    f"proposal '{p.id}' is pinned 'fund' with {pin.gpu_hours:,} GPU-h on machine "
                    f"'{pin.machine}' but has {_hours(tuple(there)):,} there {why}",
                )
            )
    return out


def check_exclusive(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """At most one proposal of each exclusive group is funded."""
    funded = {item.proposal.id for item in listed if item.positive}
    out: list[Violation] = []
    for group in rnd.policy.exclusive:
        both = [pid for pid in group.proposals if pid in funded]
        if len(both) > 1:
            why = f" ({group.reason})" if group.reason else ""
            out.append(
                Violation(
                    "exclusive",
                    group.id,
                    f"exclusive group '{group.id}'{why}: {len(both):,} of its proposals are funded "
                    f"({', '.join(repr(pid) for pid in both)}); at most 1 may be",
                )
            )
    return out


def check_organisations(rnd: Round, listed: list[Listed]) -> list[Violation]:
    """At most max_awards_per_organisation funded proposals per applicant name."""
    limit = rnd.policy.max_awards_per_organisation
    if limit is None:
        return []
    funded: defaultdict[str, list[str]] = defaultdict(list)
    for item in listed:
        if item.positive:
            funded[item.proposal.applicant.name].append(item.proposal.id)
    return [
        Violation(
            "organisation_cap",
            name,
            f"organisation '{name}' has {len(ids):,} funded proposals "
            f"({', '.join(repr(pid) for pid in sorted(ids))}); at most {limit:,} are allowed",
        )
        for name, ids in sorted(funded.items())
        if len(ids) > limit
    ]


def check_objective(facts: Facts, solution: Solution, listed: list[Listed]) -> list[Violation]:
    """The objective's kind, scale and basis; the merit, penalty and scaled objective; the bound;
    and each proposal's contribution."""
    rnd = facts.rnd
    obj = solution.objective
    value = rnd.policy.merit.value
    scale = facts.scale
    out: list[Violation] = []
    kind = expected_objective_kind(rnd, solution)
    if obj.kind != kind:
        out.append(
            Violation(
                "objective_kind",
                "",
                f"the objective is '{obj.kind}', but the solve options and the round's policy ask for "
                f"'{kind}'",
            )
        )
    if obj.value_basis != value:
        out.append(
            Violation(
                "value_basis",
                "",
                f"the objective's value basis is '{obj.value_basis}', the policy's merit value is '{value}'",
            )
        )
    if obj.scale != scale:
        out.append(
            Violation(
                "objective_scale",
                "",
                f"the objective scale is {obj.scale:,}, expected {scale:,} for merit value '{value}' and "
                "these award units",
            )
        )
    merit = Fraction(0)
    for item in listed:
        part = sum(
            (unit_coefficient(rnd, item.proposal, o, scale) * a.units for a, o in item.parts), Fraction(0)
        )
        merit += part
        if item.complete and item.result.objective_contribution != part:
            out.append(
                Violation(
                    "contribution",
                    item.proposal.id,
                    f"proposal '{item.proposal.id}': objective contribution "
                    f"{item.result.objective_contribution:,}, recomputed {_n(part)}",
                )
            )
    if obj.merit_scaled != merit:
        out.append(
            Violation("objective", "", f"the scaled merit is {obj.merit_scaled:,}, recomputed {_n(merit)}")
        )
    penalty, words = _penalty(facts, listed)
    if obj.penalty_scaled != penalty:
        out.append(
            Violation(
                "penalty",
                "",
                f"the scaled penalty is {obj.penalty_scaled:,}, recomputed {penalty:,}"
                + (f" ({'; '.join(words)})" if words else " (no soft group is outside its bounds)"),
            )
        )
    if obj.scaled != obj.merit_scaled - obj.penalty_scaled:
        out.append(
            Violation(
                "objective",
                "",
                f"the scaled objective is {obj.scaled:,}, but merit {obj.merit_scaled:,} minus penalty "
                f"{obj.penalty_scaled:,} is {obj.merit_scaled - obj.penalty_scaled:,}",
            )
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
    out += _check_bound(obj.kind, obj.best_bound_scaled, obj.gap, obj.scaled, solution.solver.status)
    return out


def _check_bound(
    kind: str, bound: int | None, gap: float | None, scaled: int, status: str = "feasible"
) -> list[Violation]:
    """Under 'merit' a bound and gap are given, the bound is not below the objective, the gap is
    the one they give and 'optimal' means they meet; under 'rank' both are null. (That the bound
    holds is CP-SAT's proof, which only a re-solve can repeat.)"""
    if kind == "rank":
        if bound is None and gap is None:
            return []
        return [
            Violation(
                "best_bound",
                "",
                f"under the rank objective the best bound and gap are null, not {bound!r} and {gap!r}",
            )
        ]
    if bound is None or gap is None:
        return [
            Violation(
                "best_bound",
                "",
                f"under the merit objective the best bound ({bound!r}) and gap ({gap!r}) are given",
            )
        ]
    out: list[Violation] = []
    if bound < scaled:
        out.append(Violation("best_bound", "", f"the best bound {bound:,} is below the objective {scaled:,}"))
    if gap < 0:
        out.append(Violation("best_bound", "", f"the gap {_n(gap)} is negative"))
    expected = round((bound - scaled) / max(1, abs(bound)), 9)
    if abs(gap - expected) > 1e-9:
        out.append(
            Violation(
                "best_bound", "", f"the gap {_n(gap)} is not (bound - objective) / bound = {_n(expected)}"
            )
        )
    if status == "optimal" and bound != scaled:
        out.append(
            Violation(
                "best_bound",
                "",
                f"the status is optimal but the best bound {bound:,} is above the objective {scaled:,}",
            )
        )
    return out


def _penalty(facts: Facts, listed: list[Listed]) -> tuple[int, list[str]]:
    """The scaled penalty of the soft groups' shortfall and excess, and each deviation in words."""
    scale = facts.scale
    got = _group_reference(facts.rnd, listed)
    basis = facts.basis(_awarded(listed))
    total, words = 0, []
    for g in facts.rnd.policy.share_groups:
        if not g.soft or g.penalty is None:
            continue
        short, over = deviations(g, got[g.id], basis)
        per_hour = round_half_up(scale * exact(g.penalty))
        total += per_hour * (short + over)
        if short or over:
            words.append(
                f"'{g.id}': {short:,} reference GPU-h short and {over:,} over, {per_hour:,} points per hour"
            )
    return total, words


def check_reported_figures(facts: Facts, listed: list[Listed]) -> list[Violation]:
    """Each decision's reference GPU-hours, fraction and facts about the proposal match the round."""
    rnd = facts.rnd
    out: list[Violation] = []
    for item in listed:
        r, p = item.result, item.proposal
        for a, alloc in zip(
            item.awards, [x for x in r.allocations if x.machine in facts.machines], strict=True
        ):
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
        pin = facts.pins.get(p.id)
        mirrored = None if pin is None else (pin.action, pin.reason)
        expected: dict[str, tuple[object, object]] = {
            "score": (r.score, p.score),
            "group": (r.group, share_group(rnd, p)),
            "commercial": (r.commercial, is_commercial(rnd, p)),
            "pin": (None if r.pin is None else (r.pin.action, r.pin.reason), mirrored),
        }
        if p.request.reference_gpu_hours is not None:
            # With machine options the request has no single size in reference GPU-hours; the
            # README does not define this figure then, so it is not checked.
            expected["requested_reference_gpu_hours"] = (
                r.requested_reference_gpu_hours,
                p.request.reference_gpu_hours,
            )
        for name, (found, want) in expected.items():
            if found != want:
                out.append(
                    Violation(
                        "figures", p.id, f"proposal '{p.id}': {name} is {found!r}, the round gives {want!r}"
                    )
                )
        close: dict[str, tuple[float, Fraction]] = {
            "merit_weight": (r.merit_weight, merit_weight(rnd, p)),
            "fraction_of_request": (r.fraction_of_request, item.fraction),
        }
        for name, (got, exact_value) in close.items():
            if not _close(got, exact_value):
                out.append(
                    Violation(
                        "figures",
                        p.id,
                        f"proposal '{p.id}': {name} is {_n(got)}, recomputed {_n(exact_value)}",
                    )
                )
    return out


def check_decisions(facts: Facts, listed: list[Listed]) -> list[Violation]:
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
        implied = _expected_decision(facts, item)
        if implied is None:
            continue
        expected, because = implied
        if r.decision != expected:
            out.append(
                Violation(
                    "decision",
                    p.id,
                    f"proposal '{p.id}' is reported '{r.decision}' but is '{expected}': {because}",
                )
            )
    return out


def check_reason_codes(facts: Facts, listed: list[Listed]) -> list[Violation]:
    """The reasons that name a rule verify can recompute hold exactly when that rule does: the
    score threshold (with its numbers), publication under 'exclude', hardware compatibility, a
    pin, a funded exclusive rival and a full organisation. (Reasons about remaining hours and
    shares describe the allocation and are not recomputed.)"""
    rnd = facts.rnd
    funded = {item.proposal.id for item in listed if item.positive}
    org_of = {p.id: p.applicant.name for p in rnd.proposals}
    per_org = Counter(org_of[pid] for pid in funded)
    cap = rnd.policy.max_awards_per_organisation
    out: list[Violation] = []
    for item in listed:
        r, p = item.result, item.proposal
        if r.decision == Decision.FUNDED:
            continue
        codes = {x.code: x.detail for x in r.reasons}
        below = exact(p.score) < exact(rnd.policy.score_threshold)
        holds = {
            "below_threshold": below,
            "publication": rnd.policy.commercial == "exclude" and is_commercial(rnd, p),
            "incompatible": not facts.options[p.id],
            "pinned": p.id in facts.pins,
        }
        rivals = [
            q
            for g in rnd.policy.exclusive
            if p.id in g.proposals
            for q in g.proposals
            if q != p.id and q in funded
        ]
        holds["exclusive"] = p.id not in funded and bool(rivals)
        if cap is not None:
            holds["organisation_cap"] = p.id not in funded and per_org[org_of[p.id]] >= cap
        # A reason given must hold; an eligibility rule that holds must be given.
        must = (
            ("below_threshold", "publication", "incompatible") if r.decision == Decision.NOT_ELIGIBLE else ()
        )
        for code, rule_holds in holds.items():
            if code in codes and not rule_holds:
                out.append(
                    Violation(
                        "reason_codes",
                        p.id,
                        f"proposal '{p.id}' gives the reason '{code}', which does not hold",
                    )
                )
            elif code in must and rule_holds and code not in codes:
                out.append(
                    Violation(
                        "reason_codes",
                        p.id,
                        f"proposal '{p.id}' does not give the reason '{code}', which holds",
                    )
                )
        words = f"{_n(p.score)} < {_n(rnd.policy.score_threshold)}"
        if below and "below_threshold" in codes and words not in codes["below_threshold"]:
            out.append(
                Violation("reason_codes", p.id, f"proposal '{p.id}''s threshold reason does not say {words}")
            )
    return out


def check_metrics(facts: Facts, solution: Solution, listed: list[Listed]) -> list[Violation]:
    """The machine, group and round metrics match the recomputed awards."""
    rnd = facts.rnd
    out: list[Violation] = []
    met = solution.metrics

    def compare(subject: str, what: str, name: str, found: float, want: Fraction | int) -> None:
        if not _close(found, Fraction(want)):
            out.append(
                Violation(
                    "metrics", subject, f"metrics of {what}: {name} is {_n(found)}, recomputed {_n(want)}"
                )
            )

    used = _machine_hours(rnd, listed, commercial_only=False)
    commercial = _machine_hours(rnd, listed, commercial_only=True)
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
        compare(m.id, what, "commercial_cap_gpu_hours", x.commercial_cap_gpu_hours, commercial_cap_hours(m))
        compare(m.id, what, "proposals_funded", x.proposals_funded, counts[m.id])
    for ident in sorted(reported_machines.keys() - facts.machines.keys()):
        out.append(Violation("metrics", ident, f"metrics list machine '{ident}', which is not in the round"))

    if met.share_basis != rnd.policy.share_basis:
        out.append(
            Violation(
                "metrics",
                "",
                f"metrics of the round: share_basis is '{met.share_basis}', "
                f"the policy's is '{rnd.policy.share_basis}'",
            )
        )
    awarded = _awarded(listed)
    basis = facts.basis(awarded)
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
        held = group_ref[g.id]
        short, over = deviations(g, held, basis) if g.soft else (0, 0)
        compare(g.id, what, "reference_gpu_hours", y.reference_gpu_hours, held)
        compare(g.id, what, "share", y.share, held / basis if basis else Fraction(0))
        compare(g.id, what, "shortfall_reference_gpu_hours", y.shortfall_reference_gpu_hours, short)
        compare(g.id, what, "excess_reference_gpu_hours", y.excess_reference_gpu_hours, over)
        compare(g.id, what, "proposals_funded", y.proposals_funded, group_counts[g.id])
        if y.soft != g.soft:
            out.append(
                Violation("metrics", g.id, f"metrics of {what}: soft is {y.soft}, the round gives {g.soft}")
            )
    for ident in sorted(reported_groups.keys() - {g.id for g in rnd.policy.share_groups}):
        out.append(
            Violation("metrics", ident, f"metrics list share group '{ident}', which is not in the round")
        )

    # A request given as machine options has no size of its own in reference GPU-hours: the
    # round's total then counts the figure reported for that proposal.
    results = {item.proposal.id: item.result for item in listed}
    requested = 0
    for p in rnd.proposals:
        if p.request.reference_gpu_hours is not None:
            requested += p.request.reference_gpu_hours
        elif p.id in results:
            requested += results[p.id].requested_reference_gpu_hours
    compare("", "the round", "capacity_reference_gpu_hours", met.capacity_reference_gpu_hours, facts.capacity)
    compare("", "the round", "requested_reference_gpu_hours", met.requested_reference_gpu_hours, requested)
    compare("", "the round", "awarded_reference_gpu_hours", met.awarded_reference_gpu_hours, awarded)
    decided = Counter(r.decision.value for r in solution.proposals)
    for key in sorted({d.value for d in Decision} | met.decisions.keys()):
        compare("", "the round", f"decisions['{key}']", met.decisions.get(key, 0), decided[key])
    return out


def check_rank_record(facts: Facts, solution: Solution, listed: list[Listed]) -> list[Violation]:
    """Rank positions (always); under 'rank', the order and the steps of the walk.

    A proposal's rank position is its 1-based place among all proposals of the round, eligible
    or not, in the ranking order; the order lists the eligible ones. The walk has one 'fund' step
    per proposal of the order, in order, then one 'raise' step per funded proposal, in order;
    each step carries the proposal's rank position and its final fraction of the request, and a
    fund step's outcome is the final decision.
    """
    rnd = facts.rnd
    positions = rank_positions(rnd, solution)
    out: list[Violation] = []
    for item in listed:
        place = positions[item.proposal.id]
        if item.result.rank_position != place:
            out.append(
                Violation(
                    "rank_position",
                    item.proposal.id,
                    f"proposal '{item.proposal.id}': rank position {item.result.rank_position:,}, but it is "
                    f"number {place:,} of {len(positions):,} by committee rank, score and id",
                )
            )
    rank = solution.rank
    if facts.kind != "rank":
        if rank is not None:
            out.append(Violation("rank_record", "", "the objective is 'merit' but a rank walk is recorded"))
        return out
    if rank is None:
        out.append(Violation("rank_record", "", "the objective is 'rank' but no rank walk is recorded"))
        return out
    # A proposal whose eligibility the split search left unsettled may be listed or not.
    order = [
        pid
        for pid in sorted(positions, key=positions.__getitem__)
        if not facts.ineligible[pid] and (pid not in facts.unsettled or pid in rank.order)
    ]
    if rank.order != order:
        at = next((i for i, (x, y) in enumerate(zip(rank.order, order, strict=False)) if x != y), None)
        where = f"first difference at place {at + 1:,}" if at is not None else "lengths differ"
        out.append(
            Violation(
                "rank_sequence",
                "",
                f"the rank order is {_ids(rank.order)}, expected the eligible proposals by committee rank, "
                f"score and id: {_ids(order)} ({where})",
            )
        )
    by_id = {item.proposal.id: item for item in listed}

    def steps_violation(message: str, subject: str = "") -> None:
        out.append(Violation("rank_steps", subject, message))

    fund = [s.proposal for s in rank.steps if s.phase == "fund"]
    if fund != order:
        steps_violation(
            f"the fund steps are for {_ids(fund)}, expected one per eligible proposal in order: {_ids(order)}"
        )
    funded = [pid for pid in order if pid in by_id and by_id[pid].positive]
    raised = [s.proposal for s in rank.steps if s.phase == "raise"]
    if raised != funded:
        steps_violation(
            f"the raise steps are for {_ids(raised)}, expected one per funded proposal in order: "
            f"{_ids(funded)}"
        )
    phases = [s.phase for s in rank.steps]
    if "raise" in phases and "fund" in phases[phases.index("raise") :]:
        steps_violation("a fund step comes after a raise step; the walk funds first, then raises")
    for i, s in enumerate(rank.steps, start=1):
        head = f"step {i:,} ({s.phase} '{s.proposal}')"
        if s.proposal not in positions:
            steps_violation(f"{head} is about a proposal that is not in the round", s.proposal)
            continue
        if s.position != positions[s.proposal]:
            steps_violation(
                f"{head} gives rank position {s.position:,}, the proposal's is {positions[s.proposal]:,}",
                s.proposal,
            )
        entry = by_id.get(s.proposal)
        if entry is None:
            continue
        want = ("funded" if entry.positive else "not_funded") if s.phase == "fund" else "raised"
        if s.outcome != want:
            steps_violation(
                f"{head} has outcome '{s.outcome}', expected '{want}' from the final decision", s.proposal
            )
        if not _close(s.fraction_of_request, entry.fraction):
            steps_violation(
                f"{head} gives fraction of request {_n(s.fraction_of_request)}, the final award's is "
                f"{_n(entry.fraction)}",
                s.proposal,
            )
    all_proven = all(s.proven for s in rank.steps)
    if rank.all_proven != all_proven:
        unproven = [f"{s.phase} '{s.proposal}'" for s in rank.steps if not s.proven]
        out.append(
            Violation(
                "rank_proven",
                "",
                f"all_proven is {rank.all_proven}, but "
                + (
                    f"{len(unproven):,} steps are unproven ({', '.join(unproven[:5])})"
                    if unproven
                    else "every step is proven"
                ),
            )
        )
    if (solution.solver.status == "optimal") != all_proven:
        out.append(
            Violation(
                "rank_proven",
                "",
                f"the solver status is '{solution.solver.status}', but under 'rank' it is 'optimal' exactly "
                f"when every step is proven ({'all are' if all_proven else 'some are not'})",
            )
        )
    return out


@dataclass
class Tally:
    """What an allocation uses of every round-wide rule, to test one more award against them."""

    used: Counter[str]  # GPU-hours per machine
    commercial: Counter[str]  # commercial GPU-hours per machine
    held: defaultdict[str | None, Fraction]  # reference GPU-hours per share group
    awarded: Fraction
    organisations: Counter[str]  # funded proposals per applicant name
    exclusive: Counter[str]  # funded proposals per exclusive group

    @classmethod
    def of(cls, facts: Facts, listed: list[Listed]) -> Tally:
        rnd = facts.rnd
        funded = {item.proposal.id for item in listed if item.positive}
        return cls(
            used=Counter(_machine_hours(rnd, listed, commercial_only=False)),
            commercial=Counter(_machine_hours(rnd, listed, commercial_only=True)),
            held=_group_reference(rnd, listed),
            awarded=_awarded(listed),
            organisations=Counter(item.proposal.applicant.name for item in listed if item.positive),
            exclusive=Counter(
                {group.id: sum(pid in funded for pid in group.proposals) for group in rnd.policy.exclusive}
            ),
        )

    def room(self, facts: Facts, p: Proposal, m: Machine, units: int, *, newly: bool) -> bool:
        """True when p can get ``units`` more units on m with every round-wide rule still holding
        (``newly``: p has no award yet, so its pin, exclusive groups and organisation count too)."""
        rnd = facts.rnd
        hours = units * m.award_unit
        if self.used[m.id] + hours > m.gpu_hours:
            return False
        if is_commercial(rnd, p) and self.commercial[m.id] + hours > commercial_cap_hours(m):
            return False
        ref = hours * exact(m.exchange_rate)
        mine = share_group(rnd, p)
        basis = facts.basis(self.awarded + ref)
        for g in rnd.policy.share_groups:
            held = self.held[g.id] + (ref if g.id == mine else 0)
            if facts.hard(g) and not exact(g.min_share) * basis <= held <= exact(g.max_share) * basis:
                return False
        if not newly:
            return True
        pin = facts.pins.get(p.id)
        if pin is not None and pin.action == "exclude":
            return False
        if any(self.exclusive[group.id] >= 1 for group in rnd.policy.exclusive if p.id in group.proposals):
            return False
        limit = rnd.policy.max_awards_per_organisation
        return limit is None or self.organisations[p.applicant.name] < limit


def check_rank_property(facts: Facts, solution: Solution, listed: list[Listed]) -> list[Violation]:
    """The rank property, by a sufficient test that needs no solver, on a valid allocation.

    With the rest of the allocation unchanged and every rule holding (share bounds hard):
    an eligible, unfunded proposal that is not pinned 'exclude' could not be added at its
    minimum units on any option (else the walk should have funded it: ``rank_order``), and a
    funded proposal below its request could not take one more unit on a machine it uses, or,
    split, on another option (else the walk should have raised it: ``rank_hours``). The better-
    ranked proposals keep their awards, so either allocation would have passed the walk's step.
    A step the record marks unproven is skipped: the walk may leave it undecided.
    """
    rnd = facts.rnd
    tally = Tally.of(facts, listed)
    steps = solution.rank.steps if solution.rank is not None else []
    proven = {(s.proposal, s.phase): s.proven for s in steps}
    positions = rank_positions(rnd, solution)
    by_id = {item.proposal.id: item for item in listed}
    out: list[Violation] = []
    for p in sorted(rnd.proposals, key=lambda p: positions[p.id]):
        item = by_id.get(p.id)
        if item is None or facts.ineligible[p.id]:
            continue
        where = f"proposal '{p.id}' (rank position {positions[p.id]:,})"
        if not item.positive:
            if not proven.get((p.id, "fund"), True):
                continue
            for o in _sorted_options(facts, p):
                if o.min_units <= o.max_units and tally.room(facts, p, o.machine, o.min_units, newly=True):
                    out.append(
                        Violation(
                            "rank_order",
                            p.id,
                            f"{where} is not funded, yet its minimum of {o.min_units:,} units "
                            f"({o.min_units * o.machine.award_unit:,} GPU-h) on machine '{o.machine.id}' "
                            "fits with every rule holding and every other award unchanged",
                        )
                    )
                    break
            continue
        if item.fraction >= 1 or len(item.parts) != len(item.positive):
            continue
        if not proven.get((p.id, "raise"), True):
            continue
        extra = _one_more_unit(facts, tally, item)
        if extra is not None:
            out.append(
                Violation(
                    "rank_hours",
                    p.id,
                    f"{where} has {_pct(item.fraction)} of its request, yet one more unit "
                    f"({extra.machine.award_unit:,} GPU-h) on machine '{extra.machine.id}' fits with every "
                    "rule holding and every other award unchanged",
                )
            )
    return out


def _one_more_unit(facts: Facts, tally: Tally, item: Listed) -> Option | None:
    """An option on which the funded proposal could take one more unit within its own rules and
    every round-wide rule, or None. Pinned awards are left as pinned."""
    p = item.proposal
    pin = facts.pins.get(p.id)
    fixed = pin.machine if pin is not None and pin.gpu_hours is not None else None
    used = {a.machine.id: a.units for a, _ in item.parts}
    candidates = [
        o
        for o in _sorted_options(facts, p)
        if o.machine.id in used and o.machine.id != fixed and used[o.machine.id] + 1 <= o.max_units
    ]
    if len(used) < p.max_machines and (pin is None or pin.machine is None):
        candidates += [o for o in _sorted_options(facts, p) if o.machine.id not in used and o.max_units >= 1]
    for o in candidates:
        if item.fraction + o.f <= 1 and tally.room(facts, p, o.machine, 1, newly=False):
            return o
    return None


# --- helpers -------------------------------------------------------------------------------------


def _listed(facts: Facts, solution: Solution) -> list[Listed]:
    """The solution's decisions on proposals of the round, with awards on machines of the round."""
    proposals = {p.id: p for p in facts.rnd.proposals}
    out: list[Listed] = []
    for r in solution.proposals:
        p = proposals.get(r.id)
        if p is None:
            continue
        options = facts.options[p.id]
        awards = tuple(
            Award(p, facts.machines[alloc.machine], alloc.gpu_hours, options.get(alloc.machine))
            for alloc in r.allocations
            if alloc.machine in facts.machines
        )
        out.append(Listed(r, p, awards, complete=len(awards) == len(r.allocations)))
    return out


def _sorted_options(facts: Facts, p: Proposal) -> list[Option]:
    """The proposal's options in machine id order."""
    return [o for _, o in sorted(facts.options[p.id].items())]


def _machine_hours(rnd: Round, listed: list[Listed], *, commercial_only: bool) -> defaultdict[str, int]:
    """GPU-hours awarded per machine; only to commercial proposals when asked."""
    used: defaultdict[str, int] = defaultdict(int)
    for item in listed:
        if commercial_only and not is_commercial(rnd, item.proposal):
            continue
        for a in item.awards:
            used[a.machine.id] += a.gpu_hours
    return used


def _group_reference(rnd: Round, listed: list[Listed]) -> defaultdict[str | None, Fraction]:
    """Reference GPU-hours awarded per share group (None: no group), e u per unit."""
    got: defaultdict[str | None, Fraction] = defaultdict(Fraction)
    for item in listed:
        group = share_group(rnd, item.proposal)
        for a in item.awards:
            got[group] += a.reference
    return got


def _awarded(listed: list[Listed]) -> Fraction:
    """Reference GPU-hours awarded in all."""
    return sum((a.reference for item in listed for a in item.awards), Fraction(0))


def _expected_decision(facts: Facts, item: Listed) -> tuple[Decision, str] | None:
    """The decision the round's rules and the awards imply, and why in words (None: no award is
    on a machine the proposal may use, which other rules report, or the proposal has no award and
    the split search did not settle whether one exists)."""
    p = item.proposal
    why = facts.ineligible[p.id]
    if why:
        return Decision.NOT_ELIGIBLE, "; ".join(why)
    if not item.positive:
        if p.id in facts.unsettled:
            return None  # 'not_funded' or 'not_eligible': the split search did not settle which
        return Decision.NOT_FUNDED, "it is eligible and has no award"
    if not item.parts:
        return None
    least = min(o.f for _, o in item.parts)
    shown = f"{_parts_words(item)} cover {_pct(item.fraction)} of its request"
    if item.fraction + least > 1:
        return Decision.FUNDED, f"{shown}, and one more unit on a machine it uses would pass it"
    return (
        Decision.REDUCED,
        f"{shown}, and one more unit ({_pct(least)}) on a machine it uses would still fit",
    )


def _hours(awards: tuple[Award, ...]) -> int:
    """The GPU-hours of these awards together."""
    return sum(a.gpu_hours for a in awards)


def _commitment(p: Proposal) -> str:
    """The publication commitment in a few words."""
    pub = p.publication
    if pub.commitment == "embargo":
        return f"embargo of {pub.embargo_months} months"
    return pub.commitment


def _machine_choice(p: Proposal, m: Machine) -> tuple[int, int] | None:
    """The (request, minimum) GPU-hours of the proposal's machine option on m, if it lists one."""
    for choice in p.request.machine_options or []:
        if choice.machine == m.id:
            return choice.gpu_hours, choice.minimum_gpu_hours
    return None


def _minimum_words(p: Proposal, m: Machine) -> str:
    """The proposal's minimum, as its request states it for machine m."""
    choice = _machine_choice(p, m)
    if choice is not None:
        return f"minimum {choice[1]:,} GPU-h on this machine"
    return f"minimum {p.request.minimum_reference_gpu_hours or 0:,} reference GPU-h"


def _request_words(p: Proposal, m: Machine) -> str:
    """The proposal's request, as its request states it for machine m."""
    choice = _machine_choice(p, m)
    if choice is not None:
        return f"request {choice[0]:,} GPU-h on this machine"
    return f"request {p.request.reference_gpu_hours or 0:,} reference GPU-h"


def _parts_words(item: Listed) -> str:
    """The awards on the proposal's options in words, e.g. "2 units on 'm1' and 1 unit on 'm2'"."""
    words = [f"{_n(a.units)} unit{'' if a.units == 1 else 's'} on '{a.machine.id}'" for a, _ in item.parts]
    return " and ".join(words)


def _ids(ids: list[str], limit: int = 8) -> str:
    """A list of ids, shortened after ``limit`` of them."""
    shown = ", ".join(repr(i) for i in ids[:limit])
    more = f", ... ({len(ids) - limit:,} more)" if len(ids) > limit else ""
    return f"[{shown}{more}]"


def _pct(x: Fraction) -> str:
    """A fraction as a percentage, e.g. '62.5%'."""
    return f"{_n(x * 100)}%"


def _close(found: float | int, want: Fraction) -> bool:
    """True when a reported float is within the relative tolerance of the exact value."""
    return abs(Fraction(found) - want) <= TOLERANCE * max(Fraction(1), abs(want))


def _n(x: Fraction | float | int) -> str:
    """A number with thousands separators and at most 6 decimals, e.g. '12,345.5'."""
    q = exact(x) if isinstance(x, float | int) else x
    if q.denominator == 1:
        return f"{q.numerator:,}"
    return f"{float(q):,.6f}".rstrip("0").rstrip(".")
