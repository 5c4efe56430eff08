"""An independent brute-force optimiser for tiny rounds, to cross-check the CP-SAT model.

It shares no code with ``allocopt.terms``, ``allocopt.model`` or
``allocopt.outcome``: every rule and every conversion is re-derived here from
the documented rules, with exact fractions, in the plainest form we could
write. It lists, for each proposal, "no award" or every (machine, whole number
of award units) the proposal's own rules allow, tries every combination that
fits the machines, and keeps the best one that satisfies all the round-wide
rules.

The rules, as documented:

- a proposal is eligible when its score is not below the threshold, and, under
  ``commercial: exclude``, when its publication commitment qualifies for free
  access ('open' always, an embargo up to ``max_embargo_months``, never
  'confidential' or any embargo when the limit is null);
- it can run on a machine whose stack and CPU architecture it lists and whose
  per-GPU memory is at least its minimum;
- an award is a whole number k >= 1 of the machine's award units u; on a machine
  with exchange rate e it is worth k*u*e reference GPU-hours, which must be at
  least the proposal's minimum and at most its request; k*u must not exceed the
  machine's per-proposal caps (GPU-hours, and the fraction of the machine's
  round GPU-hours);
- a proposal gets at most one award (one machine);
- per machine, the awards' GPU-hours fit in its round GPU-hours, and the
  commercial proposals' GPU-hours fit in commercial_cap * round GPU-hours;
- per share group, the members' reference GPU-hours lie between min_share and
  max_share times the round's capacity in reference GPU-hours;
- one award unit is worth round_half_up(S * w * e*u / R) objective points with
  S = 10**8 (value 'fraction') or round_half_up(S * w * e*u) with S = 10**3
  (value 'hours'), w = ((score - scale.min) / (scale.max - scale.min)) ** exponent
  and R the request in reference GPU-hours; an award of k units is worth k times
  that.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from allocopt.round import Machine, Proposal, Round

SCALE = {"fraction": 10**8, "hours": 10**3}


def dec(value: float | int) -> Fraction:
    """A number from the round file as the exact decimal it was written as."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


@dataclass(frozen=True)
class Award:
    """One possible award: a proposal, a machine and a whole number of award units."""

    proposal_id: str
    machine_id: str
    units: int
    gpu_hours: int
    reference_hours: Fraction
    points: int  # scaled objective value of the whole award
    commercial: bool
    group_id: str | None


def is_commercial(rnd: Round, p: Proposal) -> bool:
    """The commitment does not qualify for free access."""
    commitment = p.publication.commitment
    if commitment == "open":
        return False
    if commitment == "confidential":
        return True
    limit = rnd.policy.free_access.max_embargo_months
    if limit is None:
        return True
    assert p.publication.embargo_months is not None
    return p.publication.embargo_months > limit


def group_of(rnd: Round, p: Proposal) -> str | None:
    for g in rnd.policy.share_groups:
        if p.applicant.kind in g.kinds:
            return g.id
    return None


def is_eligible(rnd: Round, p: Proposal) -> bool:
    if dec(p.score) < dec(rnd.policy.score_threshold):
        return False
    return not (rnd.policy.commercial == "exclude" and is_commercial(rnd, p))


def runs_on(m: Machine, p: Proposal) -> bool:
    req = p.requirements
    return (
        m.stack in req.stacks
        and m.cpu_arch in req.cpu_archs
        and dec(m.gpu_memory_gb) >= dec(req.min_gpu_memory_gb)
    )


def within_proposal_cap(m: Machine, gpu_hours: int) -> bool:
    if m.max_award_gpu_hours is not None and gpu_hours > m.max_award_gpu_hours:
        return False
    return not (m.max_award_fraction is not None and gpu_hours > dec(m.max_award_fraction) * m.gpu_hours)


