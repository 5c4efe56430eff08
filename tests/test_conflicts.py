"""Infeasible rounds: a minimal set of conflicting named rules, each with its knob."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allocopt.diagnose import conflicting_rules, conflicts
from allocopt.errors import InfeasibleError
from allocopt.files import validate_round
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solve import solve
from allocopt.terms import derive
from tests.conftest import ROOT


def tiny_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "instances" / "tiny.json").read_text())
    return data


def round_of(data: dict[str, Any]) -> Round:
    return validate_round(data, "test")


def pinned_lumi() -> dict[str, Any]:
    """Three 'fund' pins on LUMI-G that need 5,000 + 3,000 + 2,000 GPU-h of its 8,000."""
    data = tiny_data()
    data["policy"]["pins"] = [
        {"proposal": "P-08", "action": "fund", "machine": "lumi-g", "gpu_hours": 5000, "reason": "priority"},
        {"proposal": "P-02", "action": "fund", "reason": "flagship"},
        {"proposal": "P-04", "action": "fund", "reason": "public service"},
    ]
    return data


def test_three_pins_on_a_full_machine() -> None:
    """The conflict is the three pins and LUMI-G's capacity, which needs 2,000 GPU-h more."""
    rnd = round_of(pinned_lumi())
    rules = conflicting_rules(derive(rnd), SolveOptions())
    assert len(rules) == 4
    assert "LUMI-G's capacity (8,000 GPU-h): the other rules need 10,000 GPU-h there; add 2,000" in rules
    assert sum(r.startswith("the pin funding") for r in rules) == 3
    with pytest.raises(InfeasibleError, match="these 4 rules cannot all hold together"):
        solve(rnd)


@pytest.mark.parametrize(
    "drop",
    [
        "pin P-08",  # why: P-08's 5,000 GPU-h free LUMI-G's room
        "pin P-02",
        "pin P-04",
        "capacity",  # why: 2,000 more GPU-h on LUMI-G fit all three
    ],
)
def test_dropping_any_listed_rule_makes_the_round_feasible(drop: str) -> None:
    """Minimal: remove one of the four rules from the round file and it solves."""
    data = pinned_lumi()
    if drop == "capacity":
        data["machines"][1]["gpu_hours"] = 10_000
    else:
        data["policy"]["pins"] = [p for p in data["policy"]["pins"] if p["proposal"] != drop.split()[1]]
    solution = solve(round_of(data))
    assert solution.solver.status == "optimal"


def test_share_minimum_against_a_commercial_cap(tmp_path: Path) -> None:
    """A 25 % start-up floor with JUPITER's commercial cap at 10 %: both rules, both knobs."""
    data = tiny_data()
    data["policy"]["share_groups"][1]["min_share"] = 0.25
    data["machines"][0]["commercial_cap"] = 0.1
    rules = conflicting_rules(derive(round_of(data)), SolveOptions())
    assert rules == [
        "JUPITER Booster's commercial cap (10%, 1,000 GPU-h): the other rules need 2,000 commercial GPU-h "
        "there; raise its commercial_cap to 0.2000",
        "the Start-ups minimum share (25.0%, 7,000 reference GPU-h): with the other rules at most 6,000 "
        "reference GPU-h (21.4%) can go to Start-ups; lower its min_share to 0.2142",
    ]
    for change in ({"cap": 0.2}, {"min": 0.2142}):
        fixed = json.loads(json.dumps(data))
        if "cap" in change:
            fixed["machines"][0]["commercial_cap"] = change["cap"]
        else:
            fixed["policy"]["share_groups"][1]["min_share"] = change["min"]
        assert solve(round_of(fixed)).solver.status == "optimal"


def test_a_feasible_round_has_no_conflict(tiny: Round) -> None:
    """Nothing to explain when the rules hold."""
    assert conflicting_rules(derive(tiny), SolveOptions()) == []


def two_conflicts() -> dict[str, Any]:
    """P-01 and P-02 exclusive yet both pinned to be funded; and a 25 % start-up floor that
    JUPITER's commercial cap, lowered to 10 %, rules out: two separate conflicts."""
    data = tiny_data()
    data["policy"]["exclusive"] = [{"id": "same-work", "proposals": ["P-01", "P-02"], "reason": "twice"}]
    data["policy"]["pins"] = [
        {"proposal": "P-01", "action": "fund", "reason": "flagship"},
        {"proposal": "P-02", "action": "fund", "reason": "flagship too"},
    ]
    data["policy"]["share_groups"][1]["min_share"] = 0.25
    data["machines"][0]["commercial_cap"] = 0.1
    return data


def test_separate_conflicts_are_all_named_with_their_knobs() -> None:
    """Both conflicts are listed, each minimal, and each knob is measured without the other
    conflict in the way (a number, not just 'raise it')."""
    found = conflicts(derive(round_of(two_conflicts())), SolveOptions())
    assert len(found) == 2 and all(c.minimal for c in found)
    words = sorted(sorted(c.rules) for c in found)
    pins_and_exclusive = next(w for w in words if any("exclusive" in r for r in w))
    assert sum(r.startswith("the pin funding") for r in pins_and_exclusive) == 2
    floor = next(w for w in words if w is not pins_and_exclusive)
    assert any("lower its min_share to 0." in r for r in floor), floor
    with pytest.raises(InfeasibleError, match="the round has 2 separate conflicts"):
        solve(round_of(two_conflicts()))


