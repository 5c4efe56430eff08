"""A first allocation to hint CP-SAT with: the LP relaxation, rounded, repaired and filled.

The LP relaxation of the merit model (HiGHS via ``scipy.optimize.linprog``) is
within a fraction of a percent of the optimum, and in a basic optimal solution
only a few options, about as many as there are coupling rules (machines,
commercial caps, shares), are fractional. Rounding it therefore loses little:

1. solve the LP (u in [0, max_units], x in [0, 1], the model's rules with
   integrality dropped; soft share bounds left out; x is written as u / max_units
   wherever that loses nothing, which halves the LP at scale; its bound is
   tightened where an award cannot fit on its machine, see ``lp_units``);
2. round: each proposal keeps the option the LP gives the most merit, with its
   units rounded down, within what is left on every rule; awards below their
   minimum are dropped (pinned awards are placed first, as pinned);
3. repair: share groups below their minimum get units on their own options,
   highest merit per unit first;
4. fill: leftover capacity goes to options by merit per unit, highest first
   (more units to a funded option, or a new award of at least its minimum).

The result is only a hint: it is used when ``feasible`` confirms it satisfies
every hard rule, and the solver's answer never depends on its correctness.
This module does not import OR-Tools.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix

from allocopt.terms import Option, Terms

OptionKey = tuple[str, str]
POOL_PER_RULE = 3  # proposals the MILP reconsiders per coupling rule, on each side of the LP's cut
OPTIONS_PER_PROPOSAL = 3  # the MILP's options per proposal: those the LP values most
MILP_NODES = 100  # HiGHS branch-and-bound node limit (deterministic, unlike a time limit)
Units = dict[OptionKey, int]


def warm_start(
    terms: Terms, time_limit: float | None = None, relaxation: Relaxation | None = None
) -> Units | None:
    """An allocation satisfying every hard rule, or None when this heuristic finds none.
    ``time_limit`` (seconds) caps each HiGHS call, for a solve under a wall-clock cap;
    ``relaxation``, the LP relaxation if it is already solved."""
    if not terms.options:
        return None
    lp = relaxation if relaxation is not None else lp_units(terms, time_limit)
    found = [
        u
        for u in (_Builder(terms, time_limit).build(lp), _Builder(terms, time_limit).build(lp, repair=False))
        if feasible(terms, u)
    ]
    return max(found, key=lambda u: merit(terms, u)) if found else None


def rounded(terms: Terms, relaxation: Relaxation) -> Units | None:
    """The LP relaxation rounded, share minimums repaired and leftover capacity filled (steps
    2-4 without the MILP: milliseconds), or None if that breaks a hard rule."""
    units = _Builder(terms).build(relaxation, repair=False)
    return units if feasible(terms, units) else None


# -- the LP relaxation -------------------------------------------------------------


@dataclass(frozen=True)
class Relaxation:
    """An optimal solution of the LP relaxation: units per option (zeros left out); per option,
    how much merit per unit of merit one unit there would cost (its reduced cost over its
    coefficient: 0 for options the LP uses, larger for options further from being worth it);
    and a proven upper bound on the scaled merit of every allocation the rules allow."""

    units: dict[OptionKey, float]
    cost: dict[OptionKey, float]
    bound: int


# Relative allowance for floating-point error in the dual bound: far above what sums of up to
# 10**7 double-precision products can lose (about 10**7 x 1.1e-16), far below any gap reported.
BOUND_SAFETY = 1e-8


def lp_units(terms: Terms, time_limit: float | None = None) -> Relaxation | None:
    """The LP relaxation of the merit model, solved by HiGHS (None if it fails).

    Every constraint is one the CP-SAT model implies, so the LP's optimum is an upper bound on
    the merit of any allowed allocation (soft-share penalties only lower it further). Split
    awards keep only what holds for any split: each option at most its units, at most
    max_machines options, the total within the request.

    Solved with each option bounded by its max_units; then, only if that optimum breaks a row
    of the tighter program that bounds each option by what its machine can hold
    (``most_units``), solved again with those rows, for the bound alone. The first optimum
    stays the guide of the rounding and the search: where it breaks no such row it is optimal
    for both programs, and where it does, the search from the tighter program's optimum did
    worse on more of our benchmark rounds than it did better (README, Performance)."""
    if not terms.options:
        return None
    started = time.perf_counter()
    loose = _solved(terms, relaxation_program(terms, tight=False), time_limit)
    if loose is None:
        return None
    relaxation, z = loose
    tight = relaxation_program(terms)
    left = None if time_limit is None else time_limit - (time.perf_counter() - started)
    if _breaks(tight, z) and (left is None or left > 0):
        again = _solved(terms, tight, left)
        if again is not None:
            relaxation = replace(relaxation, bound=min(relaxation.bound, again[0].bound))
    return relaxation


def _solved(terms: Terms, lp: Program, time_limit: float | None) -> tuple[Relaxation, np.ndarray] | None:
    """The optimum of one LP program, and its solution vector (None if HiGHS fails)."""
    opts = terms.options
    n = len(opts)
    c = lp.objective({i: float(o.coef) for i, o in enumerate(opts)})
    limits = {"time_limit": time_limit} if time_limit is not None else {}
    res = linprog(
        c,
        A_ub=lp.a_ub,
        b_ub=lp.b_ub,
        A_eq=lp.a_eq,
        b_eq=lp.b_eq,
        bounds=np.column_stack([lp.lower, lp.upper]),
        method="highs",
        options=limits,
    )
    if res.status != 0:
        return None
    marginals = res.lower.marginals + res.upper.marginals
    reduced = marginals[:n].copy()
    for i, col in lp.x_col.items():
        reduced[i] += marginals[col] / max(lp.most[i], 1.0)
    reduced = np.abs(reduced)
    value = dual_value(
        c,
        lp.a_ub,
        lp.b_ub,
        lp.a_eq,
        lp.b_eq,
        lp.lower,
        lp.upper,
        res.ineqlin.marginals,
        res.eqlin.marginals if lp.a_eq is not None else None,
    )
    relaxation = Relaxation(
        units={o.key: float(res.x[i]) for i, o in enumerate(opts) if res.x[i] > 1e-9},
        cost={o.key: float(reduced[i]) / max(o.coef, 1) for i, o in enumerate(opts)},
        bound=math.floor(value + 1),
    )
    return relaxation, res.x


# How far an LP solution may break a row (relative to the row's bound) and still count as keeping
# it: HiGHS's own feasibility tolerance is 1e-7.
ROW_SLACK = 1e-6


def _breaks(lp: Program, z: np.ndarray) -> bool:
    """Does the solution z break a row or a bound of ``lp`` (by more than ROW_SLACK)?"""
    if np.any(z > lp.upper + ROW_SLACK * np.maximum(1.0, np.abs(lp.upper))):
        return True
    if np.any(lp.a_ub @ z > lp.b_ub + ROW_SLACK * np.maximum(1.0, np.abs(lp.b_ub))):
        return True
    return (
        lp.a_eq is not None
        and lp.b_eq is not None
        and bool(np.any(np.abs(lp.a_eq @ z - lp.b_eq) > ROW_SLACK * np.maximum(1.0, np.abs(lp.b_eq))))
    )


@dataclass(frozen=True)
class Program:
    """The LP relaxation's rules as matrices over the columns u[i] (option i's units, i < n)
    and x[i] for the options whose proposal must be funded, by a fund pin or a rank decision
    (``x_col``: option -> column): a_ub z <= b_ub, a_eq z = b_eq, lower <= z <= upper."""

    a_ub: csr_matrix
    b_ub: np.ndarray
    a_eq: csr_matrix | None
    b_eq: np.ndarray | None
    lower: np.ndarray
    upper: np.ndarray
    x_col: dict[int, int]
    most: np.ndarray  # per option, the most units any allowed allocation gives it (``most_units``)

    def objective(self, gain: dict[int, float]) -> np.ndarray:
        """The vector to minimise for maximising sum(gain[i] u[i])."""
        c = np.zeros(len(self.lower))
        for i, g in gain.items():
            c[i] = -g
        return c


def most_units(terms: Terms) -> np.ndarray:
    """Per option, the most units any allowed allocation gives it: its max_units, within its
    machine's capacity and, for a commercial proposal, the machine's commercial cap; 0 where
    even its least award (its minimum, or one unit of a split award) exceeds that. The LP's
    u <= most x is then tighter than u <= max_units x: at 10,000 x 30 the LP used to take
    fractions of large awards whose minimum no machine they asked for could hold."""
    capacity = {m.id: m.gpu_hours // m.award_unit for m in terms.round.machines}
    commercial = {m.id: terms.commercial_cap_hours[m.id] // m.award_unit for m in terms.round.machines}
    most = np.zeros(len(terms.options))
    for i, o in enumerate(terms.options):
        a = terms.assessments[o.proposal_id]
        room = min(o.max_units, capacity[o.machine_id])
        if a.commercial:
            room = min(room, commercial[o.machine_id])
        most[i] = room if room >= (1 if a.split else o.min_units) else 0
    return most


def relaxation_program(
    terms: Terms,
    funded: frozenset[str] = frozenset(),
    unfunded: frozenset[str] = frozenset(),
    hard_shares: bool = False,
    tight: bool = True,
) -> Program:
    """The rules of the LP relaxation (see ``lp_units``), with the proposals in ``funded``
    required funded and those in ``unfunded`` given nothing, as fund and exclude pins are
    (the rank walk's decisions). With ``hard_shares``, soft share bounds count as hard (as
    under the rank objective); otherwise they are left out (their penalties only lower merit).
    With ``tight`` (the default), each option is bounded by ``most_units``, otherwise by its
    max_units alone."""
    opts = terms.options
    n = len(opts)
    index = {o.key: i for i, o in enumerate(opts)}
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    rhs: list[float] = []

    def add(c: list[int] | np.ndarray, v: list[float] | np.ndarray, bound: float) -> None:
        c_arr = np.asarray(c, dtype=np.int64)
        rows.append(np.full(len(c_arr), len(rhs), dtype=np.int64))
        cols.append(c_arr)
        vals.append(np.asarray(v, dtype=float))
        rhs.append(bound)

    by_proposal: dict[str, list[int]] = defaultdict(list)
    by_machine: dict[str, list[int]] = defaultdict(list)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(opts):
        a = terms.assessments[o.proposal_id]
        by_proposal[o.proposal_id].append(i)
        by_machine[o.machine_id].append(i)
        if a.group_id is not None:
            by_group[a.group_id].append(i)
    split = np.array([terms.assessments[o.proposal_id].split for o in opts], dtype=bool)
    hi_units = most_units(terms) if tight else np.array([o.max_units for o in opts], dtype=float)

    # Variables: u[i] (column i) for every option. The funded indicator x[i] appears only in
    # rows of the form sum(w x) <= k with w >= 0, except for proposals that must be funded;
    # so an optimal LP solution can take x[i] = u[i] / most[i], and x[i] is written as that
    # (which every allowed allocation satisfies: u <= most x, see ``most_units``). Options of
    # proposals that must be funded keep their own column x[i], with the award's shape rows:
    # min x <= u (1 x <= u for a split award's option) and u <= most x.
    pinned = {
        a.proposal.id for a in terms.assessments.values() if a.pin is not None and a.pin.action == "fund"
    }
    must = pinned | (funded & set(by_proposal))
    own = [i for i, o in enumerate(opts) if o.proposal_id in must]
    x_col = {i: n + j for j, i in enumerate(own)}
    width = n + len(own)

    def xs(idx: list[int], weights: list[float] | None = None) -> tuple[list[int], list[float]]:
        """The columns and coefficients of sum(weight x[i]) over these options."""
        c: list[int] = []
        v: list[float] = []
        for k, i in enumerate(idx):
            w = 1.0 if weights is None else weights[k]
            if i in x_col:
                c.append(x_col[i])
                v.append(w)
            else:
                c.append(i)
                v.append(w / max(hi_units[i], 1.0))
        return c, v

    for i in own:
        low = 1.0 if split[i] else float(opts[i].min_units)
        add([x_col[i], i], [low, -1.0], 0.0)
        add([i, x_col[i]], [1.0, -hi_units[i]], 0.0)

    # How much of "funded" one option's x stands for: 1, or 1 / k for a split award over up to
    # k machines (its options' x add up to at most k times its funded indicator).
    weight = {
        pid: 1.0 / terms.assessments[pid].proposal.max_machines if terms.assessments[pid].split else 1.0
        for pid in by_proposal
    }
    for pid, idx in by_proposal.items():
        a = terms.assessments[pid]
        if a.split:
            add(*xs(idx), float(a.proposal.max_machines))
            add(idx, [float(opts[i].f) for i in idx], 1.0)  # the total within the request
        elif len(idx) > 1:
            add(*xs(idx), 1.0)  # one option per proposal
    for m in terms.round.machines:
        on = by_machine.get(m.id, [])
        if on:
            add(on, [1.0] * len(on), m.gpu_hours // m.award_unit)
        comm = [i for i in on if terms.assessments[opts[i].proposal_id].commercial]
        if comm:
            add(comm, [1.0] * len(comm), terms.commercial_cap_hours[m.id] // m.award_unit)
    ref = np.array([float(o.ref_per_unit) for o in opts])
    ar = np.arange(n)
    for g in terms.groups.values():
        if g.soft and not hard_shares:
            continue
        members = by_group.get(g.group_id, [])
        if terms.share_basis == "capacity":
            if g.min_ref > 0:
                add(members, -ref[members], -float(g.min_ref))
            if members and g.max_ref < terms.total_ref:
                add(members, ref[members], float(g.max_ref))
        else:
            coef_lo = float(g.min_share) * ref
            coef_hi = -float(g.max_share) * ref
            coef_lo[members] -= ref[members]
            coef_hi[members] += ref[members]
            if g.min_share > 0:
                add(ar, coef_lo, 0.0)
            if g.max_share < 1:
                add(ar, coef_hi, 0.0)
    for group in terms.round.policy.exclusive:
        idx = [i for pid in group.proposals for i in by_proposal.get(pid, [])]
        if len(idx) > 1:
            add(*xs(idx, [weight[opts[i].proposal_id] for i in idx]), 1.0)
    k = terms.round.policy.max_awards_per_organisation
    if k is not None:
        by_org: dict[str, list[int]] = defaultdict(list)
        for pid, idx in by_proposal.items():
            by_org[terms.assessments[pid].organisation] += idx
        for idx in by_org.values():
            add(*xs(idx, [weight[opts[i].proposal_id] for i in idx]), float(k))

    lower = np.zeros(width)
    upper = np.concatenate([hi_units, np.ones(len(own))])
    # A proposal that must be funded (pinned, or by a rank decision): its x add up to 1 (split: >= 1).
    fund_sets: list[list[int]] = []
    decided = must | unfunded
    for a in terms.assessments.values():
        pin = a.pin
        if not a.options or (pin is None and a.proposal.id not in decided):
            continue
        idx = by_proposal[a.proposal.id]
        if a.proposal.id in unfunded or (pin is not None and pin.action == "exclude"):
            upper[idx] = 0.0
            continue
        if pin is None:  # funded by a rank decision, on any of its machines
            if a.split:
                add([x_col[i] for i in idx], [-1.0] * len(idx), -1.0)
            else:
                fund_sets.append([x_col[i] for i in idx])
            continue
        if pin.machine is not None:
            for i in idx:
                if opts[i].machine_id != pin.machine:
                    upper[i] = upper[x_col[i]] = 0.0
            j = index.get((a.proposal.id, pin.machine))
            if j is not None and pin.gpu_hours is not None:
                lower[j] = upper[j] = float(pin.gpu_hours // opts[j].unit_hours)
        if a.split:
            add([x_col[i] for i in idx], [-1.0] * len(idx), -1.0)
        else:
            fund_sets.append([x_col[i] for i in idx])

    if not rhs:  # a round with no options
        vals, rows, cols = [np.zeros(0)], [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    a_ub = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(rhs), width)
    ).tocsr()
    a_eq, b_eq = None, None
    if fund_sets:
        eq_rows = [r for r, idx in enumerate(fund_sets) for _ in idx]
        eq_cols = [i for idx in fund_sets for i in idx]
        a_eq = coo_matrix((np.ones(len(eq_cols)), (eq_rows, eq_cols)), shape=(len(fund_sets), width)).tocsr()
        b_eq = np.ones(len(fund_sets))
    return Program(a_ub, np.array(rhs, dtype=float), a_eq, b_eq, lower, upper, x_col, hi_units)


def dual_value(
    c: np.ndarray,
    a_ub: csr_matrix,
    b_ub: np.ndarray,
    a_eq: csr_matrix | None,
    b_eq: np.ndarray | None,
    lower: np.ndarray,
    upper: np.ndarray,
    lam: np.ndarray,
    mu: np.ndarray | None,
) -> float:
    """An upper bound on -c'z from any dual values (weak duality), whatever their accuracy:
    for the LP min c'z, A_ub z <= b_ub, A_eq z = b_eq, lower <= z <= upper, every lam <= 0
    and mu give c'z >= lam'b_ub + mu'b_eq + sum_j min(r_j lower_j, r_j upper_j) with
    r = c - A_ub'lam - A_eq'mu. So -c'z (the merit, or what else is maximised) is at most
    minus that, plus an allowance for floating-point error (BOUND_SAFETY times the sum of the
    magnitudes involved)."""
    lam = np.minimum(lam, 0.0)
    r = c - a_ub.T @ lam
    size = np.abs(c) + abs(a_ub).T @ np.abs(lam)
    total = float(lam @ b_ub)
    magnitude = float(np.abs(lam) @ np.abs(b_ub))
    if a_eq is not None and b_eq is not None and mu is not None:
        r = r - a_eq.T @ mu
        size = size + abs(a_eq).T @ np.abs(mu)
        total += float(mu @ b_eq)
        magnitude += float(np.abs(mu) @ np.abs(b_eq))
    total += float(np.minimum(r * lower, r * upper).sum())
    magnitude += float((size * np.maximum(np.abs(lower), np.abs(upper))).sum())
    return -total + BOUND_SAFETY * magnitude


# -- rounding, repair and fill ----------------------------------------------------------


class _Builder:
    """Builds an allocation under every rule it tracks (all but awarded-basis shares)."""

    def __init__(self, terms: Terms, time_limit: float | None = None) -> None:
        self.terms = terms
        self.time_limit = time_limit
        rnd = terms.round
        self.scale = terms.share_scale
        self.left = {m.id: m.gpu_hours // m.award_unit for m in rnd.machines}
        self.commercial_left = {m.id: terms.commercial_cap_hours[m.id] // m.award_unit for m in rnd.machines}
        # Share maxima on capacity, soft ones too (crossing them costs merit), in scaled hours.
        self.group_room: dict[str, int | None] = {}
        for g in terms.groups.values():
            capped = terms.share_basis == "capacity" and g.max_ref < terms.total_ref
            self.group_room[g.group_id] = math.floor(g.max_ref * self.scale) if capped else None
        self.held: dict[str, int] = defaultdict(int)
        self.units: Units = {}
        self.funded: set[str] = set()
        self.exclusive_of: dict[str, list[int]] = defaultdict(list)
        self.exclusive_taken: list[bool] = []
        for j, group in enumerate(rnd.policy.exclusive):
            self.exclusive_taken.append(False)
            for pid in group.proposals:
                self.exclusive_of[pid].append(j)
        self.org_cap = rnd.policy.max_awards_per_organisation
        self.org_count: dict[str, int] = defaultdict(int)

    def _ref(self, o: Option) -> int:
        return self.terms.scaled_ref[o.key]

    def room(self, o: Option) -> int:
        """How many more units o can take now (capacity, commercial cap, share maximum, request)."""
        a = self.terms.assessments[o.proposal_id]
        more = min(o.max_units - self.units.get(o.key, 0), self.left[o.machine_id])
        if a.commercial:
            more = min(more, self.commercial_left[o.machine_id])
        if a.group_id is not None:
            room = self.group_room.get(a.group_id)
            if room is not None:
                more = min(more, room // self._ref(o))
        return max(more, 0)

    def may_fund(self, o: Option) -> bool:
        """Can o's proposal be newly funded on o (pins, exclusivity, organisation caps)?"""
        a = self.terms.assessments[o.proposal_id]
        if o.proposal_id in self.funded:
            return False
        pin = a.pin
        if pin is not None and (pin.action == "exclude" or (pin.machine not in (None, o.machine_id))):
            return False
        if any(self.exclusive_taken[j] for j in self.exclusive_of.get(o.proposal_id, [])):
            return False
        return self.org_cap is None or self.org_count[a.organisation] < self.org_cap

    def give(self, o: Option, more: int) -> None:
        a = self.terms.assessments[o.proposal_id]
        if o.proposal_id not in self.funded:
            self.funded.add(o.proposal_id)
            for j in self.exclusive_of.get(o.proposal_id, []):
                self.exclusive_taken[j] = True
            self.org_count[a.organisation] += 1
        self.units[o.key] = self.units.get(o.key, 0) + more
        self.left[o.machine_id] -= more
        if a.commercial:
            self.commercial_left[o.machine_id] -= more
        if a.group_id is not None:
            self.held[a.group_id] += more * self._ref(o)
            room = self.group_room.get(a.group_id)
            if room is not None:
                self.group_room[a.group_id] = room - more * self._ref(o)

    def fixed(self, o: Option) -> bool:
        """True when a pin fixes o's award exactly."""
        pin = self.terms.assessments[o.proposal_id].pin
        return pin is not None and pin.action == "fund" and pin.gpu_hours is not None

    def build(self, relaxation: Relaxation | None, repair: bool = True) -> Units:
        """Pins, then the LP rounded (with a small MILP over what rounding cannot settle when
        ``repair``), then share minimums repaired, then leftover capacity filled."""
        terms = self.terms
        lp = relaxation.units if relaxation is not None else {}
        # Pinned awards first, as pinned (the least they may be).
        for a in terms.assessments.values():
            pin = a.pin
            if pin is None or pin.action != "fund" or not a.options:
                continue
            choices = [o for o in a.options if pin.machine in (None, o.machine_id)]
            choices.sort(key=lambda o: (-lp.get(o.key, 0.0) * o.coef, -o.coef, o.machine_id))
            for o in choices:
                want = pin.gpu_hours // o.unit_hours if pin.gpu_hours is not None else o.min_units
                if self.may_fund(o) and self.room(o) >= want:
                    self.give(o, want)
                    break
        # Round the LP: each proposal's option of most LP merit, rounded down. With repair,
        # only whole awards the LP gives on one option are kept; the rest go to the MILP.
        used: dict[str, list[Option]] = defaultdict(list)
        for o in terms.options:
            if lp.get(o.key, 0.0) > 0:
                used[o.proposal_id].append(o)
        unsettled: set[str] = set()
        if repair and relaxation is not None:
            # The funded proposals the LP values least go to the MILP too, to make room for swaps.
            costs = {pid: min(relaxation.cost[o.key] for o in os) for pid, os in used.items()}
            unsettled = set(sorted(costs, key=lambda pid: (costs[pid], pid))[: self._pool()])
        ordered = sorted(used.values(), key=lambda os: (-max(lp[o.key] * o.coef for o in os), os[0].key))
        for os in ordered:
            o = max(os, key=lambda o: (lp[o.key] * o.coef, o.machine_id))
            if o.proposal_id in self.funded:
                continue
            want = min(math.floor(lp[o.key] + 1e-6), self.room(o))
            whole = len(os) == 1 and abs(lp[o.key] - round(lp[o.key])) <= 1e-6
            if repair and (o.proposal_id in unsettled or not (whole and want >= o.min_units)):
                unsettled.add(o.proposal_id)
            elif want >= o.min_units and self.may_fund(o):
                self.give(o, want)
        if repair and relaxation is not None:
            self._milp(relaxation, unsettled)
        by_density = sorted(terms.options, key=lambda o: (-o.coef, o.key))
        # Repair share minimums (capacity basis), best merit per unit first.
        if terms.share_basis == "capacity":
            for g in terms.groups.values():
                need = math.ceil(g.min_ref * self.scale) - self.held[g.group_id]
                if need <= 0:
                    continue
                for o in by_density:
                    if terms.assessments[o.proposal_id].group_id != g.group_id:
                        continue
                    need = math.ceil(g.min_ref * self.scale) - self.held[g.group_id]
                    if need <= 0:
                        break
                    self._add(o, cap=math.ceil(need / self._ref(o)))
        # Fill what is left, best merit per unit first.
        for o in by_density:
            self._add(o, cap=None)
        return self.units

    def _pool(self) -> int:
        """How many proposals on each side of the LP's cut the MILP reconsiders."""
        rows = 2 * len(self.terms.round.machines) + 2 * len(self.terms.groups) + 10
        return POOL_PER_RULE * rows

    def _milp(self, relaxation: Relaxation, unsettled: set[str]) -> None:
        """Award the unsettled proposals and the unfunded ones closest to being worth funding
        by a small MILP (HiGHS) in what is left of every rule. Deterministic: a node limit,
        no time limit."""
        terms = self.terms
        best_cost: dict[str, float] = {}
        for o in terms.options:
            pid = o.proposal_id
            if pid in self.funded or pid in unsettled:
                continue
            c = relaxation.cost.get(o.key, math.inf)
            if c < best_cost.get(pid, math.inf):
                best_cost[pid] = c
        extra = sorted(best_cost, key=lambda pid: (best_cost[pid], pid))[: self._pool()]
        free = []
        for pid in sorted(unsettled | set(extra)):
            fits = [
                o
                for o in terms.assessments[pid].options
                if pid not in self.funded and self.may_fund(o) and self.room(o) >= o.min_units
            ]
            fits.sort(key=lambda o: (relaxation.cost.get(o.key, math.inf), o.machine_id))
            free += fits[:OPTIONS_PER_PROPOSAL]
        if not free:
            return
        n = len(free)
        entries: list[tuple[int, int, float]] = []
        lo: list[float] = []
        hi: list[float] = []

        def add(cols: list[tuple[int, float]], low: float, high: float) -> None:
            r = len(lo)
            entries.extend((r, c, v) for c, v in cols)
            lo.append(low)
            hi.append(high)

        for i, o in enumerate(free):
            add([(n + i, float(o.min_units)), (i, -1.0)], -math.inf, 0.0)
            add([(i, 1.0), (n + i, -float(o.max_units))], -math.inf, 0.0)
        by: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, o in enumerate(free):
            a = terms.assessments[o.proposal_id]
            by[("p", o.proposal_id)].append(i)
            by[("m", o.machine_id)].append(i)
            if a.commercial:
                by[("c", o.machine_id)].append(i)
            if a.group_id is not None:
                by[("g", a.group_id)].append(i)
            by[("o", a.organisation)].append(i)
            for j in self.exclusive_of.get(o.proposal_id, []):
                by[("e", str(j))].append(i)
        for (kind, name), idx in sorted(by.items()):
            if kind in ("p", "e") and len(idx) > 1:
                add([(n + i, 1.0) for i in idx], -math.inf, 1.0)
            elif kind == "m":
                add([(i, 1.0) for i in idx], -math.inf, float(self.left[name]))
            elif kind == "c":
                add([(i, 1.0) for i in idx], -math.inf, float(self.commercial_left[name]))
            elif kind == "o" and self.org_cap is not None:
                add([(n + i, 1.0) for i in idx], -math.inf, float(self.org_cap - self.org_count[name]))
            elif kind == "g":
                g = terms.groups[name]
                room = self.group_room.get(name)
                need = math.ceil(g.min_ref * self.scale) - self.held[name]
                low = need / self.scale if terms.share_basis == "capacity" and need > 0 else -math.inf
                high = room / self.scale if room is not None else math.inf
                if low > -math.inf or high < math.inf:
                    # Slightly inside the bounds, so float round-off cannot cross them.
                    add([(i, float(free[i].ref_per_unit)) for i in idx], low * (1 + 1e-9), high * (1 - 1e-9))
        at = np.array(entries, dtype=float)
        matrix = coo_matrix(
            (at[:, 2], (at[:, 0].astype(np.int64), at[:, 1].astype(np.int64))), shape=(len(lo), 2 * n)
        ).tocsr()
        res = milp(
            -np.concatenate([np.array([o.coef for o in free], dtype=float), np.zeros(n)]),
            integrality=np.ones(2 * n),
            bounds=Bounds(np.zeros(2 * n), np.concatenate([[o.max_units for o in free], np.ones(n)])),
            constraints=LinearConstraint(matrix, np.array(lo), np.array(hi)),
            options={
                "node_limit": MILP_NODES,
                "mip_rel_gap": 1e-6,
                "presolve": True,
                **({"time_limit": self.time_limit} if self.time_limit is not None else {}),
            },
        )
        if res.x is None:
            return
        for i, o in enumerate(free):
            want = round(res.x[i])
            if want >= o.min_units and self.may_fund(o) and self.room(o) >= want:
                self.give(o, want)

    def _add(self, o: Option, cap: int | None) -> None:
        """More units on o (a new award only if at least its minimum fits), at most cap more."""
        if self.fixed(o):
            return
        more = self.room(o)
        if cap is not None:
            more = min(more, cap) if o.key in self.units else max(min(more, cap), min(more, o.min_units))
        if o.key in self.units:
            if more > 0:
                self.give(o, more)
        elif more >= o.min_units and self.may_fund(o):
            self.give(o, more)


