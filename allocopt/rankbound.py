"""LP bounds for the rank walk's raise steps: how far a funded proposal could still go.

A raise step asks for the largest fraction of its request a funded proposal can get with the
funded set fixed and every better-ranked proposal's fraction kept. The LP relaxation of that
question, bounded through its dual values as rigorously as the merit bound, is often below
the next fraction the proposal could reach beyond the allocation already found: then that
allocation gives it the most possible, and no CP-SAT check is needed.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import csr_matrix, vstack

from allocopt.terms import Terms
from allocopt.warmstart import OptionKey, dual_value, relaxation_program

if TYPE_CHECKING:  # imported where used: every command would pay its 0.15 s import
    import highspy


class RaiseBounds:
    """The LP relaxation of the rank walk's raise steps, kept in one HiGHS model: each step
    changes its objective and adds the fraction just decided as a row, and HiGHS re-solves
    from the last basis instead of from scratch."""

    def __init__(self, terms: Terms, funded: frozenset[str], unfunded: frozenset[str]) -> None:
        lp = relaxation_program(terms, funded, unfunded, hard_shares=True)
        self.program = lp
        self.column = {o.key: i for i, o in enumerate(terms.options)}
        self.width = len(lp.lower)
        self.kept_cols: list[np.ndarray] = []  # the decided fractions' rows, for the bound
        self.kept_vals: list[np.ndarray] = []
        self.kept_rhs: list[float] = []
        self.cost: list[int] = []  # the columns the last objective set
        import highspy

        highs = _quiet_highs()
        highs.setOptionValue("threads", 1)
        self.inf = highspy.kHighsInf
        self.optimal = highspy.HighsModelStatus.kOptimal
        highs.addVars(self.width, lp.lower, lp.upper)
        self._add_rows(highs, lp.a_ub, np.full(lp.a_ub.shape[0], -self.inf), lp.b_ub)
        if lp.a_eq is not None and lp.b_eq is not None:
            self._add_rows(highs, lp.a_eq, lp.b_eq, lp.b_eq)
        highs.changeObjectiveSense(highspy.ObjSense.kMinimize)
        self.highs = highs

    @staticmethod
    def _add_rows(highs: highspy.Highs, a: csr_matrix, lower: np.ndarray, upper: np.ndarray) -> None:
        a = a.tocsr()
        highs.addRows(a.shape[0], lower, upper, a.nnz, a.indptr[:-1], a.indices, a.data)

    def keep(self, gains: dict[OptionKey, int], at_least: int) -> None:
        """From now on sum(gains[o] u[o]) >= at_least (a decided raise step)."""
        cols = np.array([self.column[k] for k in gains], dtype=np.int32)
        vals = -np.array([float(v) for v in gains.values()])
        self.highs.addRow(-self.inf, -float(at_least), len(cols), cols, vals)  # first: lists follow it
        self.kept_cols.append(cols)
        self.kept_vals.append(vals)
        self.kept_rhs.append(-float(at_least))

    def _kept_rows(self) -> csr_matrix:
        sizes = [len(c) for c in self.kept_cols]
        indptr = np.concatenate([[0], np.cumsum(sizes)])
        return csr_matrix(
            (np.concatenate(self.kept_vals), np.concatenate(self.kept_cols), indptr),
            shape=(len(sizes), self.width),
        )

    def most(self, gains: dict[OptionKey, int], time_limit: float | None = None) -> float | None:
        """A proven upper bound on sum(gains[o] u[o]) over every allocation the rules and the
        decisions so far allow (None when HiGHS does not solve the LP, in time_limit seconds
        if given)."""
        lp, highs = self.program, self.highs
        c = lp.objective({self.column[k]: float(v) for k, v in gains.items()})
        cols = sorted(set(self.cost) | {self.column[k] for k in gains})
        highs.changeColsCost(len(cols), np.array(cols, dtype=np.int32), c[cols])
        self.cost = [self.column[k] for k in gains]
        # HiGHS measures its time limit against the model's run time over every solve so far.
        limit = math.inf if time_limit is None else highs.getRunTime() + time_limit
        highs.setOptionValue("time_limit", limit)
        highs.run()
        if highs.getModelStatus() != self.optimal:
            return None
        # HiGHS's rows: a_ub's, then a_eq's (as added in __init__), then the kept fractions.
        duals = np.array(highs.getSolution().row_dual)
        equalities = lp.a_eq is not None and lp.b_eq is not None
        n_ub = lp.a_ub.shape[0]
        n_eq = lp.a_eq.shape[0] if equalities and lp.a_eq is not None else 0
        lam = np.concatenate([duals[:n_ub], duals[n_ub + n_eq :]])
        mu = duals[n_ub : n_ub + n_eq] if equalities else None
        a_ub = vstack([lp.a_ub, self._kept_rows()]).tocsr() if self.kept_rhs else lp.a_ub
        b_ub = np.concatenate([lp.b_ub, self.kept_rhs]) if self.kept_rhs else lp.b_ub
        return dual_value(c, a_ub, b_ub, lp.a_eq, lp.b_eq, lp.lower, lp.upper, lam, mu)


_QUIET = threading.Lock()  # one redirection at a time, or one would restore the other's


def _quiet_highs() -> highspy.Highs:
    """A HiGHS model that prints nothing. HiGHS writes its banner to the process's standard
    output as a model is made (once per process in the versions we use), before logging can be
    turned off; that moment's output on file descriptor 1, where HiGHS writes, goes to the null
    device. Another thread writing to it in that moment loses its output; the CLI has none."""
    import highspy

    with _QUIET:
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
            saved: int | None = os.dup(1)
        except (OSError, ValueError):  # no standard output to keep clean (closed)
            saved = None
        try:
            if saved is not None:
                with open(os.devnull, "w") as null:
                    os.dup2(null.fileno(), 1)
            highs = highspy.Highs()
            highs.setOptionValue("output_flag", False)
        finally:
            if saved is not None:
                os.dup2(saved, 1)
                os.close(saved)
    return highs


def next_level(gains: dict[OptionKey, int], current: int, split: bool) -> float:
    """The least value of sum(gains[o] u[o]) above ``current`` an award could have, or less:
    on one option o, a multiple of gains[o]; split over several, a multiple of their gcd."""
    steps = [g for g in gains.values() if g > 0]
    if not steps:
        return math.inf
    if split:
        g = math.gcd(*steps)
        return (current // g + 1) * g
    return min((current // g + 1) * g for g in steps)
