"""An independent brute-force optimiser for tiny rounds, to cross-check the CP-SAT model.

It shares no code with ``allocopt.terms``, ``allocopt.model``, ``allocopt.rank``
or ``allocopt.outcome``: every rule and every conversion is re-derived here from
the README ("What best means" and "The full policy language"), with exact
fractions, in the plainest form we could write. It lists, for each proposal,
"no award" or every award its own rules allow (one machine, or up to
``max_machines`` of its options), tries every combination that fits the
machines, and keeps the ones that satisfy all the round-wide rules.

The rules, as documented:

- a proposal is eligible when its score is not below the threshold, and, under
  ``commercial: exclude``, when its publication commitment qualifies for free
  access ('open' always, an embargo up to ``max_embargo_months``, never
  'confidential' or any embargo when the limit is null);
- it can run on a machine whose stack and CPU architecture it lists and whose
  per-GPU memory is at least its minimum;
- each (proposal, machine) *option* with exchange rate e and award unit u has,
  for a total request R (minimum r) and speed factor s = efficiency[stack]:
  request units floor(R / (e s u)), minimum units max(1, ceil(r / (e s u))),
  f = e s u / R, g = e s u / r, d = e s u, preference 1; for a machine option
  H (minimum h): floor(H / u), max(1, ceil(h / u)), f = u / H, g = u / h,
  d = e u and its preference. Units are capped by the machine's per-proposal
  caps (GPU-hours, and a fraction of the machine's round GPU-hours);
- with ``max_machines`` = 1 a proposal gets one option with between its minimum
  and its request units; with k > 1 up to k options, each with between 1 and its
  request units, with sum(g x units) >= 1 and sum(f x units) <= 1. Its fraction
  of the request is sum(f x units);
- per machine, the awards' GPU-hours fit in its round GPU-hours, and the
  commercial proposals' GPU-hours fit in commercial_cap x round GPU-hours;
- per share group, the members' reference GPU-hours (e u per unit, whatever the
  efficiency) lie between min_share and max_share of the basis: the round's
  capacity in reference GPU-hours, or (share_basis 'awarded') the reference
  GPU-hours awarded in all. A soft group may leave its bounds: the shortfall and
  the excess, each in whole reference GPU-hours rounded up, cost
  round_half_up(S x penalty) points per hour;
- pins: 'exclude' forbids an award; 'fund' forces one (only on ``machine``, and
  of exactly ``gpu_hours`` there, when given). A fund pin on a proposal that can
  have no award at all, on a machine it cannot use, or of an amount it cannot
  get is an error (``PinError``); one that cannot fit makes the round infeasible;
- at most one proposal of each exclusive group, and at most
  ``max_awards_per_organisation`` per applicant name, are funded;
- one unit of an option is worth round_half_up(S x w x p x f) points with
  S = 10**8 (value 'fraction') or round_half_up(S x w x p x d) with S = 10**3
  (value 'hours'), S times ten while some unit a proposal with merit could use is
  worth fewer than 2,000 points (at most six times; ``scale_of``),
  w = ((score - scale.min) / (scale.max - scale.min)) ** exponent;
  the merit objective is the sum over units minus the soft penalties.

The rank objective (``brute_force_rank``) is computed straight from its three
steps: the order, the walk deciding who is funded (every share bound hard), and
the lexicographically largest fractions of the request for that funded set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations, product

from allocopt.round import Machine, Proposal, Round

SCALE = {"fraction": 10**8, "hours": 10**3}


class PinError(Exception):
    """A fund pin the round's own rules can never honour: bad input, not infeasibility."""


