"""The CP-SAT model of a round: the only module that imports OR-Tools.

Variables, one pair per award option (proposal p on machine m):
    x[o] in {0, 1}   the proposal is funded on this machine
    u[o] in N        award units given, min_units * x <= u <= max_units * x
Rules:
    at most one machine per proposal          sum_m x[p, m] <= 1
    machine capacity                          sum_p u * unit <= gpu_hours
    commercial cap per machine                sum_{p commercial} u * unit <= cap
    share bounds per group (reference hours)  min <= sum_{p in g} u * e*u_m <= max
Objective 'merit': maximise sum_o coef[o] * u[o] (see terms.py for coef).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ortools.sat.python import cp_model

from allocopt.options import SolveOptions
from allocopt.terms import Option, Terms

OptionKey = tuple[str, str]  # (proposal id, machine id)


@dataclass(frozen=True)
class Progress:
    """A new incumbent, as the solver reports it."""

    objective: int
    bound: int
    seconds: float


@dataclass
class RawResult:
    """What came out of the solver, before it is turned into a ``Solution``."""

    status: str  # optimal | feasible | infeasible | unknown
    stop_reason: str  # finished | work_limit | time_limit | interrupted
    units: dict[OptionKey, int] = field(default_factory=dict)
    objective: int | None = None
    bound: int | None = None
    wall_seconds: float = 0.0
    deterministic_seconds: float = 0.0
    num_options: int = 0


class AllocationModel:
    """Builds the CP-SAT model for a round's terms; ``solve`` runs it."""

    def __init__(self, terms: Terms, *, share_minimums: bool = True) -> None:
        self.terms = terms
        self.model = cp_model.CpModel()
        self._x: dict[OptionKey, Any] = {}
        self._u: dict[OptionKey, Any] = {}
        self._add_variables()
        self._at_most_one_machine()
        self._machine_capacity()
        self._commercial_cap()
        self._share_bounds(share_minimums)

    # -- variables and rules -------------------------------------------------

    def _add_variables(self) -> None:
        for o in self.terms.options:
            key = (o.proposal_id, o.machine_id)
            x = self.model.new_bool_var(f"x[{o.proposal_id},{o.machine_id}]")
            u = self.model.new_int_var(0, o.max_units, f"u[{o.proposal_id},{o.machine_id}]")
            self.model.add(u >= o.min_units * x)
            self.model.add(u <= o.max_units * x)
            self._x[key], self._u[key] = x, u

    def _at_most_one_machine(self) -> None:
        """A proposal is funded on one machine at most."""
        for assessment in self.terms.assessments.values():
            xs = [self._x[(o.proposal_id, o.machine_id)] for o in assessment.options]
            if len(xs) > 1:
                self.model.add_at_most_one(xs)

    def _machine_capacity(self) -> None:
        """Awards on a machine fit in the hours it gives to the round."""
        for m in self.terms.round.machines:
            units = self._units_on(m.id)
            if units:
                self.model.add(sum(units) <= m.gpu_hours // m.award_unit)

    def _commercial_cap(self) -> None:
        """Commercial awards on a machine stay within its commercial cap."""
        for m in self.terms.round.machines:
            units = self._units_on(m.id, commercial_only=True)
            if units:
                self.model.add(sum(units) <= self.terms.commercial_cap_hours[m.id] // m.award_unit)

    def _share_bounds(self, with_minimums: bool) -> None:
        """Each share group's reference hours stay within its bounds."""
        scale = _common_denominator(o.ref_per_unit for o in self.terms.options)
        for group in self.terms.groups.values():
            terms = [
                (int(o.ref_per_unit * scale), self._u[(o.proposal_id, o.machine_id)])
                for o in self.terms.options
                if self.terms.assessments[o.proposal_id].group_id == group.group_id
            ]
            expr = sum(c * u for c, u in terms)
            if with_minimums and group.min_ref > 0:
                if not terms:
                    self.model.add_bool_or([])  # no member can be funded: the minimum cannot hold
                else:
                    self.model.add(expr >= math.ceil(group.min_ref * scale))
            if terms and group.max_ref < self.terms.total_ref:
                self.model.add(expr <= math.floor(group.max_ref * scale))

    def _units_on(self, machine_id: str, commercial_only: bool = False) -> list[Any]:
        return [
            self._u[(o.proposal_id, o.machine_id)]
            for o in self.terms.options
            if o.machine_id == machine_id
            and (not commercial_only or self.terms.assessments[o.proposal_id].commercial)
        ]

    # -- objectives ----------------------------------------------------------

    def maximise_merit(self) -> None:
        """Objective 'merit': the sum of every award unit's scaled merit value."""
        self.model.maximize(sum(o.coef * self._u[(o.proposal_id, o.machine_id)] for o in self.terms.options))

    def maximise_group_hours(self, group_id: str) -> Fraction:
        """Objective used to diagnose a share minimum: the group's reference hours.

        Returns the scale that turns the objective back into reference hours.
        """
        scale = _common_denominator(o.ref_per_unit for o in self.terms.options)
        members = [
            o for o in self.terms.options if self.terms.assessments[o.proposal_id].group_id == group_id
        ]
        self.model.maximize(
            sum(int(o.ref_per_unit * scale) * self._u[(o.proposal_id, o.machine_id)] for o in members)
        )
        return Fraction(1, scale)

    def hint(self, units: dict[OptionKey, int]) -> None:
        """Start the search from a known allocation (options not named get 0)."""
        for key, u in self._u.items():
            given = units.get(key, 0)
            self.model.add_hint(u, given)
            self.model.add_hint(self._x[key], 1 if given > 0 else 0)

    # -- solving -------------------------------------------------------------

    def solve(
        self, options: SolveOptions, on_progress: Callable[[Progress], None] | None = None
    ) -> RawResult:
        """Run CP-SAT with deterministic settings; Ctrl-C stops it with the best found."""
        solver = cp_model.CpSolver()
        params = solver.parameters
        params.num_workers = options.workers
        params.interleave_search = options.workers > 1  # deterministic with several workers
        # The LP relaxation of this model is within a fraction of a percent of the optimum:
        # full linearisation lets CP-SAT use it for the bound and the search.
        params.linearization_level = 2
        params.random_seed = options.seed
        params.max_deterministic_time = options.work_limit
        if options.time_limit is not None:
            params.max_time_in_seconds = options.time_limit
        # CP-SAT catches Ctrl-C itself (catch_sigint_signal) and stops with its best solution.
        status = solver.solve(self.model, _Incumbents(on_progress))
        result = RawResult(
            status=_STATUS.get(status, "unknown"),
            stop_reason="finished",
            wall_seconds=solver.wall_time,
            deterministic_seconds=solver.deterministic_time,
            num_options=len(self.terms.options),
        )
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            result.units = {key: solver.value(u) for key, u in self._u.items()}
            result.objective = round(solver.objective_value)
            result.bound = math.floor(solver.best_objective_bound + 1e-6)
            if status == cp_model.OPTIMAL:
                result.bound = result.objective
        if status not in (cp_model.OPTIMAL, cp_model.INFEASIBLE):
            if options.time_limit is not None and solver.wall_time >= options.time_limit * 0.99:
                result.stop_reason = "time_limit"
            elif solver.deterministic_time >= options.work_limit * 0.99:
                result.stop_reason = "work_limit"
            else:  # neither limit was reached: only Ctrl-C stops CP-SAT early
                result.stop_reason = "interrupted"
        return result


_STATUS = {
    cp_model.OPTIMAL: "optimal",
    cp_model.FEASIBLE: "feasible",
    cp_model.INFEASIBLE: "infeasible",
    cp_model.MODEL_INVALID: "invalid",
}


class _Incumbents(cp_model.CpSolverSolutionCallback):
    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        super().__init__()
        self._on_progress = on_progress
        self._start = time.perf_counter()

    def on_solution_callback(self) -> None:
        if self._on_progress is not None:
            self._on_progress(
                Progress(
                    objective=round(self.objective_value),
                    bound=math.floor(self.best_objective_bound + 1e-6),
                    seconds=time.perf_counter() - self._start,
                )
            )


def _common_denominator(values: Iterable[Fraction]) -> int:
    scale = 1
    for v in values:
        scale = math.lcm(scale, v.denominator)
    return scale


def option_key(o: Option) -> OptionKey:
    return (o.proposal_id, o.machine_id)
