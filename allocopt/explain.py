"""Explain a solution's decisions in committee words: reasons, rank inversions, reserve lists,
counterfactuals, and a letter for one applicant.

Everything is read from the solution file (each embeds its canonical round). The
numbers are recomputed here from the solution's proposal results and from the
round's exact terms:

- *merit per hour* is scaled merit per reference GPU-hour, shown in merit points per
  1,000,000 reference GPU-h: a funded proposal's ``objective_contribution / scale /
  reference_gpu_hours``; a proposal without hours on a machine, ``coef / (e u)`` of one
  award unit on that machine (the value of its next unit there);
- a *rank inversion* is a pair in which a lower-ranked proposal got hours while a
  better-ranked eligible one got a smaller fraction of its request (or none), exactly as
  ``allocopt.compare.rank_inversions`` counts them;
- *counterfactuals* re-solve the round with only one proposal changed, with the options
  recorded in the solution.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import cached_property, partial
from typing import Any

from allocopt.compare import rank_inversions
from allocopt.errors import AllocoptError
from allocopt.files import validate_round
from allocopt.options import SolveOptions
from allocopt.parallel import run_all
from allocopt.round import Round
from allocopt.solution import Decision, ProposalResult, Solution
from allocopt.solve import solve_or_stop
from allocopt.terms import Assessment, Option, Terms, cap_units, derive, exact, hardware_mismatch
from allocopt.words import pct

PER = 1_000_000  # merit per hour is shown per this many reference GPU-hours
LISTED_INVERSIONS = 50
CAUSE_TALLY_LIMIT = 100_000  # pairs whose causes are tallied; beyond it only the count

CAUSE_WORDS = {
    "pin": "a committee pin",
    "exclusive": "exclusivity",
    "compatibility": "compatibility",
    "commercial_cap": "publication / commercial cap",
    "share_bound": "share bound",
    "award_cap": "per-proposal cap",
    "whole_units": "whole award units",
    "size": "size vs remaining capacity",
    "merit_per_hour": "merit per hour",
    "organisation_cap": "organisation cap",
    "combined_rules": "the rules together",
}


@dataclass(frozen=True)
class Reason:
    """One reason a proposal is not funded in full, in words with its numbers."""

    code: str
    text: str


@dataclass(frozen=True)
class Winner:
    """A proposal that got hours on a machine another could use, and its merit per hour."""

    proposal: str
    machine: str
    merit_per_hour: float


@dataclass(frozen=True)
class ProposalExplanation:
    """Why one proposal is not funded in full."""

    proposal: str
    decision: str
    rank_position: int
    score: float
    fraction_of_request: float
    merit_per_hour: float | None
    reasons: list[Reason]
    outcompeted_by: list[Winner] = field(default_factory=list)


@dataclass(frozen=True)
class Inversion:
    """A better-ranked proposal got a smaller fraction than a lower-ranked one, and why."""

    better: str
    better_position: int
    better_fraction: float
    lower: str
    lower_position: int
    lower_fraction: float
    cause: str
    text: str


@dataclass(frozen=True)
class ReserveEntry:
    """An unfunded proposal on a machine's reserve list."""

    proposal: str
    rank_position: int
    merit_per_hour: float
    minimum_gpu_hours: int
    hours_needed: int  # GPU-hours of this machine that would have to come back (at least 0)
    commercial: bool


@dataclass(frozen=True)
class Reserve:
    """One machine's reserve list: who would be funded first if hours came back."""

    machine: str
    name: str
    gpu_hours_left: int
    commercial_gpu_hours_left: int
    order: str  # 'rank' or 'merit per hour'
    entries: list[ReserveEntry]


@dataclass
class Explanation:
    """Everything `allocopt explain` says about a solution."""

    round_id: str
    objective: str
    status: str
    proposals: list[ProposalExplanation]
    inversion_count: int
    inversions: list[Inversion]  # the first ones (see LISTED_INVERSIONS), better-ranked first
    inversion_causes: dict[str, int]  # tallied over the first CAUSE_TALLY_LIMIT pairs
    causes_counted_over: int
    reserves: list[Reserve]
    counterfactuals: list[Counterfactual] = field(default_factory=list)
    lottery: str = ""  # the lottery at the line in words (lottery_words), when there was one


@dataclass(frozen=True)
class Displaced:
    """A proposal that loses hours in a counterfactual re-solve."""

    proposal: str
    before_reference_gpu_hours: float
    after_reference_gpu_hours: float


@dataclass
class Counterfactual:
    """What would have changed the decision on one proposal, found by re-solving."""

    proposal: str
    largest_request: int | None  # reference GPU-h (a total request), or None when none is funded
    largest_minimum: int | None
    largest_request_text: str
    scale: tuple[int, int]  # n of N: the request scaled by n / N
    displaced_by_request: list[Displaced]
    score_needed: float | None
    displaced_by_score: list[Displaced]
    probes: int
    note: str = ""


# -- the analysis ---------------------------------------------------------------------


