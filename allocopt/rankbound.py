"""LP bounds for the rank walk's raise steps: how far a funded proposal could still go.

A raise step asks for the largest fraction of its request a funded proposal can get with the
funded set fixed and every better-ranked proposal's fraction kept. The LP relaxation of that
question, bounded through its dual values as rigorously as the merit bound, is often below
the next fraction the proposal could reach beyond the allocation already found: then that
allocation gives it the most possible, and no CP-SAT check is needed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix, vstack

from allocopt.terms import Terms
from allocopt.warmstart import OptionKey, dual_value, relaxation_program


class RaiseBounds:
    """The LP relaxation of the rank walk's raise steps, the kept fractions added as they are
    decided."""

    def __init__(self, terms: Terms, funded: frozenset[str], unfunded: frozenset[str]) -> None:
        self.program = relaxation_program(terms, funded, unfunded, hard_shares=True)
        self.column = {o.key: i for i, o in enumerate(terms.options)}
        self.width = len(self.program.lower)
        self.kept: list[csr_matrix] = []
        self.kept_rhs: list[float] = []

    def _row(self, gains: dict[OptionKey, int]) -> csr_matrix:
        cols = [self.column[k] for k in gains]
        return csr_matrix(
            (np.array([float(v) for v in gains.values()]), (np.zeros(len(cols), dtype=np.int64), cols)),
            shape=(1, self.width),
        )

    def keep(self, gains: dict[OptionKey, int], at_least: int) -> None:
        """From now on sum(gains[o] u[o]) >= at_least (a decided raise step)."""
        self.kept.append(-self._row(gains))
        self.kept_rhs.append(-float(at_least))

    def most(self, gains: dict[OptionKey, int], time_limit: float | None = None) -> float | None:
        """A proven upper bound on sum(gains[o] u[o]) over every allocation the rules and the
        decisions so far allow (None when HiGHS does not solve the LP, in time_limit seconds
        if given)."""
        lp = self.program
        a_ub = vstack([lp.a_ub, *self.kept]).tocsr() if self.kept else lp.a_ub
        b_ub = np.concatenate([lp.b_ub, self.kept_rhs]) if self.kept else lp.b_ub
        c = lp.objective({self.column[k]: float(v) for k, v in gains.items()})
        res = linprog(
            c,
            A_ub=a_ub,
            b_ub=b_ub,
            A_eq=lp.a_eq,
            b_eq=lp.b_eq,
            bounds=np.column_stack([lp.lower, lp.upper]),
            method="highs",
            options={} if time_limit is None else {"time_limit": time_limit},
        )
        if res.status != 0:
            return None
        mu = res.eqlin.marginals if lp.a_eq is not None else None
        return dual_value(c, a_ub, b_ub, lp.a_eq, lp.b_eq, lp.lower, lp.upper, res.ineqlin.marginals, mu)


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
