"""A raise step's cheap first try: grow one award with room taken from worse-ranked awards.

Before the rank walk asks CP-SAT how far a funded proposal can go, it tries the obvious move
in the allocation at hand. The proposal's award grows, on its machine or moved to another,
into the room left free and the room that worse-ranked funded awards on that machine hold
above their minimums, taken worst-ranked first. Every other rank decision stays as it is:
the same proposals funded, every better-ranked award unchanged. When the grown award reaches
the LP bound's level the step is settled without CP-SAT. Otherwise the allocation is still a
better hint.

This is a heuristic: what it returns is checked against every hard rule (``feasible``, with
share bounds hard as the rank model has them), and nothing depends on it finding the most.
"""

from __future__ import annotations

import math
from collections import defaultdict
from fractions import Fraction

from allocopt.terms import Assessment, Option, Terms
from allocopt.warmstart import OptionKey, Units, feasible


def top_up(
    terms: Terms,
    units: Units,
    a: Assessment,
    later: list[Assessment],
    gains: dict[OptionKey, int],
    most: float,
) -> Units | None:
    """An allocation in which ``a`` has a larger ``sum(gains[o] u[o])`` than in ``units``, at
    most ``most``, with only ``a`` and the funded proposals in ``later`` (worse-ranked, their
    steps still to come) changed and each of those still funded; None when none is found."""
    if a.split or a.pin is not None:
        return None
    now = [o for o in a.options if units.get(o.key, 0) > 0]
    if len(now) != 1:
        return None
    level = gains[now[0].key] * units[now[0].key]
    room = _Room(terms, units, a, later)
    best: tuple[int, Option, int] | None = None
    # The current machine first: on a tie the award stays where it is.
    for o in sorted(a.options, key=lambda o: (o.key != now[0].key, o.machine_id)):
        step = gains[o.key]
        if step <= 0:
            continue
        high = o.max_units if math.isinf(most) else min(o.max_units, math.floor(most / step))
        low = max(o.min_units, level // step + 1)
        if best is not None:
            low = max(low, best[0] // step + 1)
        if high < low or room.trims(o, low) is None:
            continue
        while low < high:  # the most units that fit (room shrinks as the award grows)
            mid = (low + high + 1) // 2
            low, high = (mid, high) if room.trims(o, mid) is not None else (low, mid - 1)
        best = (step * low, o, low)
    if best is None:
        return None
    _, o, k = best
    trims = room.trims(o, k)
    assert trims is not None
    grown = {key: u for key, u in units.items() if key[0] != a.proposal.id}
    grown[o.key] = k
    for key, cut in trims.items():
        grown[key] -= cut
    return grown if feasible(terms, grown, hard_shares=True) else None


class _Room:
    """What an award of ``a`` may use, in the allocation given: each machine's free units and
    the worse-ranked awards on it, and the share groups' holdings."""

    def __init__(self, terms: Terms, units: Units, a: Assessment, later: list[Assessment]) -> None:
        self.terms, self.a = terms, a
        self.machines = {m.id: m for m in terms.round.machines}
        self.load: dict[str, int] = defaultdict(int)
        self.commercial: dict[str, int] = defaultdict(int)
        self.held: dict[str, Fraction] = defaultdict(Fraction)
        self.awarded = Fraction(0)
        for key, u in units.items():
            o = terms.option_of.get(key)
            if not u or o is None or key[0] == a.proposal.id:
                continue
            b = terms.assessments[key[0]]
            self.load[o.machine_id] += u
            if b.commercial:
                self.commercial[o.machine_id] += u
            if b.group_id is not None:
                self.held[b.group_id] += u * o.ref_per_unit
            self.awarded += u * o.ref_per_unit
        # Worse-ranked single-machine awards above their minimum, worst first, by machine.
        self.spare: dict[str, list[tuple[Option, int]]] = defaultdict(list)
        for b in reversed(later):
            if b.split or b.pin is not None:
                continue
            for o in b.options:
                u = units.get(o.key, 0)
                if u > o.min_units:
                    self.spare[o.machine_id].append((o, u - o.min_units))

    def trims(self, o: Option, k: int) -> dict[OptionKey, int] | None:
        """The units to take from worse-ranked awards so that ``a`` can have k units on o (a
        commercial award takes from commercial ones first), or None if the rules do not allow it."""
        terms, m = self.terms, self.machines[o.machine_id]
        need = self.load[m.id] + k - m.gpu_hours // m.award_unit
        need_commercial = (
            self.commercial[m.id] + k - terms.commercial_cap_hours[m.id] // m.award_unit
            if self.a.commercial
            else 0
        )
        cut: dict[OptionKey, int] = {}
        for commercial_only in (True, False):
            for b_opt, spare in self.spare[m.id]:
                if need <= 0 and need_commercial <= 0:
                    break
                commercial = terms.assessments[b_opt.proposal_id].commercial
                if commercial_only and not (commercial and need_commercial > 0):
                    continue
                take = min(spare - cut.get(b_opt.key, 0), max(need, need_commercial if commercial else 0))
                if take <= 0:
                    continue
                cut[b_opt.key] = cut.get(b_opt.key, 0) + take
                need -= take
                if commercial:
                    need_commercial -= take
        if need > 0 or need_commercial > 0:
            return None
        return cut if self._shares_hold(o, k, cut) else None

    def _shares_hold(self, o: Option, k: int, cut: dict[OptionKey, int]) -> bool:
        terms = self.terms
        held = dict(self.held)
        awarded = self.awarded + k * o.ref_per_unit
        if self.a.group_id is not None:
            held[self.a.group_id] = held.get(self.a.group_id, Fraction(0)) + k * o.ref_per_unit
        for key, c in cut.items():
            b_opt = terms.option_of[key]
            awarded -= c * b_opt.ref_per_unit
            group = terms.assessments[key[0]].group_id
            if group is not None:
                held[group] -= c * b_opt.ref_per_unit
        for g in terms.groups.values():
            h = held.get(g.group_id, Fraction(0))
            if terms.share_basis == "capacity":
                if not g.min_ref <= h <= g.max_ref:
                    return False
            elif not g.min_share * awarded <= h <= g.max_share * awarded:
                return False
        return True