class _Context:
    """The solution with its round's terms and what is used and left on each machine."""

    def __init__(self, solution: Solution) -> None:
        self.solution = solution
        self.terms: Terms = derive(solution.input)
        self.scale = solution.objective.scale
        self.results = {r.id: r for r in solution.proposals}
        self.machines = {m.id: m for m in solution.metrics.machines}
        self.groups = {g.id: g for g in solution.metrics.groups}
        self.options: dict[str, dict[str, Option]] = {
            pid: {o.machine_id: o for o in a.options} for pid, a in self.terms.assessments.items()
        }

    def name(self, machine_id: str) -> str:
        return self.machines[machine_id].name

    def left(self, machine_id: str) -> int:
        return self.machines[machine_id].idle_gpu_hours

    def commercial_left(self, machine_id: str) -> int:
        m = self.machines[machine_id]
        return max(0, m.commercial_cap_gpu_hours - m.commercial_gpu_hours)

    def option_mph(self, o: Option) -> float:
        """Merit per 1,000 reference GPU-h of one more award unit on this option."""
        return float(Fraction(o.coef, self.scale) / o.ref_per_unit * PER)

    def mph(self, r: ProposalResult) -> float | None:
        """A proposal's merit per 1,000 reference GPU-h: of its award, or of its best option."""
        if r.reference_gpu_hours > 0:
            return r.objective_contribution / self.scale / r.reference_gpu_hours * PER
        options = self.options.get(r.id, {})
        return max((self.option_mph(o) for o in options.values()), default=None)

    def machine_hours(self, r: ProposalResult) -> dict[str, int]:
        return {a.machine: a.gpu_hours for a in r.allocations}

    @cached_property
    def awarded_on(self) -> dict[str, list[tuple[float, str]]]:
        """Per machine, (merit per hour, id) of every proposal with hours there, best first."""
        out: dict[str, list[tuple[float, str]]] = {m: [] for m in self.machines}
        for r in self.solution.proposals:
            value = self.mph(r) if r.allocations else None
            for a in r.allocations:
                if value is not None:
                    out[a.machine].append((value, r.id))
        for entries in out.values():
            entries.sort(key=lambda e: (-e[0], e[1]))
        return out


def explain(solution: Solution, *, listed: int | None = LISTED_INVERSIONS) -> Explanation:
    """Explain every decision of a solution (no re-solves; see `counterfactual`)."""
    ctx = _Context(solution)
    proposals = [
        _proposal(ctx, r)
        for r in sorted(solution.proposals, key=lambda r: r.rank_position)
        if r.decision != Decision.FUNDED
    ]
    count = rank_inversions(solution)
    inversions, causes, counted = _inversions(ctx, listed)
    return Explanation(
        round_id=solution.round_id,
        objective=solution.objective.kind,
        status=solution.solver.status,
        proposals=proposals,
        inversion_count=count,
        inversions=inversions,
        inversion_causes=causes,
        causes_counted_over=counted,
        reserves=reserve_lists(solution, ctx),
        lottery=lottery_words(solution) if solution.lottery is not None else "",
    )


def lottery_words(solution: Solution) -> str:
    """The lottery at the line in one sentence: who was in the grey zone and the drawn order."""
    lot = solution.lottery
    assert lot is not None
    drawn = ", ".join(lot.drawn[:10]) + (f" and {len(lot.drawn) - 10} more" if len(lot.drawn) > 10 else "")
    return (
        f"{len(lot.grey_zone)} proposal(s) funded in {lot.low:.0%}-{lot.high:.0%} of {lot.samples} "
        f"resampled rank solves took their places in the ranking by lot (seed {lot.seed}); drawn "
        f"order: {drawn or 'none'}; their ranks are marked *"
    )


def _proposal(ctx: _Context, r: ProposalResult) -> ProposalExplanation:
    reasons = [Reason(x.code, x.detail) for x in r.reasons]
    winners: list[Winner] = []
    if ctx.solution.objective.kind == "merit" and any(x.code == "capacity" for x in r.reasons):
        winners = outcompeted(ctx, r)
        if winners:
            reasons.append(Reason("outcompeted", _outcompeted_words(ctx, r, winners)))
    return ProposalExplanation(
        proposal=r.id,
        decision=r.decision.value,
        rank_position=r.rank_position,
        score=r.score,
        fraction_of_request=r.fraction_of_request,
        merit_per_hour=ctx.mph(r),
        reasons=reasons,
        outcompeted_by=winners,
    )


def outcompeted(ctx: _Context, r: ProposalResult) -> list[Winner]:
    """Proposals with hours on a machine r could use (or grow on) that bring more merit per hour
    than r's next unit there would; best first."""
    used = set(ctx.machine_hours(r))
    options = ctx.options.get(r.id, {})
    machines = [m for m in options if not used or m in used]
    found: dict[str, Winner] = {}
    for mid in machines:
        own = ctx.option_mph(options[mid])
        for theirs, other in ctx.awarded_on[mid]:
            if theirs <= own:
                break
            if other != r.id and other not in found:
                found[other] = Winner(other, mid, theirs)
    return sorted(found.values(), key=lambda w: (-w.merit_per_hour, w.proposal))


def _above_cap(terms: Terms, a: Assessment, machine_id: str) -> bool:
    """True when the proposal's minimum viable award on the machine is above the machine's
    limit on one award."""
    m = terms.round.machine(machine_id)
    cap = cap_units(m)
    if cap is None or a.split:  # a split award's minimum may come from several machines
        return False
    r = a.proposal.request
    if r.minimum_reference_gpu_hours is not None:
        minimum = Fraction(r.minimum_reference_gpu_hours) / exact(m.exchange_rate)
    else:
        minimum = Fraction(
            next(o.minimum_gpu_hours for o in r.machine_options or [] if o.machine == machine_id)
        )
    return minimum > cap * m.award_unit


