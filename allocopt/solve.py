"""Solve a round: terms -> CP-SAT model -> solution with decisions, reasons and provenance."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from importlib.metadata import version

from allocopt.diagnose import diagnostics, share_shortfalls
from allocopt.errors import AllocoptError, InfeasibleError
from allocopt.files import sha256_of
from allocopt.model import AllocationModel, Progress
from allocopt.options import SolveOptions
from allocopt.outcome import metrics, proposal_results
from allocopt.round import Round
from allocopt.solution import ObjectiveOut, Provenance, Solution, SolverOut, Timing
from allocopt.terms import OBJECTIVE_SCALE, derive


def solve(
    rnd: Round,
    options: SolveOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Solution:
    """Solve a round under the merit objective.

    Raises ``InfeasibleError`` (with the rules that cannot hold and by how much)
    when no allocation satisfies every rule, and ``AllocoptError`` when the
    limits stop the search before any allocation is found.
    """
    started = time.perf_counter()
    options = options or SolveOptions()
    rnd = rnd.canonical()
    terms = derive(rnd)
    errors = [d.message for d in diagnostics(terms) if d.level == "error"]
    if errors:
        raise InfeasibleError("the round's rules cannot all hold:\n" + "\n".join(f"- {e}" for e in errors))
    model = AllocationModel(terms)
    model.maximise_merit()
    raw = model.solve(options, on_progress)
    if raw.status == "infeasible":
        found = share_shortfalls(terms, options) or [
            "the share minimums cannot all hold together with the capacities and caps; "
            "lower a min_share or add capacity"
        ]
        raise InfeasibleError("the round's rules cannot all hold:\n" + "\n".join(f"- {f}" for f in found))
    if raw.objective is None or raw.bound is None:
        raise AllocoptError(
            f"no allocation was found before the solve stopped ({raw.stop_reason.replace('_', ' ')}); "
            "raise --work-limit or --time-limit"
        )
    optimal = raw.status == "optimal"
    gap = (raw.bound - raw.objective) / max(1, abs(raw.bound))
    results = proposal_results(terms, raw.units, optimal, gap)
    scale = OBJECTIVE_SCALE[rnd.policy.merit.value]
    return Solution(
        round_id=rnd.id,
        round_name=rnd.name,
        objective=ObjectiveOut(
            kind="merit",
            value_basis=rnd.policy.merit.value,
            scale=scale,
            scaled=raw.objective,
            value=round(raw.objective / scale, 6),
            best_bound_scaled=raw.bound,
            gap=round(gap, 9),
        ),
        proposals=results,
        metrics=metrics(terms, results),
        solver=SolverOut(
            status="optimal" if optimal else "feasible",
            stop_reason=raw.stop_reason,
            deterministic_seconds=round(raw.deterministic_seconds, 3),
            options_considered=raw.num_options,
        ),
        timing=Timing(
            solve_seconds=round(raw.wall_seconds, 3),
            total_seconds=round(time.perf_counter() - started, 3),
        ),
        provenance=Provenance(
            input_sha256=sha256_of(rnd),
            allocopt_version=version("allocopt"),
            ortools_version=version("ortools"),
            python_version=platform.python_version(),
            options=options.model_dump(mode="json"),
            seed=options.seed,
        ),
        input=rnd,
    )