def dec(value: float | int) -> Fraction:
    """A number from the round file as the exact decimal it was written as."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


@dataclass(frozen=True)
class Option:
    """One (proposal, machine) pair the proposal can use, with its exact derived numbers."""

    machine_id: str
    award_unit: int
    min_units: int
    max_units: int  # request units, capped by the machine's per-proposal cap
    f: Fraction  # fraction of the request per unit
    g: Fraction  # fraction of the minimum per unit
    share_ref: Fraction  # reference GPU-h per unit for capacity and shares: e u
    coef: int  # scaled merit of one unit


@dataclass(frozen=True)
class Award:
    """One possible award: a proposal and whole award units on one or more machines."""

    proposal_id: str
    parts: tuple[tuple[str, int], ...]  # (machine id, GPU-hours), sorted by machine id
    reference_hours: Fraction  # e u units summed: what capacity and shares count
    fraction: Fraction  # sum(f x units)
    points: int  # scaled merit of the whole award
    commercial: bool
    group_id: str | None
    organisation: str

    @property
    def machine_id(self) -> str:
        return self.parts[0][0]

    @property
    def gpu_hours(self) -> int:
        return sum(h for _, h in self.parts)


def is_commercial(rnd: Round, p: Proposal) -> bool:
    """The commitment does not qualify for free access."""
    commitment = p.publication.commitment
    if commitment == "open":
        return False
    if commitment == "confidential":
        return True
    limit = rnd.policy.free_access.max_embargo_months
    if limit is None:
        return True
    assert p.publication.embargo_months is not None
    return p.publication.embargo_months > limit


def group_of(rnd: Round, p: Proposal) -> str | None:
    for g in rnd.policy.share_groups:
        if p.applicant.kind in g.kinds:
            return g.id
    return None


def is_eligible(rnd: Round, p: Proposal) -> bool:
    if dec(p.score) < dec(rnd.policy.score_threshold):
        return False
    return not (rnd.policy.commercial == "exclude" and is_commercial(rnd, p))


def runs_on(m: Machine, p: Proposal) -> bool:
    req = p.requirements
    return (
        m.stack in req.stacks
        and m.cpu_arch in req.cpu_archs
        and dec(m.gpu_memory_gb) >= dec(req.min_gpu_memory_gb)
    )


def cap_units(m: Machine) -> int | None:
    """The most whole units one proposal may get on m under its per-proposal caps (None: no cap)."""
    caps = []
    if m.max_award_gpu_hours is not None:
        caps.append(m.max_award_gpu_hours // m.award_unit)
    if m.max_award_fraction is not None:
        caps.append(math.floor(dec(m.max_award_fraction) * m.gpu_hours / m.award_unit))
    return min(caps) if caps else None


def merit_weight(rnd: Round, p: Proposal) -> Fraction:
    lo, hi = dec(rnd.score_scale.min), dec(rnd.score_scale.max)
    return ((dec(p.score) - lo) / (hi - lo)) ** rnd.policy.merit.exponent


def scale_of(rnd: Round) -> int:
    """S: the base scale, times ten (at most six times) while a unit on a machine that an
    admitted proposal (threshold, publication) with merit weight can use is worth fewer than
    2,000 points, unless the admitted whole requests would then pass 2^52 points."""
    value = rnd.policy.merit.value
    least, most = [], Fraction(0)
    for p in rnd.proposals:
        raw = _machines_of(rnd, p)
        if not is_eligible(rnd, p) or merit_weight(rnd, p) <= 0 or not raw:
            continue
        worths = [
            (SCALE[value] * merit_weight(rnd, p) * pref * (f if value == "fraction" else d), units)
            for _, units, _, f, _, d, pref in raw
        ]
        least.append(min(w for w, _ in worths))
        most += max(w * units for w, units in worths)
    steps = 0
    while least and steps < 6 and min(least) * 10**steps < 2000 and most * 10 ** (steps + 1) <= 2**52:
        steps += 1
    return SCALE[value] * 10**steps


def options_for(rnd: Round, p: Proposal) -> list[Option]:
    """The proposal's options on the machines it can use (empty when it is not eligible)."""
    if not is_eligible(rnd, p):
        return []
    value = rnd.policy.merit.value
    weight = merit_weight(rnd, p)
    scale = scale_of(rnd)
    out = []
    for m, request_units, min_units, f, g, d, pref in _machines_of(rnd, p):
        cap = cap_units(m)
        max_units = request_units if cap is None else min(request_units, cap)
        worth = f if value == "fraction" else d
        coef = round_half_up(scale * weight * pref * worth)
        out.append(
            Option(m.id, m.award_unit, min_units, max_units, f, g, dec(m.exchange_rate) * m.award_unit, coef)
        )
    return out


