"""The full policy language, rule by rule: a feasible case, a case at the edge and one over it.

Merit solves go through ``solve_checked`` (proven optimal, ``verify`` clean, the brute-force
optimum); rank solves through ``solve_rank_checked`` (every step proven, ``verify`` clean, the
brute-force funded set and fractions). Merit weights: a score of s on the 0-5 scale weighs s/5,
and one award unit worth a fraction f of the request is worth round(10**8 x w x p x f) points.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from allocopt.errors import InfeasibleError, InputError
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solve import solve
from allocopt.terms import derive
from allocopt.verify import verify
from tests.conftest import ROOT
from tests.helpers import (
    assert_infeasible,
    codes,
    decision,
    fraction,
    funded,
    group,
    hours,
    machine,
    make_round,
    option,
    pin,
    proposal,
    solve_checked,
    solve_rank_checked,
)

# --- machine options and preference -----------------------------------------------------------


@pytest.mark.parametrize(
    ("a_hours", "expected_decision", "expected_hours", "expected_fraction", "scaled", "expected_codes"),
    [
        (5000, "funded", {"a": 4000}, 1.0, 80_000_000, []),  # why: room for the first choice's request
        (4000, "funded", {"a": 4000}, 1.0, 80_000_000, []),  # why: the first choice holds exactly the request
        (3000, "reduced", {"a": 3000}, 0.75, 60_000_000, ["capacity"]),  # why: 3/4 on a beats 0.6 x all of b
        (2000, "funded", {"b": 2000}, 1.0, 48_000_000, []),  # why: half on a (0.4) loses to 0.6 x all of b
        (1000, "funded", {"b": 2000}, 1.0, 48_000_000, []),  # why: a cannot hold the 2,000 minimum
    ],
)
def test_machine_options_with_preference(
    a_hours: int,
    expected_decision: str,
    expected_hours: dict[str, int],
    expected_fraction: float,
    scaled: int,
    expected_codes: list[str],
) -> None:
    """Each option is in its machine's own hours; preference multiplies the option's merit.

    Score 4 (w = 0.8). On a, 4,000 GPU-h (minimum 2,000) at preference 1: 0.8 x 1/4 = 0.2 per unit.
    On b, 2,000 GPU-h (minimum 1,000) at preference 0.6: 0.8 x 0.6 x 1/2 = 0.24 per unit.
    """
    rnd = make_round(
        machines=[machine("a", gpu_hours=a_hours), machine("b", stack="rocm")],
        proposals=[
            proposal(
                "P1",
                stacks=("cuda", "rocm"),
                options=[option("a", 4000, 2000), option("b", 2000, 1000, preference=0.6)],
            )
        ],
    )
    sol = solve_checked(rnd)
    assert decision(sol, "P1") == expected_decision
    assert hours(sol, "P1") == expected_hours
    assert fraction(sol, "P1") == pytest.approx(expected_fraction)
    assert sol.objective.scaled == scaled
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("b_hours", "expected_hours", "scaled"),
    [
        (10_000, {"b": 2000}, 80_000_000),  # why: the preferred machine has room
        (2000, {"b": 2000}, 80_000_000),  # why: the preferred machine holds exactly the request
        (1000, {"a": 2000}, 72_000_000),  # why: all of a at 0.9 beats half of b at 1.0
    ],
)
def test_preference_between_equal_options(b_hours: int, expected_hours: dict[str, int], scaled: int) -> None:
    """Two equal options: the one with the higher preference wins unless it cannot take the whole."""
    rnd = make_round(
        machines=[machine("a"), machine("b", gpu_hours=b_hours)],
        proposals=[
            proposal("P1", options=[option("a", 2000, 1000, preference=0.9), option("b", 2000, 1000)])
        ],
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == expected_hours
    assert decision(sol, "P1") == "funded"
    assert sol.objective.scaled == scaled


def test_machine_option_on_a_machine_the_code_cannot_use() -> None:
    """An option on a machine the requirements rule out is bad input, named at its JSON path."""
    with pytest.raises(ValidationError, match=r"machine_options\[1\]\.machine: machine 'b' does not meet"):
        make_round(
            machines=[machine("a"), machine("b", stack="rocm")],
            proposals=[
                proposal("P1", stacks=("cuda",), options=[option("a", 2000, 1000), option("b", 2000, 1000)])
            ],
        )


@pytest.mark.parametrize(
    ("min_share", "feasible"),
    [
        (0.1, True),  # why: 2,000 on one machine, its per-proposal cap, meets the minimum
        (0.2, True),  # why: 4,000 needs both machines at their 2,000 caps: the split reaches it exactly
        (0.25, False),  # why: 5,000 is more than the two capped awards (4,000)
    ],
)
def test_split_awards_past_the_per_proposal_cap(min_share: float, feasible: bool) -> None:
    """A split award may exceed one machine's per-proposal cap, and so meet a share minimum."""
    rnd = make_round(
        machines=[machine("a", max_award_gpu_hours=2000), machine("b", max_award_gpu_hours=2000)],
        proposals=[proposal("P1", kind="start-up", request=4000, minimum=1000, max_machines=2)],
        groups=[group("startups", ["start-up"], min_share=min_share)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1")) == ("funded", {"a": 2000, "b": 2000})


# --- soft shares ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("penalty", "p2_hours", "merit_scaled", "penalty_scaled", "shortfall"),
    [
        (1e-3, 2000, 93_333_334, 0, 0),  # why: a missing hour costs far more than merit gains
        (3.334e-5, 2000, 93_333_334, 0, 0),  # why: a unit's 3,334,000 penalty beats its 3,333,333 of merit
        (3.333e-5, 0, 100_000_000, 6_666_000, 2000),  # why: 3,333,000 penalty < 3,333,333 of merit
        (1e-5, 0, 100_000_000, 2_000_000, 2000),  # why: a cheap shortfall: merit wins
    ],
)
def test_soft_share_minimum(
    penalty: float, p2_hours: int, merit_scaled: int, penalty_scaled: int, shortfall: int
) -> None:
    """A soft minimum may be missed, at round(10**8 x penalty) points per missing reference hour.

    Moving a unit from P1 (1.0 x 1/10: 10,000,000) to P2 (0.4 x 1/6: 6,666,667) loses 3,333,333.
    """
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, request=10_000, minimum=1000),
            proposal("P2", kind="start-up", score=2.0, request=6000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=0.2, penalty=penalty)],
    )
    sol = solve_checked(rnd)
    assert sum(hours(sol, "P2").values()) == p2_hours
    assert hours(sol, "P1") == {"m1": 10_000 - p2_hours}
    assert (sol.objective.merit_scaled, sol.objective.penalty_scaled) == (merit_scaled, penalty_scaled)
    assert sol.objective.scaled == merit_scaled - penalty_scaled
    metrics = sol.metrics.groups[0]
    assert (metrics.soft, metrics.shortfall_reference_gpu_hours, metrics.excess_reference_gpu_hours) == (
        True,
        shortfall,
        0,
    )


