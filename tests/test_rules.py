"""Each rule family on small hand-made rounds: comfortably feasible, exactly at the edge, one unit over.

Every solve here is checked by ``solve_checked``: proven optimal, no violation
from ``verify`` and the same optimum as brute force. Where going one unit over
an edge only changes a decision, a second test forces the edge with a hard
share minimum, so that one unit over makes the round infeasible.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import (
    assert_infeasible,
    codes,
    decision,
    group,
    hours,
    machine,
    make_round,
    proposal,
    solve_checked,
)

# --- machine capacity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu_hours", "p2_decision", "p2_hours", "p2_codes", "idle"),
    [
        (5000, "funded", {"m1": 2000}, [], 1000),  # why: room to spare for both requests
        (4000, "funded", {"m1": 2000}, [], 0),  # why: the two requests fill the machine exactly
        (3000, "not_funded", {}, ["capacity"], 1000),  # why: one unit short: the weaker one is dropped
    ],
)
def test_machine_capacity(
    gpu_hours: int, p2_decision: str, p2_hours: dict[str, int], p2_codes: list[str], idle: int
) -> None:
    """Awards on a machine fit in its GPU-hours; the better proposal keeps its award."""
    rnd = make_round(
        machines=[machine(gpu_hours=gpu_hours)],
        proposals=[
            proposal("P1", score=5.0, request=2000, minimum=2000),
            proposal("P2", score=4.0, request=2000, minimum=2000),
        ],
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1")) == ("funded", {"m1": 2000})
    assert (decision(sol, "P2"), hours(sol, "P2"), codes(sol, "P2")) == (p2_decision, p2_hours, p2_codes)
    assert sol.metrics.machines[0].idle_gpu_hours == idle


@pytest.mark.parametrize(
    ("minimum", "feasible"),
    [
        (3000, True),  # why: the group's minimum (the whole machine) is reachable with room in the request
        (4000, True),  # why: a minimum award of exactly the machine's hours still fits
        (5000, False),  # why: one unit above the machine: the 100% share minimum cannot be met
    ],
)
def test_machine_capacity_forced(minimum: int, feasible: bool) -> None:
    """With a 100% share minimum, a minimum award one unit above the capacity is infeasible."""
    rnd = make_round(
        machines=[machine(gpu_hours=4000)],
        proposals=[proposal("P1", request=5000, minimum=minimum)],
        groups=[group("science", ["academic"], min_share=1.0)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1")) == ("reduced", {"m1": 4000})
    # The machine is full; the group, holding the whole round, is also at its (100%) maximum.
    assert codes(sol, "P1")[0] == "capacity"


# --- commercial cap ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "asked", "minimum", "expected_decision", "expected_hours", "expected_codes"),
    [
        (0.2, 1000, 1000, "funded", {"m1": 1000}, []),  # why: well within the 2,000 GPU-h cap
        (0.2, 2000, 1000, "funded", {"m1": 2000}, []),  # why: exactly the cap
        (0.2, 3000, 1000, "reduced", {"m1": 2000}, ["commercial_cap"]),  # why: one unit over: cut to the cap
        (0.2, 3000, 3000, "not_funded", {}, ["commercial_cap"]),  # why: minimum one unit over the cap
        (0.25, 3000, 1000, "reduced", {"m1": 2000}, ["commercial_cap"]),  # why: 2,500 GPU-h is 2 whole units
        (0.0, 1000, 1000, "not_funded", {}, ["commercial_cap"]),  # why: a zero cap funds no commercial work
    ],
)
def test_commercial_cap(
    cap: float,
    asked: int,
    minimum: int,
    expected_decision: str,
    expected_hours: dict[str, int],
    expected_codes: list[str],
) -> None:
    """Commercial awards on a machine stay within commercial_cap x its GPU-hours."""
    rnd = make_round(
        machines=[machine(commercial_cap=cap)],
        proposals=[
            proposal("P1", kind="start-up", commitment="confidential", request=asked, minimum=minimum)
        ],
    )
    sol = solve_checked(rnd)
    assert sol.result("P1").commercial
    assert decision(sol, "P1") == expected_decision
    assert hours(sol, "P1") == expected_hours
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("min_share", "feasible"),
    [
        (0.1, True),  # why: 1,000 reference GPU-h, well under the 2,000 GPU-h commercial cap
        (0.2, True),  # why: the minimum equals the commercial cap exactly
        (0.3, False),  # why: one unit over the cap: the only member cannot reach the minimum
    ],
)
def test_commercial_cap_forced(min_share: float, feasible: bool) -> None:
    """A share minimum that only a commercial proposal can serve is capped by the commercial cap."""
    rnd = make_round(
        proposals=[proposal("P1", kind="start-up", commitment="confidential", request=5000, minimum=1000)],
        groups=[group("startups", ["start-up"], min_share=min_share)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": 2000}
    assert codes(sol, "P1") == ["commercial_cap"]


# --- share minimum ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_share", "p1_hours", "p2_decision", "p2_hours", "p2_codes"),
    [
        (0.0, 10_000, "not_funded", {}, ["capacity"]),  # why: no minimum: merit gives all to P1
        (0.2, 8000, "reduced", {"m1": 2000}, ["capacity"]),  # why: the minimum, and not a unit more
        (0.25, 7000, "reduced", {"m1": 3000}, ["capacity"]),  # why: 2,500 needs 3 whole units
        (0.6, 4000, "funded", {"m1": 6000}, []),  # why: the minimum is P2's whole request
    ],
)
def test_share_minimum(
    min_share: float, p1_hours: int, p2_decision: str, p2_hours: dict[str, int], p2_codes: list[str]
) -> None:
    """A group's minimum share is met, though its member is worth less per unit than P1."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, request=10_000, minimum=1000),
            proposal("P2", kind="start-up", score=2.0, request=6000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=min_share)],
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": p1_hours}
    assert (decision(sol, "P2"), hours(sol, "P2"), codes(sol, "P2")) == (p2_decision, p2_hours, p2_codes)
    assert sol.metrics.groups[0].share == pytest.approx(sum(p2_hours.values()) / 10_000)