def unit_points(rnd: Round, p: Proposal, m: Machine) -> int:
    """Scaled objective points of one award unit of p on m."""
    lo, hi = dec(rnd.score_scale.min), dec(rnd.score_scale.max)
    weight = ((dec(p.score) - lo) / (hi - lo)) ** rnd.policy.merit.exponent
    ref_per_unit = m.award_unit * dec(m.exchange_rate)
    value = rnd.policy.merit.value
    if value == "fraction":
        worth = weight * ref_per_unit / p.request.reference_gpu_hours
    else:
        worth = weight * ref_per_unit
    return math.floor(SCALE[value] * worth + Fraction(1, 2))


def awards_for(rnd: Round, p: Proposal) -> list[Award]:
    """Every award the proposal's own rules allow (empty when it is not eligible)."""
    if not is_eligible(rnd, p):
        return []
    out = []
    for m in rnd.machines:
        if not runs_on(m, p):
            continue
        rate = dec(m.exchange_rate)
        points = unit_points(rnd, p, m)
        k = 1
        # An award above the request is never allowed, so stop there; one above the
        # machine's hours can never fit, so stop there too (a pure shortcut).
        while k * m.award_unit * rate <= p.request.reference_gpu_hours and k * m.award_unit <= m.gpu_hours:
            hours = k * m.award_unit
            ref = hours * rate
            if ref >= p.request.minimum_reference_gpu_hours and within_proposal_cap(m, hours):
                out.append(
                    Award(p.id, m.id, k, hours, ref, k * points, is_commercial(rnd, p), group_of(rnd, p))
                )
            k += 1
    return out


def capacity_ref(rnd: Round) -> Fraction:
    return sum((m.gpu_hours * dec(m.exchange_rate) for m in rnd.machines), Fraction(0))


def within_upper_limits(rnd: Round, plan: list[Award]) -> bool:
    """Capacity, commercial caps and share maximums: adding an award can only break these."""
    for m in rnd.machines:
        on_m = [a for a in plan if a.machine_id == m.id]
        if sum(a.gpu_hours for a in on_m) > m.gpu_hours:
            return False
        if sum(a.gpu_hours for a in on_m if a.commercial) > dec(m.commercial_cap) * m.gpu_hours:
            return False
    total = capacity_ref(rnd)
    for g in rnd.policy.share_groups:
        ref = sum((a.reference_hours for a in plan if a.group_id == g.id), Fraction(0))
        if ref > dec(g.max_share) * total:
            return False
    return True


def is_feasible(rnd: Round, plan: list[Award]) -> bool:
    """Every round-wide rule holds for a complete plan (one award at most per proposal)."""
    ids = [a.proposal_id for a in plan]
    if len(ids) != len(set(ids)):
        return False
    if not within_upper_limits(rnd, plan):
        return False
    total = capacity_ref(rnd)
    for g in rnd.policy.share_groups:
        ref = sum((a.reference_hours for a in plan if a.group_id == g.id), Fraction(0))
        if ref < dec(g.min_share) * total:
            return False
    return True


def feasible_plans(rnd: Round) -> Iterator[list[Award]]:
    """Every plan that satisfies all the rules."""
    choices = [awards_for(rnd, p) for p in rnd.proposals]

    def extend(i: int, plan: list[Award]) -> Iterator[list[Award]]:
        if i == len(choices):
            if is_feasible(rnd, plan):
                yield list(plan)
            return
        yield from extend(i + 1, plan)  # no award for proposal i
        for award in choices[i]:
            plan.append(award)
            if within_upper_limits(rnd, plan):  # pruning: a broken upper limit stays broken
                yield from extend(i + 1, plan)
            plan.pop()

    return extend(0, [])


def best_plan(rnd: Round) -> tuple[int, list[Award]] | None:
    """The best scaled objective and one plan reaching it, or None when no plan is feasible."""
    best: tuple[int, list[Award]] | None = None
    for plan in feasible_plans(rnd):
        points = sum(a.points for a in plan)
        if best is None or points > best[0]:
            best = (points, plan)
    return best


def brute_force(rnd: Round) -> int | None:
    """The best scaled objective, or None when the round is infeasible."""
    best = best_plan(rnd)
    return None if best is None else best[0]