BEYOND_REACH = [
    proposal("P1", score=5.0, request=10_000, minimum=1000),
    proposal("P2", kind="start-up", score=2.0, request=6000, minimum=1000),
]


@pytest.mark.parametrize(
    "rank",
    [
        False,  # why: hard under merit
        True,  # why: hard under rank
    ],
)
def test_hard_share_minimum_beyond_reach(rank: bool) -> None:
    """A hard minimum of 7,000 for a group asking 6,000 in all is infeasible."""
    rnd = make_round(proposals=BEYOND_REACH, groups=[group("startups", ["start-up"], min_share=0.7)])
    assert_infeasible(rnd, rank=rank)


def test_soft_share_minimum_beyond_reach_under_rank() -> None:
    """Under rank every share bound is hard: the soft minimum out of reach is infeasible."""
    rnd = make_round(
        proposals=BEYOND_REACH, groups=[group("startups", ["start-up"], min_share=0.7, penalty=1e-3)]
    )
    assert_infeasible(rnd, rank=True)


def test_soft_share_minimum_beyond_reach() -> None:
    """A soft minimum the group cannot reach is paid for, not infeasible (here the shortfall costs
    more than the merit, so the objective is negative)."""
    rnd = make_round(
        proposals=BEYOND_REACH, groups=[group("startups", ["start-up"], min_share=0.7, penalty=1e-3)]
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P2") == {"m1": 6000}
    assert hours(sol, "P1") == {"m1": 4000}
    assert sol.metrics.groups[0].shortfall_reference_gpu_hours == 1000
    assert sol.objective.scaled == 4 * 10_000_000 + 6 * 6_666_667 - 1000 * 100_000


@pytest.mark.parametrize(
    ("penalty", "p1_hours", "scaled", "excess", "p1_codes"),
    [
        # why: an excess hour costs far more than it gains (and P2 fills the rest of the machine)
        (1e-3, 3000, 103_000_000, 0, ["capacity", "share_max"]),
        (
            2.11e-4,
            3000,
            103_000_000,
            0,
            ["capacity", "share_max"],
        ),  # why: 21,100,000 penalty > 21,000,000 gain
        (2.09e-4, 4000, 103_100_000, 1000, []),  # why: 20,900,000 penalty < 21,000,000 gain
        (1e-5, 4000, 123_000_000, 1000, []),  # why: a cheap excess: merit wins
    ],
)
def test_soft_share_maximum(
    penalty: float, p1_hours: int, scaled: int, excess: int, p1_codes: list[str]
) -> None:
    """A soft maximum may be passed, at a price per excess reference hour.

    A unit of P1 (1.0 x 1/4: 25,000,000) instead of P2 (0.4 x 1/10: 4,000,000) gains 21,000,000.
    """
    rnd = make_round(
        proposals=[
            proposal("P1", kind="start-up", score=5.0, request=4000, minimum=1000),
            proposal("P2", score=2.0, request=10_000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], max_share=0.3, penalty=penalty)],
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": p1_hours}
    assert hours(sol, "P2") == {"m1": 10_000 - p1_hours}
    assert sol.objective.scaled == scaled
    assert sol.metrics.groups[0].excess_reference_gpu_hours == excess
    assert codes(sol, "P1") == p1_codes


def test_soft_share_is_hard_under_rank() -> None:
    """Under rank the cheap soft maximum holds as if hard: P1 gets 3,000, P2 the other 7,000."""
    rnd = make_round(
        proposals=[
            proposal("P1", kind="start-up", score=5.0, request=4000, minimum=1000),
            proposal("P2", score=2.0, request=10_000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], max_share=0.3, penalty=1e-5)],
    )
    sol = solve_rank_checked(rnd)
    assert hours(sol, "P1") == {"m1": 3000}
    assert hours(sol, "P2") == {"m1": 7000}
    assert sol.metrics.groups[0].excess_reference_gpu_hours == 0


