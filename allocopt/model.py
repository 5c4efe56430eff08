"""The CP-SAT model of a round: the only module that imports OR-Tools.

Variables, per proposal p and per award option o = (p, machine):
    y[p] in {0, 1}   p is funded
    x[o] in {0, 1}   p is funded on this machine
    u[o] in N        award units given on this machine
Rules (README, "What best means" and "The full policy language"):
    single-machine award    sum_o x[o] = y[p];  min_units x <= u <= max_units x
    split award (k > 1)     x[o] <= y[p];  sum_o x[o] <= k;  x <= u <= max_units x;
                            sum_o g u >= y[p];  sum_o f u <= 1
    machine capacity        sum u * unit <= gpu_hours
    commercial cap          sum_{p commercial} u * unit <= cap
    shares                  min <= group reference hours <= max (soft: with paid deviation)
    pins, exclusive groups, awards per organisation
Objectives: 'merit' maximises sum coef u - penalties; the rank walk (rank.py)
uses ``require`` / ``maximise_fraction`` on the same model.

A neighbourhood model (``free`` and ``around``) decides only the free proposals; every
other proposal keeps its award in ``around``, which enters each rule as a constant. It is
how the neighbourhood search (improve.py) re-solves part of a large round exactly.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ortools.sat.python import cp_model

from allocopt.errors import AllocoptError
from allocopt.options import SolveOptions
from allocopt.terms import Assessment, Option, Terms

OptionKey = tuple[str, str]  # (proposal id, machine id)


@dataclass(frozen=True)
class Progress:
    """A new incumbent, as the solver reports it."""

    objective: int
    bound: int
    seconds: float
    scale: int = 1  # points of one unit of merit (the round's objective scale, once solve knows it)


@dataclass
class RawResult:
    """What came out of the solver, before it is turned into a ``Solution``."""

    status: str  # optimal | feasible | infeasible | unknown
    stop_reason: str  # finished | gap_limit | work_limit | time_limit | interrupted
    units: dict[OptionKey, int] = field(default_factory=dict)
    objective: int | None = None
    bound: int | None = None
    wall_seconds: float = 0.0
    deterministic_seconds: float = 0.0
    num_options: int = 0  # every option of the proposals the model decides (see decided_options)


class AllocationModel:
    """Builds the CP-SAT model for a round's terms; ``solve`` runs it.

    ``soft_shares=False`` makes every share bound hard (the rank objective);
    ``share_minimums=False`` drops the minimums (to diagnose an infeasible one);
    ``named_rules=True`` guards each capacity, commercial cap, share bound, pin,
    exclusive group and organisation cap with its own literal in ``rules``, so
    an infeasible round can be explained by the rules that conflict.
    """

    def __init__(
        self,
        terms: Terms,
        *,
        soft_shares: bool = True,
        share_minimums: bool = True,
        named_rules: bool = False,
        free: Collection[str] | None = None,
        around: dict[OptionKey, int] | None = None,
    ) -> None:
        self.terms = terms
        self.model = cp_model.CpModel()
        # The proposals this model decides, and their options: all, or a neighbourhood's.
        chosen = set(free) if free is not None else None
        self.assessments = [
            a for a in terms.assessments.values() if a.options and (chosen is None or a.proposal.id in chosen)
        ]
        self._fixed = _Fixed.of(terms, around or {}, chosen)
        # The units the fixed awards leave free on each machine, and under its commercial cap.
        self._room = {
            m.id: m.gpu_hours // m.award_unit - self._fixed.machine_units[m.id] for m in terms.round.machines
        }
        self._room_commercial = {
            m.id: min(
                self._room[m.id],
                terms.commercial_cap_hours[m.id] // m.award_unit - self._fixed.commercial_units[m.id],
            )
            for m in terms.round.machines
        }
        self.usable = {
            a.proposal.id: a.options if chosen is None else self._fitting(a) for a in self.assessments
        }
        self.options = [o for a in self.assessments for o in self.usable[a.proposal.id]]
        # Every option of the proposals decided, those that cannot fit included: the search's
        # work estimates (improve.py) were measured against this count.
        self.decided_options = sum(len(a.options) for a in self.assessments)
        self._share_scale = terms.share_scale
        self.rules: dict[tuple[str, str], Any] = {}
        self._named = named_rules
        self.y: dict[str, Any] = {}
        self.x: dict[OptionKey, Any] = {}
        self.u: dict[OptionKey, Any] = {}
        self._penalties: list[tuple[Any, int]] = []  # (deviation variable, penalty per unit)
        self._deviations: dict[str, tuple[Any, Any]] = {}  # soft groups' shortfall and excess
        self._on_machine: dict[str, list[Any]] = {m.id: [] for m in terms.round.machines}
        self._add_variables()
        self._award_shape()
        self._machine_capacity()
        self._commercial_cap()
        self._share_bounds(soft_shares, share_minimums)
        self._pins()
        self._exclusive_groups()
        self._awards_per_organisation()

    def _fitting(self, a: Assessment) -> tuple[Option, ...]:
        """A neighbourhood proposal's options that can hold an award: one whose least award
        (its minimum, or one unit of a split award) exceeds the room the fixed awards leave on
        its machine, or under the machine's commercial cap, can only be 0. Left out, CP-SAT
        need not presolve it away (at 10,000 x 30 most of a neighbourhood's options)."""
        room = self._room_commercial if a.commercial else self._room
        return tuple(o for o in a.options if (1 if a.split else o.min_units) <= room[o.machine_id])

    # -- variables and rules -------------------------------------------------

    def _add_variables(self) -> None:
        for a in self.assessments:
            self.y[a.proposal.id] = self.model.new_bool_var(f"y[{a.proposal.id}]")
            for o in self.usable[a.proposal.id]:
                self.x[o.key] = self.model.new_bool_var(f"x[{o.proposal_id},{o.machine_id}]")
                self.u[o.key] = self.model.new_int_var(0, o.max_units, f"u[{o.proposal_id},{o.machine_id}]")
                self._on_machine[o.machine_id].append(o)

    def _award_shape(self) -> None:
        """Single-machine awards: one option within its unit range. Split: the total's range."""
        for a in self.assessments:
            y = self.y[a.proposal.id]
            options = self.usable[a.proposal.id]
            xs = [self.x[o.key] for o in options]
            if not a.split:
                self.model.add(sum(xs) == y)
                for o in options:
                    self.model.add(self.u[o.key] >= o.min_units * self.x[o.key])
                    self.model.add(self.u[o.key] <= o.max_units * self.x[o.key])
                continue
            self.model.add(sum(xs) <= a.proposal.max_machines)
            self.model.add(sum(xs) >= y)
            for o in options:
                self.model.add(self.x[o.key] <= y)
                self.model.add(self.u[o.key] >= self.x[o.key])
                self.model.add(self.u[o.key] <= o.max_units * self.x[o.key])
            f_scale = _common_denominator(o.f for o in options)
            g_scale = _common_denominator(o.g for o in options)
            self.model.add(sum(int(o.f * f_scale) * self.u[o.key] for o in options) <= f_scale)
            self.model.add(sum(int(o.g * g_scale) * self.u[o.key] for o in options) >= g_scale * y)

    def _machine_capacity(self) -> None:
        """Awards on a machine fit in the hours it gives to the round."""
        for m in self.terms.round.machines:
            units = self._units_on(m.id)
            if units:
                cap = m.gpu_hours // m.award_unit - self._fixed.machine_units[m.id]
                self._rule("capacity", m.id, self.model.add(sum(units) <= cap))

    def _commercial_cap(self) -> None:
        """Commercial awards on a machine stay within its commercial cap."""
        for m in self.terms.round.machines:
            units = self._units_on(m.id, commercial_only=True)
            if units:
                cap = (
                    self.terms.commercial_cap_hours[m.id] // m.award_unit - self._fixed.commercial_units[m.id]
                )
                self._rule("commercial_cap", m.id, self.model.add(sum(units) <= cap))

    def _share_bounds(self, soft_shares: bool, with_minimums: bool) -> None:
        """Each group's reference hours within its bounds (soft bounds: deviation is paid for)."""
        scale = self._share_scale
        awarded = self._reference_hours(self.options) + self._fixed.awarded_ref
        ceiling = math.ceil(self.terms.total_ref) + 1
        members_of: dict[str, list[Any]] = {g: [] for g in self.terms.groups}
        for o in self.options:
            group = self.terms.assessments[o.proposal_id].group_id
            if group is not None:
                members_of[group].append(o)
        for g in self.terms.groups.values():
            held = self._reference_hours(members_of[g.group_id]) + self._fixed.group_ref[g.group_id]
            soft = soft_shares and g.soft
            short = self.model.new_int_var(0, ceiling, f"short[{g.group_id}]") if soft else 0
            over = self.model.new_int_var(0, ceiling, f"over[{g.group_id}]") if soft else 0
            if soft and g.penalty is not None:
                self._penalties += [(short, g.penalty), (over, g.penalty)]
                self._deviations[g.group_id] = (short, over)
            if self.terms.share_basis == "capacity":
                if with_minimums and g.min_ref > 0:
                    self._rule(
                        "share_min",
                        g.group_id,
                        self.model.add(held + scale * short >= math.ceil(g.min_ref * scale)),
                    )
                if g.max_ref < self.terms.total_ref:
                    self._rule(
                        "share_max",
                        g.group_id,
                        self.model.add(held - scale * over <= math.floor(g.max_ref * scale)),
                    )
            else:
                lo, hi = g.min_share, g.max_share
                if with_minimums and lo > 0:
                    self._rule(
                        "share_min",
                        g.group_id,
                        self.model.add(
                            lo.denominator * held + lo.denominator * scale * short >= lo.numerator * awarded
                        ),
                    )
                if hi < 1:
                    self._rule(
                        "share_max",
                        g.group_id,
                        self.model.add(
                            hi.denominator * held - hi.denominator * scale * over <= hi.numerator * awarded
                        ),
                    )

    def _pins(self) -> None:
        """Committee pins: must fund (on a machine, with an exact award) or must not fund."""
        for a in self.terms.assessments.values():  # a proposal with no option cannot be funded
            if not a.options and a.pin is not None and a.pin.action == "fund":
                self._rule("pin", a.proposal.id, self.model.add_bool_or([]))
        for a in self.assessments:
            pin = a.pin
            if pin is None:
                continue
            pid = a.proposal.id
            if pin.action == "exclude":
                self._rule("pin", pid, self.model.add(self.y[pid] == 0))
                continue
            self._rule("pin", pid, self.model.add(self.y[pid] == 1))
            if pin.machine is not None:
                # The whole award on the pinned machine (a split proposal too).
                key = (pid, pin.machine)
                for o in self.usable[pid]:
                    self._rule("pin", pid, self.model.add(self.x[o.key] == int(o.key == key)))
                if pin.gpu_hours is not None:
                    unit = self.terms.round.machine(pin.machine).award_unit
                    self._rule("pin", pid, self.model.add(self.u[key] == pin.gpu_hours // unit))

    def _exclusive_groups(self) -> None:
        """At most one proposal of each exclusive group is funded."""
        for group in self.terms.round.policy.exclusive:
            ys = [self.y[pid] for pid in group.proposals if pid in self.y]
            taken = sum(1 for pid in group.proposals if pid in self._fixed.funded)
            if len(ys) + taken > 1:
                self._rule("exclusive", group.id, self.model.add(sum(ys) <= 1 - taken))

    def _awards_per_organisation(self) -> None:
        """At most k funded proposals per applicant organisation."""
        k = self.terms.round.policy.max_awards_per_organisation
        if k is None:
            return
        by_org: dict[str, list[Any]] = {}
        for a in self.assessments:
            by_org.setdefault(a.organisation, []).append(self.y[a.proposal.id])
        for org, ys in by_org.items():
            left = k - self._fixed.per_organisation.get(org, 0)
            if len(ys) > left:
                self._rule("organisation_cap", org, self.model.add(sum(ys) <= left))

    def _rule(self, family: str, ident: str, constraint: Any) -> None:
        """In named mode, make a constraint hold only while its rule's literal is true."""
        if self._named:
            literal = self.rules.get((family, ident))
            if literal is None:
                literal = self.rules[(family, ident)] = self.model.new_bool_var(f"rule[{family}:{ident}]")
            constraint.only_enforce_if(literal)

    def _units_on(self, machine_id: str, commercial_only: bool = False) -> list[Any]:
        return [
            self.u[o.key]
            for o in self._on_machine[machine_id]
            if not commercial_only or self.terms.assessments[o.proposal_id].commercial
        ]

    def _reference_hours(self, options: Iterable[Any]) -> Any:
        """Capacity used by these options in reference GPU-hours, times the share scale."""
        chosen = list(options)
        return cp_model.LinearExpr.weighted_sum(
            [self.u[o.key] for o in chosen], [self.terms.scaled_ref[o.key] for o in chosen]
        )

    # -- objectives and extra constraints ------------------------------------

    def merit_expr(self) -> Any:
        """Every award unit's scaled merit, less soft-share penalties (the fixed awards' merit
        is a constant in a neighbourhood model, so objectives compare with the whole model's)."""
        free = cp_model.LinearExpr.weighted_sum(
            [self.u[o.key] for o in self.options], [o.coef for o in self.options]
        )
        return free + self._fixed.merit - sum(w * v for v, w in self._penalties)

    def maximise_merit(self) -> None:
        """Objective 'merit': ``merit_expr()`` maximised, written straight into the model as
        ``maximize`` would write it (each variable once, by index, no zero coefficient, negated
        with scaling factor -1). Flattening the expression in Python took a tenth of a
        neighbourhood's time in a round of 10,000 proposals."""
        coefficients: dict[int, int] = {}
        for o in self.options:
            index = self.u[o.key].index
            coefficients[index] = coefficients.get(index, 0) + o.coef
        for variable, weight in self._penalties:
            coefficients[variable.index] = coefficients.get(variable.index, 0) - weight
        self.model.clear_objective()
        objective = self.model.proto.objective
        terms = sorted((i, c) for i, c in coefficients.items() if c)
        objective.vars.extend([i for i, _ in terms])
        objective.coeffs.extend([-c for _, c in terms])
        objective.scaling_factor = -1.0
        objective.offset = -self._fixed.merit

    def stay_close(self, previous: dict[OptionKey, int], min_merit: int) -> None:
        """Among allocations with merit >= min_merit, the one closest to a previous allocation:
        fewest changed decisions (funded or not, and on which machines), then fewest reference
        GPU-hours moved. Options the previous allocation does not name count as 0 units there."""
        self.model.add(self.merit_expr() >= min_merit)
        changed, moved = [], []
        for a in self.assessments:
            c = self.model.new_bool_var(f"changed[{a.proposal.id}]")
            for o in self.usable[a.proposal.id]:
                before = previous.get(o.key, 0)
                self.model.add(c >= self.x[o.key] - int(before > 0))
                self.model.add(c >= int(before > 0) - self.x[o.key])
                d = self.model.new_int_var(
                    0, max(o.max_units, before), f"moved[{o.proposal_id},{o.machine_id}]"
                )
                self.model.add(d >= self.u[o.key] - before)
                self.model.add(d >= before - self.u[o.key])
                moved.append(self.terms.scaled_ref[o.key] * d)
            changed.append(c)
        # One changed decision weighs more than any number of moved hours.
        most_moved = sum(
            self.terms.scaled_ref[o.key] * max(o.max_units, previous.get(o.key, 0)) for o in self.options
        )
        self.model.minimize((most_moved + 1) * sum(changed) + sum(moved))

    def maximise_group_hours(self, group_id: str) -> Fraction:
        """Maximise one group's reference hours (to diagnose a share minimum).

        Returns the factor that turns the objective back into reference hours.
        """
        members = [o for o in self.options if self.terms.assessments[o.proposal_id].group_id == group_id]
        self.model.maximize(self._reference_hours(members))
        return Fraction(1, self._share_scale)

    def fraction_expr(self, a: Assessment) -> tuple[Any, int]:
        """The proposal's fraction of its request, as an integer expression and its scale."""
        options = self.usable[a.proposal.id]
        scale = _common_denominator(o.f for o in options)
        return sum(int(o.f * scale) * self.u[o.key] for o in options), scale

    def require_funded(self, proposal_id: str, funded: bool) -> None:
        """Fix whether a proposal is funded (a rank decision)."""
        self.model.add(self.y[proposal_id] == int(funded))

    def require_fraction(self, a: Assessment, at_least: int) -> None:
        """Keep a proposal's scaled fraction of request at least this high (a rank decision)."""
        expr, _ = self.fraction_expr(a)
        self.model.add(expr >= at_least)

    def hint_deviations(self, deviations: dict[str, tuple[int, int]]) -> None:
        """Hint the soft groups' shortfall and excess that go with a hinted allocation, so the
        hint is complete (CP-SAT then takes it as a first solution at once)."""
        for group_id, (short, over) in self._deviations.items():
            if group_id in deviations:
                self.model.add_hint(short, deviations[group_id][0])
                self.model.add_hint(over, deviations[group_id][1])

    def hint(self, units: dict[OptionKey, int]) -> None:
        """Start the search from a known allocation (options not named get 0)."""
        self.model.clear_hints()
        funded = {pid for (pid, _), v in units.items() if v > 0}
        # Written in bulk, the same hint add_hint would write: one call per variable cost as much
        # as a small neighbourhood's search in a round of 10,000 proposals.
        variables: list[int] = []
        values: list[int] = []
        for key, u in self.u.items():
            given = units.get(key, 0)
            variables += (u.index, self.x[key].index)
            values += (given, 1 if given > 0 else 0)
        for pid, y in self.y.items():
            variables.append(y.index)
            values.append(1 if pid in funded else 0)
        hint = self.model.proto.solution_hint
        hint.vars.extend(variables)
        hint.values.extend(values)

    # -- explaining infeasibility ---------------------------------------------

    def check_rules(
        self, options: SolveOptions, enforced: list[tuple[str, str]]
    ) -> tuple[str, list[tuple[str, str]]]:
        """Can every enforced named rule hold at once (the others dropped)? Returns the status
        ('feasible', 'infeasible' or 'unknown') and, when infeasible, rules that suffice for it."""
        self.model.clear_objective()
        solver, status = self._solve_assuming(options, enforced)
        if status == cp_model.INFEASIBLE:
            by_index = {lit.index: rule for rule, lit in self.rules.items()}
            return "infeasible", [by_index[i] for i in solver.sufficient_assumptions_for_infeasibility()]
        return ("feasible" if status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else "unknown"), []

    def usage(self, family: str, ident: str) -> tuple[Any, Fraction]:
        """What a rule limits, as an expression and the factor to hours: a group's reference
        GPU-hours, a machine's GPU-hours, or its commercial GPU-hours."""
        if family in ("share_min", "share_max"):
            members = [o for o in self.options if self.terms.assessments[o.proposal_id].group_id == ident]
            return self._reference_hours(members), Fraction(1, self._share_scale)
        unit = self.terms.round.machine(ident).award_unit
        return sum(self._units_on(ident, commercial_only=family == "commercial_cap")), Fraction(unit)

    def extreme(
        self, options: SolveOptions, enforced: list[tuple[str, str]], expr: Any, *, maximise: bool
    ) -> int | None:
        """The largest (or smallest) value of expr with the enforced named rules holding."""
        if maximise:
            self.model.maximize(expr)
        else:
            self.model.minimize(expr)
        solver, status = self._solve_assuming(options, enforced)
        self.model.clear_objective()
        return round(solver.objective_value) if status == cp_model.OPTIMAL else None

    def _solve_assuming(self, options: SolveOptions, enforced: list[tuple[str, str]]) -> tuple[Any, Any]:
        """Solve with the enforced named rules as assumptions (one worker: cores need it)."""
        self.model.clear_assumptions()
        self.model.add_assumptions([self.rules[r] for r in enforced])
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = options.seed
        solver.parameters.max_deterministic_time = options.work_limit
        status, interrupted = _run(solver, self.model)
        self.model.clear_assumptions()
        if interrupted:
            raise KeyboardInterrupt  # a conflict analysis cut short is no analysis
        return solver, status

    # -- solving -------------------------------------------------------------

    def solve(
        self,
        options: SolveOptions,
        on_progress: Callable[[Progress], None] | None = None,
        *,
        first_solution_only: bool = False,
        light_cuts: bool = False,
        light_presolve: bool = False,
    ) -> RawResult:
        """Run CP-SAT with deterministic settings; Ctrl-C stops it with the best found.
        ``first_solution_only`` (after a Ctrl-C elsewhere) stops at the first allocation.
        ``light_cuts`` is for the many small searches: the rank walk's checks and the
        neighbourhoods (see below); ``light_presolve`` for the rank walk's checks."""
        solver = cp_model.CpSolver()
        params = solver.parameters
        params.stop_after_first_solution = first_solution_only
        params.num_workers = options.workers
        params.interleave_search = options.workers > 1  # deterministic with several workers
        # The LP relaxation of this model is within a fraction of a percent of the optimum:
        # full linearisation lets CP-SAT use it for the bound and the search.
        params.linearization_level = 2
        params.random_seed = options.seed
        # A hint (the warm start) is complete and feasible: CP-SAT takes it as its first solution
        # in presolve; searching along it again only costs time.
        params.hint_conflict_limit = 0
        if light_cuts:
            # Short searches whose own bound is close already (a rank check is small, and a raise
            # check has its step's LP bound as a constraint; a neighbourhood keeps most awards
            # fixed): CP-SAT's cut rounds took about half of a rank check, and adding the
            # relaxation whole saves the lazy rounds. Measured: the rank walks at 300 x 8 decide
            # the same fractions in 40-50 % less time; the merit neighbourhoods settle sooner and
            # mostly end higher.
            params.cut_level = 0
            params.add_lp_constraints_lazily = False
        if light_presolve:
            # A rank check of a few hundred options spent most of its wall time in presolve: one
            # pass instead of several, and no symmetry detection (the walk's fixed fractions
            # leave little), took a quarter to a third off the checks at 300 x 8 and on the
            # shipped round, the same fractions.
            params.max_presolve_iterations = 1
            params.symmetry_level = 0
        params.max_deterministic_time = options.work_limit
        params.relative_gap_limit = options.gap_limit
        if options.time_limit is not None:
            params.max_time_in_seconds = options.time_limit
        status, interrupted = _run(solver, self.model, _Incumbents(on_progress))
        result = RawResult(
            status=_STATUS.get(status, "unknown"),
            stop_reason="finished",
            wall_seconds=solver.wall_time,
            deterministic_seconds=solver.deterministic_time,
            num_options=self.decided_options,
        )
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            result.units = {key: solver.value(u) for key, u in self.u.items()}
            if self.model.has_objective():
                result.objective = round(solver.objective_value)
                result.bound = math.floor(solver.best_objective_bound + 1e-6)
                if status == cp_model.OPTIMAL and result.bound > result.objective:
                    # CP-SAT calls a solve stopped by the gap limit optimal; we say what was proven.
                    result.status, result.stop_reason = "feasible", "gap_limit"
        if status == cp_model.MODEL_INVALID:
            why = (self.model.validate() or "invalid model").splitlines()[0]  # not the whole model
            raise AllocoptError(
                f"the solver cannot represent this round ({why}); "
                "a number is far too large for exact integer arithmetic (a soft-share penalty, or "
                "hours in the billions): lower it"
            )
        if status not in (cp_model.OPTIMAL, cp_model.INFEASIBLE):
            if interrupted:
                result.stop_reason = "interrupted"
            elif options.time_limit is not None and solver.wall_time >= options.time_limit * 0.99:
                result.stop_reason = "time_limit"
            elif solver.deterministic_time >= options.work_limit * 0.99:
                result.stop_reason = "work_limit"
            else:  # no limit was reached: the first solution only, after a Ctrl-C elsewhere
                result.stop_reason = "interrupted"
        return result


def _run(
    solver: cp_model.CpSolver,
    model: cp_model.CpModel,
    callback: cp_model.CpSolverSolutionCallback | None = None,
) -> tuple[Any, bool]:
    """Solve, with Ctrl-C stopping the search (its best solution kept): the status, and whether
    Ctrl-C stopped it. CP-SAT's own Ctrl-C handling is off: it leaves the process's handler at the
    system default afterwards, so a later Ctrl-C would end the process silently. Instead the
    search runs in a thread while the main thread, where Python handles Ctrl-C, waits for it."""
    solver.parameters.catch_sigint_signal = False
    search = _searcher().submit(solver.solve, model, callback)
    interrupted = False
    while True:
        try:
            return search.result(timeout=0.25), interrupted
        except concurrent.futures.TimeoutError:
            continue
        except KeyboardInterrupt:
            interrupted = True
            solver.stop_search()


_SEARCHER: dict[int, concurrent.futures.ThreadPoolExecutor] = {}


def _searcher() -> concurrent.futures.ThreadPoolExecutor:
    """One long-lived search thread per process (a forked worker makes its own): a new thread
    per search cost about 10 % more time on a rank walk's many short searches (measured)."""
    pid = os.getpid()
    if pid not in _SEARCHER:
        _SEARCHER[pid] = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cp-sat")
    return _SEARCHER[pid]


@dataclass(frozen=True)
class _Fixed:
    """What the proposals a neighbourhood model does not decide hold, as constants per rule."""

    machine_units: dict[str, int]
    commercial_units: dict[str, int]
    group_ref: dict[str, int]  # scaled reference hours, as the model counts them
    awarded_ref: int
    funded: frozenset[str]
    per_organisation: dict[str, int]
    merit: int

    @classmethod
    def of(cls, terms: Terms, around: dict[OptionKey, int], free: set[str] | None) -> _Fixed:
        machine_units = {m.id: 0 for m in terms.round.machines}
        commercial_units = dict(machine_units)
        group_ref = {g: 0 for g in terms.groups}
        awarded, merit = 0, 0
        funded: set[str] = set()
        per_organisation: dict[str, int] = {}
        decided = free or set()
        for (pid, machine_id), u in around.items() if free is not None else ():
            if u <= 0 or pid in decided:  # no award, or a free proposal's
                continue
            o = terms.option_of.get((pid, machine_id))
            if o is None:  # not an option of this round: nothing to hold
                continue
            a = terms.assessments[pid]
            machine_units[machine_id] += u
            if a.commercial:
                commercial_units[machine_id] += u
            ref = terms.scaled_ref[o.key] * u
            awarded += ref
            if a.group_id is not None:
                group_ref[a.group_id] += ref
            merit += o.coef * u
            if pid not in funded:
                funded.add(pid)
                per_organisation[a.organisation] = per_organisation.get(a.organisation, 0) + 1
        return cls(
            machine_units, commercial_units, group_ref, awarded, frozenset(funded), per_organisation, merit
        )


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

    def on_solution_callback(self) -> None:
        if self._on_progress is not None:
            self._on_progress(
                Progress(
                    objective=round(self.objective_value),
                    bound=math.floor(self.best_objective_bound + 1e-6),
                    seconds=self.wall_time,
                )
            )


def _common_denominator(values: Iterable[Fraction]) -> int:
    scale = 1
    for v in values:
        scale = math.lcm(scale, v.denominator)
    return scale
