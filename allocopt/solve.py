"""Solve a round: terms -> CP-SAT model (merit) or rank walk -> solution with provenance."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from importlib.metadata import version

from allocopt.diagnose import diagnostics, share_shortfalls
from allocopt.errors import AllocoptError, InfeasibleError, InputError, Problem
from allocopt.files import sha256_of
from allocopt.model import AllocationModel, OptionKey, Progress
from allocopt.options import SolveOptions
from allocopt.outcome import metrics, proposal_results
from allocopt.rank import rank_out, walk
from allocopt.round import Round, json_path
from allocopt.solution import ObjectiveOut, Provenance, RankOut, Solution, SolverOut, Timing
from allocopt.terms import Terms, derive


def solve(
    rnd: Round,
    options: SolveOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Solution:
    """Solve a round under the merit or the rank objective (the options', else the policy's).

    Raises ``InfeasibleError`` (with the rules that cannot hold and by how much)
    when no allocation satisfies every rule, and ``AllocoptError`` when the
    limits stop the search before any allocation is found.
    """
    started = time.perf_counter()
    options = options or SolveOptions()
    objective = options.objective or rnd.policy.objective
    rnd = rnd.canonical()
    terms = derive(rnd)
    if terms.problems:
        raise InputError([Problem("round", json_path(loc), msg) for loc, msg in terms.problems])
    errors = [d.message for d in diagnostics(terms, objective) if d.level == "error"]
    if errors:
        raise InfeasibleError(_listed(errors))

    rank: RankOut | None = None
    if objective == "rank":
        record = walk(terms, options)
        if record is None:
            raise InfeasibleError(_listed(_why_infeasible(terms, options, objective)))
        units, rank = record.units, rank_out(terms, record)
        optimal, bound, gap = rank.all_proven, None, None
        stop_reason, det, wall = record.stop_reason, record.deterministic_seconds, record.wall_seconds
    else:
        model = AllocationModel(terms)
        model.maximise_merit()
        raw = model.solve(options, on_progress)
        if raw.status == "infeasible":
            raise InfeasibleError(_listed(_why_infeasible(terms, options, objective)))
        if raw.objective is None or raw.bound is None:
            raise AllocoptError(
                f"no allocation was found before the solve stopped ({raw.stop_reason.replace('_', ' ')}); "
                "raise --work-limit or --time-limit"
            )
        units, optimal, bound = raw.units, raw.status == "optimal", raw.bound
        gap = (raw.bound - raw.objective) / max(1, abs(raw.bound))
        stop_reason, det, wall = raw.stop_reason, raw.deterministic_seconds, raw.wall_seconds

    results = proposal_results(terms, units, objective=objective, optimal=optimal, gap=gap or 0.0)
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
            python_version=platform.python_version(),
            options={**options.model_dump(mode="json"), "objective": objective},
            seed=options.seed,
        ),
        input=rnd,
    )


def _merit(terms: Terms, units: dict[OptionKey, int]) -> int:
    return sum(o.coef * units.get(o.key, 0) for o in terms.options)


def _why_infeasible(terms: Terms, options: SolveOptions, objective: str) -> list[str]:
    return share_shortfalls(terms, options, objective) or [
        "the share minimums, pins and caps cannot all hold together; lower a min_share, "
        "remove a pin or add capacity"
    ]


def _listed(problems: list[str]) -> str:
    return "the round's rules cannot all hold:\n" + "\n".join(f"- {p}" for p in problems)
