"""A raise step's cheap first try: grow one award with room taken from worse-ranked awards.

When the LP bound does not settle a raise step at once, the rank walk tries the obvious move
in the allocation at hand before it asks CP-SAT. The proposal's award (on one machine, not
pinned) grows, on its machine or moved to another of its options, into the room left free
there and the room that worse-ranked funded awards on that machine (single-machine, unpinned)
hold above their minimums, taken worst-ranked first. Every other rank decision stays as it
is: the funded proposals stay funded and no other is funded, and no better-ranked award
changes. When the grown award reaches the LP bound's level the step is settled without
CP-SAT; otherwise the grown allocation is still a better hint.

This is a heuristic: what it returns is checked against every hard rule (``feasible``, with
share bounds hard as the rank model has them), and nothing depends on it finding the most.
"""

from __future__ import annotations

import math
from collections import defaultdict

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
        # The most units that fit, by bisection: room on the machine shrinks as the award grows
        # (share bounds on the 'awarded' basis need not; the result is checked whatever it is).
        while low < high:
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
    """What an award of ``a`` may use in the allocation given: each machine's load (everyone's
    but ``a``'s, in award units, and the commercial awards'), the worse-ranked awards on it that
    may give units up, and the share groups' holdings (in reference GPU-hours times
    ``terms.share_scale``, whole numbers, as the model counts them)."""

    def __init__(self, terms: Terms, units: Units, a: Assessment, later: list[Assessment]) -> None:
        self.terms, self.a = terms, a
        self.machines = {m.id: m for m in terms.round.machines}
        self.load: dict[str, int] = defaultdict(int)
        self.commercial: dict[str, int] = defaultdict(int)
        self.held: dict[str, int] = defaultdict(int)
        self.awarded = 0
        shares = bool(terms.groups)
        for key, u in units.items():
            o = terms.option_of.get(key)
            if not u or o is None or key[0] == a.proposal.id:
                continue
            b = terms.assessments[key[0]]
            self.load[o.machine_id] += u
            if b.commercial:
                self.commercial[o.machine_id] += u
            if shares:
                ref = u * terms.scaled_ref[key]
                if b.group_id is not None:
                    self.held[b.group_id] += ref
                self.awarded += ref
        # Worse-ranked single-machine, unpinned awards above their minimum, worst first, by machine.
        self.spare: dict[str, list[tuple[Option, int]]] = defaultdict(list)
        for b in reversed(later):
            if b.split or b.pin is not None:
                continue
            for o in b.options:
                u = units.get(o.key, 0)
                if u > o.min_units:
                    self.spare[o.machine_id].append((o, u - o.min_units))

    def trims(self, o: Option, k: int) -> dict[OptionKey, int] | None:
        """The units to take from worse-ranked awards so that ``a`` can have k units on o, or
        None if the rules do not allow it. Worst-ranked first; when the commercial cap binds
        for a commercial ``a``, commercial awards give up what the cap needs first."""
        terms, m = self.terms, self.machines[o.machine_id]
        need = self.load[m.id] + k - m.gpu_hours // m.award_unit
        need_commercial = (
            self.commercial[m.id] + k - terms.commercial_cap_hours[m.id] // m.award_unit
            if self.a.commercial
            else 0
        )
        cut: dict[OptionKey, int] = {}

        def take(key: OptionKey, spare: int, wanted: int, commercial: bool) -> None:
            nonlocal need, need_commercial
            more = min(spare - cut.get(key, 0), wanted)
            if more > 0:
                cut[key] = cut.get(key, 0) + more
                need -= more
                if commercial:
                    need_commercial -= more

        spare_here = self.spare[m.id]
        for b_opt, spare in spare_here:  # what the commercial cap needs, from commercial awards
            if need_commercial <= 0:
                break
            if terms.assessments[b_opt.proposal_id].commercial:
                take(b_opt.key, spare, need_commercial, True)
        for b_opt, spare in spare_here:  # then what capacity still needs, from any award
            if need <= 0:
                break
            take(b_opt.key, spare, need, terms.assessments[b_opt.proposal_id].commercial)
        if need > 0 or need_commercial > 0:
            return None
        return cut if self._shares_hold(o, k, cut) else None

    def _shares_hold(self, o: Option, k: int, cut: dict[OptionKey, int]) -> bool:
        """Every share bound, hard, with ``a`` at k units on o and these units cut."""
        terms = self.terms
        if not terms.groups:
            return True
        held = dict(self.held)
        grown = k * terms.scaled_ref[o.key]
        awarded = self.awarded + grown
        if self.a.group_id is not None:
            held[self.a.group_id] = held.get(self.a.group_id, 0) + grown
        for key, c in cut.items():
            lost = c * terms.scaled_ref[key]
            awarded -= lost
            group = terms.assessments[key[0]].group_id
            if group is not None:
                held[group] -= lost
        scale = terms.share_scale
        for g in terms.groups.values():
            h = held.get(g.group_id, 0)
            if terms.share_basis == "capacity":
                if not g.min_ref * scale <= h <= g.max_ref * scale:
                    return False
            elif not g.min_share * awarded <= h <= g.max_share * awarded:
                return False
        return True