def _outcompeted_words(ctx: _Context, r: ProposalResult, winners: list[Winner], named: int = 3) -> str:
    options = ctx.options.get(r.id, {})
    machines = sorted({w.machine for w in winners})
    own = max(ctx.option_mph(options[m]) for m in machines)
    shown = winners[:named]
    more = len(winners) - len(shown)
    who = _and([w.proposal for w in shown] + ([f"{more} more"] if more else []))
    numbers = _and([_num(w.merit_per_hour) for w in shown])
    bring = "bring" if len(winners) > 1 else "brings"
    return (
        f"outcompeted: the hours on {_and([ctx.name(m) for m in machines])} went to {who}, which {bring} "
        f"more merit per hour ({numbers}{' and less' if more else ''} vs {_num(own)} merit points per "
        f"{PER:,} reference GPU-h)"
    )


# -- rank inversions --------------------------------------------------------------------


def inversion_pairs(solution: Solution) -> list[tuple[ProposalResult, ProposalResult]]:
    """Every inversion pair (better-ranked, lower-ranked), better-ranked first; O(pairs + n log n)."""
    eligible = sorted(
        (r for r in solution.proposals if r.decision != Decision.NOT_ELIGIBLE), key=lambda r: r.rank_position
    )
    funded_below: list[ProposalResult] = []
    pairs = []
    for r in reversed(eligible):
        pairs += [(r, lo) for lo in funded_below if lo.fraction_of_request > r.fraction_of_request]
        if r.allocations:
            funded_below.append(r)
    pairs.sort(key=lambda p: (p[0].rank_position, p[1].rank_position))
    return pairs


def _inversions(ctx: _Context, listed: int | None) -> tuple[list[Inversion], dict[str, int], int]:
    """Inversions with their causes; those whose better-ranked proposal is funded in full (its
    fraction falls short only by whole award units) are listed after all others."""
    pairs = inversion_pairs(ctx.solution)[:CAUSE_TALLY_LIMIT]
    found = []
    for hi, lo in pairs:
        cause, text = inversion_cause(ctx, hi, lo)
        found.append(
            Inversion(
                hi.id,
                hi.rank_position,
                hi.fraction_of_request,
                lo.id,
                lo.rank_position,
                lo.fraction_of_request,
                cause,
                text,
            )
        )
    tally = Counter(i.cause for i in found)
    found.sort(key=lambda i: (i.cause == "whole_units", i.better_position, i.lower_position))
    return found if listed is None else found[:listed], dict(tally.most_common()), len(pairs)