def _machines_of(
    rnd: Round, p: Proposal
) -> list[tuple[Machine, int, int, Fraction, Fraction, Fraction, Fraction]]:
    """For each machine the proposal can use: request units, minimum units, f, g, d, preference."""
    machines = {m.id: m for m in rnd.machines}
    raw: list[tuple[Machine, int, int, Fraction, Fraction, Fraction, Fraction]] = []
    if p.request.machine_options is None:
        big_r = p.request.reference_gpu_hours
        small_r = p.request.minimum_reference_gpu_hours
        assert big_r is not None and small_r is not None
        for m in rnd.machines:
            if not runs_on(m, p):
                continue
            speed = dec(p.efficiency.get(m.stack, 1.0))
            per_unit = dec(m.exchange_rate) * speed * m.award_unit
            request_units = math.floor(big_r / per_unit)
            min_units = max(1, math.ceil(small_r / per_unit))
            raw.append(
                (m, request_units, min_units, per_unit / big_r, per_unit / small_r, per_unit, Fraction(1))
            )
    else:
        for o in p.request.machine_options:
            m = machines[o.machine]
            if not runs_on(m, p):
                continue  # the README forbids such an option; it could never be used anyway
            u = m.award_unit
            raw.append(
                (
                    m,
                    o.gpu_hours // u,
                    max(1, math.ceil(Fraction(o.minimum_gpu_hours, u))),
                    Fraction(u, o.gpu_hours),
                    Fraction(u, o.minimum_gpu_hours),
                    dec(m.exchange_rate) * u,
                    dec(o.preference),
                )
            )
    return raw