@pytest.mark.parametrize(
    ("fix_pins", "fix_floor", "feasible"),
    [
        (True, False, False),  # why: the start-up floor still cannot hold
        (False, True, False),  # why: the exclusive pins still cannot hold
        (True, True, True),  # why: one rule changed in each conflict
    ],
)
def test_fixing_one_rule_per_conflict_is_needed(fix_pins: bool, fix_floor: bool, feasible: bool) -> None:
    """Changing one rule of one conflict is not enough while the other stands."""
    data = two_conflicts()
    if fix_pins:
        data["policy"]["pins"] = data["policy"]["pins"][:1]
    if fix_floor:
        data["policy"]["share_groups"][1]["min_share"] = 0.1
    if feasible:
        assert solve(round_of(data)).solver.status == "optimal"
    else:
        with pytest.raises(InfeasibleError):
            solve(round_of(data))


def test_advice_for_a_minimum_demand_cannot_fill_is_measured_with_every_rule() -> None:
    """Start-ups demand alone would allow 35.7 %; the machines' commercial caps and the group's
    own 50 % maximum allow less. The advice is the measured figure, and following it solves
    (the demand figure, 0.3571, used to lead straight into the next conflict)."""
    data = tiny_data()
    startups = data["policy"]["share_groups"][1]
    startups["min_share"], startups["max_share"] = 0.4, 0.5
    with pytest.raises(InfeasibleError) as caught:
        solve(round_of(data))
    message = str(caught.value)
    assert "this rule cannot hold with the others; change it" in message
    advised = float(message.rsplit("lower its min_share to ", 1)[1].split()[0])
    assert advised < 0.3571
    startups["min_share"] = advised
    assert solve(round_of(data)).solver.status in ("optimal", "feasible")


def test_a_score_threshold_that_keeps_a_group_out_is_named() -> None:
    data = tiny_data()
    data["policy"]["score_threshold"] = 4.9  # above every score
    with pytest.raises(InfeasibleError) as caught:
        solve(round_of(data))
    message = str(caught.value)
    assert "5 Science proposal(s) score below the score threshold (4.9; the best of them 4.8)" in message
    assert "a score_threshold at or below 4.2 admits the best" in message  # the start-ups' best


def _excluding(*ids: str) -> dict[str, Any]:
    data = tiny_data()
    data["policy"]["pins"] = [{"proposal": p, "action": "exclude", "reason": "x"} for p in ids]
    return data


def test_overlapping_conflicts_mark_the_rules_that_resolve_the_round() -> None:
    """Four exclusions and the Science floor: the minimal conflict found is {P-01, P-02, the floor},
    but with P-01's pin gone, P-02, P-05 and P-08 still starve the floor. 'Change any one of them'
    was wrong advice: only the floor's change resolves the round."""
    data = _excluding("P-01", "P-02", "P-05", "P-08")
    with pytest.raises(InfeasibleError) as err:
        solve(round_of(data))
    text = str(err.value)
    assert "changing one marked * resolves the round, changing another leaves other rules in conflict" in text
    marked = [line.strip() for line in text.splitlines() if line.strip().startswith("* ")]
    assert len(marked) == 1 and "Science minimum share" in marked[0]
    assert "change any one of them" not in text
    # The claim holds: without the floor it solves; without one unmarked pin it does not.
    floorless = _excluding("P-01", "P-02", "P-05", "P-08")
    science = next(g for g in floorless["policy"]["share_groups"] if g["id"] == "science")
    science["min_share"] = 0.0
    solve(round_of(floorless))
    with pytest.raises(InfeasibleError):
        solve(round_of(_excluding("P-02", "P-05", "P-08")))


def test_more_conflicts_than_are_reported_keep_the_plain_advice() -> None:
    """Six pins, each asking 3,000 GPU-h of its own 2,000 GPU-h machine: five conflicts are named.
    With one left unreported, no rule can be said to resolve the round alone, so each conflict
    keeps 'change any one of them' (it resolves that conflict), and the count says 'at least'."""
    from tests.helpers import machine, make_round, option, pin, proposal

    rnd = make_round(
        machines=[machine(f"m{i}", gpu_hours=2000) for i in range(6)],
        proposals=[proposal(f"P{i}", options=[option(f"m{i}", 3000, 3000)]) for i in range(6)],
        pins=[pin(f"P{i}") for i in range(6)],
    )
    with pytest.raises(InfeasibleError) as err:
        solve(rnd)
    text = str(err.value)
    assert text.count("rules cannot all hold together; change any one of them") == 5
    assert "leaves other rules in conflict" not in text
    assert "the round has at least 5 separate conflicts: resolve each one, then solve again" in text