def inversion_cause(ctx: _Context, hi: ProposalResult, lo: ProposalResult) -> tuple[str, str]:
    """The first rule that explains why `hi` (better-ranked) got a smaller fraction than `lo`."""
    terms = ctx.terms
    a_hi = terms.assessments[hi.id]
    a_lo = terms.assessments[lo.id]
    hi_hours, lo_hours = ctx.machine_hours(hi), ctx.machine_hours(lo)
    hi_options = ctx.options[hi.id]
    if hi.decision == Decision.FUNDED:
        units = _and([f"{hi_options[m].unit_hours:,} GPU-h on {ctx.name(m)}" for m in hi_hours])
        return "whole_units", (
            f"{hi.id} is funded in full: awards are whole units ({units}), and one more would pass its "
            "request"
        )
    if a_hi.pin is not None and (a_hi.pin.action == "exclude" or a_hi.pin.gpu_hours is not None):
        what = "not to be funded" if a_hi.pin.action == "exclude" else f"at {a_hi.pin.gpu_hours:,} GPU-h"
        return "pin", f"{hi.id} is pinned {what} by the committee ({a_hi.pin.reason})"
    if not hi.allocations:
        for group in terms.round.policy.exclusive:
            rivals = [p for p in group.proposals if p != hi.id and ctx.results[p].allocations]
            if hi.id in group.proposals and rivals:
                return "exclusive", f"{hi.id} is exclusive with {rivals[0]}, which is funded"
        cap = terms.round.policy.max_awards_per_organisation
        org = a_hi.organisation
        if cap is not None and org != a_lo.organisation:
            awards = sorted(
                pid
                for pid, a in terms.assessments.items()
                if a.organisation == org and ctx.results[pid].allocations
            )
            if len(awards) >= cap:
                return "organisation_cap", (
                    f"{hi.id}'s organisation {org} already has {len(awards)} funded proposal(s) "
                    f"({_and(awards)}), the most allowed per organisation ({cap})"
                )
    shared = [m for m in lo_hours if m in hi_options]
    if not shared:
        where = _and([ctx.name(m) for m in lo_hours])
        # A machine its code runs on, but whose limit on one award is below its minimum.
        listed = {o.machine for o in a_hi.proposal.request.machine_options or []} or None
        capped = [
            m
            for m in lo_hours
            if (listed is None or m in listed)
            and not hardware_mismatch(terms.round.machine(m), a_hi.proposal)
            and _above_cap(terms, a_hi, m)
        ]
        if capped:
            return "award_cap", (
                f"{lo.id}'s hours are on {_and([ctx.name(m) for m in capped])}, whose limit on one award "
                f"is below {hi.id}'s minimum viable award"
            )
        return "compatibility", f"{lo.id}'s hours are on {where}, which {hi.id} cannot use"
    # A pin funding the lower one explains the pair only where its hours could have gone to the
    # better one: after exclusivity, the organisation cap and compatibility.
    if a_lo.pin is not None and a_lo.pin.action == "fund":
        return "pin", f"{lo.id} is pinned to be funded by the committee ({a_lo.pin.reason})"
    if not hi.allocations:
        need = {m: hi_options[m].min_units * hi_options[m].unit_hours for m in shared}
    else:
        need = {m: hi_options[m].unit_hours for m in shared}
    if a_hi.commercial and not a_lo.commercial and all(ctx.commercial_left(m) < need[m] for m in shared):
        where = "; ".join(
            f"{ctx.name(m)} {ctx.machines[m].commercial_gpu_hours:,} of "
            f"{ctx.machines[m].commercial_cap_gpu_hours:,} GPU-h"
            for m in shared
        )
        return "commercial_cap", f"{hi.id} is commercial and the commercial share is full ({where})"
    if a_hi.group_id is not None and a_hi.group_id != a_lo.group_id:
        g = ctx.groups[a_hi.group_id]
        need_ref = min(need[m] * float(hi_options[m].ref_per_unit) / hi_options[m].unit_hours for m in shared)
        metrics = ctx.solution.metrics
        basis = (
            metrics.capacity_reference_gpu_hours
            if metrics.share_basis == "capacity"
            else metrics.awarded_reference_gpu_hours + need_ref
        )
        if g.excess_reference_gpu_hours > 0 or g.reference_gpu_hours + need_ref > g.max_share * basis + 1e-6:
            return "share_bound", (
                f"{hi.id}'s group {g.name} holds {g.reference_gpu_hours:,.0f} reference GPU-h; "
                f"{need_ref:,.0f} more would pass its {g.max_share:.0%} maximum share"
            )
    if hi.allocations and all(
        m in hi_hours
        and hi_hours[m] >= hi_options[m].max_units * hi_options[m].unit_hours
        and hi_options[m].capped
        for m in shared
    ):
        m = shared[0]
        return "award_cap", f"{ctx.name(m)} caps one award at {hi_hours[m]:,} GPU-h, which {hi.id} has"
    if ctx.solution.objective.kind == "merit":
        mine = max(ctx.option_mph(hi_options[m]) for m in shared)
        theirs = ctx.mph(lo)
        if theirs is not None and theirs > mine:
            return "merit_per_hour", (
                f"{lo.id} brings more merit per hour ({_num(theirs)} vs {_num(mine)} per {PER:,} "
                "reference GPU-h)"
            )
    if all(need[m] > lo_hours[m] + ctx.left(m) for m in shared):
        m = shared[0]
        what = "minimum award" if not hi.allocations else "next award unit"
        return "size", (
            f"{hi.id}'s {what} ({need[m]:,} GPU-h on {ctx.name(m)}) is more than {lo.id}'s award there "
            f"plus the hours left ({lo_hours[m]:,} + {ctx.left(m):,})"
        )
    lo_option = ctx.options[lo.id]
    lo_min_fraction = min(o.min_units * o.f for m, o in lo_option.items() if m in lo_hours)
    if (
        all(lo_hours[m] == lo_option[m].min_units * lo_option[m].unit_hours for m in lo_hours)
        and float(lo_min_fraction) > hi.fraction_of_request
        and len(lo_hours) == 1
    ):
        return "size", (
            f"{lo.id} has only its minimum award, already {float(lo_min_fraction):.0%} of its request "
            f"(more than {hi.id}'s {hi.fraction_of_request:.0%})"
        )
    if ctx.solution.objective.kind == "merit":
        return "combined_rules", (
            "minimum awards, whole award units and the other rules together leave no allocation of "
            f"more merit that gives {hi.id} more"
        )
    if hi.allocations:
        return "combined_rules", (
            f"when {hi.id}'s turn came to be raised, the better-ranked awards and the rules together left "
            f"no room for more on the machines it can use; {lo.id} was given what was left"
        )
    return "combined_rules", (
        f"when {hi.id}'s turn came, the better-ranked awards and the rules together left no room; "
        f"{lo.id} fitted in what was left"
    )


# -- reserve lists ------------------------------------------------------------------------


def reserve_lists(solution: Solution, ctx: _Context | None = None) -> list[Reserve]:
    """Per machine, the unfunded eligible proposals that could use it (not pinned out, no funded
    exclusive rival), in the order they would be
    funded if hours came back (rank order under rank, merit per hour under merit), each with the
    GPU-hours that would have to come back: its minimum there minus the hours left (at least 0)."""
    ctx = ctx or _Context(solution)
    by_rank = solution.objective.kind == "rank"
    lists = []
    for m in solution.metrics.machines:
        entries = []
        for r in solution.proposals:
            a = ctx.terms.assessments[r.id]
            o = ctx.options[r.id].get(m.id)
            if r.decision != Decision.NOT_FUNDED or o is None or (a.pin and a.pin.action == "exclude"):
                continue
            if any(
                r.id in g.proposals and any(ctx.results[x].allocations for x in g.proposals)
                for g in ctx.terms.round.policy.exclusive
            ):
                continue  # a proposal of its exclusive group is funded: hours coming back would not help
            minimum = o.min_units * o.unit_hours
            room = min(ctx.left(m.id), ctx.commercial_left(m.id)) if a.commercial else ctx.left(m.id)
            entries.append(
                ReserveEntry(
                    r.id, r.rank_position, ctx.option_mph(o), minimum, max(0, minimum - room), a.commercial
                )
            )
        entries.sort(key=lambda e: (e.rank_position,) if by_rank else (-e.merit_per_hour, e.rank_position))
        lists.append(
            Reserve(
                m.id,
                m.name,
                ctx.left(m.id),
                ctx.commercial_left(m.id),
                "rank" if by_rank else "merit per hour",
                entries,
            )
        )
    return lists