# --- share basis ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_share", "p1_decision", "p1_hours"),
    [
        (0.3, "funded", 3000),  # why: 2,000 of 5,000 awarded is 40 %, above 30 %
        (0.4, "funded", 3000),  # why: 2,000 of 5,000 awarded is exactly 40 %
        (0.45, "reduced", 2000),  # why: with P1 at 3,000 start-ups hold 40 % < 45 %: P1 is cut
    ],
)
def test_share_basis_awarded_minimum(min_share: float, p1_decision: str, p1_hours: int) -> None:
    """Against the awarded hours, a minimum share is met by giving the others less."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, request=3000, minimum=1000),
            proposal("P2", kind="start-up", score=2.0, request=2000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=min_share)],
        share_basis="awarded",
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1")) == (p1_decision, {"m1": p1_hours})
    assert (decision(sol, "P2"), hours(sol, "P2")) == ("funded", {"m1": 2000})
    assert sol.metrics.share_basis == "awarded"
    assert sol.metrics.groups[0].share == pytest.approx(2000 / (2000 + p1_hours))


@pytest.mark.parametrize(
    ("basis", "min_share", "p1_hours", "p2_hours"),
    [
        ("awarded", 0.3, 3000, 2000),  # why: 2,000 of the 5,000 awarded is 40 %, above 30 %
        ("awarded", 0.4, 3000, 2000),  # why: 2,000 of the 5,000 awarded is exactly 40 %
        ("awarded", 0.45, 2000, 3000),  # why: 40 % < 45 %: a unit moves from P1 to P2
        ("capacity", 0.4, 2000, 3000),  # why: 40 % of the 5,500 capacity is 2,200: three units
    ],
)
def test_share_basis_with_idle_hours(basis: str, min_share: float, p1_hours: int, p2_hours: int) -> None:
    """On a machine with a stray half unit, 5,000 GPU-h at most are awarded of its 5,500: a minimum
    against the awarded hours is lower than the same minimum against the capacity."""
    rnd = make_round(
        machines=[machine(gpu_hours=5500)],
        proposals=[
            proposal("P1", score=5.0, request=3000, minimum=1000),
            proposal("P2", kind="start-up", score=2.0, request=4000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=min_share)],
        share_basis=basis,
    )
    sol = solve_checked(rnd)
    assert (hours(sol, "P1"), hours(sol, "P2")) == ({"m1": p1_hours}, {"m1": p2_hours})
    expected_share = p2_hours / (5000 if basis == "awarded" else 5500)
    assert sol.metrics.groups[0].share == pytest.approx(expected_share, abs=1e-6)


def test_share_basis_capacity_minimum_is_infeasible() -> None:
    """The same 40 % against the capacity (4,000 of 10,000) is more than P2 can take."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, request=3000, minimum=1000),
            proposal("P2", kind="start-up", score=2.0, request=2000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=0.4)],
    )
    assert_infeasible(rnd)


@pytest.mark.parametrize(
    ("basis", "p2_hours"),
    [
        ("capacity", 2000),  # why: 25 % of the 10,000 capacity is 2,500: two whole units
        ("awarded", 1000),  # why: 25 % of what is awarded: with P1 at 4,000, P2 may have 1,333
    ],
)
def test_share_basis_maximum(basis: str, p2_hours: int) -> None:
    """A maximum against the awarded hours binds harder when the round is not full."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, request=4000, minimum=1000),
            proposal("P2", kind="start-up", score=5.0, request=4000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], max_share=0.25)],
        share_basis=basis,
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": 4000}
    assert hours(sol, "P2") == {"m1": p2_hours}
    assert codes(sol, "P2") == ["share_max"]


# --- pins -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p1_minimum", "pinned", "p1_decision", "p1_hours", "p2_decision"),
    [
        (2000, False, "funded", 4000, "not_funded"),  # why: no pin: the better proposal takes all
        (2000, True, "reduced", 2000, "funded"),  # why: the pin takes 2,000; P1's minimum fits exactly
        (3000, True, "not_funded", 0, "funded"),  # why: after the pin, 2,000 left < P1's 3,000 minimum
    ],
)
def test_fund_pin(p1_minimum: int, pinned: bool, p1_decision: str, p1_hours: int, p2_decision: str) -> None:
    """A fund pin forces an award even when merit would give the hours to another proposal."""
    rnd = make_round(
        machines=[machine(gpu_hours=4000)],
        proposals=[
            proposal("P1", score=5.0, request=4000, minimum=p1_minimum),
            proposal("P2", score=2.0, request=2000, minimum=2000),
        ],
        pins=[pin("P2")] if pinned else [],
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), sum(hours(sol, "P1").values())) == (p1_decision, p1_hours)
    assert decision(sol, "P2") == p2_decision
    result = sol.result("P2")
    assert (result.pin.action if result.pin else None) == ("fund" if pinned else None)
    if pinned:
        assert result.pin is not None and result.pin.reason == "committee: fund P2"
        assert codes(sol, "P1") == ["capacity"]


def test_fund_pin_that_cannot_fit_is_infeasible() -> None:
    """A pinned minimum above the machine's hours makes the round infeasible."""
    rnd = make_round(
        machines=[machine(gpu_hours=4000)],
        proposals=[
            proposal("P1", score=5.0, request=4000),
            proposal("P2", score=2.0, request=5000, minimum=5000),
        ],
        pins=[pin("P2")],
    )
    assert_infeasible(rnd)


