"""Improve an allocation by re-solving neighbourhoods of it exactly (a large-neighbourhood search).

In a round of thousands of proposals the LP relaxation settles almost every decision:
awards of high merit per GPU-hour are given in full, proposals far below a machine's cut
get nothing. What rounding gets wrong lies where the allocation and the LP disagree, and at
the margin. Each step frees a neighbourhood of proposals, keeps every other award as it is
(a constant in each rule), and has CP-SAT solve the neighbourhood exactly from the current
allocation, so it can only improve. The neighbourhoods, in order:

0. the proposals whose award differs from the LP's, again while that gains;
1. the round's margin: the k funded proposals of least merit per reference GPU-hour
   (cheapest to shrink or drop) and the k unfunded ones the LP comes closest to funding
   (least reduced cost). While a margin is proven optimal and closes at least
   1/MARGIN_GAIN of the gap to the round's bound, k doubles (a wider margin that does not settle
   costs a quarter of the work left, and a small gain says it would give little); a margin
   that grows to the whole round is searched against the round's bound (proven optimal, or
   within the gap limit), and the search ends there;
2. each machine's own margin in turn; when a sweep over the machines gains nothing, each
   machine with the PARTNERS machines most awards could move to or from: both margins and
   every award on one of the two with an option on the other (where the rounding put awards
   on the wrong machine: the LP is indifferent between machines for most awards). Sweep
   after sweep while a sweep gains; pairs stop for good at the first pair not proven optimal
   in its work (too wide to settle), or after a sweep of pairs that closed less than
   1/PAIR_GAIN of the gap to the round's bound (each costs dozens of CP-SAT calls);
3. random draws from the funded awards that could change machine and the unfunded proposals
   nearest the LP's cut, while they gain: the trades that repack leftover room across many
   machines at once, which no margin or pair holds;
4. the whole round for the work left, if the widest margin proven optimal suggests it can
   settle in it (its work grown with the square of the options fits in what is left).
   Otherwise the search has converged and stops early.

A neighbourhood short of the whole round gets at most a quarter of the work left (a pair's
or a random draw's, a sixteenth). The search stops as soon as the allocation is within the gap limit of the
round's bound.

"The round's bound" (the ceiling) is the tightest bound proven for every allocation of the
round: the LP relaxation's, or CP-SAT's from a search of the whole round before this one
(solve.py's probe) where that is tighter, as it often is on rounds of a few hundred proposals.

Deterministic: neighbourhoods are chosen from the allocation's and the LP's numbers with
ties broken by id, random draws by a generator seeded with the solve's seed, and each CP-SAT
call has a deterministic work limit.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from allocopt.model import AllocationModel, OptionKey, Progress, RawResult
from allocopt.options import SolveOptions
from allocopt.terms import Terms
from allocopt.warmstart import Relaxation, share_deviations

FIRST_MARGIN = 100  # k of the first neighbourhood: funded and unfunded proposals freed
MACHINE_MARGIN = 100  # k of each machine's neighbourhood
PARTNERS = 2  # machines paired with each machine, those most of its awards could move to
# A pair's neighbourhood gets at most 1/PAIR_SHARE of the work left: those that settle took under
# 1 deterministic second in our measurements, and one too wide to settle ends the pairs.
PAIR_SHARE = 16
MARGIN_GAIN = 10  # the round's margin doubles while one closes >= 1/MARGIN_GAIN of the gap to the ceiling
PAIR_GAIN = 10  # sweeps of pairs go on while one closes at least 1/PAIR_GAIN of the gap to the ceiling
# Random neighbourhoods (step 3): the first one's proposals; settled ones in a row without a gain
# before the size doubles; how many in a row without a gain end them; what counts as a gain
# (closing 1/RANDOM_GAIN of the gap to the ceiling: crumbs of a millionth of that do not); and
# the largest pool they draw from (at 10,000 x 30, pools of thousands, they gained nothing).
RANDOM_SIZE = 60
RANDOM_MISSES = 4
RANDOM_STALL = 12
RANDOM_GAIN = 1000
RANDOM_POOL = 2500
STEP_SHARE = 4  # a neighbourhood short of the whole round gets at most 1/STEP_SHARE of the work left
LEAST_STEP_WORK = 0.1  # the work counted for a settled neighbourhood at least (tiny ones report ~0)


@dataclass(frozen=True)
class Improved:
    """The best allocation found, its objective, and what the search spent."""

    units: dict[OptionKey, int]
    objective: int
    deterministic_seconds: float
    wall_seconds: float
    neighbourhoods: int
    proven_optimal: bool  # the last neighbourhood was the whole round, solved to optimality
    stopped: str | None  # 'interrupted' (Ctrl-C) or 'time_limit' when one of those ended it
    bound: int | None  # CP-SAT's bound when the whole round was searched (it holds for every allocation)


def improve(
    terms: Terms,
    units: dict[OptionKey, int],
    objective: int,
    relaxation: Relaxation,
    options: SolveOptions,
    work: float,
    deadline: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    bound: int | None = None,
) -> Improved:
    """Re-solve neighbourhoods of ``units`` (whose objective is ``objective``) at the margin,
    within ``work`` deterministic seconds and the wall-clock ``deadline`` (perf_counter time).
    ``bound``, a bound proven for the whole round tighter than the LP's (CP-SAT's, from an
    earlier search), if there is one."""
    ceiling = relaxation.bound if bound is None else min(bound, relaxation.bound)
    search = _Search(terms, units, objective, relaxation, ceiling, options, work, deadline, on_progress)
    try:
        proven = _run(search)
    except KeyboardInterrupt:  # Ctrl-C between two CP-SAT calls: keep the best so far
        search.stopped, proven = "interrupted", False
    return search.result(proven)


def _run(search: _Search) -> bool:
    """The neighbourhoods, in order; True when the whole round was proven optimal."""
    terms, relaxation = search.terms, search.relaxation
    everyone = {o.proposal_id for o in terms.options}
    # 0. Where the allocation and the LP disagree, again while that gains.
    while search.work_left():
        disagree = _disagreement(terms, search.units, relaxation)
        if not disagree or len(disagree) == len(everyone):
            break
        before = search.objective
        search.step(disagree)
        if search.objective == before:
            break
    # 1. The round's margin, twice as wide after each one proven optimal that closed enough of the gap.
    k = FIRST_MARGIN
    widest, widest_work = 0, 0.0  # the widest margin proven optimal: its options, its work
    while search.work_left():
        free = _margin(terms, search.units, relaxation, k)
        whole = len(free) == len(everyone)
        before = search.objective
        raw = search.step(free, whole=whole)
        if search.stopped is not None or whole:
            return whole and raw.status == "optimal"
        if raw.status != "optimal":
            break  # as wide as CP-SAT settles in the work left
        widest, widest_work = raw.num_options, raw.deterministic_seconds
        if search.objective - before < (search.ceiling - before) / MARGIN_GAIN:
            break  # little more to gain at the margin: a wider one costs more than it is likely to give
        k *= 2
    # 2. Each machine's margin in turn, then each machine's with its partner's (where awards
    # can move between them), for as long as a sweep gains.
    pairs_pay = True  # until a pair is too wide to settle, or a sweep of pairs gains too little
    while search.work_left():
        before = search.objective
        _sweep(search, [[m.id] for m in terms.round.machines])
        if search.objective == before and pairs_pay and search.work_left():
            gap = search.ceiling - search.objective
            settled = _sweep(search, _pairs(terms, search.units), give_up=True, share=PAIR_SHARE)
            pairs_pay = settled and search.objective - before >= gap / PAIR_GAIN
        if search.objective == before:
            break
    # 3. Random neighbourhoods of the awards that could move and the unfunded proposals nearest
    # the LP's cut, while they gain.
    if search.work_left():
        _random_neighbourhoods(search)
    # 4. The whole round for the rest of the work, if it is likely to settle in it: the widest
    # margin proven optimal, its work grown with the square of the options (as we measured),
    # fits in what is left. A whole-round search far beyond that gained nothing.
    if search.work_left() and widest:
        likely = max(widest_work, LEAST_STEP_WORK) * (len(terms.options) / widest) ** 2
        if likely <= search.left():
            return search.step(sorted(everyone), whole=True).status == "optimal"
    return False


def _random_neighbourhoods(search: _Search) -> None:
    """Neighbourhoods drawn at random (seeded by the solve's seed) from ``_random_pool``. What
    the margins miss are trades that repack leftover room across several machines at once
    (measured at 300 x 8: 27 awards on all 8 machines resized or moved, tied together by the
    share bounds), which no machine's, pair's or margin's neighbourhood holds. A draw's size
    doubles after RANDOM_MISSES settled draws in a row gain nothing, and halves after one too
    wide to settle gains nothing; RANDOM_STALL draws in a row without a gain end them, and so
    does as much work as the search did before them: their gains come ever more slowly (at
    2000 x 12, three quarters of what they gained came in the first seventh of their time)."""
    draw = random.Random(search.options.seed)
    size, misses, stall = RANDOM_SIZE, 0, 0
    until = 2 * search.spent
    while stall < RANDOM_STALL and search.work_left() and search.spent < until:
        pool = _random_pool(search.terms, search.units, search.relaxation)
        if len(pool) <= size or len(pool) > RANDOM_POOL:
            return  # as wide as the pool (the whole round, step 4, takes over), or too sparse a draw
        before = search.objective
        free = sorted(draw.sample(pool, size))
        settled = search.step(free, share=PAIR_SHARE, most=until - search.spent).status == "optimal"
        if search.objective - before >= (search.ceiling - before) / RANDOM_GAIN:
            misses, stall = 0, 0
            continue
        stall += 1
        if not settled:
            size, misses = max(size // 2, RANDOM_SIZE // 4), 0
            continue
        misses += 1
        if misses == RANDOM_MISSES:
            size, misses = size * 2, 0


def _random_pool(terms: Terms, units: dict[OptionKey, int], relaxation: Relaxation) -> list[str]:
    """What random neighbourhoods draw from, sorted by id: the funded proposals with an option
    on more than one machine (those a trade can move), and a quarter as many unfunded ones,
    those the LP comes closest to funding (least reduced cost, ties by id)."""
    funded = {pid for (pid, _), v in units.items() if v > 0}
    movers = [pid for pid in funded if pid in terms.assessments and len(terms.assessments[pid].options) > 1]
    cost: dict[str, float] = {}
    for o in terms.options:
        if o.proposal_id not in funded:
            cost[o.proposal_id] = min(relaxation.cost.get(o.key, math.inf), cost.get(o.proposal_id, math.inf))
    nearest = sorted(cost, key=lambda pid: (cost[pid], pid))[: len(funded) // 4]
    return sorted(movers + nearest)


def _sweep(search: _Search, groups: list[list[str]], give_up: bool = False, share: int = STEP_SHARE) -> bool:
    """One neighbourhood per group of machines: their margins, and every award on one of them
    that could move to another. False if one was not proven optimal in its work (with
    ``give_up``, the sweep stops there). Each gets at most 1/share of the work left."""
    settled = True
    for machines in groups:
        free = _movers(search.terms, search.units, machines)
        for m in machines:
            free |= set(_machine_margin(search.terms, search.units, search.relaxation, m, MACHINE_MARGIN))
        if free and search.step(sorted(free), share=share).status != "optimal":
            settled = False
            if give_up:
                break
        if not search.work_left():
            break
    return settled


@dataclass
class _Search:
    """The current allocation, and what re-solving its neighbourhoods has spent."""

    terms: Terms
    units: dict[OptionKey, int]
    objective: int
    relaxation: Relaxation
    ceiling: int  # the tightest bound proven for the whole round: the LP's, or an earlier search's
    options: SolveOptions
    work: float
    deadline: float | None
    on_progress: Callable[[Progress], None] | None
    spent: float = 0.0
    wall: float = 0.0
    count: int = 0
    stopped: str | None = None
    bound: int | None = None

    def work_left(self) -> bool:
        return self.stopped is None and self.left() > 0.01 and not self.within_gap()

    def within_gap(self) -> bool:
        """Is the allocation proven within the gap limit of the whole round's bound? Then the
        search is done: the gap limit says a better allocation is not worth more work."""
        bound = self.ceiling
        return bound - self.objective <= self.options.gap_limit * max(1, abs(bound))

    def left(self) -> float:
        return self.work - self.spent

    def step(
        self, free: list[str], whole: bool = False, share: int = STEP_SHARE, most: float = math.inf
    ) -> RawResult:
        """Solve one neighbourhood exactly (the whole round: within the gap limit, against
        the round's bound) from the current allocation, and keep what it finds if better; in
        at most ``most`` deterministic seconds."""
        left = None if self.deadline is None else self.deadline - time.perf_counter()
        if left is not None and left <= 0.01:
            self.stopped = "time_limit"
            return RawResult(status="unknown", stop_reason="time_limit")
        model = AllocationModel(self.terms, free=free, around=self.units)
        model.maximise_merit()
        if whole:  # the round's bound holds, and the gap limit applies against it
            model.model.add(model.merit_expr() <= self.ceiling)
        model.hint(self.units)
        model.hint_deviations(share_deviations(self.terms, self.units))
        # Short of the whole round, a neighbourhood gets at most a share of the work left, so one
        # too wide to settle still leaves work for what comes after.
        budget = min(self.work - self.spent if whole else (self.work - self.spent) / share, most)
        step = self.options.model_copy(
            update={
                "work_limit": budget,
                "gap_limit": self.options.gap_limit if whole else 0.0,
                "time_limit": left,
            }
        )
        # A neighbourhood's own bound proves nothing for the round, so it can do without the cut
        # rounds that tighten it: the whole round keeps them.
        raw = model.solve(step, self.on_progress if whole else self._with_round_bound, light_cuts=not whole)
        self.count += 1
        self.spent += raw.deterministic_seconds
        self.wall += raw.wall_seconds
        if raw.objective is not None and raw.objective > self.objective:
            chosen = set(free)
            merged = {k: v for k, v in self.units.items() if k[0] not in chosen and v > 0}
            merged.update({k: v for k, v in raw.units.items() if v > 0})
            self.units, self.objective = merged, raw.objective
        if whole:
            self.bound = raw.bound
        if raw.stop_reason in ("interrupted", "time_limit"):
            self.stopped = raw.stop_reason
        return raw

    def _with_round_bound(self, p: Progress) -> None:
        """A neighbourhood's incumbent, reported with the round's bound (its own holds only for
        allocations that keep every other award) and the neighbourhood's own seconds (solve()
        reports the seconds since it began)."""
        if self.on_progress is not None:
            self.on_progress(Progress(p.objective, self.ceiling, p.seconds))

    def result(self, proven: bool) -> Improved:
        return Improved(
            self.units, self.objective, self.spent, self.wall, self.count, proven, self.stopped, self.bound
        )


def _disagreement(terms: Terms, units: dict[OptionKey, int], relaxation: Relaxation) -> list[str]:
    """The proposals whose award differs from the LP relaxation's, sorted by id."""
    return sorted(
        {
            o.proposal_id
            for o in terms.options
            if abs(units.get(o.key, 0) - relaxation.units.get(o.key, 0.0)) > 1e-6
        }
    )


def _margin(terms: Terms, units: dict[OptionKey, int], relaxation: Relaxation, k: int) -> list[str]:
    """The k funded proposals of least merit per reference GPU-hour and the k unfunded ones
    (with an option) of least LP reduced cost per unit of merit, ties by id, sorted by id."""
    per_hour: dict[str, float] = {}
    cost: dict[str, float] = {}
    for o in terms.options:
        pid = o.proposal_id
        if units.get(o.key, 0) > 0:
            worth = o.coef / float(o.ref_per_unit)
            per_hour[pid] = min(worth, per_hour.get(pid, math.inf))
        else:
            cost[pid] = min(relaxation.cost.get(o.key, math.inf), cost.get(pid, math.inf))
    unfunded = [pid for pid in cost if pid not in per_hour]
    chosen = sorted(per_hour, key=lambda pid: (per_hour[pid], pid))[:k]
    chosen += sorted(unfunded, key=lambda pid: (cost[pid], pid))[:k]
    return sorted(chosen)


def _machine_margin(
    terms: Terms, units: dict[OptionKey, int], relaxation: Relaxation, machine_id: str, k: int
) -> list[str]:
    """One machine's margin: the k proposals funded on it of least merit per reference
    GPU-hour there, and the k unfunded ones whose option on it has the least LP reduced cost."""
    funded = {pid for (pid, _), v in units.items() if v > 0}
    per_hour: dict[str, float] = {}
    cost: dict[str, float] = {}
    for o in terms.options_on[machine_id]:
        if units.get(o.key, 0) > 0:
            per_hour[o.proposal_id] = o.coef / float(o.ref_per_unit)
        elif o.proposal_id not in funded:
            cost[o.proposal_id] = relaxation.cost.get(o.key, math.inf)
    chosen = sorted(per_hour, key=lambda pid: (per_hour[pid], pid))[:k]
    chosen += sorted(cost, key=lambda pid: (cost[pid], pid))[:k]
    return sorted(chosen)


def _movers(terms: Terms, units: dict[OptionKey, int], machines: list[str]) -> set[str]:
    """The proposals funded on one of these machines with an option on another of them."""
    among = set(machines)
    return {
        pid
        for (pid, m), v in units.items()
        if v > 0
        and m in among
        and (pid, m) in terms.option_of
        and any(o.machine_id in among and o.machine_id != m for o in terms.assessments[pid].options)
    }


def _pairs(terms: Terms, units: dict[OptionKey, int]) -> list[list[str]]:
    """Each machine with the PARTNERS machines most awards could move to or from (ties by id);
    each pair once, in machine order."""
    moves: dict[tuple[str, str], int] = {}
    for (pid, on), v in units.items():
        if v > 0 and (pid, on) in terms.option_of:  # not an option of this round: nothing moves
            for o in terms.assessments[pid].options:
                if o.machine_id != on:
                    pair = (min(on, o.machine_id), max(on, o.machine_id))
                    moves[pair] = moves.get(pair, 0) + 1
    chosen: list[list[str]] = []
    for m in terms.round.machines:
        mine = [pair for pair in moves if m.id in pair]
        for pair in sorted(mine, key=lambda p: (-moves[p], p))[:PARTNERS]:
            if list(pair) not in chosen:
                chosen.append(list(pair))
    return chosen