# -- counterfactuals ----------------------------------------------------------------------


def recorded_options(solution: Solution) -> SolveOptions:
    """The solve options the solution was made with (a --keep is not repeated)."""
    return SolveOptions.model_validate(solution.provenance.options)


def scaled_round(rnd: Round, proposal_id: str, n: int, total: int) -> Round:
    """The round with one proposal's request (and minimum) scaled by n / total, whole hours."""
    data = rnd.model_dump(mode="json")
    p = next(x for x in data["proposals"] if x["id"] == proposal_id)
    req = p["request"]

    def scale(request: int, minimum: int) -> tuple[int, int]:
        new = max(1, request * n // total)
        return new, max(1, min(new, math.ceil(minimum * n / total)))

    if req.get("machine_options"):
        for o in req["machine_options"]:
            o["gpu_hours"], o["minimum_gpu_hours"] = scale(o["gpu_hours"], o["minimum_gpu_hours"])
    else:
        req["reference_gpu_hours"], req["minimum_reference_gpu_hours"] = scale(
            req["reference_gpu_hours"], req["minimum_reference_gpu_hours"]
        )
    return validate_round(data, f"round with {proposal_id} scaled")


def rescored_round(rnd: Round, proposal_id: str, score: float) -> Round:
    data = rnd.model_dump(mode="json")
    next(x for x in data["proposals"] if x["id"] == proposal_id)["score"] = score
    return validate_round(data, f"round with {proposal_id} rescored")


def _funded(make: Callable[[], Round], proposal_id: str, options: SolveOptions) -> Solution | None:
    """The re-solve if it funds the proposal, else None (a changed round that is invalid, e.g. a
    pin that no longer holds, or infeasible funds nobody)."""
    try:
        s = solve_or_stop(make(), options)
    except AllocoptError:
        return None
    return s if s.result(proposal_id).allocations else None


def displaced(before: Solution, after: Solution, proposal_id: str) -> list[Displaced]:
    """Proposals with fewer reference GPU-hours in `after` than in `before`, biggest loss first."""
    out = []
    for r in before.proposals:
        now = after.result(r.id).reference_gpu_hours
        if r.id != proposal_id and now < r.reference_gpu_hours - 1e-9:
            out.append(Displaced(r.id, r.reference_gpu_hours, now))
    return sorted(out, key=lambda d: (d.after_reference_gpu_hours - d.before_reference_gpu_hours, d.proposal))


def score_grid(solution: Solution, score: float) -> list[float]:
    """Scores above `score` in steps of 0.1 on the round's scale, up to its maximum."""
    top = solution.input.score_scale.max
    grid = []
    k = math.floor(exact(score) * 10) + 1
    while Fraction(k, 10) < exact(top):
        grid.append(round(k / 10, 1))
        k += 1
    return [*grid, float(top)]


def counterfactual(solution: Solution, proposal_id: str, *, parallel: int = 1) -> Counterfactual:
    """The largest request and the lowest score that would have been funded, and whom each would
    displace: binary searches in which every probe is a full re-solve of the embedded round with
    only this proposal changed, under the recorded options. The searches assume that a smaller
    request or a higher score never makes funding harder. With ``parallel`` >= 2 the two
    searches run at once, in two processes."""
    r = solution.result(proposal_id)
    if r.decision != Decision.NOT_FUNDED:
        raise AllocoptError(
            f"{proposal_id} is {r.decision.value.replace('_', ' ')}: counterfactuals are for "
            "eligible proposals that were not funded"
        )
    if parallel >= 2:
        searches: list[Callable[[], Any]] = [
            partial(_request_search, solution, proposal_id),
            partial(_score_search, solution, proposal_id),
        ]
        (lo, total, best, request_probes), (needed_score, needed, score_probes) = run_all(searches, 2)
    else:
        lo, total, best, request_probes = _request_search(solution, proposal_id)
        needed_score, needed, score_probes = _score_search(solution, proposal_id)
    request: int | None = None
    minimum: int | None = None
    if best is not None:
        p = best.input.proposal(proposal_id)
        if p.request.reference_gpu_hours is not None:
            request, minimum = p.request.reference_gpu_hours, p.request.minimum_reference_gpu_hours
            words = f"{request:,} reference GPU-h (minimum {minimum:,})"
        else:
            name = {m.id: m.name for m in best.input.machines}
            words = "; ".join(
                f"{o.gpu_hours:,} GPU-h on {name[o.machine]} (minimum {o.minimum_gpu_hours:,})"
                for o in p.request.machine_options or []
            )
            request = math.ceil(best.result(proposal_id).requested_reference_gpu_hours)
    else:
        words = "no smaller request would have been funded"
    return Counterfactual(
        proposal=proposal_id,
        largest_request=request,
        largest_minimum=minimum,
        largest_request_text=words,
        scale=(lo, total),
        displaced_by_request=displaced(solution, best, proposal_id) if best else [],
        score_needed=needed_score,
        displaced_by_score=displaced(solution, needed, proposal_id) if needed else [],
        probes=request_probes + score_probes,
        note=_counterfactual_note(solution, r, best is None and needed is None),
    )


def _request_search(solution: Solution, proposal_id: str) -> tuple[int, int, Solution | None, int]:
    """The largest n in [1, total) award units whose scaled request is funded (0: none), the
    total, the solution that funds it, and the number of re-solves."""
    rnd, options = solution.input, recorded_options(solution)
    total = max(o.request_units for o in derive(rnd).assessments[proposal_id].options)
    lo, hi, best, probes = 0, total, None, 0  # lo is funded (0: nothing), hi is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        probes += 1
        found = _funded(partial(scaled_round, rnd, proposal_id, mid, total), proposal_id, options)
        if found is not None:
            lo, best = mid, found
        else:
            hi = mid
    return lo, total, best, probes


def _score_search(solution: Solution, proposal_id: str) -> tuple[float | None, Solution | None, int]:
    """The lowest score on the grid that is funded (None: none), its solution, and the number
    of re-solves."""
    rnd, options = solution.input, recorded_options(solution)
    grid = score_grid(solution, solution.result(proposal_id).score)
    lo_i, hi_i, needed, probes = -1, len(grid), None, 0  # grid[hi_i] funded (len: none known)
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        probes += 1
        found = _funded(partial(rescored_round, rnd, proposal_id, grid[mid]), proposal_id, options)
        if found is not None:
            hi_i, needed = mid, found
        else:
            lo_i = mid
    return (grid[hi_i] if needed is not None else None), needed, probes


def _counterfactual_note(solution: Solution, r: ProposalResult, nothing: bool) -> str:
    notes = []
    fixed = sorted({x.code for x in r.reasons} & {"exclusive", "organisation_cap", "pinned"})
    if nothing and fixed:
        notes.append(f"its {', '.join(fixed)} reason does not depend on its request or score")
    if solution.keep is not None:
        notes.append("the re-solves do not repeat --keep")
    return "; ".join(notes)


def counterfactuals(
    solution: Solution,
    proposal_ids: list[str],
    *,
    parallel: int = 2,
    on_done: Callable[[Counterfactual], None] | None = None,
) -> list[Counterfactual]:
    """Counterfactuals for several proposals, in parallel processes, in the order asked."""
    # One proposal: its two searches run in parallel; several: one process per proposal.
    inner = parallel if len(proposal_ids) <= 1 else 1
    calls = [partial(counterfactual, solution, pid, parallel=inner) for pid in proposal_ids]
    return run_all(calls, parallel if len(proposal_ids) > 1 else 1, on_done=on_done)


def rejected(solution: Solution) -> list[str]:
    """Eligible proposals without an award, not pinned out, best-ranked first."""
    pins = {p.proposal: p for p in solution.input.policy.pins}
    return [
        r.id
        for r in sorted(solution.proposals, key=lambda r: r.rank_position)
        if r.decision == Decision.NOT_FUNDED and not (r.id in pins and pins[r.id].action == "exclude")
    ]


# -- output --------------------------------------------------------------------------------


def to_json(ex: Explanation, proposal_id: str | None = None) -> str:
    """The explanation as JSON; with a proposal id, only what concerns that proposal (the counts
    and the tally of causes stay the round's)."""
    data = asdict(ex)
    if proposal_id is not None:
        data["proposals"] = [p for p in data["proposals"] if p["proposal"] == proposal_id]
        data["inversions"] = [i for i in asdict(ex)["inversions"] if proposal_id in (i["better"], i["lower"])]
        for res in data["reserves"]:
            res["entries"] = [e for e in res["entries"] if e["proposal"] == proposal_id]
    return json.dumps(data, indent=2) + "\n"


def render_text(ex: Explanation, proposal_id: str | None = None) -> str:
    """The explanation as text a committee member can read aloud."""
    lines = [
        f"Round {ex.round_id}: objective {ex.objective} ({ex.status}). Merit per hour is in merit points "
        f"per {PER:,} reference GPU-h: a funded proposal's objective contribution / scale / reference GPU-h "
        "awarded; otherwise the value of one award unit on the machine / its reference GPU-h.",
        *([f"Lottery: {ex.lottery.removesuffix('; their ranks are marked *')}."] if ex.lottery else []),
        "",
    ]
    chosen = [p for p in ex.proposals if proposal_id in (None, p.proposal)]
    if proposal_id is None:
        lines.append(f"Proposals not funded in full ({len(chosen)}):")
    for p in chosen:
        mph = f", merit per hour {_num(p.merit_per_hour)}" if p.merit_per_hour is not None else ""
        lines.append(
            f"  {p.proposal} (#{p.rank_position}, score {p.score:g}): {p.decision.replace('_', ' ')}, "
            f"{_pct(p.fraction_of_request)} of its request{mph}"
        )
        lines += [f"    - {x.text}" for x in p.reasons]
    if proposal_id is not None and not chosen:
        lines.append(f"  {proposal_id}: funded in full")
    inversions = [i for i in ex.inversions if proposal_id in (None, i.better, i.lower)]
    causes = ", ".join(f"{CAUSE_WORDS[c]} {n}" for c, n in ex.inversion_causes.items())
    lines += [
        "",
        f"Rank inversions: {ex.inversion_count} (a lower-ranked proposal got hours while a better-ranked "
        "one got a smaller fraction of its request)" + (f"; causes: {causes}" if causes else ""),
    ]
    if ex.causes_counted_over < ex.inversion_count:
        lines.append(f"  (causes counted over the first {ex.causes_counted_over:,})")
    if inversions:
        head = "involving " + proposal_id if proposal_id else f"the first {len(inversions)}"
        head += " (those of a proposal funded in full, short only by whole award units, last)"
        lines.append(f"  {head}:")
        lines += [
            f"  {i.better} (#{i.better_position}, {_pct(i.better_fraction)}) below {i.lower} "
            f"(#{i.lower_position}, {_pct(i.lower_fraction)}): {CAUSE_WORDS[i.cause]}: {i.text}"
            for i in inversions
        ]
    lines += ["", "Reserve lists (who would be funded first if hours came back):"]
    for res in ex.reserves:
        entries = [e for e in res.entries if proposal_id in (None, e.proposal)]
        lines.append(
            f"  {res.name} ({res.gpu_hours_left:,} GPU-h left; order: {res.order}; "
            f"{len(res.entries)} waiting)"
        )
        for e in entries[:10]:
            position = res.entries.index(e) + 1
            extra = ", commercial" if e.commercial else ""
            lines.append(
                f"    {position}. {e.proposal} (#{e.rank_position}, merit per hour {_num(e.merit_per_hour)}"
                f"{extra}): minimum {e.minimum_gpu_hours:,} GPU-h, {e.hours_needed:,} GPU-h would have to "
                "come back"
            )
        if len(entries) > 10:
            lines.append(f"    ... and {len(entries) - 10} more (see --format json)")
    for c in ex.counterfactuals:
        lines += ["", *counterfactual_lines(c)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Digest:
    """What a report adds from the explanations: who outcompeted whom, the rank inversions with
    their causes, and the head of each reserve list."""

    outcompeted: list[tuple[str, str]]  # (proposal, the reason in words)
    inversions: str  # the count and the tally of causes, in words
    first_inversions: list[str]
    reserves: list[tuple[str, list[str]]]  # (machine heading, its first entries)


def digest(ex: Explanation, *, inversions: int = 10, reserve: int = 3) -> Digest:
    """The explanations a report carries, each line in committee words."""
    causes = ", ".join(f"{CAUSE_WORDS[c]} {n}" for c, n in ex.inversion_causes.items())
    head = f"{ex.inversion_count} pair(s)" + (f"; causes: {causes}" if causes else "")
    if ex.causes_counted_over < ex.inversion_count:
        head += f" (causes counted over the first {ex.causes_counted_over:,})"
    return Digest(
        outcompeted=[
            (p.proposal, x.text) for p in ex.proposals for x in p.reasons if x.code == "outcompeted"
        ],
        inversions=head,
        first_inversions=[
            f"{i.better} (#{i.better_position}, {_pct(i.better_fraction)}) below {i.lower} "
            f"(#{i.lower_position}, {_pct(i.lower_fraction)}): {CAUSE_WORDS[i.cause]}: {i.text}"
            for i in ex.inversions[:inversions]
        ],
        reserves=[
            (
                f"{res.name} ({res.gpu_hours_left:,} GPU-h left; order: {res.order}; "
                f"{len(res.entries)} waiting)",
                [
                    f"{n}. {e.proposal} (#{e.rank_position}): minimum {e.minimum_gpu_hours:,} GPU-h, "
                    f"{e.hours_needed:,} GPU-h would have to come back"
                    for n, e in enumerate(res.entries[:reserve], 1)
                ],
            )
            for res in ex.reserves
        ],
    )


def counterfactual_lines(c: Counterfactual) -> list[str]:
    lines = [
        f"What would have changed {c.proposal} (each figure a re-solve of the round with only "
        f"{c.proposal} changed, the rest of the round unchanged; {c.probes} re-solves):"
    ]
    if c.largest_request is not None:
        lines.append(
            f"  - the largest request funded, its minimum scaled in proportion: {c.largest_request_text} "
            f"({c.scale[0]} of {c.scale[1]} award units)"
        )
        lines.append("    it would displace " + _displaced_words(c.displaced_by_request))
    else:
        lines.append(f"  - {c.largest_request_text}")
    if c.score_needed is not None:
        lines.append(f"  - the score it would have needed: {c.score_needed:g}")
        lines.append("    it would displace " + _displaced_words(c.displaced_by_score))
    else:
        lines.append("  - no score on the round's scale would have funded it as asked")
    if c.note:
        lines.append(f"  ({c.note})")
    return lines


def _displaced_words(items: list[Displaced]) -> str:
    if not items:
        return "no proposal"
    return "; ".join(
        f"{d.proposal} ({d.before_reference_gpu_hours:,.0f} -> {d.after_reference_gpu_hours:,.0f} "
        "reference GPU-h)"
        for d in items
    )


# -- a letter to one applicant ------------------------------------------------------------------

APPLICANT_WORDS = {
    "below_threshold": "its score is below the round's threshold",
    "publication": "the round funds only work that will be published openly",
    "incompatible": "no machine in this round offers the hardware and software it needs",
    "too_small": "no whole award unit fits between its minimum and its request",
    "cap": "a machine's limit on the size of one award",
    "capacity": "the machines it can use had too few hours left",
    "commercial_cap": "the share of hours reserved for commercial work was used up",
    "share_max": "its applicant category had reached its maximum share of the round",
    "share_min": "another applicant category's guaranteed minimum share needed the hours",
    "pinned": "a decision of the committee",
    "exclusive": "at most one proposal of a set of closely related proposals may be funded, and another "
    "one of that set was funded",
    "organisation_cap": "the organisation already has the largest number of funded proposals allowed",
    "rank": "better-ranked proposals came first, and after them the rules left no room",
    "kept": "the allocation was kept close to an earlier one",
    "combined_rules": "the round's rules together left no room that would add merit",
    "zero_merit": "its score is the lowest on the scale",
    "not_reached": "the search stopped before it was complete",
}


def applicant_letter(solution: Solution, proposal_id: str, cf: Counterfactual | None = None) -> str:
    """A plain-language explanation for one applicant that names no other proposal."""
    ctx = _Context(solution)
    r = solution.result(proposal_id)
    p = solution.input.proposal(proposal_id)
    scale = solution.input.score_scale
    lines = [
        f"Dear {p.applicant.name},",
        "",
        f'Your proposal {p.id}, "{p.title}", was scored {p.score:g} on a scale from {scale.min:g} to '
        f"{scale.max:g} and placed {r.rank_position} of {len(solution.proposals)} in the ranking.",
    ]
    lot = solution.lottery
    entry = next((e for e in lot.grey_zone if e.proposal == p.id), None) if lot is not None else None
    if lot is not None and entry is not None:
        lines.append(
            f"Its funding was uncertain: when the reviews were resampled {lot.samples} times, it was "
            f"funded in {entry.probability_funded:.0%} of the rank solves (between {lot.low:.0%} and "
            f"{lot.high:.0%}). As the round's rules provide, the {len(lot.grey_zone)} proposals so "
            f"placed took their places in the ranking by a published lottery (seed {lot.seed}): the "
            "place above is the one drawn."
        )
    hours = "; ".join(f"{a.gpu_hours:,} GPU-h on {ctx.name(a.machine)}" for a in r.allocations)
    if r.decision == Decision.FUNDED:
        lines.append(f"It is funded in full: {hours}.")
    elif r.decision == Decision.REDUCED:
        lines.append(f"It is funded at {_pct(r.fraction_of_request)} of its request: {hours}.")
    elif r.decision == Decision.NOT_FUNDED:
        lines.append("It is eligible, but it could not be funded in this round.")
    else:
        lines.append("It is not eligible in this round.")
    if r.reasons:
        lines += ["", "The reasons, the decisive one first:"]
        for x in r.reasons:
            lines.append(f"- {APPLICANT_WORDS.get(x.code, x.code)}{_safe_numbers(x.code, x.detail)}.")
    ex = _proposal(ctx, r)
    worth = (
        "the fraction of the request funded" if solution.objective.value_basis == "fraction" else "the hours"
    )
    if ex.outcompeted_by:
        own = ex.merit_per_hour
        best = ex.outcompeted_by[-1].merit_per_hour
        lines.append(
            f"- the hours on the machines you could use went to {len(ex.outcompeted_by)} proposal(s) that "
            f"bring more merit per GPU-hour: at least {_num(best)} merit points per {PER:,} reference GPU-h, "
            f"against {_num(own) if own is not None else 'n/a'} for yours (merit is the score's weight times "
            f"{worth})."
        )
    for res in reserve_lists(solution, ctx):
        for i, e in enumerate(res.entries):
            if e.proposal == proposal_id:
                lines.append(
                    f"- Reserve list of {res.name}: position {i + 1}; {e.hours_needed:,} GPU-h would have to "
                    "come back there before it could be funded."
                )
    if cf is not None:
        lines += [
            "",
            "What would have changed the decision (the round re-solved with only your proposal changed):",
        ]
        if cf.largest_request is not None:
            lines.append(f"- a request of at most {cf.largest_request_text} would have been funded.")
        else:
            lines.append(f"- {cf.largest_request_text}.")
        if cf.score_needed is not None:
            lines.append(f"- with the same request, a score of {cf.score_needed:g} would have been funded.")
        else:
            lines.append("- with the same request, no score on the scale would have been funded.")
    lines += ["", "Yours sincerely,", "The allocation committee"]
    return _scrub(solution, proposal_id, "\n".join(lines)) + "\n"


# Reason codes whose details name no other proposal (a pin's detail is the committee's own words;
# any other proposal's name in them is scrubbed from the letter).
SAFE_DETAILS = frozenset(
    [
        "capacity",
        "commercial_cap",
        "share_max",
        "below_threshold",
        "incompatible",
        "cap",
        "too_small",
        "pinned",
    ]
)


def _safe_numbers(code: str, detail: str) -> str:
    """The numbers of a reason that can name no other proposal."""
    if code in (
        "capacity",
        "commercial_cap",
        "share_max",
        "below_threshold",
        "incompatible",
        "cap",
        "too_small",
    ):
        return f" ({detail})"
    if code == "pinned":
        return f" ({detail})"
    return ""


def _scrub(solution: Solution, proposal_id: str, text: str) -> str:
    """Replace any other proposal's id, title or applicant name (unless it is this applicant's)."""
    own = solution.input.proposal(proposal_id)
    names = set()
    for p in solution.input.proposals:
        if p.id == proposal_id:
            continue
        names |= {p.id, p.title}
        if p.applicant.name != own.applicant.name:
            names.add(p.applicant.name)
    names -= {own.id, own.title, own.applicant.name, ""}
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", "another proposal", text)
    return text


# -- words ----------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def _pct(x: float) -> str:
    return pct(x)


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
