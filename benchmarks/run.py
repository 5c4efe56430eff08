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
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from allocopt.errors import AllocoptError
from allocopt.generate import generate_round
from allocopt.options import SolveOptions
from allocopt.solve import solve
from allocopt.terms import Option, Terms, derive
from allocopt.verify import verify

Units = dict[tuple[str, str], int]


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


def lp_bound(terms: Terms) -> float | None:
    """The optimum of allocopt's model with integrality dropped (None if HiGHS fails)."""
    opts = terms.options
    n = len(opts)
    if n == 0:
        return 0.0
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

    # Variables: u[i] = column i, x[i] = column n + i.
    for i, o in enumerate(opts):
        add([(n + i, o.min_units), (i, -1.0)], 0.0)  # min_units * x <= u
        add([(i, 1.0), (n + i, -o.max_units)], 0.0)  # u <= max_units * x
    by_proposal: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(opts):
        by_proposal[o.proposal_id].append(i)
    for idx in by_proposal.values():
        if len(idx) > 1:
            add([(n + i, 1.0) for i in idx], 1.0)  # one machine per proposal
    for m in terms.round.machines:
        on = [i for i, o in enumerate(opts) if o.machine_id == m.id]
        if on:
            add([(i, 1.0) for i in on], m.gpu_hours // m.award_unit)
        comm = [i for i in on if terms.assessments[opts[i].proposal_id].commercial]
        if comm:
            add([(i, 1.0) for i in comm], terms.commercial_cap_hours[m.id] // m.award_unit)
    for g in terms.groups.values():
        members = [i for i, o in enumerate(opts) if terms.assessments[o.proposal_id].group_id == g.group_id]
        if g.min_ref > 0:
            add([(i, -float(opts[i].ref_per_unit)) for i in members], -float(g.min_ref))
        if members and g.max_ref < terms.total_ref:
            add([(i, float(opts[i].ref_per_unit)) for i in members], float(g.max_ref))
    a_ub = coo_matrix((vals, (rows, cols)), shape=(len(rhs), 2 * n)).tocsr()
    c = np.concatenate([-np.array([o.coef for o in opts], dtype=float), np.zeros(n)])
    bounds = [(0.0, float(o.max_units)) for o in opts] + [(0.0, 1.0)] * n
    res = linprog(c, A_ub=a_ub, b_ub=np.array(rhs), bounds=bounds, method="highs")
    return float(-res.fun) if res.status == 0 else None


# -- one round -------------------------------------------------------------------


def check_supported(terms: Terms) -> None:
    """The greedy fills and the LP model only what generated rounds use: say so if that changes."""
    policy = terms.round.policy
    assert policy.objective == "merit" and policy.share_basis == "capacity"
    assert not policy.pins and not policy.exclusive and policy.max_awards_per_organisation is None
    assert all(g.penalty is None for g in terms.groups.values()), "soft share groups"
    assert all(p.max_machines == 1 and not p.efficiency for p in terms.round.proposals)


def run_one(proposals: int, machines: int, seed: int, work_limit: float, workers: int) -> Row:
    """Generate, solve, verify and compare one round (runs in its own process)."""
    rnd = generate_round(proposals, machines, seed, policy_language=False)
    terms = derive(rnd)
    check_supported(terms)
    rank = greedy_by_rank(terms)
    density = greedy_by_density(terms)
    check_rules(terms, rank)
    check_rules(terms, density)
    started = time.perf_counter()
    bound = lp_bound(terms)
    lp_seconds = time.perf_counter() - started

    status, stop, obj, gap, det = "error", "-", None, None, 0.0
    started = time.perf_counter()
    try:
        solution = solve(rnd, SolveOptions(work_limit=work_limit, workers=workers))
    except AllocoptError as exc:
        status = type(exc).__name__
        wall = time.perf_counter() - started
    else:
        wall = time.perf_counter() - started  # solve() alone: terms, model, CP-SAT, solution
        violations = verify(rnd, solution)
        assert not violations, "allocopt's solution breaks rules:\n" + "\n".join(map(str, violations))
        status, stop = solution.solver.status, solution.solver.stop_reason
        obj, gap = solution.objective.scaled, solution.objective.gap
        det = solution.solver.deterministic_seconds
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
    )


# -- table -----------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.4f}" if a is not None and b else "-"


def table(rows: list[Row], title: str) -> Table:
    t = Table(title=title)
    for name, justify in [
        ("proposals", "right"),
        ("seed", "right"),
        ("options", "right"),
        ("status", "left"),
        ("stop", "left"),
        ("allocopt obj", "right"),
        ("gap", "right"),
        ("wall s", "right"),
        ("det s", "right"),
        ("rank/allocopt", "right"),
        ("rank mins", "center"),
        ("density/allocopt", "right"),
        ("density mins", "center"),
        ("LP bound", "right"),
        ("allocopt/LP", "right"),
        ("peak MB", "right"),
    ]:
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(
            str(r.proposals),
            str(r.seed),
            str(r.options),
            r.status,
            r.stop,
            f"{r.objective:,}" if r.objective is not None else "-",
            f"{r.gap:.2e}" if r.gap is not None else "-",
            f"{r.wall:.1f}",
            f"{r.det:.1f}",
            _ratio(r.rank_objective, r.objective),
            "yes" if r.rank_mins else "no",
            _ratio(r.density_objective, r.objective),
            "yes" if r.density_mins else "no",
            f"{r.lp_bound:,.0f}" if r.lp_bound is not None else "-",
            _ratio(r.objective, r.lp_bound),
            f"{r.peak_mb:.0f}",
        )
    return t


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 0, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=_ints, default=[100, 500, 2000], help="proposals per round")
    parser.add_argument("--seeds", type=_ints, default=[1, 2], help="generator seeds")
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
    args = parser.parse_args(argv)
    sizes, seeds = ([100], args.seeds[:1]) if args.quick else (args.sizes, args.seeds)

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    started = time.perf_counter()
    rows: list[Row] = []
    # One fresh process per round: the peak memory is that round's alone.
    ctx = multiprocessing.get_context("spawn")
    for size in sizes:
        for seed in seeds:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                run: Callable[..., Row] = run_one
                row = pool.submit(run, size, args.machines, seed, args.work_limit, args.workers).result()
            rows.append(row)
            console.log(f"{size} proposals, seed {seed}: {asdict(row)['status']} in {row.wall:.1f} s")
    console.print(
        table(
            rows,
            f"allocopt vs greedy fills and the LP bound ({args.machines} machines, "
            f"work limit {args.work_limit:g}, {args.workers} workers)",
        )
    )
    console.print(f"total wall time {time.perf_counter() - started:.0f} s; all allocopt solutions verified")


if __name__ == "__main__":
    main()
