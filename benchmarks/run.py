"""Benchmark allocopt against what a committee would do by hand, and against the LP bound.

For generated rounds (``allocopt.generate.generate_round``) of each size and
seed, this prints one table row with:

- allocopt: the scaled merit objective CP-SAT found, its proven gap, status,
  stop reason, wall seconds of ``solve()`` (terms, model, CP-SAT and building
  the solution) and CP-SAT's deterministic seconds; every solution is checked with
  ``allocopt.verify.verify`` and the run stops if any rule is broken;
- greedy by rank: the hand method. Walk eligible proposals by score, highest
  first (ties by id). Machines are tried in order of reference GPU-hours left,
  most first (ties by machine id). The proposal gets its full request (rounded
  down to award units, and capped by the machine's per-proposal cap) on the
  first machine where that fits every rule (capacity, commercial cap, share
  maximum); if it fits nowhere, it gets the most that fits on any machine if
  that reaches its minimum (the first such machine in the same order on ties);
  else it is skipped;
- greedy by value density: the same, but walking (proposal, machine) options
  by their objective coefficient per award unit, highest first (ties by
  proposal id, machine id), giving each proposal at most one award, the most
  that fits if it reaches its minimum;
- the LP relaxation of allocopt's model (HiGHS via scipy.optimize.linprog):
  u[o] in [0, max_units], x[o] in [0, 1], the same constraints and objective
  coefficients; allocopt's objective as a fraction of that bound.

Generated rounds use only part of the policy language (one machine per
proposal, hard share bounds on capacity, no pins, exclusions or efficiency);
the greedy fills and the LP model exactly those rules, and ``check_supported``
stops the run if a generated round ever uses more.

The greedy fills ignore share minimums (committees check them afterwards);
the "mins" columns say whether they happen to be met. Each round runs in its
own process, so "peak MB" is that round's peak resident memory (generator,
LP and solver together).

    python benchmarks/run.py                     # sizes 100,500,2000, seeds 1,2
    python benchmarks/run.py --quick             # size 100, seed 1
    python benchmarks/run.py --sizes 300 --seeds 7 --work-limit 30
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import cast

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix

from allocopt import warmstart
from allocopt.errors import AllocoptError
from allocopt.generate import generate_round
from allocopt.model import AllocationModel
from allocopt.options import SolveOptions
from allocopt.outcome import metrics, proposal_results
from allocopt.round import Round
from allocopt.solve import solve
from allocopt.terms import Option, Terms, derive
from allocopt.verify import verify

Units = dict[tuple[str, str], int]
TARGETS = {300: 8, 2000: 12, 10000: 30}  # the performance issue's sizes: proposals -> machines
TARGET_GAPS = {300: 1e-4, 2000: 2e-5, 10000: 5e-5}  # the gap each size's target asks for
TARGET_SECONDS = {300: 5.0, 2000: 20.0, 10000: 60.0}  # ... within these wall seconds
TARGET_PEAK_MB = {10000: 2048.0}  # ... and this peak memory
TARGET_SEEDS = {300: [1, 2, 3, 4], 2000: [1, 2, 3, 4], 10000: [1, 2]}  # the README's rounds


@dataclass(frozen=True)
class Row:
    """One round's results, as plain numbers (sent back from the worker process)."""

    proposals: int
    seed: int
    options: int
    status: str
    stop: str
    objective: int | None
    gap: float | None
    wall: float
    det: float
    rank_objective: int
    rank_mins: bool
    density_objective: int
    density_mins: bool
    lp_bound: float | None
    lp_seconds: float
    peak_mb: float
    machines: int = 8
    cpu: float = 0.0  # CPU seconds of solve() (process time, not disturbed by other load)
    highs: HighsResult | None = None
    # Wall seconds of solve() until, at the latest, an allocation was proven within the size's
    # target gap (None: not at all; the default gap limit, 0.001 %, is stricter than every
    # target, so the solve goes on past it).
    to_target: float | None = None
    target_gap: float | None = None
    bound: int | None = None  # allocopt's proven bound (the tighter of the LP's and CP-SAT's)
    value: str = "fraction"
    kind: str = "merit"