def test_the_model_itself_cannot_fund_a_pinned_proposal_without_an_option() -> None:
    """solve() refuses a fund pin on a proposal no machine suits (a problem in the terms); the
    model must not drop it either, whoever builds it: no allocation satisfies it."""
    from allocopt.model import AllocationModel
    from allocopt.options import SolveOptions
    from allocopt.terms import derive

    rnd = make_round(
        proposals=[proposal("P1"), proposal("P2", stacks=("rocm",))],  # the one machine runs CUDA
        pins=[pin("P2")],
    )
    terms = derive(rnd)
    assert not terms.assessments["P2"].options and terms.problems
    model = AllocationModel(terms)
    model.maximise_merit()
    assert model.solve(SolveOptions()).status == "infeasible"
    named = AllocationModel(terms, named_rules=True)
    assert named.check_rules(SolveOptions(), [("pin", "P2")])[0] == "infeasible"
    assert named.check_rules(SolveOptions(), [])[0] == "feasible"


@pytest.mark.parametrize(
    ("pins", "p1_hours", "p2_hours"),
    [
        ([pin("P2", machine="b")], {"a": 2000}, {"b": 2000}),  # why: P2 must use b, P1 takes a
        ([pin("P2", machine="a")], {"b": 2000}, {"a": 2000}),  # why: P2 must use a, P1 takes b
        ([pin("P1", machine="a"), pin("P2", machine="b")], {"a": 2000}, {"b": 2000}),  # why: both fit exactly
    ],
)
def test_fund_pin_on_machine(
    pins: list[dict[str, object]], p1_hours: dict[str, int], p2_hours: dict[str, int]
) -> None:
    """A fund pin with a machine puts the award there."""
    rnd = make_round(
        machines=[machine("a", gpu_hours=2000), machine("b", gpu_hours=2000)],
        proposals=[
            proposal("P1", score=5.0, request=2000, minimum=2000),
            proposal("P2", score=4.0, request=2000, minimum=2000),
        ],
        pins=pins,
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == p1_hours
    assert hours(sol, "P2") == p2_hours


def test_fund_pins_on_one_full_machine_are_infeasible() -> None:
    """Two pinned 2,000 GPU-h minimums on one 2,000 GPU-h machine cannot both hold."""
    rnd = make_round(
        machines=[machine("a", gpu_hours=2000), machine("b", gpu_hours=2000)],
        proposals=[
            proposal("P1", score=5.0, request=2000, minimum=2000),
            proposal("P2", score=4.0, request=2000, minimum=2000),
        ],
        pins=[pin("P1", machine="a"), pin("P2", machine="a")],
    )
    assert_infeasible(rnd)


@pytest.mark.parametrize(
    ("gpu_hours", "expected_decision"),
    [
        (3000, "reduced"),  # why: the exact amount, below the request merit would give
        (4000, "funded"),  # why: exactly the request
        (1000, "reduced"),  # why: exactly the minimum
    ],
)
def test_fund_pin_exact_amount(gpu_hours: int, expected_decision: str) -> None:
    """A fund pin with gpu_hours fixes the award exactly."""
    rnd = make_round(
        proposals=[proposal("P1", request=4000, minimum=1000)],
        pins=[pin("P1", machine="m1", gpu_hours=gpu_hours)],
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1")) == (expected_decision, {"m1": gpu_hours})
    # (A reduced award also gets 'combined_rules', though the pin alone decides it.)
    assert codes(sol, "P1")[:1] == ([] if expected_decision == "funded" else ["pinned"])


@pytest.mark.parametrize(
    "pin_data",
    [
        pin("P1", machine="m1", gpu_hours=5000),  # why: one unit above the 4,000 request
        pin("P1", machine="m1", gpu_hours=1500),  # why: not a whole number of 1,000 GPU-h units
        pin("P1", machine="amd"),  # why: the code does not run on ROCm
    ],
)
def test_fund_pin_the_proposal_cannot_take_is_an_error(pin_data: dict[str, object]) -> None:
    """A fund pin outside what the proposal can ever get is refused, naming the pin (the solver
    raises InfeasibleError, exit 1; the README calls it 'an error')."""
    rnd = make_round(
        machines=[machine("m1"), machine("amd", stack="rocm")],
        proposals=[proposal("P1", request=4000, minimum=1000)],
        pins=[pin_data],
    )
    with pytest.raises((InputError, InfeasibleError), match="pin funding 'P1'"):
        solve(rnd)


def test_fund_pin_on_ineligible_proposal_is_an_error() -> None:
    """Pins do not override eligibility: a fund pin below the score threshold is refused."""
    rnd = make_round(threshold=3.0, proposals=[proposal("P1", score=2.5)], pins=[pin("P1")])
    with pytest.raises((InputError, InfeasibleError), match="not eligible"):
        solve(rnd)


@pytest.mark.parametrize(
    ("excluded", "p1_decision", "p1_codes", "p2_hours"),
    [
        (False, "funded", [], 0),  # why: no pin: the better proposal takes the machine
        (True, "not_funded", ["pinned", "capacity"], 4000),  # why: P1 is excluded, P2 takes the machine
    ],
)
def test_exclude_pin(excluded: bool, p1_decision: str, p1_codes: list[str], p2_hours: int) -> None:
    """An exclude pin forbids an award, whatever its merit."""
    rnd = make_round(
        machines=[machine(gpu_hours=4000)],
        proposals=[
            proposal("P1", score=5.0, request=4000, minimum=4000),
            proposal("P2", kind="start-up", score=2.0, request=4000, minimum=4000),
        ],
        pins=[pin("P1", "exclude")] if excluded else [],
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), codes(sol, "P1")) == (p1_decision, p1_codes)
    assert sum(hours(sol, "P2").values()) == p2_hours
    if excluded:
        result = sol.result("P1")
        assert result.pin is not None and result.pin.action == "exclude"


def test_exclude_pin_on_a_needed_proposal_is_infeasible() -> None:
    """Excluding the only proposal that can meet a hard share minimum makes the round infeasible."""
    rnd = make_round(
        proposals=[proposal("P1", score=5.0), proposal("P2", kind="start-up", score=2.0)],
        groups=[group("science", ["academic"], min_share=0.1)],
        pins=[pin("P1", "exclude")],
    )
    assert_infeasible(rnd)


# --- exclusivity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p1_score", "p1_decision", "p2_decision", "p2_codes"),
    [
        (5.0, "funded", "not_funded", ["exclusive"]),  # why: the better of the pair is funded, not both
        (2.0, "not_eligible", "funded", []),  # why: P1 below the threshold: P2 is free to be funded
    ],
)
def test_exclusive_group(p1_score: float, p1_decision: str, p2_decision: str, p2_codes: list[str]) -> None:
    """At most one proposal of an exclusive group is funded, though there is room for all."""
    rnd = make_round(
        threshold=2.5,
        proposals=[
            proposal("P1", score=p1_score),
            proposal("P2", score=4.0),
            proposal("P3", kind="start-up", score=3.0),
        ],
        exclusive=[["P1", "P2"]],
    )
    sol = solve_checked(rnd)
    assert decision(sol, "P1") == p1_decision
    assert (decision(sol, "P2"), codes(sol, "P2")) == (p2_decision, p2_codes)
    assert decision(sol, "P3") == "funded"


