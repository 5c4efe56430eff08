"""Reason codes that need a purpose-built round: share_min, kept, rank, combined_rules, not_reached.

Each test builds a small round in which the code is produced for a named proposal and recomputes
the numbers the reason rests on from the round itself; a code that names a rule has a companion
that relaxes the rule and shows the decision or award changing. Merit weights: a score of s on
the 0-5 scale weighs s/5, and one award unit worth a fraction f of the request is worth
round(10**8 x w x f) points (value 'fraction').
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest

from allocopt.explain import APPLICANT_WORDS
from allocopt.generate import generate_round
from allocopt.model import AllocationModel
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import Keep, solve
from allocopt.verify import verify
from tests.helpers import (
    codes,
    decision,
    group,
    hours,
    machine,
    make_round,
    proposal,
    solve_checked,
    solve_rank_checked,
)

UNIT = 1000  # the helpers' award unit, in GPU-hours (exchange rate 1)
SCALE = 10**8  # scaled merit points per unit of merit under value 'fraction'


def detail(solution: Solution, proposal_id: str, code: str) -> str:
    """The words of one reason of a proposal."""
    (words,) = [r.detail for r in solution.result(proposal_id).reasons if r.code == code]
    return words


def awarded(solution: Solution) -> int:
    """GPU-hours awarded over every proposal and machine."""
    return sum(a.gpu_hours for r in solution.proposals for a in r.allocations)


def coef(score: float, request: int) -> int:
    """Scaled merit of one award unit for a proposal of this score and reference-hour request."""
    return math.floor(SCALE * Fraction(str(score)) / 5 * Fraction(UNIT, request) + Fraction(1, 2))


# --- share_min: a minimum share of the hours awarded ------------------------------------------

P2_HOURS = 2000  # the start-up's whole request: it is always funded in full


def awarded_basis_round(min_share: float) -> Round:
    """P1 (academic, 5.0) asks 3,000; P2 (start-up, 2.0) asks 2,000; the start-ups' minimum share
    counts against the hours awarded, on a machine with room for both requests."""
    return make_round(
        proposals=[
            proposal("P1", score=5.0, request=3000, minimum=1000),
            proposal("P2", kind="start-up", score=2.0, request=P2_HOURS, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=min_share)],
        share_basis="awarded",
    )


def most_p1_hours(min_share: float) -> int:
    """P1's largest whole-unit award (up to its 3,000 request) with the start-ups' 2,000 at
    least min_share of everything awarded."""
    lo, held = Fraction(str(min_share)), Fraction(P2_HOURS)
    p1 = 0
    while p1 + UNIT <= 3000 and held / (held + p1 + UNIT) >= lo:
        p1 += UNIT
    return p1


@pytest.mark.parametrize(
    "min_share",
    [
        0.45,  # why: 2,000 of 5,000 is 40 % < 45 %: P1 stops one unit short at 2,000
        0.6,  # why: 2,000 of 4,000 is 50 % < 60 %: P1 stops at its 1,000 minimum
        0.7,  # why: even P1's minimum makes it 2,000 of 3,000, 67 % < 70 %: not funded at all
    ],
)
def test_share_min_names_the_guaranteed_group(min_share: float) -> None:
    """Under share basis 'awarded' a proposal held back to keep another group at its minimum is told so,
    with that minimum."""
    rnd = awarded_basis_round(min_share)
    sol = solve_checked(rnd)
    p1 = most_p1_hours(min_share)
    assert p1 < 3000 and P2_HOURS / (P2_HOURS + p1 + UNIT) < min_share  # one more unit would break it
    assert hours(sol, "P2") == {"m1": P2_HOURS}
    assert hours(sol, "P1") == ({"m1": p1} if p1 else {})
    assert decision(sol, "P1") == ("reduced" if p1 else "not_funded")
    assert codes(sol, "P1") == ["share_min"]
    words = detail(sol, "P1", "share_min")
    assert f"Group startups share would fall below its {min_share:.0%} minimum" in words
    assert sol.metrics.groups[0].share == pytest.approx(P2_HOURS / (P2_HOURS + p1))
    assert sol.metrics.groups[0].share >= min_share


@pytest.mark.parametrize(
    ("tight", "lowered"),
    [
        (0.45, 0.4),  # why: 2,000 of 5,000 is exactly 40 %: P1 gets its whole request
        (0.6, 0.5),  # why: 2,000 of 4,000 is exactly 50 %: P1 gains a unit
        (0.7, 0.6),  # why: 2,000 of 3,000 is 67 % >= 60 %: P1 goes from nothing to its minimum
    ],
)
def test_share_min_lowered_gives_the_hours_back(tight: float, lowered: float) -> None:
    """Lowering the guaranteed minimum hands the hours it held back to the proposal it cut."""
    before = solve_checked(awarded_basis_round(tight))
    after = solve_checked(awarded_basis_round(lowered))
    p1 = most_p1_hours(lowered)
    assert p1 > most_p1_hours(tight)
    assert hours(after, "P1") == {"m1": p1}
    assert hours(after, "P1") != hours(before, "P1")
    assert decision(after, "P1") == ("funded" if p1 == 3000 else "reduced")
    assert codes(after, "P1") == ([] if p1 == 3000 else ["share_min"])  # a lower minimum may still bind


# --- kept: solve --keep stays close to the previous solution ----------------------------------


def keep_round(gpu_hours: int) -> Round:
    """P1 (5.0) and P2 (4.0) each ask 6,000 with a 1,000 minimum on one machine."""
    return make_round(
        machines=[machine(gpu_hours=gpu_hours)],
        proposals=[
            proposal("P1", score=5.0, request=6000, minimum=1000),
            proposal("P2", score=4.0, request=6000, minimum=1000),
        ],
    )


@pytest.mark.parametrize(
    "tolerance",
    [
        0.2,  # why: keeping P2 at its old 2,000 costs 17 % of the best merit: within 20 %, nothing moves
        0.1,  # why: 2,000 is 17 % short, but 3,000 only 9 %: P2 moves one unit and keeps 1,000 idle
        0.0,  # why: no tolerance: P2 takes all the new hours, and the machine, not --keep, limits it
    ],
)
def test_kept_leaves_room_within_the_tolerance(tolerance: float) -> None:
    """After --keep, a proposal left with room says the re-solve stayed close to the previous one on
    purpose, and the merit given up stays within the tolerance."""
    previous = solve_checked(keep_round(8000))
    assert (hours(previous, "P1"), hours(previous, "P2")) == ({"m1": 6000}, {"m1": 2000})
    bigger = keep_round(10_000)
    kept = solve(bigger, keep=Keep.of(previous, tolerance))
    assert verify(bigger, kept) == []
    best = 6 * coef(5.0, 6000) + 4 * coef(4.0, 6000)  # the fresh optimum: P1 6,000, P2 4,000
    assert solve_checked(bigger).objective.scaled == best
    assert kept.keep is not None and kept.keep.best_scaled == best
    floor = best - math.floor(best * Fraction(str(tolerance)))
    # The fewest hours moved: P2's smallest award from its old 2,000 up that is within the tolerance.
    p2 = next(h for h in (2000, 3000, 4000) if 6 * coef(5.0, 6000) + h // UNIT * coef(4.0, 6000) >= floor)
    assert hours(kept, "P1") == {"m1": 6000}
    assert hours(kept, "P2") == {"m1": p2}
    assert kept.objective.scaled >= floor
    room = bigger.machines[0].gpu_hours - awarded(kept)
    assert room == 10_000 - 6000 - p2
    if room >= UNIT:
        assert codes(kept, "P2") == ["kept"]
        assert kept.objective.scaled < best and kept.solver.status == "feasible"
    else:
        assert codes(kept, "P2") == ["capacity"]
        assert kept.objective.scaled == best and kept.solver.status == "optimal"


# --- rank and combined_rules: the rules together leave no room --------------------------------


def start_up_round(penalty: float) -> Round:
    """Two 5,000 GPU-h machines; the start-ups may hold 70 % (7,000) of the round, a soft maximum
    with this penalty per reference GPU-h over it. P1 (start-up, 5.0) asks 3,000 at once; P2
    (start-up, 4.0) asks 8,000 with a 6,000 minimum, split over up to 2 machines; P3 (academic,
    1.0) asks 1,000."""
    return make_round(
        machines=[machine("m1", gpu_hours=5000), machine("m2", gpu_hours=5000)],
        proposals=[
            proposal("P1", kind="start-up", score=5.0, request=3000, minimum=3000),
            proposal("P2", kind="start-up", score=4.0, request=8000, minimum=6000, max_machines=2),
            proposal("P3", score=1.0, request=1000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], max_share=0.7, penalty=penalty)],
    )


START_UP_MAX = 7000  # 70 % of the 10,000 reference GPU-h
P2_MINIMUM = 6000


def test_rank_names_the_better_ranked_awards() -> None:
    """Under objective rank a proposal that would fit alone but not after the better-ranked awards is
    told that the ranking, with the rules, left no room."""
    rnd = start_up_round(penalty=1e-5)
    sol = solve_rank_checked(rnd)
    assert sol.rank is not None and sol.rank.order.index("P1") < sol.rank.order.index("P2")
    assert hours(sol, "P1") == {next(iter(hours(sol, "P1"))): 3000}
    assert decision(sol, "P2") == "not_funded"
    assert codes(sol, "P2") == ["rank"]
    # Alone P2's minimum fits the (under rank, hard) start-up maximum; after P1's 3,000 it does not.
    assert P2_MINIMUM <= START_UP_MAX < 3000 + P2_MINIMUM
    assert sum(m.gpu_hours for m in rnd.machines) - awarded(sol) >= P2_MINIMUM  # not the machines


def test_merit_funds_what_rank_leaves_out() -> None:
    """Switching the same round to merit lets the soft maximum be crossed at its small penalty, and
    the proposal the ranking left out is funded."""
    rnd = start_up_round(penalty=1e-5)
    ranked = solve_rank_checked(rnd)
    merit = solve_checked(rnd)
    assert decision(ranked, "P2") == "not_funded"
    assert decision(merit, "P2") in ("funded", "reduced")
    assert sum(hours(merit, "P2").values()) >= P2_MINIMUM
    # P2's minimum brings 0.8 x 6/8 of a point and costs 1e-5 a GPU-h over the maximum.
    over = 3000 + P2_MINIMUM - START_UP_MAX
    assert Fraction(4, 5) * Fraction(P2_MINIMUM, 8000) > Fraction(1, 100_000) * over
    assert "rank" not in codes(merit, "P2")


@pytest.mark.parametrize(
    ("penalty", "p2_decision", "has_combined"),
    [
        (1e-3, "not_funded", True),  # why: P2's minimum costs 2 points of penalty for 0.6 of merit
        (1e-5, "reduced", False),  # why: the same crossing costs 0.02 points: P2 is funded
    ],
)
def test_combined_rules_when_no_single_rule_blocks(
    penalty: float, p2_decision: str, has_combined: bool
) -> None:
    """Under merit a proposal with room on the machines that the rules together still leave out is told
    so, and a smaller penalty lets it in."""
    rnd = start_up_round(penalty=penalty)
    sol = solve_checked(rnd)
    assert decision(sol, "P2") == p2_decision
    assert ("combined_rules" in codes(sol, "P2")) == has_combined
    if has_combined:
        assert codes(sol, "P2") == ["combined_rules"]
        assert sum(m.gpu_hours for m in rnd.machines) - awarded(sol) >= P2_MINIMUM  # not the machines
        # Every award P2 could get costs more penalty than it brings merit.
        for h in range(P2_MINIMUM, 8000 + 1, UNIT):
            gain = Fraction(4, 5) * Fraction(h, 8000)
            assert gain < Fraction(str(penalty)) * (3000 + h - START_UP_MAX)


# --- not_reached: the solve stopped before proving optimality ---------------------------------


def test_not_reached_on_a_solve_stopped_by_its_work_limit() -> None:
    """A solve stopped by its work limit says so for proposals left with room, with the gap it stopped
    at; every other non-full proposal keeps a documented code. CP-SAT's work limit is deterministic
    (one worker), so the same proposals get 'not_reached' on every run."""
    rnd = generate_round(300, 8, 1)
    sol = solve(rnd, SolveOptions(work_limit=0.1, gap_limit=0.0, warm_start=False))
    assert verify(rnd, sol) == []
    assert (sol.solver.status, sol.solver.stop_reason) == ("feasible", "work_limit")
    bound = sol.objective.best_bound_scaled
    assert bound is not None
    gap = (bound - sol.objective.scaled) / max(1, abs(bound))
    assert gap > 0 and sol.objective.gap == pytest.approx(gap, abs=1e-9)
    for r in sol.proposals:
        if r.decision.value != "funded":
            assert r.reasons and all(x.code in APPLICANT_WORDS for x in r.reasons), r.id
    reached = [r.id for r in sol.proposals if "not_reached" in codes(sol, r.id)]
    assert reached
    for pid in reached:
        assert decision(sol, pid) in ("reduced", "not_funded")
        assert f"the solve stopped before proving optimality (gap {gap:.4%})" in detail(
            sol, pid, "not_reached"
        )


def test_not_reached_never_on_an_optimal_solution(tiny_solution: Solution) -> None:
    """A proven solve never blames the search: no proposal of the shipped round gets 'not_reached'."""
    assert tiny_solution.solver.status == "optimal"
    assert all(x.code != "not_reached" for r in tiny_solution.proposals for x in r.reasons)


def test_an_unproven_rank_walk_still_verifies_and_says_not_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rank walk whose checks run out of their work limit: every step reports the final
    fraction (verify passes), and each proposal whose own check ran out, unless funded in full,
    says 'not_reached' (beside any rule that blocks it in this allocation), and no other does."""
    real_solve = AllocationModel.solve
    calls: list[int] = []

    def starved(self: AllocationModel, options: SolveOptions, *args: Any, **kwargs: Any) -> Any:
        # The first check finds the allocation the walk starts from; every later one runs out
        # (a work limit alone would leave too few unproven as the checks grow cheaper).
        calls.append(1)
        if len(calls) > 1:
            options = options.model_copy(update={"work_limit": 1e-4})
        return real_solve(self, options, *args, **kwargs)

    monkeypatch.setattr(AllocationModel, "solve", starved)
    rnd = generate_round(150, 6, 1)
    solution = solve(rnd, SolveOptions(objective="rank"))
    assert solution.rank is not None and not solution.rank.all_proven
    assert verify(rnd, solution) == []
    unproven = {s.proposal for s in solution.rank.steps if not s.proven}
    for r in solution.proposals:
        got = {x.code for x in r.reasons}
        if r.id not in unproven:
            assert "not_reached" not in got, r.id
        elif r.decision != "funded":
            assert "not_reached" in got, (r.id, got)
    assert any("not_reached" in {x.code for x in r.reasons} for r in solution.proposals if r.id in unproven)