@pytest.mark.parametrize(
    "min_share",
    [
        0.61,  # why: 6,100 reference GPU-h: more than P2's whole request
        0.7,  # why: one unit more than P2 can take
    ],
)
def test_share_minimum_over(min_share: float) -> None:
    """A share minimum above what the group's members can take is infeasible."""
    rnd = make_round(
        proposals=[
            proposal("P1", score=5.0, request=10_000, minimum=1000),
            proposal("P2", kind="start-up", score=2.0, request=6000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=min_share)],
    )
    assert_infeasible(rnd)


def test_share_minimum_in_reference_hours() -> None:
    """Shares count reference GPU-hours: on a rate-2 machine one 1,000 GPU-h unit is 2,000 reference."""
    rnd = make_round(
        machines=[machine(gpu_hours=5000, exchange_rate=2.0)],
        proposals=[
            proposal("P1", score=5.0, request=10_000, minimum=2000),
            proposal("P2", kind="start-up", score=2.0, request=6000, minimum=2000),
        ],
        # 0.3 of 10,000 reference GPU-h is 3,000: one unit (2,000) is short, two (4,000) meet it.
        groups=[group("startups", ["start-up"], min_share=0.3)],
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P2") == {"m1": 2000}
    assert sol.result("P2").reference_gpu_hours == 4000
    assert hours(sol, "P1") == {"m1": 3000}


# --- share maximum ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "max_share", "asked", "p1_hours", "p1_decision", "p1_codes"),
    [
        (1.0, 1.0, 4000, 4000, "funded", []),  # why: no effective maximum
        (1.0, 0.4, 4000, 4000, "funded", []),  # why: the maximum is exactly P1's request
        (1.0, 0.3, 4000, 3000, "reduced", ["share_max"]),  # why: one unit under the request
        (1.0, 0.35, 4000, 3000, "reduced", ["share_max"]),  # why: 3,500 is rounded down to whole units
        (1.5, 0.3, 6000, 3000, "reduced", ["share_max"]),  # why: 4,500 reference = exactly 3 units of 1,500
        (1.5, 0.29, 6000, 2000, "reduced", ["share_max"]),  # why: 4,350 reference: one unit fewer
    ],
)
def test_share_maximum(
    rate: float, max_share: float, asked: int, p1_hours: int, p1_decision: str, p1_codes: list[str]
) -> None:
    """A group's reference GPU-hours stay within its maximum share, even for its best proposal."""
    rnd = make_round(
        machines=[machine(exchange_rate=rate)],
        proposals=[
            proposal("P1", kind="start-up", score=5.0, request=asked, minimum=1000),
            proposal("P2", score=2.0, request=5000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], max_share=max_share)],
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1"), codes(sol, "P1")) == (
        p1_decision,
        {"m1": p1_hours},
        p1_codes,
    )
    assert sol.metrics.groups[0].share <= max_share