@pytest.mark.parametrize(
    ("min_share", "feasible"),
    [
        (0.1, True),  # why: one of the pair meets it
        (0.2, True),  # why: one full award of the pair is exactly the minimum
        (0.3, False),  # why: one unit more needs both of the pair
    ],
)
def test_exclusive_group_forced(min_share: float, feasible: bool) -> None:
    """A share minimum only both of an exclusive pair could meet is infeasible."""
    rnd = make_round(
        proposals=[proposal("P1", score=5.0), proposal("P2", score=4.0), proposal("P3", kind="start-up")],
        groups=[group("science", ["academic"], min_share=min_share)],
        exclusive=[["P1", "P2"]],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert funded(sol) == {"P1", "P3"}


# --- organisation cap -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "expected_funded"),
    [
        (None, {"P1", "P2", "P3", "P4"}),  # why: no cap
        (3, {"P1", "P2", "P3", "P4"}),  # why: the organisation has exactly 3 proposals
        (2, {"P1", "P2", "P4"}),  # why: one over: its weakest is dropped
        (1, {"P1", "P4"}),  # why: only its best
    ],
)
def test_organisation_cap(cap: int | None, expected_funded: set[str]) -> None:
    """At most max_awards_per_organisation funded proposals per applicant name."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, organisation="Uni X"),
            proposal("P2", score=4.0, organisation="Uni X"),
            proposal("P3", score=3.0, organisation="Uni X"),
            proposal("P4", kind="start-up", score=2.0, organisation="Lab Y"),
        ],
        max_awards_per_organisation=cap,
    )
    sol = solve_checked(rnd)
    assert funded(sol) == expected_funded
    for pid in {"P1", "P2", "P3"} - expected_funded:
        assert (decision(sol, pid), codes(sol, pid)) == ("not_funded", ["organisation_cap"])


@pytest.mark.parametrize(
    ("min_share", "feasible"),
    [
        (0.3, True),  # why: two awards of the organisation meet it
        (0.4, True),  # why: two full awards are exactly the minimum
        (0.5, False),  # why: it would need a third award of the organisation
    ],
)
def test_organisation_cap_forced(min_share: float, feasible: bool) -> None:
    """A share minimum needing more awards of one organisation than its cap is infeasible."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, organisation="Uni X"),
            proposal("P2", score=4.0, organisation="Uni X"),
            proposal("P3", score=3.0, organisation="Uni X"),
            proposal("P4", kind="start-up", score=2.0, organisation="Lab Y"),
        ],
        groups=[group("science", ["academic"], min_share=min_share)],
        max_awards_per_organisation=2,
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert len(funded(sol) & {"P1", "P2", "P3"}) == 2


