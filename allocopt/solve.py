"""Solve a round: terms -> CP-SAT model (merit) or rank walk -> solution with provenance."""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from importlib.metadata import version

from allocopt.diagnose import MAX_CONFLICTS, coarse_units, conflicts, diagnostics, share_shortfalls
from allocopt.errors import AllocoptError, InfeasibleError, InputError, Problem, nothing_found
from allocopt.files import sha256_of
from allocopt.improve import improve
from allocopt.model import AllocationModel, OptionKey, Progress, RawResult
from allocopt.options import SolveOptions
from allocopt.outcome import metrics, proposal_results
from allocopt.rank import rank_out, walk
from allocopt.round import Round, json_path
from allocopt.solution import (
    GreyZoneEntry,
    KeepOut,
    LotteryOut,
    ObjectiveOut,
    PreviousAward,
    Provenance,
    RankOut,
    Solution,
    SolverOut,
    Timing,
)
from allocopt.terms import Terms, derive
from allocopt.warmstart import Relaxation, lp_units, rounded, share_deviations, warm_start


@dataclass(frozen=True)
class Keep:
    """Stay close to a previous solution: its awards, its round's hash, the merit tolerance."""

    previous: tuple[PreviousAward, ...]
    previous_input_sha256: str
    tolerance: float = 0.0

    @classmethod
    def of(cls, solution: Solution, tolerance: float) -> Keep:
        awards = tuple(
            PreviousAward(proposal=r.id, machine=a.machine, gpu_hours=a.gpu_hours)
            for r in solution.proposals
            for a in r.allocations
        )
        return cls(awards, solution.provenance.input_sha256, tolerance)


def solve_or_stop(rnd: Round, options: SolveOptions) -> Solution:
    """``solve`` for commands that solve many times: Ctrl-C stops the command, not one solve."""
    solution = solve(rnd, options)
    if solution.solver.stop_reason == "interrupted":
        raise KeyboardInterrupt
    return solution


