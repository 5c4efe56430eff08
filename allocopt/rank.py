"""The rank objective: fund strictly down the ranking, then raise awards in rank order.

The walk follows the README's definition. Each step is settled by a witness
when one is at hand (an allocation already found that satisfies every rule
and funds the proposal, or gives it its whole request), by an LP bound for a
raise step (rankbound.py: no fraction above the allocation's is possible),
and by a CP-SAT check otherwise; a check that runs out of work is recorded as
unproven.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from allocopt.errors import nothing_found
from allocopt.model import AllocationModel, OptionKey, RawResult
from allocopt.options import SolveOptions
from allocopt.rankbound import RaiseBounds, next_level
from allocopt.solution import RankOut, RankStep
from allocopt.terms import Assessment, Terms, most_fraction
from allocopt.topup import top_up


@dataclass
class RankWalk:
    """The outcome of the walk: the final allocation and the record of every step."""

    units: dict[OptionKey, int]
    steps: list[RankStep] = field(default_factory=list)
    deterministic_seconds: float = 0.0
    wall_seconds: float = 0.0
    stop_reason: str = "finished"


def walk(terms: Terms, options: SolveOptions, deadline: float | None = None) -> RankWalk | None:
    """Run the rank walk; None when the rules cannot hold even before the walk starts. The work
    limit applies to each step's check; the wall-clock cap (``deadline``, on the perf_counter
    clock) and Ctrl-C to the whole walk: once either stops a check, later steps go unproven."""
    model = AllocationModel(terms, soft_shares=False)
    options = options.model_copy(update={"gap_limit": 0.0})  # every step is decided exactly
    record = RankWalk(units={})

    def check() -> RawResult:
        if record.stop_reason in ("interrupted", "time_limit"):
            return RawResult("unknown", record.stop_reason)
        step_options = options
        if deadline is not None:
            step_options = options.model_copy(
                update={"time_limit": max(0.01, deadline - time.perf_counter())}
            )
        raw = model.solve(step_options, light_cuts=True, light_presolve=True)
        record.deterministic_seconds += raw.deterministic_seconds
        record.wall_seconds += raw.wall_seconds
        if raw.stop_reason != "finished":
            record.stop_reason = raw.stop_reason
        return raw

    first = check()
    if first.status == "infeasible":
        return None
    if not first.units and first.status != "optimal":
        # Stopped by a limit before any allocation was found: that is not infeasibility.
        raise nothing_found(first.stop_reason, "the first rank check")
    witness = first.units
    eligible = [terms.assessments[pid] for pid in terms.order if terms.assessments[pid].options]
    position = {pid: i + 1 for i, pid in enumerate(terms.order)}

    # 1. Who is funded: best first, each if it fits with every better-ranked one funded.
    funded: list[Assessment] = []
    for a in eligible:
        pid = a.proposal.id
        pinned = a.pin is not None
        if pinned or _funds(witness, a):
            ok, by, proven = (a.pin is None or a.pin.action == "fund"), ("pin" if pinned else "witness"), True
            if pinned and a.pin is not None and a.pin.action == "exclude":
                ok = False
        else:
            # A trial, as an assumption: the decision below is what stays in the model. Funding as
            # many of the proposals still to come as possible gives witnesses that settle later steps.
            model.model.add_assumptions([model.y[pid]])
            model.hint(witness)
            later = [model.y[b.proposal.id] for b in eligible[eligible.index(a) + 1 :] if b.pin is None]
            model.model.maximize(sum(later))
            raw = check()
            model.model.clear_assumptions()
            ok, by, proven = (
                raw.status in ("optimal", "feasible"),
                "solver",
                # A feasible allocation that funds it settles the step as well as optimality would.
                raw.status in ("optimal", "feasible", "infeasible"),
            )
            if ok:
                witness = raw.units
        model.require_funded(pid, ok)
        if ok:
            funded.append(a)
        record.steps.append(
            RankStep(
                position=position[pid],
                proposal=pid,
                phase="fund",
                outcome="funded" if ok else "not_funded",
                fraction_of_request=0.0,
                settled_by=by,
                proven=proven,
            )
        )

    # 2. How much: each funded proposal as far towards its request as the better-ranked allow.
    # A step the allocation found already settles (its whole request, or an LP bound below any
    # fraction above it) needs no CP-SAT check.
    funded_ids = frozenset(a.proposal.id for a in funded)
    unfunded_ids = frozenset(b.proposal.id for b in eligible) - funded_ids
    bounds: RaiseBounds | None = None  # built at the first step that needs it
    kept: list[tuple[dict[OptionKey, int], int]] = []  # decided fractions the bounds do not hold yet
    for i, a in enumerate(funded):
        expr, expr_scale = model.fraction_expr(a)
        gains = {o.key: int(o.f * expr_scale) for o in a.options}
        current = _scaled_fraction(witness, a, expr_scale)
        most = None
        if not _full(witness, a) and record.stop_reason not in ("interrupted", "time_limit"):
            left = None if deadline is None else max(0.01, deadline - time.perf_counter())
            try:
                bounds = bounds or RaiseBounds(terms, funded_ids, unfunded_ids)
                for done, at_least in kept:
                    bounds.keep(done, at_least)
                kept.clear()
                most = bounds.most(gains, left)
            except KeyboardInterrupt:  # Ctrl-C between CP-SAT checks: the rest go unproven
                record.stop_reason = "interrupted"
        if most is not None and most >= next_level(gains, current, a.split):
            # The obvious move first: its award grown into room worse-ranked awards can spare.
            grown = top_up(terms, witness, a, funded[i + 1 :], gains, most)
            if grown is not None:
                witness, current = grown, _scaled_fraction(grown, a, expr_scale)
        if _full(witness, a):
            by, proven, best = "witness", True, current
        elif most is not None and most < next_level(gains, current, a.split):
            by, proven, best = "bound", True, current
        else:
            if most is not None:  # no allowed allocation gives more: CP-SAT may stop once it is reached
                model.model.add(expr <= math.floor(most))
            model.hint(witness)
            model.model.maximize(expr)
            raw = check()
            if raw.units:
                witness = raw.units
            best = _scaled_fraction(witness, a, expr_scale)
            # A check stopped by its work limit is still proven if the LP bound allows no more.
            proven = raw.status == "optimal" or (most is not None and most < next_level(gains, best, a.split))
            by = "solver"
        model.require_fraction(a, best)
        kept.append((gains, best))  # for the bounds, when next needed
        record.steps.append(
            RankStep(
                position=position[a.proposal.id],
                proposal=a.proposal.id,
                phase="raise",
                outcome="raised",
                fraction_of_request=round(best / expr_scale, 6),
                settled_by=by,
                proven=proven,
            )
        )
    # Every step reports the proposal's final fraction, so each step reads on its own (after an
    # unproven raise step, a later step may still have raised it further).
    final = {
        a.proposal.id: round(
            _scaled_fraction(witness, a, model.fraction_expr(a)[1]) / model.fraction_expr(a)[1], 6
        )
        for a in funded
    }
    record.steps = [
        s.model_copy(update={"fraction_of_request": final.get(s.proposal, 0.0)}) for s in record.steps
    ]
    record.units = witness
    return record


def rank_out(terms: Terms, record: RankWalk) -> RankOut:
    """The walk as recorded in the solution."""
    return RankOut(
        order=[pid for pid in terms.order if terms.assessments[pid].options],
        steps=record.steps,
        all_proven=all(s.proven for s in record.steps),
    )


def _funds(units: dict[OptionKey, int], a: Assessment) -> bool:
    return any(units.get(o.key, 0) > 0 for o in a.options)


def _full(units: dict[OptionKey, int], a: Assessment) -> bool:
    """True when the proposal already has the most it could get even alone on the machines."""
    return sum(o.f * units.get(o.key, 0) for o in a.options) >= most_fraction(a)


def _scaled_fraction(units: dict[OptionKey, int], a: Assessment, scale: int) -> int:
    return sum(int(o.f * scale) * units.get(o.key, 0) for o in a.options)