# -- an independent check of every hard rule -----------------------------------------------


def feasible(terms: Terms, units: Units, hard_shares: bool = False) -> bool:
    """True when these award units satisfy every hard rule of the round's terms (with
    ``hard_shares``, soft share bounds too, as the rank model has them)."""
    known = {o.key for o in terms.options}
    if any(v < 0 or (v > 0 and key not in known) for key, v in units.items()):
        return False
    rnd = terms.round
    on_machine: dict[str, int] = defaultdict(int)
    commercial: dict[str, int] = defaultdict(int)
    held: dict[str, Fraction] = defaultdict(Fraction)
    awarded = Fraction(0)
    funded: set[str] = set()
    for a in terms.assessments.values():
        used = [(o, units.get(o.key, 0)) for o in a.options if units.get(o.key, 0) > 0]
        if not used:
            if a.pin is not None and a.pin.action == "fund":
                return False
            continue
        funded.add(a.proposal.id)
        if any(u > o.max_units for o, u in used):
            return False
        if a.split:
            if len(used) > a.proposal.max_machines:
                return False
            if sum((o.f * u for o, u in used), Fraction(0)) > 1:
                return False
            if sum((o.g * u for o, u in used), Fraction(0)) < 1:
                return False
        elif len(used) != 1 or used[0][1] < used[0][0].min_units:
            return False
        pin = a.pin
        if pin is not None:
            if pin.action == "exclude":
                return False
            if pin.machine is not None:
                if any(o.machine_id != pin.machine for o, _ in used):
                    return False
                if pin.gpu_hours is not None and used[0][1] * used[0][0].unit_hours != pin.gpu_hours:
                    return False
        for o, u in used:
            on_machine[o.machine_id] += u
            if a.commercial:
                commercial[o.machine_id] += u
            if a.group_id is not None:
                held[a.group_id] += u * o.ref_per_unit
            awarded += u * o.ref_per_unit
    for m in rnd.machines:
        if on_machine[m.id] > m.gpu_hours // m.award_unit:
            return False
        if commercial[m.id] > terms.commercial_cap_hours[m.id] // m.award_unit:
            return False
    for g in terms.groups.values():
        if g.soft and not hard_shares:
            continue
        h = held[g.group_id]
        if terms.share_basis == "capacity":
            if h < g.min_ref or h > g.max_ref:
                return False
        elif h < g.min_share * awarded or h > g.max_share * awarded:
            return False
    for group in rnd.policy.exclusive:
        if sum(1 for pid in group.proposals if pid in funded) > 1:
            return False
    k = rnd.policy.max_awards_per_organisation
    if k is not None:
        per_org: dict[str, int] = defaultdict(int)
        for pid in funded:
            per_org[terms.assessments[pid].organisation] += 1
        if any(v > k for v in per_org.values()):
            return False
    return True