def awards_for(rnd: Round, p: Proposal, fit: bool = True) -> list[Award]:
    """Every award the proposal's own rules allow, ignoring pins (empty when it is not eligible).

    With ``fit``, awards larger than a machine's round hours are left out (they can never
    fit: a pure shortcut); without it, the list says what the proposal could ever get.
    """
    options = options_for(rnd, p)
    hours_of = {m.id: m.gpu_hours for m in rnd.machines}
    commercial, group, organisation = is_commercial(rnd, p), group_of(rnd, p), p.applicant.name

    def highest(o: Option) -> int:
        return min(o.max_units, hours_of[o.machine_id] // o.award_unit) if fit else o.max_units

    def award(chosen: tuple[Option, ...], units: tuple[int, ...]) -> Award:
        parts = tuple(sorted((o.machine_id, k * o.award_unit) for o, k in zip(chosen, units, strict=True)))
        return Award(
            p.id,
            parts,
            sum((k * o.share_ref for o, k in zip(chosen, units, strict=True)), Fraction(0)),
            sum((k * o.f for o, k in zip(chosen, units, strict=True)), Fraction(0)),
            sum(k * o.coef for o, k in zip(chosen, units, strict=True)),
            commercial,
            group,
            organisation,
        )

    out: list[Award] = []
    if p.max_machines == 1:
        for o in options:
            for k in range(o.min_units, highest(o) + 1):
                out.append(award((o,), (k,)))
        return out
    for size in range(1, min(p.max_machines, len(options)) + 1):
        for chosen in combinations(options, size):
            for units in product(*(range(1, highest(o) + 1) for o in chosen)):
                g_sum = sum((k * o.g for o, k in zip(chosen, units, strict=True)), Fraction(0))
                f_sum = sum((k * o.f for o, k in zip(chosen, units, strict=True)), Fraction(0))
                if g_sum >= 1 and f_sum <= 1:
                    out.append(award(chosen, units))
    return out


def capacity_ref(rnd: Round) -> Fraction:
    return sum((m.gpu_hours * dec(m.exchange_rate) for m in rnd.machines), Fraction(0))


def pinned_choices(rnd: Round) -> tuple[list[list[Award]], set[str]]:
    """Per proposal (in round order), the awards its pin allows, and the ids pinned 'fund'.

    Raises ``PinError`` for a fund pin no award of the proposal could ever honour.
    """
    pins = {pin.proposal: pin for pin in rnd.policy.pins}
    choices: list[list[Award]] = []
    must_fund: set[str] = set()
    for p in rnd.proposals:
        awards = awards_for(rnd, p)
        pin = pins.get(p.id)
        if pin is not None and pin.action == "exclude":
            awards = []
        elif pin is not None:
            ever = awards_for(rnd, p, fit=False)
            if not ever:
                raise PinError(f"{p.id}: fund pin on a proposal that can get no award (not eligible)")
            if pin.machine is not None:
                ever = [a for a in ever if [m for m, _ in a.parts] == [pin.machine]]
                awards = [a for a in awards if [m for m, _ in a.parts] == [pin.machine]]
                if not ever:
                    raise PinError(f"{p.id}: fund pin on machine {pin.machine}, which it cannot use")
            if pin.gpu_hours is not None:
                ever = [a for a in ever if a.gpu_hours == pin.gpu_hours]
                awards = [a for a in awards if a.gpu_hours == pin.gpu_hours]
                if not ever:
                    raise PinError(f"{p.id}: fund pin of {pin.gpu_hours} GPU-h, not an award it can get")
            must_fund.add(p.id)
        choices.append(awards)
    return choices, must_fund


def complete_plans(rnd: Round) -> Iterator[list[Award]]:
    """Every plan (at most one award per proposal) that satisfies every rule except the shares.

    Capacity, commercial caps, pins, exclusive groups and organisation caps are checked here;
    the shares are left to the caller (they are hard or soft, depending on the objective).
    """
    choices, must_fund = pinned_choices(rnd)
    ids = [p.id for p in rnd.proposals]
    hours = {m.id: m.gpu_hours for m in rnd.machines}
    commercial_cap = {m.id: dec(m.commercial_cap) * m.gpu_hours for m in rnd.machines}
    exclusive_of: dict[str, list[int]] = {pid: [] for pid in ids}
    for i, group in enumerate(rnd.policy.exclusive):
        for pid in group.proposals:
            exclusive_of[pid].append(i)
    org_limit = rnd.policy.max_awards_per_organisation
    used = dict.fromkeys(hours, 0)
    used_commercial = dict.fromkeys(hours, 0)
    exclusive_count = [0] * len(rnd.policy.exclusive)
    org_count: dict[str, int] = {}
    plan: list[Award] = []

    def fits(a: Award) -> bool:
        for m, h in a.parts:
            if used[m] + h > hours[m]:
                return False
            if a.commercial and used_commercial[m] + h > commercial_cap[m]:
                return False
        if any(exclusive_count[i] >= 1 for i in exclusive_of[a.proposal_id]):
            return False
        return org_limit is None or org_count.get(a.organisation, 0) < org_limit

    def take(a: Award, sign: int) -> None:
        for m, h in a.parts:
            used[m] += sign * h
            if a.commercial:
                used_commercial[m] += sign * h
        for i in exclusive_of[a.proposal_id]:
            exclusive_count[i] += sign
        org_count[a.organisation] = org_count.get(a.organisation, 0) + sign

    def extend(i: int) -> Iterator[list[Award]]:
        if i == len(choices):
            yield list(plan)
            return
        if ids[i] not in must_fund:
            yield from extend(i + 1)  # no award for proposal i
        for a in choices[i]:
            if fits(a):
                take(a, 1)
                plan.append(a)
                yield from extend(i + 1)
                plan.pop()
                take(a, -1)

    return extend(0)


@dataclass(frozen=True)
class ShareCheck:
    """How a plan stands against the share groups."""

    hard_ok: bool  # every hard group within its bounds
    all_ok: bool  # every group, soft ones too, within its bounds
    penalty: int  # scaled penalty of the soft groups' shortfall and excess


def check_shares(rnd: Round, plan: list[Award]) -> ShareCheck:
    if rnd.policy.share_basis == "capacity":
        basis = capacity_ref(rnd)
    else:
        basis = sum((a.reference_hours for a in plan), Fraction(0))
    scale = scale_of(rnd)
    hard_ok, all_ok, penalty = True, True, 0
    for g in rnd.policy.share_groups:
        held = sum((a.reference_hours for a in plan if a.group_id == g.id), Fraction(0))
        low, high = dec(g.min_share) * basis, dec(g.max_share) * basis
        inside = low <= held <= high
        all_ok = all_ok and inside
        if not g.soft:
            hard_ok = hard_ok and inside
            continue
        assert g.penalty is not None
        shortfall = math.ceil(low - held) if held < low else 0
        excess = math.ceil(held - high) if held > high else 0
        penalty += round_half_up(scale * dec(g.penalty)) * (shortfall + excess)
    return ShareCheck(hard_ok, all_ok, penalty)


def best_plan(rnd: Round) -> tuple[int, list[Award]] | None:
    """The best merit objective (scaled: merit minus soft penalties) and one plan reaching it,
    or None when no plan satisfies every rule."""
    best: tuple[int, list[Award]] | None = None
    for plan in complete_plans(rnd):
        shares = check_shares(rnd, plan)
        if not shares.hard_ok:
            continue
        points = sum(a.points for a in plan) - shares.penalty
        if best is None or points > best[0]:
            best = (points, plan)
    return best


def brute_force(rnd: Round) -> int | None:
    """The best scaled merit objective, or None when the round is infeasible."""
    best = best_plan(rnd)
    return None if best is None else best[0]


# --- the rank objective -----------------------------------------------------------------------


def rank_key(p: Proposal) -> tuple[bool, int, Fraction, str]:
    """committee_rank ascending (none last), then score descending, then id."""
    return (p.committee_rank is None, p.committee_rank or 0, -dec(p.score), p.id)


def rank_order(rnd: Round) -> list[str]:
    """Every proposal that could ever get an award, best first."""
    able = [p for p in rnd.proposals if awards_for(rnd, p, fit=False)]
    return [p.id for p in sorted(able, key=rank_key)]


@dataclass(frozen=True)
class RankResult:
    order: list[str]
    funded: frozenset[str]
    fractions: dict[str, Fraction]  # every proposal of the order; 0 when not funded


def brute_force_rank(rnd: Round) -> RankResult | None:
    """The rank objective from its definition, or None when no plan satisfies every rule
    (shares all hard, fund pins honoured)."""
    order = rank_order(rnd)
    position = {pid: i for i, pid in enumerate(order)}
    # For every funded set some complete plan reaches, the lexicographically largest
    # fractions (in rank order) that plans with exactly that funded set reach.
    best_fractions: dict[frozenset[str], tuple[Fraction, ...]] = {}
    for plan in complete_plans(rnd):
        if not check_shares(rnd, plan).all_ok:
            continue
        funded = frozenset(a.proposal_id for a in plan)
        fractions = [Fraction(0)] * len(order)
        for a in plan:
            fractions[position[a.proposal_id]] = a.fraction
        candidate = tuple(fractions)
        if funded not in best_fractions or candidate > best_fractions[funded]:
            best_fractions[funded] = candidate
    if not best_fractions:
        return None
    funded_now = {pin.proposal for pin in rnd.policy.pins if pin.action == "fund"}
    rejected: set[str] = set()
    for pid in order:
        if pid in funded_now:
            continue
        wanted = funded_now | {pid}
        if any(wanted <= s and not (s & rejected) for s in best_fractions):
            funded_now.add(pid)
        else:
            rejected.add(pid)
    final = frozenset(funded_now)
    assert final in best_fractions, "the walk's last witness funds exactly the funded set"
    return RankResult(order, final, dict(zip(order, best_fractions[final], strict=True)))