def solve(
    rnd: Round,
    options: SolveOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    keep: Keep | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Solution:
    """Solve a round under the merit or the rank objective (the options', else the policy's).

    Raises ``InfeasibleError`` (with the rules that cannot hold and by how much)
    when no allocation satisfies every rule, and ``AllocoptError`` when the
    limits stop the search before any allocation is found. With ``keep`` (merit
    only), the allocation within ``keep.tolerance`` of the best merit found that
    changes the fewest decisions, then moves the fewest hours, of the previous one.
    ``on_warning`` hears what makes the result less trustworthy than its proof says (under
    merit, award units too tiny for the merit scale).
    """
    started = time.perf_counter()
    options = options or SolveOptions()
    objective = options.objective or rnd.policy.objective
    if keep is not None and objective == "rank":
        raise AllocoptError("--keep applies to the merit objective: a rank solve has no tolerance to use")
    rnd = rnd.canonical()
    terms = derive(rnd)
    if terms.problems:
        raise InputError([Problem("round", json_path(loc), msg) for loc, msg in terms.problems])
    if any(d.level == "error" for d in diagnostics(terms, objective)):
        # The quick check counts demand alone; the advice is measured with every other rule in
        # force, so that following it does not run straight into the next rule.
        raise InfeasibleError(_listed(_why_infeasible(terms, options, objective)))
    coarse = coarse_units(terms) if objective != "rank" else None  # the walk does not use merit
    if coarse is not None and on_warning is not None:
        on_warning(coarse.message)

    rank: RankOut | None = None
    keep_out: KeepOut | None = None
    lottery: LotteryOut | None = None
    if objective == "rank" and rnd.policy.lottery is not None:
        terms, lottery = _draw_lots(rnd, terms, options)
    if objective == "rank":
        record = walk(terms, options, deadline=_deadline(options, started))
        if record is None:
            raise InfeasibleError(_listed(_why_infeasible(terms, options, objective)))
        units, rank = record.units, rank_out(terms, record)
        optimal, bound, gap = rank.all_proven, None, None
        stop_reason, det, wall = record.stop_reason, record.deterministic_seconds, record.wall_seconds
    else:
        model = AllocationModel(terms)
        model.maximise_merit()
        interrupted = False
        relaxation: Relaxation | None = None
        try:
            # The LP relaxation proves a bound CP-SAT's own takes long to reach; it also seeds
            # the warm start.
            relaxation = lp_units(terms, _left(options, started)) if terms.options else None
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C: keep the first allocation CP-SAT finds
        lp_bound = relaxation.bound if relaxation is not None else None
        report = _Reporter(on_progress, started, lp_bound, terms.scale) if on_progress is not None else None
        raw = _search(model, terms, options, started, report, interrupted, relaxation)
        if raw.status == "infeasible":
            raise InfeasibleError(_listed(_why_infeasible(terms, options, objective)))
        if raw.objective is None or raw.bound is None:
            raise nothing_found(raw.stop_reason, "the solve")
        bound = raw.bound if lp_bound is None else min(raw.bound, lp_bound)
        units, optimal = raw.units, raw.status == "optimal" or raw.objective == bound
        gap = (bound - raw.objective) / max(1, abs(bound))
        stop_reason, det, wall = raw.stop_reason, raw.deterministic_seconds, raw.wall_seconds
        if keep is not None:
            kept, best = _keep_close(terms, options, keep, raw.objective, units)
            units = kept.units
            det, wall = det + kept.deterministic_seconds, wall + kept.wall_seconds
            merit_kept = _merit(terms, units) - _penalty(terms, units)
            optimal = merit_kept == bound
            gap = (bound - merit_kept) / max(1, abs(bound))
            keep_out = _keep_out(terms, keep, best, units)

    reasons_for = "keep" if keep is not None else objective
    unproven = frozenset(s.proposal for s in rank.steps if not s.proven) if rank is not None else frozenset()
    results = proposal_results(
        terms, units, objective=reasons_for, optimal=optimal, gap=gap or 0.0, unproven=unproven
    )
    figures = metrics(terms, results)
    merit = _merit(terms, units)
    penalty = sum(
        (terms.groups[g.id].penalty or 0) * (g.shortfall_reference_gpu_hours + g.excess_reference_gpu_hours)
        for g in figures.groups
    )
    scale = terms.scale
    return Solution(
        round_id=rnd.id,
        round_name=rnd.name,
        objective=ObjectiveOut(
            kind=objective,
            value_basis=rnd.policy.merit.value,
            scale=scale,
            merit_scaled=merit,
            penalty_scaled=penalty,
            scaled=merit - penalty,
            value=round((merit - penalty) / scale, 6),
            best_bound_scaled=bound,
            gap=None if gap is None else round(gap, 9),
        ),
        rank=rank,
        lottery=lottery,
        keep=keep_out,
        proposals=results,
        metrics=figures,
        solver=SolverOut(
            status="optimal" if optimal else "feasible",
            stop_reason=stop_reason,
            deterministic_seconds=round(det, 3),
            options_considered=len(terms.options),
        ),
        timing=Timing(solve_seconds=round(wall, 3), total_seconds=round(time.perf_counter() - started, 3)),
        provenance=Provenance(
            input_sha256=sha256_of(rnd),
            allocopt_version=version("allocopt"),
            ortools_version=version("ortools"),
            scipy_version=version("scipy"),
            highspy_version=version("highspy"),
            python_version=platform.python_version(),
            options={**options.model_dump(mode="json"), "objective": objective},
            seed=options.seed,
        ),
        input=rnd,
    )


def _draw_lots(rnd: Round, terms: Terms, options: SolveOptions) -> tuple[Terms, LotteryOut]:
    """The lottery at the line: a stability run (the round without its lottery, objective 'rank')
    measures each proposal's probability of being funded; the eligible ones within the policy's
    bounds change places in the ranking in the order of their lots."""
    from allocopt.stability import draw_order, lot, stability  # it solves rounds itself

    policy = rnd.policy.lottery
    assert policy is not None
    run = stability(
        rnd,
        options.model_copy(update={"objective": "rank"}),
        samples=policy.samples,
        seed=policy.seed,
        parallel=1,
    )
    chance = {p.id: p.probability_funded for p in run.proposals}
    grey = [
        pid
        for pid in terms.order
        if terms.assessments[pid].options and policy.low <= chance[pid] <= policy.high
    ]
    order, drawn = draw_order(terms.order, grey, policy.seed)
    out = LotteryOut(
        seed=policy.seed,
        low=policy.low,
        high=policy.high,
        samples=policy.samples,
        grey_zone=[
            GreyZoneEntry(proposal=pid, probability_funded=chance[pid], lot=lot(policy.seed, pid))
            for pid in grey
        ],
        drawn=drawn,
    )
    return dataclasses.replace(terms, order=order), out


PROBE_WORK = 1.0  # deterministic seconds CP-SAT gets alone on the whole round before the neighbourhoods
# Rounds with more options than this skip the probe. None of 2,000 proposals or more (5,000+
# options) settled in it; at 100,000 options CP-SAT's set-up alone took 8 s of the probe's wall time.
PROBE_OPTIONS = 3000


def _search(
    model: AllocationModel,
    terms: Terms,
    options: SolveOptions,
    started: float,
    on_progress: Callable[[Progress], None] | None,
    interrupted: bool,
    relaxation: Relaxation | None,
) -> RawResult:
    """The merit search, in deterministic steps.

    1. A probe: CP-SAT alone for PROBE_WORK deterministic seconds, on rounds of at most
       PROBE_OPTIONS options, started from the LP relaxation rounded (``rounded``: no MILP)
       when the warm start is on. Rounds it settles in that time (most of a few hundred
       proposals) come back proven optimal or within the gap limit.
    2. On larger rounds, or when the rounding broke a rule, the full warm start (the LP
       rounded, improved by a small MILP, repaired and filled), if it beats the probe.
    3. The neighbourhood search (improve.py) for the rest of the work limit, against the
       round's bound (the tighter of the probe's and the LP's): CP-SAT re-solves
       neighbourhoods of the best allocation at the margin, growing until one is the whole
       round (proven optimal, or within the gap limit), or, in a round too large for that,
       until no machine's margin yields anything better.

    Without the warm start (or the LP), the probe's search goes on over the whole round with
    the best bound so far; so does a search whose warm start found nothing (from scratch, on a
    round too large for the probe). After a Ctrl-C before the search, CP-SAT stops at the first
    allocation it finds."""
    if interrupted:
        return model.solve(_within(options, started), on_progress, first_solution_only=True)
    probe = min(PROBE_WORK, options.work_limit)
    small = len(model.options) <= PROBE_OPTIONS
    warm: dict[OptionKey, int] | None = None
    if small and options.warm_start and relaxation is not None:
        # The LP rounded is the probe's hint: from a good allocation CP-SAT tightens its bound
        # far sooner than alone, and on a round this small the probe then does better with the
        # warm start's MILP's seconds than the MILP would.
        try:
            warm = rounded(terms, relaxation)
            if warm is not None:
                model.hint(warm)
                model.hint_deviations(share_deviations(terms, warm))
        except KeyboardInterrupt:  # nothing at hand yet: stop at the first allocation CP-SAT finds
            model.model.clear_hints()
            return model.solve(_within(options, started), on_progress, first_solution_only=True)
    if small or not (options.warm_start and relaxation is not None):
        best = model.solve(_within(options, started).model_copy(update={"work_limit": probe}), on_progress)
        if best.stop_reason != "work_limit" or probe >= options.work_limit:
            return best
    else:  # too large to settle in the probe's work: it would only cost CP-SAT's set-up time
        best = RawResult(status="unknown", stop_reason="work_limit", num_options=len(model.options))
    if relaxation is not None:
        best.bound = relaxation.bound if best.bound is None else min(best.bound, relaxation.bound)
    if options.warm_start:
        try:
            if warm is None:
                warm = warm_start(terms, _left(options, started), relaxation)
        except KeyboardInterrupt:
            if best.objective is None:  # no probe ran: stop at the first allocation CP-SAT finds
                return model.solve(_within(options, started), on_progress, first_solution_only=True)
            best.stop_reason = "interrupted"
            return best
        if warm is not None and (best.objective is None or _worth(terms, warm) > best.objective):
            best.units, best.objective = warm, _worth(terms, warm)
            if on_progress is not None and best.bound is not None:
                on_progress(Progress(best.objective, best.bound, 0.0))  # (the reporter times it)
    if relaxation is not None and best.objective is not None and options.warm_start:
        if _within_gap(best, options.gap_limit):
            best.stop_reason = "gap_limit"
            return best
        work = options.work_limit - best.deterministic_seconds
        better = improve(
            terms,
            best.units,
            best.objective,
            relaxation,
            options,
            work,
            _deadline(options, started),
            on_progress,
            best.bound,
        )
        best.units, best.objective = better.units, better.objective
        best.deterministic_seconds += better.deterministic_seconds
        best.wall_seconds += better.wall_seconds
        if better.bound is not None and best.bound is not None:
            best.bound = min(best.bound, better.bound)
        if better.proven_optimal or best.objective == best.bound:
            best.status, best.stop_reason = "optimal", "finished"
        elif better.stopped is not None:  # Ctrl-C or the wall-clock cap
            best.stop_reason = better.stopped
        elif _within_gap(best, options.gap_limit):
            best.stop_reason = "gap_limit"
        elif best.deterministic_seconds >= options.work_limit * 0.99:
            best.stop_reason = "work_limit"
        else:
            best.stop_reason = "converged"
        return best
    # No warm start: CP-SAT alone on the whole round, against the LP bound if there is one.
    if relaxation is not None:
        model.model.add(model.merit_expr() <= relaxation.bound)
    if best.objective is not None:
        model.hint(best.units)
        model.hint_deviations(share_deviations(terms, best.units))
    rest = max(options.work_limit - best.deterministic_seconds, 0.01)
    second = model.solve(_within(options, started).model_copy(update={"work_limit": rest}), on_progress)
    second.deterministic_seconds += best.deterministic_seconds
    second.wall_seconds += best.wall_seconds
    if best.bound is not None:  # every search's bound holds: keep the tightest
        second.bound = best.bound if second.bound is None else min(best.bound, second.bound)
    if best.objective is not None and (second.objective is None or second.objective < best.objective):
        # The hinted search can only match or improve on what it was given; never keep less.
        second.units, second.objective = best.units, best.objective
    return second


class _Reporter:
    """Progress as the committee sees it: each better allocation (or a tighter bound) with the
    tightest bound proven so far for the whole round, and the seconds since the solve began.
    Each report it is given must carry a bound for the whole round (a neighbourhood's own does
    not: improve.py reports the round's instead); the hint each CP-SAT call starts from, reported
    again, is left out."""

    def __init__(
        self, on_progress: Callable[[Progress], None], started: float, bound: int | None, scale: int
    ) -> None:
        self.on_progress, self.started, self.bound, self.scale = on_progress, started, bound, scale
        self.best: int | None = None

    def __call__(self, p: Progress) -> None:
        bound = p.bound if self.bound is None else min(self.bound, p.bound)
        if self.best is not None and p.objective <= self.best and bound == self.bound:
            return
        self.bound, self.best = bound, p.objective if self.best is None else max(self.best, p.objective)
        self.on_progress(Progress(self.best, bound, time.perf_counter() - self.started, self.scale))


def _within_gap(raw: RawResult, gap_limit: float) -> bool:
    """Is the allocation proven within the gap limit of the bound (the solution's gap measure)?"""
    assert raw.objective is not None and raw.bound is not None
    return raw.bound - raw.objective <= gap_limit * max(1, abs(raw.bound))


def _deadline(options: SolveOptions, started: float) -> float | None:
    """When the wall-clock cap (--time-limit) runs out, on the perf_counter clock."""
    return None if options.time_limit is None else started + options.time_limit


def _left(options: SolveOptions, started: float) -> float | None:
    """Seconds left of the wall-clock cap (None: no cap), at least a hundredth."""
    deadline = _deadline(options, started)
    return None if deadline is None else max(0.01, deadline - time.perf_counter())


def _within(options: SolveOptions, started: float) -> SolveOptions:
    """The options with the wall-clock cap cut to what is left of it (the recorded options
    keep the cap as given)."""
    left = _left(options, started)
    return options if left is None else options.model_copy(update={"time_limit": left})


def _worth(terms: Terms, units: dict[OptionKey, int]) -> int:
    """The scaled objective of these units: merit less soft-share penalties."""
    return _merit(terms, units) - _penalty(terms, units)


def _merit(terms: Terms, units: dict[OptionKey, int]) -> int:
    return sum(o.coef * units.get(o.key, 0) for o in terms.options)


def _penalty(terms: Terms, units: dict[OptionKey, int]) -> int:
    results = proposal_results(terms, units, objective="merit", optimal=False, gap=0.0)
    return sum(
        (terms.groups[g.id].penalty or 0) * (g.shortfall_reference_gpu_hours + g.excess_reference_gpu_hours)
        for g in metrics(terms, results).groups
    )


def _previous_units(terms: Terms, keep: Keep) -> dict[OptionKey, int]:
    """The previous awards in this round's award units (awards on options that no longer exist drop out)."""
    units: dict[OptionKey, int] = {}
    known = {o.key: o for o in terms.options}
    for award in keep.previous:
        o = known.get((award.proposal, award.machine))
        if o is not None:
            units[o.key] = award.gpu_hours // o.unit_hours
    return units


def _keep_close(
    terms: Terms, options: SolveOptions, keep: Keep, best: int, best_units: dict[OptionKey, int]
) -> tuple[RawResult, int]:
    """Re-solve for the allocation nearest the previous one among those within the tolerance."""
    floor = best - math.floor(abs(best) * Fraction(str(keep.tolerance)))
    model = AllocationModel(terms)
    model.stay_close(_previous_units(terms, keep), floor)
    model.hint(best_units)
    raw = model.solve(options.model_copy(update={"gap_limit": 0.0}))
    if not raw.units:  # the best allocation itself is always within the tolerance
        raw.units = best_units
    return raw, best


def _keep_out(terms: Terms, keep: Keep, best: int, units: dict[OptionKey, int]) -> KeepOut:
    before = _previous_units(terms, keep)
    changed = sum(
        1
        for a in terms.assessments.values()
        if {o.key for o in a.options if before.get(o.key, 0) > 0}
        != {o.key for o in a.options if units.get(o.key, 0) > 0}
    )
    moved = sum(abs(units.get(o.key, 0) - before.get(o.key, 0)) * o.ref_per_unit for o in terms.options)
    return KeepOut(
        previous_input_sha256=keep.previous_input_sha256,
        tolerance=keep.tolerance,
        best_scaled=best,
        changed_decisions=changed,
        moved_reference_gpu_hours=round(float(moved), 6),
        previous=list(keep.previous),
    )


def _why_infeasible(terms: Terms, options: SolveOptions, objective: str) -> list[str]:
    found = conflicts(terms, options, objective)
    out: list[str] = []
    for n, conflict in enumerate(found, 1):
        where = "this conflict" if len(found) > 1 else "the round"
        alone = sum(conflict.enough)
        marked = 0 < alone < len(conflict.rules)
        if len(conflict.rules) == 1:
            head = "this rule cannot hold with the others; change it"
        elif not conflict.enough or alone == len(conflict.rules):  # not checked: it resolves this one
            head = f"these {len(conflict.rules)} rules cannot all hold together; change any one of them"
        elif marked:
            # Changing another resolves this set but leaves an overlapping one: say which suffice.
            head = (
                f"these {len(conflict.rules)} rules cannot all hold together; changing one marked * "
                f"resolves {where}, changing another leaves other rules in conflict"
            )
        else:
            head = (
                f"these {len(conflict.rules)} rules cannot all hold together; changing any one of them "
                f"leaves other rules in conflict: change two or more, or solve again after changing one"
            )
        if len(found) > 1:
            head = f"conflict {n} of {len(found)}: {head}"
        if not conflict.minimal:
            head += " (a check ran out of its work limit: one of them may not be needed)"
        enough = conflict.enough or [True] * len(conflict.rules)
        out += [
            head + ":",
            *(
                f"  {'* ' if marked and ok else ''}{rule}"
                for rule, ok in zip(conflict.rules, enough, strict=True)
            ),
        ]
    if len(found) > 1:
        out.append(
            f"the round has at least {len(found)} separate conflicts: resolve each one, then solve again"
            if len(found) >= MAX_CONFLICTS
            else f"the round has {len(found)} separate conflicts: resolve each one"
        )
    if out:
        return out + _below_threshold(terms, out)
    shortfalls = share_shortfalls(terms, options, objective)
    return (
        shortfalls + _below_threshold(terms, shortfalls)
        if shortfalls
        else [
            "the share minimums, pins and caps cannot all hold together; lower a min_share, "
            "remove a pin or add capacity"
        ]
    )


def _below_threshold(terms: Terms, conflict_lines: list[str]) -> list[str]:
    """For each share minimum in a conflict, the group's proposals the score threshold keeps
    out: another way to meet it."""
    threshold = terms.round.policy.score_threshold
    out = []
    for g in terms.groups.values():
        if not any(f"the {g.name} minimum share" in line for line in conflict_lines):
            continue
        below = [
            a
            for a in terms.assessments.values()
            if a.group_id == g.group_id and any(r.code == "below_threshold" for r in a.ineligible)
        ]
        if below:
            best = max(a.proposal.score for a in below)
            out.append(
                f"note: {len(below)} {g.name} proposal(s) score below the score threshold ({threshold:g}; "
                f"the best of them {best:g}): a score_threshold at or below {best:g} admits the best"
            )
    return out


def _listed(problems: list[str]) -> str:
    lines = [f"    {p.strip()}" if p.startswith("  ") else f"- {p}" for p in problems]
    return "the round's rules cannot all hold:\n" + "\n".join(lines)