# --- the rank objective -----------------------------------------------------------------------


def rank_round(gpu_hours: int = 10_000) -> Round:
    """P1 (score 5) asks 8,000 at once; P2 and P3 (4.5) ask 5,000 at once each."""
    return make_round(
        machines=[machine(gpu_hours=gpu_hours)],
        proposals=[
            proposal("P1", score=5.0, request=8000, minimum=8000),
            proposal("P2", score=4.5, request=5000, minimum=5000),
            proposal("P3", score=4.5, request=5000, minimum=5000),
        ],
    )


def test_rank_and_merit_differ() -> None:
    """Merit funds the two 0.9s (1.8 > 1.0); rank funds the best-ranked first, and then none fits."""
    rnd = rank_round()
    assert funded(solve_checked(rnd)) == {"P2", "P3"}
    sol = solve_rank_checked(rnd)
    assert funded(sol) == {"P1"}
    assert hours(sol, "P1") == {"m1": 8000}
    assert codes(sol, "P2") == codes(sol, "P3") == ["capacity"]
    assert sol.rank is not None and sol.rank.order == ["P1", "P2", "P3"]
    fund_steps = [(s.proposal, s.outcome) for s in sol.rank.steps if s.phase == "fund"]
    assert fund_steps == [("P1", "funded"), ("P2", "not_funded"), ("P3", "not_funded")]
    assert sol.objective.merit_scaled == 100_000_000  # the merit of the rank allocation, for comparison


@pytest.mark.parametrize(
    ("gpu_hours", "expected_funded"),
    [
        (14_000, {"P1", "P2"}),  # why: room for P2 after P1, not for P3 too
        (13_000, {"P1", "P2"}),  # why: P2 fits exactly after P1
        (12_000, {"P1"}),  # why: one unit short for P2; P3 is no better placed
    ],
)
def test_rank_walk(gpu_hours: int, expected_funded: set[str]) -> None:
    """The walk funds each proposal that still fits with every better-ranked one already funded."""
    sol = solve_rank_checked(rank_round(gpu_hours))
    assert funded(sol) == expected_funded
    assert hours(sol, "P1") == {"m1": 8000}
    assert (decision(sol, "P3"), codes(sol, "P3")) == ("not_funded", ["capacity"])