@pytest.mark.parametrize(
    ("share", "feasible"),
    [
        (0.2, True),  # why: min = max = 2,000 reference GPU-h: two whole units
        (0.3, True),  # why: min = max = 3,000: three whole units, inside the request
        (0.35, False),  # why: min = max = 3,500 lies between whole units: no award hits it
        (0.5, False),  # why: min = max = 5,000: one unit over the request
    ],
)
def test_share_maximum_forced(share: float, feasible: bool) -> None:
    """With min_share = max_share, only awards that hit the share exactly are allowed."""
    rnd = make_round(
        proposals=[
            proposal("P1", kind="start-up", score=5.0, request=4000, minimum=1000),
            proposal("P2", score=2.0, request=5000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], min_share=share, max_share=share)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": round(share * 10_000)}


# --- per-proposal cap -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "expected_decision", "expected_hours", "expected_codes"),
    [
        ({"max_award_gpu_hours": 5000}, "funded", {"m1": 4000}, []),  # why: cap above the request
        ({"max_award_gpu_hours": 4000}, "funded", {"m1": 4000}, []),  # why: cap exactly the request
        ({"max_award_gpu_hours": 3000}, "reduced", {"m1": 3000}, ["cap"]),  # why: one unit under the request
        ({"max_award_gpu_hours": 3500}, "reduced", {"m1": 3000}, ["cap"]),  # why: cap rounded down to units
        ({"max_award_gpu_hours": 2000}, "reduced", {"m1": 2000}, ["cap"]),  # why: cap exactly the minimum
        ({"max_award_gpu_hours": 1000}, "not_eligible", {}, ["cap"]),  # why: cap one unit under the minimum
        ({"max_award_fraction": 0.5}, "funded", {"m1": 4000}, []),  # why: 5,000 GPU-h, above the request
        ({"max_award_fraction": 0.4}, "funded", {"m1": 4000}, []),  # why: 4,000 GPU-h, exactly the request
        ({"max_award_fraction": 0.3}, "reduced", {"m1": 3000}, ["cap"]),  # why: one unit under the request
        ({"max_award_fraction": 0.35}, "reduced", {"m1": 3000}, ["cap"]),  # why: 3,500 rounded down
        ({"max_award_fraction": 0.15}, "not_eligible", {}, ["cap"]),  # why: 1,500 < the 2,000 minimum
        (
            {"max_award_gpu_hours": 3000, "max_award_fraction": 0.2},
            "reduced",
            {"m1": 2000},
            ["cap"],
        ),  # why: the tighter of the two caps applies
    ],
)
def test_per_proposal_cap(
    cap: dict[str, Any], expected_decision: str, expected_hours: dict[str, int], expected_codes: list[str]
) -> None:
    """One proposal's award on a machine stays within the machine's per-proposal caps."""
    rnd = make_round(
        machines=[machine(**cap)],
        proposals=[proposal("P1", request=4000, minimum=2000)],
    )
    sol = solve_checked(rnd)
    assert decision(sol, "P1") == expected_decision
    assert hours(sol, "P1") == expected_hours
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("cap", "feasible"),
    [
        (5000, True),  # why: the cap leaves room above the 4,000 minimum share
        (4000, True),  # why: the cap is exactly the minimum share
        (3000, False),  # why: one unit under the minimum share
    ],
)
def test_per_proposal_cap_forced(cap: int, feasible: bool) -> None:
    """A share minimum that one capped proposal must meet alone is infeasible one unit over its cap."""
    rnd = make_round(
        machines=[machine(max_award_gpu_hours=cap)],
        proposals=[proposal("P1", request=6000, minimum=1000)],
        groups=[group("science", ["academic"], min_share=0.4)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": cap}
    assert codes(sol, "P1") == ["cap"]


# --- minimum viable award ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu_hours", "minimum", "expected_decision", "expected_hours", "expected_codes"),
    [
        (4000, 3000, "funded", {"m1": 4000}, []),  # why: room for the whole request
        (3000, 3000, "reduced", {"m1": 3000}, ["capacity"]),  # why: exactly the minimum fits
        (2000, 3000, "not_funded", {}, ["capacity"]),  # why: one unit short: nothing rather than too little
        (3000, 2500, "reduced", {"m1": 3000}, ["capacity"]),  # why: a 2,500 minimum needs 3 whole units
        (2000, 2500, "not_funded", {}, ["capacity"]),  # why: 2 units are below the 2,500 minimum
    ],
)
def test_minimum_viable_award(
    gpu_hours: int,
    minimum: int,
    expected_decision: str,
    expected_hours: dict[str, int],
    expected_codes: list[str],
) -> None:
    """An award is at least the proposal's minimum, or nothing."""
    rnd = make_round(
        machines=[machine(gpu_hours=gpu_hours)],
        proposals=[proposal("P1", request=4000, minimum=minimum)],
    )
    sol = solve_checked(rnd)
    assert decision(sol, "P1") == expected_decision
    assert hours(sol, "P1") == expected_hours
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("max_share", "feasible"),
    [
        (0.4, True),  # why: the group may take the whole request
        (0.3, True),  # why: the group may take exactly the 3,000 minimum
        (0.25, False),  # why: up to 2,500 allowed, 2,000 required, but any award is 0 or >= 3,000
    ],
)
def test_minimum_viable_award_forced(max_share: float, feasible: bool) -> None:
    """Between a share minimum and maximum, an award below the proposal's minimum does not count."""
    rnd = make_round(
        proposals=[proposal("P1", request=4000, minimum=3000)],
        groups=[group("science", ["academic"], min_share=0.2, max_share=max_share)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": round(max_share * 10_000)}


def test_minimum_viable_award_without_share_minimum() -> None:
    """Without the share minimum, a maximum below the proposal's minimum leaves it unfunded."""
    rnd = make_round(
        proposals=[proposal("P1", request=4000, minimum=3000)],
        groups=[group("science", ["academic"], max_share=0.25)],
    )
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1"), codes(sol, "P1")) == ("not_funded", {}, ["share_max"])


# --- award unit granularity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "rate", "asked", "minimum", "expected_decision", "expected_hours", "expected_codes"),
    [
        (1000, 1.0, 3000, 1000, "funded", 3000, []),  # why: the request is whole units
        (1000, 1.0, 2500, 1000, "funded", 2000, []),  # why: request rounded down to units is in full
        (1000, 1.0, 2500, 2000, "funded", 2000, []),  # why: the minimum is exactly the rounded request
        (1000, 1.0, 2500, 2500, "not_eligible", 0, ["too_small"]),  # why: no whole unit in [2,500, 2,500]
        (500, 1.0, 2500, 2500, "funded", 2500, []),  # why: a finer unit hits the request exactly
        (1000, 1.5, 3000, 1500, "funded", 2000, []),  # why: 2 units of 1,500 reference each
        (1000, 1.5, 2999, 1500, "funded", 1000, []),  # why: one reference GPU-h short of a second unit
        (1000, 1.5, 2999, 1501, "not_eligible", 0, ["too_small"]),  # why: 1 unit < minimum, 2 > request
    ],
)
def test_award_unit_granularity(
    unit: int,
    rate: float,
    asked: int,
    minimum: int,
    expected_decision: str,
    expected_hours: int,
    expected_codes: list[str],
) -> None:
    """Awards are whole award units, between the minimum (rounded up) and the request (rounded down)."""
    rnd = make_round(
        machines=[machine(award_unit=unit, exchange_rate=rate)],
        proposals=[proposal("P1", request=asked, minimum=minimum)],
    )
    sol = solve_checked(rnd)
    assert decision(sol, "P1") == expected_decision
    assert sum(hours(sol, "P1").values()) == expected_hours
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("unit", "feasible"),
    [
        (250, True),  # why: 2,500 is 10 units of 250
        (500, True),  # why: 2,500 is exactly 5 units of 500
        (1000, False),  # why: whole units reach 2,000 or 3,000 only, and 3,000 is over the request
    ],
)
def test_award_unit_granularity_forced(unit: int, feasible: bool) -> None:
    """A share minimum of exactly the request needs the request to be whole award units."""
    rnd = make_round(
        machines=[machine(award_unit=unit)],
        proposals=[proposal("P1", request=2500, minimum=1000)],
        groups=[group("science", ["academic"], min_share=0.25)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert (decision(sol, "P1"), hours(sol, "P1")) == ("funded", {"m1": 2500})


# --- score threshold --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected_decision", "expected_codes"),
    [
        (3.5, "funded", []),  # why: above the threshold
        (3.0, "funded", []),  # why: exactly at the threshold is eligible
        (2.9, "not_eligible", ["below_threshold"]),  # why: just below the threshold
    ],
)
def test_score_threshold(score: float, expected_decision: str, expected_codes: list[str]) -> None:
    """Proposals scoring below the threshold are not eligible."""
    rnd = make_round(threshold=3.0, proposals=[proposal("P1", score=score)])
    sol = solve_checked(rnd)
    assert decision(sol, "P1") == expected_decision
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("score", "feasible"),
    [
        (4.0, True),  # why: eligible, the minimum share is met
        (3.0, True),  # why: at the threshold, still eligible
        (2.9, False),  # why: the only member is below the threshold: the minimum share cannot be met
    ],
)
def test_score_threshold_forced(score: float, feasible: bool) -> None:
    """A share minimum whose only member falls below the threshold is infeasible."""
    rnd = make_round(
        threshold=3.0,
        proposals=[proposal("P1", score=score)],
        groups=[group("science", ["academic"], min_share=0.1)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": 2000}


def test_zero_merit_reason() -> None:
    """A proposal scoring the scale minimum has merit weight 0; left unfunded, it says so."""
    rnd = make_round(proposals=[proposal("P1", score=0.0)])
    sol = solve_checked(rnd)
    assert sol.objective.scaled == 0
    assert sol.result("P1").merit_weight == 0
    if decision(sol, "P1") == "not_funded":
        assert codes(sol, "P1") == ["zero_merit"]


# --- compatibility ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("needs", "expected_decision", "expected_codes"),
    [
        ({"stacks": ["cuda"], "archs": ["x86_64"]}, "funded", []),  # why: exactly what the machine offers
        ({"stacks": ["cuda", "rocm"], "archs": ["aarch64", "x86_64"]}, "funded", []),  # why: runs anywhere
        ({"stacks": ["rocm"]}, "not_eligible", ["incompatible"]),  # why: wrong stack
        ({"archs": ["aarch64"]}, "not_eligible", ["incompatible"]),  # why: wrong CPU architecture
        ({"memory": 64.0}, "funded", []),  # why: needs less memory than the 80 GB offered
        ({"memory": 80.0}, "funded", []),  # why: needs exactly the 80 GB offered
        ({"memory": 80.5}, "not_eligible", ["incompatible"]),  # why: needs just over the 80 GB offered
    ],
)
def test_compatibility(needs: dict[str, Any], expected_decision: str, expected_codes: list[str]) -> None:
    """A proposal runs only on a machine with its stack, its CPU architecture and enough memory."""
    rnd = make_round(proposals=[proposal("P1", **needs)])
    sol = solve_checked(rnd)
    assert decision(sol, "P1") == expected_decision
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("needs", "machine_id"),
    [
        ({"stacks": ["rocm"], "archs": ["aarch64", "x86_64"]}, "amd"),  # why: only the ROCm machine fits
        ({"stacks": ["cuda", "rocm"], "archs": ["aarch64"]}, "amd"),  # why: only the aarch64 machine fits
        ({"stacks": ["cuda", "rocm"], "archs": ["x86_64"], "memory": 80.0}, "nvidia"),  # why: memory
    ],
)
def test_compatibility_picks_the_machine(needs: dict[str, Any], machine_id: str) -> None:
    """With two machines, the award goes to the one machine the code can use."""
    rnd = make_round(
        machines=[
            machine("amd", stack="rocm", cpu_arch="aarch64", gpu_memory_gb=64.0, gpu_hours=2000),
            machine("nvidia", stack="cuda", cpu_arch="x86_64", gpu_memory_gb=80.0, gpu_hours=2000),
        ],
        proposals=[proposal("P1", **needs)],
    )
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {machine_id: 2000}