# -- greedy fills ----------------------------------------------------------------


class Ledger:
    """What is left per machine, per machine's commercial cap and per share group's maximum."""

    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        rnd = terms.round
        self.left = {m.id: m.gpu_hours // m.award_unit for m in rnd.machines}
        self.commercial_left = {m.id: terms.commercial_cap_hours[m.id] // m.award_unit for m in rnd.machines}
        self.group_room = {g.group_id: g.max_ref for g in terms.groups.values()}
        self.units: Units = {}

    def most(self, o: Option) -> int:
        """The most award units o can get now under every rule (may be below its minimum)."""
        a = self.terms.assessments[o.proposal_id]
        units = min(o.max_units, self.left[o.machine_id])
        if a.commercial:
            units = min(units, self.commercial_left[o.machine_id])
        if a.group_id is not None:
            units = min(units, math.floor(self.group_room[a.group_id] / o.ref_per_unit))
        return max(units, 0)

    def ref_left(self, machine_id: str) -> Fraction:
        m = self.terms.round.machine(machine_id)
        return self.left[machine_id] * m.award_unit * Fraction(str(m.exchange_rate))

    def give(self, o: Option, units: int) -> None:
        a = self.terms.assessments[o.proposal_id]
        assert o.min_units <= units <= self.most(o)
        self.units[(o.proposal_id, o.machine_id)] = units
        self.left[o.machine_id] -= units
        if a.commercial:
            self.commercial_left[o.machine_id] -= units
        if a.group_id is not None:
            self.group_room[a.group_id] -= units * o.ref_per_unit


def greedy_by_rank(terms: Terms) -> Units:
    """The committee's hand method (see the module docstring)."""
    ledger = Ledger(terms)
    eligible = [a for a in terms.assessments.values() if a.eligible]
    for a in sorted(eligible, key=lambda a: (-a.proposal.score, a.proposal.id)):
        ordered = sorted(a.options, key=lambda o: (-ledger.ref_left(o.machine_id), o.machine_id))
        full = next((o for o in ordered if ledger.most(o) >= o.max_units), None)
        if full is not None:
            ledger.give(full, full.max_units)
            continue
        best = max(ordered, key=ledger.most, default=None)  # max keeps the first of equals
        if best is not None and ledger.most(best) >= best.min_units:
            ledger.give(best, ledger.most(best))
    return ledger.units


def greedy_by_density(terms: Terms) -> Units:
    """Options by objective value per award unit, highest first; one award per proposal."""
    ledger = Ledger(terms)
    funded: set[str] = set()
    for o in sorted(terms.options, key=lambda o: (-o.coef, o.proposal_id, o.machine_id)):
        if o.proposal_id in funded:
            continue
        units = ledger.most(o)
        if units >= o.min_units:
            ledger.give(o, units)
            funded.add(o.proposal_id)
    return ledger.units


def objective(terms: Terms, units: Units) -> int:
    return sum(o.coef * units.get((o.proposal_id, o.machine_id), 0) for o in terms.options)


def meets_minimums(terms: Terms, units: Units) -> bool:
    got: dict[str, Fraction] = defaultdict(Fraction)
    for o in terms.options:
        group = terms.assessments[o.proposal_id].group_id
        if group is not None:
            got[group] += units.get((o.proposal_id, o.machine_id), 0) * o.ref_per_unit
    return all(got[g.group_id] >= g.min_ref for g in terms.groups.values())


def check_rules(terms: Terms, units: Units) -> None:
    """Every rule but the share minimums holds (a self-check of the greedy fills)."""
    rnd = terms.round
    used: dict[str, int] = defaultdict(int)
    commercial: dict[str, int] = defaultdict(int)
    group: dict[str, Fraction] = defaultdict(Fraction)
    machines_of: dict[str, int] = defaultdict(int)
    for o in terms.options:
        u = units.get((o.proposal_id, o.machine_id), 0)
        if not u:
            continue
        a = terms.assessments[o.proposal_id]
        assert o.min_units <= u <= o.max_units, (o, u)
        used[o.machine_id] += u * o.unit_hours
        commercial[o.machine_id] += u * o.unit_hours if a.commercial else 0
        group[a.group_id or ""] += u * o.ref_per_unit
        machines_of[o.proposal_id] += 1
    assert all(n == 1 for n in machines_of.values())
    for m in rnd.machines:
        assert used[m.id] <= m.gpu_hours
        assert commercial[m.id] <= terms.commercial_cap_hours[m.id]
    for g in terms.groups.values():
        assert group[g.group_id] <= g.max_ref


# -- LP relaxation ---------------------------------------------------------------


@dataclass
class LinearModel:
    """allocopt's model as matrices: maximise coef . u subject to a_ub [u, x] <= b_ub, bounds."""

    c: np.ndarray  # to minimise (the negated merit coefficients; zeros for x)
    a_ub: csr_matrix
    b_ub: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def linear_model(terms: Terms) -> LinearModel:
    """u[o] in [0, max_units] (columns 0..n-1), x[o] in [0, 1] (columns n..2n-1), every rule
    generated rounds use (see ``check_supported``), the merit coefficients."""
    opts = terms.options
    n = len(opts)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    rhs: list[float] = []

    def add(entries: Iterable[tuple[int, float]], bound: float) -> None:
        r = len(rhs)
        for c, v in entries:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        rhs.append(bound)

    for i, o in enumerate(opts):
        add([(n + i, o.min_units), (i, -1.0)], 0.0)  # min_units * x <= u
        add([(i, 1.0), (n + i, -o.max_units)], 0.0)  # u <= max_units * x
    by_proposal: dict[str, list[int]] = defaultdict(list)
    by_machine: dict[str, list[int]] = defaultdict(list)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(opts):
        by_proposal[o.proposal_id].append(i)
        by_machine[o.machine_id].append(i)
        group = terms.assessments[o.proposal_id].group_id
        if group is not None:
            by_group[group].append(i)
    for idx in by_proposal.values():
        if len(idx) > 1:
            add([(n + i, 1.0) for i in idx], 1.0)  # one machine per proposal
    for m in terms.round.machines:
        on = by_machine.get(m.id, [])
        if on:
            add([(i, 1.0) for i in on], m.gpu_hours // m.award_unit)
        comm = [i for i in on if terms.assessments[opts[i].proposal_id].commercial]
        if comm:
            add([(i, 1.0) for i in comm], terms.commercial_cap_hours[m.id] // m.award_unit)
    for g in terms.groups.values():
        members = by_group.get(g.group_id, [])
        if g.min_ref > 0:
            add([(i, -float(opts[i].ref_per_unit)) for i in members], -float(g.min_ref))
        if members and g.max_ref < terms.total_ref:
            add([(i, float(opts[i].ref_per_unit)) for i in members], float(g.max_ref))
    return LinearModel(
        c=np.concatenate([-np.array([o.coef for o in opts], dtype=float), np.zeros(n)]),
        a_ub=coo_matrix((vals, (rows, cols)), shape=(len(rhs), 2 * n)).tocsr(),
        b_ub=np.array(rhs),
        lower=np.zeros(2 * n),
        upper=np.concatenate([np.array([o.max_units for o in opts], dtype=float), np.ones(n)]),
    )


def lp_bound(terms: Terms) -> float | None:
    """The optimum of allocopt's model with integrality dropped (None if HiGHS fails)."""
    if not terms.options:
        return 0.0
    lm = linear_model(terms)
    bounds = np.column_stack([lm.lower, lm.upper])
    res = linprog(lm.c, A_ub=lm.a_ub, b_ub=lm.b_ub, bounds=bounds, method="highs")
    return float(-res.fun) if res.status == 0 else None


@dataclass(frozen=True)
class HighsResult:
    objective: float | None  # the best integer solution's merit (None: none found)
    status: str
    gap: float | None  # HiGHS's own proven relative gap
    seconds: float
    peak_mb: float
    bound: float | None = None  # HiGHS's proven bound (its dual bound), when it has a solution


def run_highs(
    proposals: int, machines: int, seed: int, time_limit: float, value: str = "fraction"
) -> HighsResult:
    """HiGHS (scipy.optimize.milp) on the same model, integral, within time_limit wall seconds
    (runs in its own process: generating the round and building the model are not timed)."""
    terms = derive(bench_round(proposals, machines, seed, value))
    lm = linear_model(terms)
    started = time.perf_counter()
    res = milp(
        lm.c,
        integrality=np.ones(len(lm.c)),
        bounds=Bounds(lm.lower, lm.upper),
        constraints=LinearConstraint(lm.a_ub, -np.inf, lm.b_ub),
        options={"time_limit": max(time_limit, 1.0), "mip_rel_gap": SolveOptions().gap_limit},
    )
    seconds = time.perf_counter() - started
    status = {0: "optimal", 1: "limit", 2: "infeasible", 3: "unbounded"}.get(res.status, "other")
    if status == "limit" and res.x is not None:
        status = "feasible"
    return HighsResult(
        objective=float(-res.fun) if res.x is not None else None,
        status=status,
        gap=float(res.mip_gap) if res.x is not None and getattr(res, "mip_gap", None) is not None else None,
        seconds=seconds,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        bound=-float(res.mip_dual_bound) if res.x is not None else None,
    )


# -- one round -------------------------------------------------------------------


def bench_round(proposals: int, machines: int, seed: int, value: str = "fraction") -> Round:
    """A generated core-policy round, with the merit value set to `value` ('fraction' or 'hours')."""
    rnd = generate_round(proposals, machines, seed, policy_language=False)
    if rnd.policy.merit.value == value:
        return rnd
    merit = rnd.policy.merit.model_copy(update={"value": value})
    return rnd.model_copy(update={"policy": rnd.policy.model_copy(update={"merit": merit})})


def check_supported(terms: Terms) -> None:
    """The greedy fills and the LP model only what generated rounds use: say so if that changes."""
    policy = terms.round.policy
    assert policy.objective == "merit" and policy.share_basis == "capacity"
    assert not policy.pins and not policy.exclusive and policy.max_awards_per_organisation is None
    assert all(g.penalty is None for g in terms.groups.values()), "soft share groups"
    assert all(p.max_machines == 1 and not p.efficiency for p in terms.round.proposals)


def run_one(
    proposals: int,
    machines: int,
    seed: int,
    work_limit: float,
    workers: int,
    warm_start: bool = True,
    kind: str = "merit",
    value: str = "fraction",
    target_gap: float | None = None,
) -> Row:
    """Generate, solve, verify and compare one round (runs in its own process). With
    ``target_gap``, also when solve() first had an allocation proven within it (see ``_to_target``)."""
    rnd = bench_round(proposals, machines, seed, value)
    terms = derive(rnd)
    check_supported(terms)
    rank = greedy_by_rank(terms)
    density = greedy_by_density(terms)
    check_rules(terms, rank)
    check_rules(terms, density)
    started = time.perf_counter()
    bound = lp_bound(terms)
    lp_seconds = time.perf_counter() - started

    status, stop, obj, gap, det, proven = "error", "-", None, None, 0.0, None
    found: list[tuple[float, int, int]] = []  # each incumbent solve() reports: seconds, objective, bound
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        options = SolveOptions(work_limit=work_limit, workers=workers, warm_start=warm_start)
        solution = solve(
            rnd,
            options.model_copy(update={"objective": kind}),
            on_progress=lambda p: found.append((p.seconds, p.objective, p.bound)),
        )
    except AllocoptError as exc:
        status = type(exc).__name__
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    else:
        # solve() alone: terms, warm start, model, CP-SAT, solution
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        violations = verify(rnd, solution)
        assert not violations, "allocopt's solution breaks rules:\n" + "\n".join(map(str, violations))
        status, stop = solution.solver.status, solution.solver.stop_reason
        obj, gap = solution.objective.scaled, solution.objective.gap
        det, proven = solution.solver.deterministic_seconds, solution.objective.best_bound_scaled
    return Row(
        proposals=proposals,
        seed=seed,
        options=len(terms.options),
        status=status,
        stop=stop,
        objective=obj,
        gap=gap,
        wall=wall,
        det=det,
        rank_objective=objective(terms, rank),
        rank_mins=meets_minimums(terms, rank),
        density_objective=objective(terms, density),
        density_mins=meets_minimums(terms, density),
        lp_bound=bound,
        lp_seconds=lp_seconds,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        machines=machines,
        cpu=cpu,
        to_target=_to_target(found, wall, gap, target_gap) if kind == "merit" else None,
        target_gap=target_gap if kind == "merit" else None,
        bound=proven,
        value=value,
        kind=kind,
    )


def _to_target(
    found: list[tuple[float, int, int]], wall: float, gap: float | None, target: float | None
) -> float | None:
    """When, at the latest, an allocation was proven within ``target``: the first incumbent
    solve() reported (seconds, objective, the tightest bound proven for the whole round by then)
    within it of its bound, or the end of the solve if the solution's gap is. None if neither.
    (A bound proven between two reports is only seen at the next one.)"""
    if target is None:
        return None
    for seconds, objective, bound in found:
        if bound - objective <= target * max(1, abs(bound)):
            return seconds
    return wall if gap is not None and gap <= target else None


# -- table -----------------------------------------------------------------------


def _ratio(a: float | None, b: float | None, digits: int = 4) -> str:
    return f"{a / b:.{digits}f}" if a is not None and b else "-"


def _to_target_cell(r: Row) -> str:
    if r.target_gap is None:
        return "-"
    within = f"{r.target_gap:.0e}"
    return f"{r.to_target:.1f} ({within})" if r.to_target is not None else f"not within {within}"


def table(rows: list[Row], title: str) -> Table:
    t = Table(title=title)
    with_highs = any(r.highs is not None for r in rows)
    columns = [
        ("proposals", "right"),
        ("machines", "right"),
        ("seed", "right"),
        ("options", "right"),
        ("status", "left"),
        ("stop", "left"),
        ("allocopt obj", "right"),
        ("gap", "right"),
        ("wall s", "right"),
        ("cpu s", "right"),
        ("det s", "right"),
        ("rank/allocopt", "right"),
        ("rank mins", "center"),
        ("density/allocopt", "right"),
        ("density mins", "center"),
        ("LP bound", "right"),
        ("allocopt/LP", "right"),
        ("peak MB", "right"),
    ]
    with_target = any(r.target_gap is not None for r in rows)
    if with_target:
        columns.insert(9, ("s to target gap", "right"))
    if with_highs:
        columns += [
            ("HiGHS/allocopt", "right"),
            ("HiGHS/LP", "right"),
            ("HiGHS status", "left"),
            ("HiGHS gap", "right"),
            ("HiGHS MB", "right"),
        ]
    for name, justify in columns:
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        cells = [
            str(r.proposals),
            str(r.machines),
            str(r.seed),
            str(r.options),
            r.status,
            r.stop,
            f"{r.objective:,}" if r.objective is not None else "-",
            f"{r.gap:.2e}" if r.gap is not None else "-",
            f"{r.wall:.1f}",
            *([_to_target_cell(r)] if with_target else []),
            f"{r.cpu:.1f}",
            f"{r.det:.1f}",
            _ratio(r.rank_objective, r.objective),
            "yes" if r.rank_mins else "no",
            _ratio(r.density_objective, r.objective),
            "yes" if r.density_mins else "no",
            f"{r.lp_bound:,.0f}" if r.lp_bound is not None else "-",
            _ratio(r.objective, r.lp_bound, 6),
            f"{r.peak_mb:.0f}",
        ]
        if with_highs:
            h = r.highs
            cells += [
                _ratio(h.objective, r.objective, 6) if h else "-",
                _ratio(h.objective, r.lp_bound, 6) if h else "-",
                h.status if h else "-",
                f"{h.gap:.2e}" if h and h.gap is not None else "-",
                f"{h.peak_mb:.0f}" if h else "-",
            ]
        t.add_row(*cells)
    return t


def _tally(met: list[bool]) -> str:
    return f"{sum(met)} of {len(met)}"


def _as_good_as_highs(r: Row) -> bool:
    """allocopt's allocation is worth at least HiGHS's (HiGHS's objective is a double of the
    same integer objective: a relative allowance of 1e-12 for its rounding), or HiGHS found none."""
    h = r.highs
    if h is None or h.objective is None:
        return r.objective is not None
    return r.objective is not None and r.objective >= h.objective * (1 - 1e-12)


def _bound_as_tight_as_highs(r: Row) -> bool:
    """allocopt's proven bound is no looser than HiGHS's dual bound (compared only where HiGHS
    found an allocation: its bound is recorded with it)."""
    h = r.highs
    assert h is not None and h.bound is not None
    return r.bound is not None and r.bound <= h.bound * (1 + 1e-12)


def _against_highs(group: list[Row]) -> list[str]:
    """The two HiGHS columns of a verdict: allocations at least as good, bounds at least as tight."""
    found = [r for r in group if r.highs is not None and r.highs.bound is not None]
    none = len(group) - len(found)
    note = f" (HiGHS found none on {none})" if none else ""
    bounds = _tally([_bound_as_tight_as_highs(r) for r in found]) if found else "-"
    return [_tally([_as_good_as_highs(r) for r in group]) + note, bounds + note]


def verdicts(rows: list[Row]) -> Table:
    """Each target of the performance issue, for each objective, merit value and size: on how
    many of the rounds run it is met (merit: proven within the size's target gap in its target
    time, and its peak memory; at equal time, an allocation and a bound at least as good as
    HiGHS's; rank: every step proven within the target time)."""
    t = Table(title="Targets met, of the rounds run")
    for name in ("objective, value", "size", "target", "met on", "slowest to target", "peak MB"):
        t.add_column(name, justify="left" if name in ("objective, value", "target") else "right")
    with_highs = any(r.highs is not None for r in rows)
    if with_highs:
        t.add_column("objective >= HiGHS's", justify="right")
        t.add_column("bound <= HiGHS's", justify="right")
    groups: dict[tuple[str, str, int, int], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.kind, r.value, r.proposals, r.machines)].append(r)
    for (kind, value, proposals, machines), group in groups.items():
        if proposals not in TARGET_SECONDS:
            continue
        seconds = TARGET_SECONDS[proposals]
        peak = max(r.peak_mb for r in group)
        limit = TARGET_PEAK_MB.get(proposals)
        peak_cell = f"{peak:.0f}" + (
            f" (<= {limit:.0f}: {'met' if peak <= limit else 'not met'})" if limit else ""
        )
        if kind == "rank":
            target = f"every step proven in <= {seconds:g} s"
            met = _tally([r.status == "optimal" and r.wall <= seconds for r in group])
            slowest = f"{max(r.wall for r in group):.1f}"
            against: list[str] = ["-", "-"] if with_highs else []
        else:
            gap = TARGET_GAPS[proposals]
            target = f"gap <= {gap:.0e} in <= {seconds:g} s"
            met = _tally([r.to_target is not None and r.to_target <= seconds for r in group])
            times = [r.to_target for r in group if r.to_target is not None]
            missed = sum(1 for r in group if r.to_target is None)
            slowest = (f"{max(times):.1f}" if times else "-") + (f" ({missed} never)" if missed else "")
            against = _against_highs(group) if with_highs else []
        t.add_row(f"{kind}, {value}", f"{proposals} x {machines}", target, met, slowest, peak_cell, *against)
    return t


# -- how the fixed costs grow ---------------------------------------------------------

SCALING_SIZES = [1250, 2500, 5000, 10000, 20000]  # proposals, on 30 machines: options grow with them
PHASES = ("terms", "model", "LP", "warm start", "results")


def time_phases(proposals: int, machines: int, seed: int) -> tuple[int, dict[str, float]]:
    """The options of one generated round, and the wall seconds of each step of ``solve()``
    around the search: the exact terms, the whole CP-SAT model, the LP relaxation with its
    dual bound, the warm start, and the per-proposal results and metrics of an allocation."""
    rnd = generate_round(proposals, machines, seed, policy_language=False).canonical()
    seconds: dict[str, float] = {}

    def timed(phase: str, step: Callable[[], object]) -> object:
        started = time.perf_counter()
        value = step()
        seconds[phase] = time.perf_counter() - started
        return value

    terms = cast(Terms, timed("terms", lambda: derive(rnd)))
    timed("model", lambda: AllocationModel(terms).maximise_merit())
    relaxation = cast(warmstart.Relaxation, timed("LP", lambda: warmstart.lp_units(terms)))
    units = cast(Units, timed("warm start", lambda: warmstart.warm_start(terms, None, relaxation)))

    def results() -> object:
        found = proposal_results(
            terms, units, objective="merit", optimal=False, gap=0.0, unproven=frozenset()
        )
        return metrics(terms, found)

    timed("results", results)
    return len(terms.options), seconds


def scaling_table(rows: list[tuple[int, int, dict[str, float]]]) -> Table:
    """Seconds per phase, and microseconds per option: flat columns mean linear growth."""
    out = Table(title="Time outside the search, by round size (30 machines, seed 1)")
    out.add_column("proposals", justify="right")
    out.add_column("options", justify="right")
    for phase in PHASES:
        out.add_column(f"{phase} s", justify="right")
    for phase in PHASES:
        out.add_column(f"{phase} us/option", justify="right")
    for proposals, options, seconds in rows:
        per_option = [f"{seconds[p] / options * 1e6:.1f}" for p in PHASES]
        out.add_row(str(proposals), f"{options:,}", *(f"{seconds[p]:.2f}" for p in PHASES), *per_option)
    first, last = rows[0], rows[-1]
    growth = [f"x{(last[2][p] / last[1]) / (first[2][p] / first[1]):.2f}" for p in PHASES]
    out.add_row("per option,", f"x{last[1] / first[1]:.0f} options", *([""] * len(PHASES)), *growth)
    return out


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 0, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    _main(parser, args, argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=_ints, default=[100, 500, 2000], help="proposals per round")
    parser.add_argument(
        "--seeds",
        type=_ints,
        default=None,
        help="generator seeds (default 1,2; with --targets, 1-4 at 300 and 2000 proposals, 1,2 at 10000)",
    )
    parser.add_argument("--machines", type=int, default=8, help="machines per round (default 8)")
    defaults = SolveOptions()
    parser.add_argument(
        "--work-limit",
        type=float,
        default=defaults.work_limit,
        help=f"CP-SAT deterministic work limit per round (default {defaults.work_limit:g}, as allocopt's)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help=f"CP-SAT workers (default {defaults.workers}, as allocopt's)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: size 100, first seed only")
    parser.add_argument(
        "--targets",
        action="store_true",
        help="the performance issue's sizes (300 x 8, 2000 x 12, 10000 x 30; --target-sizes to choose) "
        "with the HiGHS column",
    )
    parser.add_argument(
        "--target-sizes",
        type=_ints,
        default=None,
        help="with --targets: which of 300, 2000, 10000 (default all; the rank walk, 300)",
    )
    parser.add_argument(
        "--highs",
        action="store_true",
        help="also run HiGHS (scipy.optimize.milp) on the same model for allocopt's wall time",
    )
    parser.add_argument("--no-highs", action="store_true", help="leave HiGHS out (with --targets)")
    parser.add_argument(
        "--objective",
        choices=["merit", "rank"],
        default=None,
        help="allocopt's objective (default merit; with --targets, merit and then rank at 300 x 8); under "
        "'rank' the status is 'optimal' when every step of the walk is proven, and HiGHS is left out (it "
        "solves the merit model)",
    )
    parser.add_argument(
        "--value",
        choices=["fraction", "hours"],
        default=None,
        help="the rounds' merit value: 'fraction' (the generator's, the default; favours many awards) or "
        "'hours' (favours large awards); with --targets, both unless this is given",
    )
    parser.add_argument(
        "--no-warm-start", action="store_true", help="solve without the warm start (to measure what it does)"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="time the steps around the search (terms, model, LP, warm start, results) at "
        f"{', '.join(map(str, SCALING_SIZES))} proposals x 30 machines (--sizes to choose)",
    )
    return parser


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> None:
    if args.scaling:
        sizes = SCALING_SIZES if "--sizes" not in (argv or sys.argv) else args.sizes
        measured = []
        for size in sizes:
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                options, seconds = pool.submit(time_phases, size, 30, 1).result()
            measured.append((size, options, seconds))
        Console(width=320).print(scaling_table(measured))
        return
    if args.targets:
        unknown = set(args.target_sizes or []) - set(TARGETS)
        if unknown:
            parser.error(f"--target-sizes: no target of size {sorted(unknown)}; choose from {list(TARGETS)}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=320)
    started = time.perf_counter()
    everything: list[Row] = []
    for kind, value, plan, with_highs in runs(args):
        rows = _run_plan(plan, args, kind, value, with_highs, console)
        everything += rows
        where = "the issue's target sizes" if args.targets else f"{args.machines} machines"
        console.print(
            table(
                rows,
                f"allocopt vs greedy fills{', HiGHS' if with_highs else ''} and the LP bound ({where}, "
                f"work limit {args.work_limit:g}, {args.workers} workers"
                f"{', no warm start' if args.no_warm_start else ''}, objective {kind}, value {value})",
            )
        )
    if args.targets:
        console.print(verdicts(everything))
    console.print(f"total wall time {time.perf_counter() - started:.0f} s; all allocopt solutions verified")


def runs(args: argparse.Namespace) -> list[tuple[str, str, list[tuple[int, int, int]], bool]]:
    """What to run: (objective, merit value, [(proposals, machines, seed)], with HiGHS) in order.
    --targets alone runs every table of the README: both merit values at every target size,
    then the rank walk at 300 x 8 (at the larger sizes it takes minutes); --value, --objective,
    --target-sizes and --seeds narrow it down."""
    values = [args.value] if args.value else ["fraction", "hours"] if args.targets else ["fraction"]
    kinds = [("merit", v) for v in values] if args.objective in (None, "merit") else []
    if args.objective == "rank" or (args.targets and args.objective is None):
        kinds.append(("rank", args.value or "fraction"))
    out = []
    for kind, value in kinds:
        if args.targets:
            sizes = args.target_sizes or (list(TARGETS) if kind == "merit" else [300])
            plan = [(n, TARGETS[n], seed) for n in sizes for seed in (args.seeds or TARGET_SEEDS[n])]
        else:
            sizes, seeds = (
                ([100], (args.seeds or [1])[:1]) if args.quick else (args.sizes, args.seeds or [1, 2])
            )
            plan = [(n, args.machines, seed) for n in sizes for seed in seeds]
        with_highs = (args.highs or args.targets) and not args.no_highs and kind == "merit"
        out.append((kind, value, plan, with_highs))
    return out


def _run_plan(
    plan: list[tuple[int, int, int]],
    args: argparse.Namespace,
    kind: str,
    value: str,
    with_highs: bool,
    console: Console,
) -> list[Row]:
    """Each round of the plan in a fresh process (the peak memory is that round's alone), then
    HiGHS on it in another, given allocopt's wall time."""
    rows: list[Row] = []
    ctx = multiprocessing.get_context("spawn")
    for size, machines, seed in plan:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            run: Callable[..., Row] = run_one
            row = pool.submit(
                run,
                size,
                machines,
                seed,
                args.work_limit,
                args.workers,
                not args.no_warm_start,
                kind,
                value,
                TARGET_GAPS.get(size) if args.targets else None,
            ).result()
        console.log(f"{kind}, {value}, {size} x {machines}, seed {seed}: {row.status} in {row.wall:.1f} s")
        if with_highs:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                high: Callable[..., HighsResult] = run_highs
                highs = pool.submit(high, size, machines, seed, row.wall, value).result()
            row = replace(row, highs=highs)
            console.log(f"  HiGHS: {highs.status} in {highs.seconds:.1f} s")
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