def merit(terms: Terms, units: Units) -> int:
    """The scaled merit of these units (soft-share penalties not counted)."""
    return sum(o.coef * units.get(o.key, 0) for o in terms.options)


def share_deviations(terms: Terms, units: Units) -> dict[str, tuple[int, int]]:
    """For each soft share group, the least (shortfall, excess) in whole reference GPU-hours the
    model's deviation variables must take with these units (to complete a hint)."""
    scale = terms.share_scale
    held: dict[str, int] = defaultdict(int)
    awarded = 0
    for key, u in units.items():
        o = terms.option_of.get(key)
        if u and o is not None:
            r = terms.scaled_ref[key] * u
            awarded += r
            group = terms.assessments[o.proposal_id].group_id
            if group is not None:
                held[group] += r
    out: dict[str, tuple[int, int]] = {}
    for g in terms.groups.values():
        if not g.soft:
            continue
        h = held[g.group_id]
        if terms.share_basis == "capacity":
            short = math.ceil(g.min_ref * scale) - h
            over = h - math.floor(g.max_ref * scale)
            out[g.group_id] = (max(0, -(-short // scale)), max(0, -(-over // scale)))
        else:
            lo, hi = g.min_share, g.max_share
            short = lo.numerator * awarded - lo.denominator * h
            over = hi.denominator * h - hi.numerator * awarded
            out[g.group_id] = (
                max(0, -(-short // (lo.denominator * scale))),
                max(0, -(-over // (hi.denominator * scale))),
            )
    return out