def test_rank_how_much() -> None:
    """With the funded set fixed, the better-ranked proposal is raised first: P1 gets 8,000 (0.8),
    leaving P2 its minimum (0.4); merit would rather fill P2 (0.9) and give P1 its minimum."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, request=10_000, minimum=5000),
            proposal("P2", score=4.5, request=5000, minimum=2000),
        ]
    )
    sol = solve_rank_checked(rnd)
    assert (hours(sol, "P1"), hours(sol, "P2")) == ({"m1": 8000}, {"m1": 2000})
    assert (fraction(sol, "P1"), fraction(sol, "P2")) == (pytest.approx(0.8), pytest.approx(0.4))
    merit = solve_checked(rnd)
    assert (hours(merit, "P1"), hours(merit, "P2")) == ({"m1": 5000}, {"m1": 5000})


def test_rank_how_much_chooses_the_machine() -> None:
    """The largest fraction of the request may need another machine: on a (1,500 reference GPU-h per
    unit) one unit is 0.75 of the 2,000 asked; on b two units are all of it."""
    rnd = make_round(
        machines=[machine("a", gpu_hours=1000, exchange_rate=1.5), machine("b", gpu_hours=2000)],
        proposals=[proposal("P1", request=2000, minimum=500)],
    )
    sol = solve_rank_checked(rnd)
    assert hours(sol, "P1") == {"b": 2000}
    assert fraction(sol, "P1") == 1.0


def test_rank_from_the_policy() -> None:
    """policy.objective 'rank' makes solve() rank without any option."""
    rnd = make_round(
        machines=[machine(gpu_hours=10_000)],
        proposals=[
            proposal("P1", score=5.0, request=8000, minimum=8000),
            proposal("P2", score=4.5, request=5000, minimum=5000),
            proposal("P3", score=4.5, request=5000, minimum=5000),
        ],
        objective="rank",
    )
    sol = solve_rank_checked(rnd, via_policy=True)
    assert funded(sol) == {"P1"}


@pytest.mark.parametrize(
    ("a", "b", "winner"),
    [
        ({}, {}, "P-A"),  # why: equal scores, no committee ranks: the id decides
        ({}, {"committee_rank": 1}, "P-B"),  # why: a committee rank comes before no rank
        ({"committee_rank": 2}, {"committee_rank": 1}, "P-B"),  # why: rank 1 before rank 2
        ({"committee_rank": 1}, {"committee_rank": 1}, "P-A"),  # why: equal ranks and scores: the id
        ({"score": 5.0}, {"score": 3.0, "committee_rank": 1}, "P-B"),  # why: the committee rank beats score
        ({"score": 3.0, "committee_rank": 1}, {"score": 5.0, "committee_rank": 1}, "P-B"),  # why: then score
    ],
)
def test_rank_ties(a: dict[str, Any], b: dict[str, Any], winner: str) -> None:
    """Room for one of two: the order is committee rank, then score, then id, whatever the input order."""
    loser = "P-B" if winner == "P-A" else "P-A"
    props = {
        "P-A": proposal("P-A", **{"score": 4.0, "request": 5000, "minimum": 5000, **a}),
        "P-B": proposal("P-B", **{"score": 4.0, "request": 5000, "minimum": 5000, **b}),
    }
    for order in (["P-A", "P-B"], ["P-B", "P-A"]):
        rnd = make_round(machines=[machine(gpu_hours=5000)], proposals=[props[pid] for pid in order])
        sol = solve_rank_checked(rnd)
        assert funded(sol) == {winner}
        assert sol.rank is not None and sol.rank.order == [winner, loser]
        assert sol.result(winner).rank_position == 1


def test_rank_with_a_fund_pin() -> None:
    """A pinned proposal is funded before the walk starts: the best-ranked one then does not fit."""
    rnd = make_round(
        machines=[machine(gpu_hours=10_000)],
        proposals=[
            proposal("P1", score=5.0, request=8000, minimum=8000),
            proposal("P2", score=4.5, request=5000, minimum=5000),
            proposal("P3", score=4.5, request=5000, minimum=5000),
        ],
        pins=[pin("P3")],
    )
    sol = solve_rank_checked(rnd)
    assert funded(sol) == {"P2", "P3"}
    assert sol.rank is not None
    assert [s.settled_by for s in sol.rank.steps if s.proposal == "P3" and s.phase == "fund"] == ["pin"]


def test_rank_infeasible() -> None:
    """Under rank, as under merit, a pin that cannot fit makes the round infeasible."""
    rnd = make_round(
        machines=[machine(gpu_hours=4000)],
        proposals=[proposal("P1", score=5.0, request=5000, minimum=5000)],
        pins=[pin("P1")],
    )
    assert_infeasible(rnd, rank=True)


# --- efficiency per stack ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu_hours", "expected_decision", "expected_hours"),
    [
        (10_000, "funded", {"m1": 8000}),  # why: 4,000 reference GPU-h at 0.5 efficiency is 8,000 GPU-h
        (8000, "funded", {"m1": 8000}),  # why: the machine holds the converted request exactly
        (7000, "reduced", {"m1": 7000}),  # why: one unit short of the converted request
        (3000, "not_funded", {}),  # why: the converted minimum (4,000 GPU-h) does not fit
    ],
)
def test_efficiency_converts_the_request(
    gpu_hours: int, expected_decision: str, expected_hours: dict[str, int]
) -> None:
    """A code at 0.5 efficiency on ROCm needs twice the GPU-hours there, request and minimum."""
    rnd = make_round(
        machines=[machine("m1", stack="rocm", gpu_hours=gpu_hours)],
        proposals=[proposal("P1", stacks=("rocm",), request=4000, minimum=2000, efficiency={"rocm": 0.5})],
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1")) == (expected_decision, expected_hours)


@pytest.mark.parametrize(
    ("efficiency", "min_share", "feasible"),
    [
        (0.5, 0.4, True),  # why: the request is 8,000 ROCm GPU-h, worth 8,000 of the 20,000 capacity
        (0.5, 0.4005, False),  # why: 8,010 is more than the whole converted request
        (1.0, 0.2, True),  # why: at full speed the request is 4,000 GPU-h, worth 4,000
        (1.0, 0.2005, False),  # why: 4,010 is more than the request
    ],
)
def test_efficiency_forced_by_a_share_minimum(efficiency: float, min_share: float, feasible: bool) -> None:
    """Shares count the hours a machine gives away: a slower code's larger award counts in full."""
    rnd = make_round(
        machines=[machine("m1", stack="rocm", gpu_hours=10_000), machine("m2", gpu_hours=10_000)],
        proposals=[
            proposal(
                "P1",
                kind="start-up",
                stacks=("rocm",),
                request=4000,
                minimum=2000,
                efficiency={"rocm": efficiency},
            )
        ],
        groups=[group("startups", ["start-up"], min_share=min_share)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": round(4000 / efficiency)}


def _one_machine_two_requests(request: int, minimum: int) -> Round:
    """One LUMI-G of 1-GPU-hour award units; two identical requests, scores 4.4 and 4.6."""
    return make_round(
        machines=[machine("lumi-g", gpu_hours=request, award_unit=1)],
        proposals=[
            proposal("Q-1", score=4.4, request=request, minimum=minimum),
            proposal("Q-2", score=4.6, request=request, minimum=minimum),
        ],
    )


@pytest.mark.parametrize(("requested", "minimum"), [(10_000_000, 6_000_000), (200_000_000, 100_000_000)])
def test_tiny_award_units_do_not_round_merit_away(requested: int, minimum: int) -> None:
    """Worth 9.2 and 8.8 points per unit at the base scale, both rounded to 9: Q-1 was funded
    instead of the better Q-2 (or, at 200 M hours, each unit rounded to 0 and nobody), and the
    result called optimal. The scale now grows until every unit is worth 2,000 points or more."""
    rnd = _one_machine_two_requests(requested, minimum)
    solution = solve(rnd, SolveOptions(gap_limit=0))
    funded = {r.id for r in solution.proposals if r.allocations}
    assert funded == {"Q-2"}
    assert solution.objective.scale > 10**8
    assert min(o.coef for o in derive(rnd).options) >= 2000
    assert solution.objective.value == pytest.approx(0.92, abs=1e-6)
    assert verify(rnd, solution) == []


def test_the_scale_stays_at_its_base_when_units_are_worth_enough(tiny: Round) -> None:
    """The shipped rounds' units are worth thousands of points: their solutions are unchanged."""
    assert solve(tiny).objective.scale == 10**8


def test_units_too_tiny_even_for_the_largest_scale_are_a_warning() -> None:
    """Six tenfold steps cannot make a 1-GPU-hour unit of a 10^12-hour request worth 2,000 points:
    validate says so, rather than let close scores be ranked by rounding without a word."""
    from allocopt.diagnose import diagnostics

    rnd = _one_machine_two_requests(10**12, 10**11)
    warnings = [d.message for d in diagnostics(derive(rnd)) if d.level == "warning"]
    assert any(
        "award units are tiny against the requests" in w and "raise that machine's award_unit" in w
        for w in warnings
    )
    assert not [
        d for d in diagnostics(derive(_one_machine_two_requests(10**7, 6 * 10**6))) if "tiny" in d.message
    ]


def test_proposals_the_threshold_keeps_out_do_not_grow_the_scale() -> None:
    """Under exponent 2 a below-threshold proposal of the shipped round (score 2.3) grew the scale
    a tenfold; with a soft-share penalty of 0.5 and a score of 0.01 the objective overflowed
    CP-SAT. Only admitted proposals count now, and the scale never passes 2^52 of merit."""
    from allocopt.files import read_round
    from allocopt.terms import scale_steps

    shipped = read_round(ROOT / "instances" / "eurohpc-2026.json")
    merit = shipped.policy.merit.model_copy(update={"exponent": 2})
    steep = shipped.model_copy(update={"policy": shipped.policy.model_copy(update={"merit": merit})})
    assert derive(steep).scale == 10**8
    assert scale_steps(Fraction(1), Fraction(2**52) / 1000) == 3  # capped before 2^52
    assert scale_steps(Fraction(1), Fraction(1)) == 4  # 1 x 10^4 >= 2,000


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.tuples(st.integers(1, 6), st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=4),
    st.integers(1, 4),
)
def test_split_reachable_is_exact_against_enumeration(spec: list[tuple[int, int, int]], k: int) -> None:
    """Whole units on at most k options with sum g*u >= 1 and sum f*u <= 1, by enumeration: the
    search (now finishing at the last option without looping over its units) agrees."""
    from itertools import product

    from allocopt.terms import Option, split_reachable

    options = [
        Option(
            "p",
            f"m{i}",
            1,
            1,
            top,
            top,
            Fraction(1),
            Fraction(1, f),
            Fraction(1, g),
            Fraction(1),
            Fraction(1),
            1,
        )
        for i, (top, f, g) in enumerate(spec)
    ]
    expected = any(
        sum(1 for u in units if u) <= k
        and sum(u * o.g for u, o in zip(units, options, strict=True)) >= 1
        and sum(u * o.f for u, o in zip(units, options, strict=True)) <= 1
        for units in product(*(range(o.max_units + 1) for o in options))
    )
    assert split_reachable(options, k) == expected


def test_split_reachable_is_quick_with_tiny_units() -> None:
    """Two 1-GPU-hour-unit machines that cannot reach the minimum took derive() 77 s at 10,000 units."""
    from allocopt.terms import Option, split_reachable

    n = 100_000
    options = [
        Option(
            "p",
            m,
            1,
            1,
            n * 4 // 10,
            n,
            Fraction(1),
            Fraction(1, n),
            Fraction(10, 9 * n),
            Fraction(1),
            Fraction(1),
            1,
        )
        for m in ("a", "b")
    ]
    assert split_reachable(options, 2) is False


def test_solve_warns_of_units_too_tiny_for_the_scale(tmp_path: Path) -> None:
    """The warning validate gives is given by solve as well, once, beside the solution it writes;
    a round whose units are worth enough gets none."""
    from click.testing import CliRunner

    from allocopt.cli import cli
    from allocopt.generate import write_round

    for requested, warned in ((10**12, True), (10**7, False)):
        path = tmp_path / f"r{requested}.json"
        write_round(_one_machine_two_requests(requested, requested // 10), path)
        out = tmp_path / f"r{requested}.solution.json"
        result = CliRunner().invoke(cli, ["solve", str(path), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.exists()
        assert result.stderr.count("award units are tiny against the requests") == (1 if warned else 0)
        quiet = CliRunner().invoke(cli, ["solve", str(path), "-o", str(out), "--quiet"])
        assert "tiny" not in quiet.stderr
        rank = CliRunner().invoke(cli, ["solve", str(path), "-o", str(out), "--objective", "rank"])
        assert rank.exit_code == 0 and "tiny" not in rank.stderr  # the walk does not use merit