@pytest.mark.parametrize(
    ("memory", "feasible"),
    [
        (64.0, True),  # why: fits the 80 GB machine
        (80.0, True),  # why: exactly the 80 GB offered
        (96.0, False),  # why: no machine has enough memory: the share minimum cannot be met
    ],
)
def test_compatibility_forced(memory: float, feasible: bool) -> None:
    """A share minimum whose only member cannot run anywhere is infeasible."""
    rnd = make_round(
        proposals=[proposal("P1", memory=memory)],
        groups=[group("science", ["academic"], min_share=0.1)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": 2000}


# --- publication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "limit", "publication", "commercial", "expected_decision", "expected_hours", "expected_codes"),
    [
        ("within_cap", 12, ("open", None), False, "funded", 5000, []),  # why: open work is free access
        ("within_cap", 12, ("embargo", 12), False, "funded", 5000, []),  # why: embargo at the limit
        ("within_cap", 12, ("embargo", 13), True, "reduced", 2000, ["commercial_cap"]),  # why: month over
        (
            "within_cap",
            12,
            ("confidential", None),
            True,
            "reduced",
            2000,
            ["commercial_cap"],
        ),  # why: never free
        ("within_cap", None, ("embargo", 1), True, "reduced", 2000, ["commercial_cap"]),  # why: no embargo ok
        ("within_cap", 0, ("embargo", 1), True, "reduced", 2000, ["commercial_cap"]),  # why: 1 month over 0
        ("exclude", 12, ("open", None), False, "funded", 5000, []),  # why: open work is funded
        ("exclude", 12, ("embargo", 12), False, "funded", 5000, []),  # why: embargo at the limit
        ("exclude", 12, ("embargo", 13), True, "not_eligible", 0, ["publication"]),  # why: one month over
        ("exclude", 12, ("confidential", None), True, "not_eligible", 0, ["publication"]),  # why: excluded
    ],
)
def test_publication(
    policy: str,
    limit: int | None,
    publication: tuple[str, int | None],
    commercial: bool,
    expected_decision: str,
    expected_hours: int,
    expected_codes: list[str],
) -> None:
    """Commitments that do not qualify for free access are commercial: capped, or excluded."""
    commitment, months = publication
    rnd = make_round(
        commercial=policy,
        max_embargo_months=limit,
        proposals=[proposal("P1", commitment=commitment, embargo_months=months, request=5000, minimum=1000)],
    )
    sol = solve_checked(rnd)
    assert sol.result("P1").commercial is commercial
    assert decision(sol, "P1") == expected_decision
    assert sum(hours(sol, "P1").values()) == expected_hours
    assert codes(sol, "P1") == expected_codes


@pytest.mark.parametrize(
    ("months", "feasible"),
    [
        (6, True),  # why: well within the 12-month limit
        (12, True),  # why: exactly at the limit still qualifies
        (13, False),  # why: one month over: excluded, so the share minimum cannot be met
    ],
)
def test_publication_forced(months: int, feasible: bool) -> None:
    """Under 'exclude', a share minimum whose only member embargoes too long is infeasible."""
    rnd = make_round(
        commercial="exclude",
        proposals=[proposal("P1", kind="start-up", commitment="embargo", embargo_months=months)],
        groups=[group("startups", ["start-up"], min_share=0.1)],
    )
    if not feasible:
        assert_infeasible(rnd)
        return
    sol = solve_checked(rnd)
    assert hours(sol, "P1") == {"m1": 2000}
