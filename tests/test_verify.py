"""verify: the solver's solutions pass, and each kind of tampering is caught by its own rule."""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import allocopt.verify as verify_module
from allocopt.errors import InfeasibleError, InputError
from allocopt.files import read_round
from allocopt.options import SolveOptions
from allocopt.round import Machine, Round
from allocopt.solution import Allocation, Decision, ReasonOut, Solution
from allocopt.solve import solve
from allocopt.verify import RULES, Violation, fundable, verify
from allocopt.verify import Option as VOption
from tests.helpers2 import group, hand_solution, machine, make_round2, option, pin, proposal2, soft_group
from tests.strategies import policy_rounds

TINY = Path(__file__).resolve().parent.parent / "instances" / "tiny.json"


@pytest.fixture(scope="module")
def rnd() -> Round:
    """The shipped tiny round."""
    return read_round(TINY)


@pytest.fixture(scope="module")
def sol(rnd: Round) -> Solution:
    """The tiny round solved by CP-SAT with default options."""
    return solve(rnd)


def rules(rnd: Round, sol: Solution) -> set[str]:
    """The rule codes verify reports."""
    return {v.rule for v in verify(rnd, sol)}


def subjects(rnd: Round, sol: Solution, rule: str) -> set[str]:
    """The subjects of the violations of one rule."""
    return {v.subject for v in verify(rnd, sol) if v.rule == rule}


def with_result(sol: Solution, pid: str, **update: Any) -> Solution:
    """The solution with one proposal's result changed."""
    assert any(r.id == pid for r in sol.proposals)
    results = [r.model_copy(update=update) if r.id == pid else r for r in sol.proposals]
    return sol.model_copy(update={"proposals": results})


def with_award(sol: Solution, pid: str, machine: str, gpu_hours: int, rate: float) -> Solution:
    """The solution with one proposal's award replaced, its reference hours kept consistent."""
    alloc = Allocation(machine=machine, gpu_hours=gpu_hours, reference_gpu_hours=gpu_hours * rate)
    return with_result(sol, pid, allocations=[alloc], reference_gpu_hours=gpu_hours * rate)


def with_policy(rnd: Round, **update: Any) -> Round:
    """The round with its policy changed."""
    return rnd.model_copy(update={"policy": rnd.policy.model_copy(update=update)})


def with_machine(rnd: Round, mid: str, **update: Any) -> Round:
    """The round with one machine changed."""
    machines = [m.model_copy(update=update) if m.id == mid else m for m in rnd.machines]
    return rnd.model_copy(update={"machines": machines})


# --- valid solutions --------------------------------------------------------------------------


def test_solver_solution_of_tiny_is_valid(rnd: Round, sol: Solution) -> None:
    """The CP-SAT solution of tiny.json breaks no rule."""
    assert verify(rnd, sol) == []


def test_solution_checked_against_its_embedded_input(sol: Solution) -> None:
    """The embedded canonical round gives the same verdict as the round file."""
    assert verify(sol.input, sol) == []


VARIANTS: dict[str, dict[str, Any]] = {
    "exclude commercial": {"policy": {"commercial": "exclude"}},
    "value hours": {"policy": {"merit": {"value": "hours", "exponent": 1}}},
    "exponent 3": {"policy": {"merit": {"value": "fraction", "exponent": 3}}},
    "no free embargo": {"policy": {"free_access": {"max_embargo_months": None}}},
    "capped lumi": {"machine": ("lumi-g", {"max_award_gpu_hours": 3000, "max_award_fraction": 0.5})},
    "odd rate": {"machine": ("jupiter", {"exchange_rate": 1.7, "award_unit": 500, "commercial_cap": 0.15})},
    "rank": {"policy": {"objective": "rank"}},
    "rank, hours": {"policy": {"objective": "rank", "merit": {"value": "hours", "exponent": 1}}},
    "awarded basis": {"policy": {"share_basis": "awarded"}},
    "rank, awarded basis": {"policy": {"objective": "rank", "share_basis": "awarded"}},
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_solver_solutions_of_variants_are_valid(rnd: Round, name: str) -> None:
    """Solving variants of tiny (other policies, caps, rates) gives solutions verify accepts."""
    variant = VARIANTS[name]
    changed = rnd
    if "policy" in variant:
        updates: dict[str, Any] = {}
        for key, value in variant["policy"].items():
            current = getattr(rnd.policy, key)
            updates[key] = current.model_copy(update=value) if isinstance(value, dict) else value
        changed = with_policy(rnd, **updates)
    if "machine" in variant:
        mid, update = variant["machine"]
        changed = with_machine(rnd, mid, **update)
    changed = Round.model_validate(changed.model_dump())
    assert verify(changed, solve(changed)) == []


# --- tampering: each rule fires ---------------------------------------------------------------


def test_over_capacity(rnd: Round, sol: Solution) -> None:
    """Raising an award on a full machine breaks its capacity."""
    tampered = with_award(sol, "P-02", "lumi-g", 6000, 1.0)
    assert "capacity" in rules(rnd, tampered)
    assert subjects(rnd, tampered, "capacity") == {"lumi-g"}


def test_incompatible_machine(rnd: Round, sol: Solution) -> None:
    """Moving an x86_64-only code to JUPITER's aarch64 CPUs is caught."""
    tampered = with_award(sol, "P-02", "jupiter", 3000, 2.0)
    assert "incompatible" in rules(rnd, tampered)
    assert subjects(rnd, tampered, "incompatible") == {"P-02"}


def test_share_max_broken(rnd: Round, sol: Solution) -> None:
    """Moving LUMI-G hours from science to a start-up takes start-ups over their 25% maximum."""
    tampered = with_award(sol, "P-02", "lumi-g", 4000, 1.0)
    tampered = with_award(tampered, "P-04", "lumi-g", 4000, 1.0)
    found = rules(rnd, tampered)
    assert "share_max" in found
    assert "capacity" not in found
    assert subjects(rnd, tampered, "share_max") == {"startups"}


def test_share_min_broken(rnd: Round, sol: Solution) -> None:
    """Dropping both start-up awards takes start-ups below their 10% minimum."""
    tampered = with_result(sol, "P-03", allocations=[], reference_gpu_hours=0.0)
    tampered = with_result(tampered, "P-04", allocations=[], reference_gpu_hours=0.0)
    assert "share_min" in rules(rnd, tampered)
    assert subjects(rnd, tampered, "share_min") == {"startups"}


def test_below_minimum_award(rnd: Round, sol: Solution) -> None:
    """P-01's minimum is 6,000 reference GPU-h, 3 units on JUPITER: 2 units is too few."""
    tampered = with_award(sol, "P-01", "jupiter", 2000, 2.0)
    assert "below_minimum" in rules(rnd, tampered)


def test_above_request(rnd: Round, sol: Solution) -> None:
    """P-05 asks 8,000 reference GPU-h, 4 units on JUPITER: 5 units is more than asked."""
    tampered = with_award(sol, "P-05", "jupiter", 5000, 2.0)
    assert "above_request" in rules(rnd, tampered)


def test_above_cap(rnd: Round, sol: Solution) -> None:
    """A per-proposal cap of 4,000 GPU-h on LUMI-G rules out P-02's 5,000."""
    capped = with_machine(rnd, "lumi-g", max_award_gpu_hours=4000)
    assert "above_cap" in rules(capped, sol)
    assert "above_cap" not in rules(rnd, sol)


def test_not_a_multiple_of_award_unit(rnd: Round, sol: Solution) -> None:
    """5,500 GPU-h is not a whole number of 1,000 GPU-h award units."""
    tampered = with_award(sol, "P-02", "lumi-g", 5500, 1.0)
    assert "award_unit" in rules(rnd, tampered)


def test_commercial_cap_exceeded(rnd: Round, sol: Solution) -> None:
    """The confidential P-03 on JUPITER beyond 20% of 10,000 GPU-h breaks the commercial cap."""
    tampered = with_award(sol, "P-03", "jupiter", 3000, 2.0)
    assert "commercial_cap" in rules(rnd, tampered)
    assert subjects(rnd, tampered, "commercial_cap") == {"jupiter"}


def test_publication_rule_broken(rnd: Round, sol: Solution) -> None:
    """Under commercial='exclude', the funded confidential P-03 breaks the publication rule."""
    excluding = with_policy(rnd, commercial="exclude")
    assert "publication" in rules(excluding, sol)
    assert subjects(excluding, sol, "publication") == {"P-03"}


def test_long_embargo_is_commercial(rnd: Round, sol: Solution) -> None:
    """With no embargo qualifying for free access, P-04's 6-month embargo is commercial too."""
    strict = with_policy(
        rnd,
        commercial="exclude",
        free_access=rnd.policy.free_access.model_copy(update={"max_embargo_months": None}),
    )
    assert subjects(strict, sol, "publication") == {"P-03", "P-04"}


def test_below_threshold(rnd: Round, sol: Solution) -> None:
    """Funding P-06 (score 2.5, threshold 3) is caught."""
    tampered = with_award(sol, "P-06", "lumi-g", 2000, 1.0)
    assert "below_threshold" in rules(rnd, tampered)


def test_wrong_objective(rnd: Round, sol: Solution) -> None:
    """An objective one point off the recomputed one is caught."""
    tampered = sol.model_copy(update={"objective": sol.objective.model_copy(update={"scaled": 325_500_001})})
    found = rules(rnd, tampered)
    assert "objective" in found
    assert "best_bound" in found  # the bound 325,500,000 is now below the objective


def test_objective_recomputed_by_hand(rnd: Round, sol: Solution) -> None:
    """The objective is the README's hand computation: 0.96*2/3 + 0.9*5/6 + 0.84*2/3 + 0.78*3/4 + 0.72."""
    assert sol.objective.scaled == 64_000_000 + 75_000_000 + 56_000_000 + 58_500_000 + 72_000_000


def test_wrong_scale_and_basis(rnd: Round, sol: Solution) -> None:
    """A scale or value basis other than the policy's is caught."""
    obj = sol.objective.model_copy(update={"scale": 1000, "value_basis": "hours"})
    found = rules(rnd, sol.model_copy(update={"objective": obj}))
    assert {"objective_scale", "value_basis"} <= found


def test_wrong_contribution(rnd: Round, sol: Solution) -> None:
    """A proposal's objective contribution one point off is caught."""
    p01 = sol.result("P-01")
    tampered = with_result(sol, "P-01", objective_contribution=p01.objective_contribution + 1)
    assert "contribution" in rules(rnd, tampered)
    assert subjects(rnd, tampered, "contribution") == {"P-01"}


def test_missing_proposal(rnd: Round, sol: Solution) -> None:
    """A solution without P-08's decision is caught."""
    tampered = sol.model_copy(update={"proposals": [r for r in sol.proposals if r.id != "P-08"]})
    assert "missing_proposal" in rules(rnd, tampered)
    assert subjects(rnd, tampered, "missing_proposal") == {"P-08"}


def test_duplicate_and_unknown_proposal(rnd: Round, sol: Solution) -> None:
    """A proposal decided twice and one that is not in the round are both caught."""
    extra = sol.result("P-08").model_copy(update={"id": "P-99"})
    tampered = sol.model_copy(update={"proposals": [*sol.proposals, sol.result("P-08"), extra]})
    found = rules(rnd, tampered)
    assert {"duplicate_proposal", "unknown_proposal"} <= found


def test_unknown_machine(rnd: Round, sol: Solution) -> None:
    """An allocation on a machine the round does not have is caught."""
    tampered = with_award(sol, "P-02", "leonardo", 5000, 1.0)
    assert "unknown_machine" in rules(rnd, tampered)
    assert subjects(rnd, tampered, "unknown_machine") == {"P-02"}


def test_two_machines_for_one_proposal(rnd: Round, sol: Solution) -> None:
    """A second allocation for P-02 (max_machines 1) breaks the machines-per-proposal rule."""
    p02 = sol.result("P-02")
    extra = Allocation(machine="jupiter", gpu_hours=1000, reference_gpu_hours=2000.0)
    tampered = with_result(sol, "P-02", allocations=[*p02.allocations, extra])
    assert "too_many_machines" in rules(rnd, tampered)


def test_zero_award(rnd: Round, sol: Solution) -> None:
    """An allocation of 0 GPU-hours is caught."""
    tampered = with_award(sol, "P-08", "lumi-g", 0, 1.0)
    assert "zero_award" in rules(rnd, tampered)


def test_hash_mismatch(rnd: Round, sol: Solution) -> None:
    """A slightly different round (a renamed round) only breaks the input hash."""
    renamed = rnd.model_copy(update={"name": "Tiny example round, renamed"})
    assert [v.rule for v in verify(renamed, sol)] == ["input_hash"]


def test_hash_mismatch_still_checks_the_rest(rnd: Round, sol: Solution) -> None:
    """With less capacity on LUMI-G, both the hash and the capacity rule fire."""
    smaller = with_machine(rnd, "lumi-g", gpu_hours=7000)
    found = rules(smaller, sol)
    assert {"input_hash", "capacity"} <= found


def test_wrong_reference_hours(rnd: Round, sol: Solution) -> None:
    """Reference GPU-hours that do not match the exchange rate are caught."""
    p01 = sol.result("P-01")
    alloc = p01.allocations[0].model_copy(update={"reference_gpu_hours": 4000.0})
    tampered = with_result(sol, "P-01", allocations=[alloc])
    assert "reference_hours" in rules(rnd, tampered)


def test_wrong_decision_and_missing_reasons(rnd: Round, sol: Solution) -> None:
    """Calling the reduced P-01 'funded', or the not-funded P-08 reasonless, is caught."""
    tampered = with_result(sol, "P-01", decision=Decision.FUNDED, reasons=[])
    assert "decision" in rules(rnd, tampered)
    tampered = with_result(sol, "P-08", reasons=[])
    assert "reasons" in rules(rnd, tampered)
    tampered = with_result(sol, "P-06", decision=Decision.NOT_FUNDED)
    assert subjects(rnd, tampered, "decision") == {"P-06"}


def test_wrong_figures(rnd: Round, sol: Solution) -> None:
    """A wrong group or commercial flag on a decision is caught."""
    tampered = with_result(sol, "P-03", commercial=False, group="science")
    assert "figures" in rules(rnd, tampered)


def test_wrong_metrics(rnd: Round, sol: Solution) -> None:
    """Machine and group metrics that do not add up are caught."""
    machines = [
        m.model_copy(update={"awarded_gpu_hours": 7000}) if m.id == "lumi-g" else m
        for m in sol.metrics.machines
    ]
    groups = [
        g.model_copy(update={"reference_gpu_hours": 1.0}) if g.id == "science" else g
        for g in sol.metrics.groups
    ]
    metrics = sol.metrics.model_copy(update={"machines": machines, "groups": groups})
    tampered = sol.model_copy(update={"metrics": metrics})
    assert subjects(rnd, tampered, "metrics") == {"lumi-g", "science"}


# --- the report itself ------------------------------------------------------------------------


def test_violation_is_one_readable_line(rnd: Round, sol: Solution) -> None:
    """A violation prints as one line with its rule code and numbers with thousands separators."""
    tampered = with_award(sol, "P-02", "lumi-g", 6000, 1.0)
    capacity = next(v for v in verify(rnd, tampered) if v.rule == "capacity")
    assert capacity == Violation(
        "capacity", "lumi-g", "machine 'lumi-g': 9,000 GPU-h awarded, capacity 8,000"
    )
    assert str(capacity) == "capacity: machine 'lumi-g': 9,000 GPU-h awarded, capacity 8,000"
    assert "\n" not in str(capacity)


def test_every_reported_rule_is_documented(rnd: Round, sol: Solution) -> None:
    """Every rule code verify emits, here for a badly broken solution, is listed in RULES."""
    tampered = with_award(sol, "P-02", "leonardo", 5500, 1.0)
    tampered = with_award(tampered, "P-06", "jupiter", 5500, 1.0)
    tampered = with_result(tampered, "P-08", decision=Decision.FUNDED)
    found = verify(with_policy(rnd, commercial="exclude"), tampered)
    assert len(found) > 10
    assert {v.rule for v in found} <= RULES.keys()


# --- the full policy language: hand-built rounds and solutions -----------------------------------
#
# Each round below is small enough to work out by hand; hand_solution writes the solution a
# correct solver would write for a given allocation, and each tampering test breaks one rule
# and expects exactly that rule's code.


def obj_with(sol: Solution, **update: Any) -> Solution:
    """The solution with its objective changed."""
    return sol.model_copy(update={"objective": sol.objective.model_copy(update=update)})


def rank_with(sol: Solution, **update: Any) -> Solution:
    """The solution with its rank record changed."""
    assert sol.rank is not None
    return sol.model_copy(update={"rank": sol.rank.model_copy(update=update)})


def steps_with(sol: Solution, pid: str, phase: str, **update: Any) -> Solution:
    """The solution with one rank step changed."""
    assert sol.rank is not None
    steps = [
        s.model_copy(update=update) if (s.proposal, s.phase) == (pid, phase) else s for s in sol.rank.steps
    ]
    return rank_with(sol, steps=steps)


def split_round(**extra: Any) -> Round:
    """m1 (rate 1) and m2 (rate 2), 4,000 GPU-h each; S may split over 2 machines and asks
    6,000 reference GPU-h, minimum 3,000: on m1 f = 1/6, g = 1/3 (6 units, minimum 3); on m2
    f = 1/3, g = 2/3 (3 units, minimum 2)."""
    machines = [machine("m1", gpu_hours=4000), machine("m2", gpu_hours=4000, exchange_rate=2.0)]
    machines += extra.pop("more_machines", [])
    return make_round2(
        machines=machines, proposals=[proposal2("S", request=6000, minimum=3000, max_machines=2)], **extra
    )


def test_split_award_recomputed_by_hand() -> None:
    """2 units on m1 and 1 on m2: 2/3 of the request and 4/3 of the minimum, reduced;
    merit 2 x round(10^8 x 0.8 / 6) + round(10^8 x 0.8 / 3) = 53,333,333."""
    rnd = split_round()
    sol = hand_solution(rnd, {"S": {"m1": 2000, "m2": 1000}})
    assert verify(rnd, sol) == []
    s = sol.result("S")
    assert (s.decision, s.fraction_of_request, s.reference_gpu_hours) == (Decision.REDUCED, 0.666667, 4000.0)
    assert s.objective_contribution == 2 * 13_333_333 + 26_666_667 == sol.objective.merit_scaled


def test_split_funded_in_full_when_no_used_option_can_grow() -> None:
    """On m2 at rate 2.5 a unit is 5/12 of the request: 2 units (5/6) are 'funded', since one
    more would pass the request, though a unit on the unused m1 (1/6) would still fit."""
    rnd = make_round2(
        machines=[machine("m1", gpu_hours=4000), machine("m2", gpu_hours=4000, exchange_rate=2.5)],
        proposals=[proposal2("S", request=6000, minimum=3000, max_machines=2)],
    )
    sol = hand_solution(rnd, {"S": {"m2": 2000}})
    assert verify(rnd, sol) == []
    assert sol.result("S").decision == Decision.FUNDED
    reason = ReasonOut(code="capacity", detail="m2 is full")
    tampered = with_result(sol, "S", decision=Decision.REDUCED, reasons=[reason])
    assert codes_of(rnd, tampered) == {"decision", "metrics"}  # the decision counts no longer add up


def codes_of(rnd: Round, sol: Solution) -> set[str]:
    """The rule codes verify reports (a set)."""
    return {v.rule for v in verify(rnd, sol)}


def test_split_over_more_machines_than_allowed() -> None:
    """One unit on each of three machines is within S's request and minimum, but S may use 2."""
    rnd = split_round(more_machines=[machine("m3", gpu_hours=4000)])
    sol = hand_solution(rnd, {"S": {"m1": 1000, "m2": 1000, "m3": 1000}})
    assert codes_of(rnd, sol) == {"too_many_machines"}
    assert subjects(rnd, sol, "too_many_machines") == {"S"}


def test_split_total_below_minimum() -> None:
    """2 units on m1 alone are 2/3 of S's minimum."""
    rnd = split_round()
    sol = hand_solution(rnd, {"S": {"m1": 2000}})
    assert codes_of(rnd, sol) == {"below_minimum"}


def test_split_total_above_request() -> None:
    """4 units on m1 and 2 on m2 are each within the machine's request units, but 4/3 of the request."""
    rnd = split_round()
    sol = hand_solution(rnd, {"S": {"m1": 4000, "m2": 2000}})
    assert codes_of(rnd, sol) == {"above_request"}
    assert "133.333333% of its request" in str(verify(rnd, sol)[0])


def test_split_lists_a_machine_twice() -> None:
    """Two allocations on the same machine are caught."""
    rnd = split_round()
    sol = hand_solution(rnd, {"S": {"m1": 2000, "m2": 1000}})
    allocs = sol.result("S").allocations
    tampered = with_result(sol, "S", allocations=[allocs[0], allocs[0], allocs[1]])
    assert "duplicate_allocation" in codes_of(rnd, tampered)


def options_round(**extra: Any) -> Round:
    """O lists m1 (2,000 GPU-h, minimum 1,000, preference 1) and m2 (3,000, minimum 2,000,
    preference 0.5); m3 is compatible but not listed; 'amd' runs ROCm, which O cannot use
    (and so cannot list: that is bad input)."""
    machines = [
        machine("m1", gpu_hours=4000),
        machine("m2", gpu_hours=4000),
        machine("m3", gpu_hours=4000),
        machine("amd", stack="rocm", gpu_hours=4000),
    ]
    options = [option("m1", 2000, 1000), option("m2", 3000, 2000, 0.5)]
    return make_round2(
        machines=machines, proposals=[proposal2("O", options=options), proposal2("Q")], **extra
    )


def test_machine_options_recomputed_by_hand() -> None:
    """On m2, O gets 3 units (its full option), worth round(10^8 x 0.8 x 0.5 x 1/3) each."""
    rnd = options_round()
    sol = hand_solution(rnd, {"O": {"m2": 3000}})
    assert verify(rnd, sol) == []
    assert sol.result("O").decision == Decision.FUNDED
    assert sol.result("O").objective_contribution == 3 * 13_333_333


def test_option_request_exceeded() -> None:
    """3,000 GPU-h on m1, where O asks 2,000."""
    rnd = options_round()
    sol = hand_solution(rnd, {"O": {"m1": 3000}})
    assert codes_of(rnd, sol) == {"above_request"}
    assert "request 2,000 GPU-h on this machine" in str(verify(rnd, sol)[0])


def test_option_minimum_not_reached() -> None:
    """1,000 GPU-h on m2, where O's minimum is 2,000."""
    rnd = options_round()
    assert codes_of(rnd, hand_solution(rnd, {"O": {"m2": 1000}})) == {"below_minimum"}


def test_award_on_a_machine_not_listed() -> None:
    """m3 suits O's code, but O lists no option on it."""
    rnd = options_round()
    sol = hand_solution(rnd, {"O": {"m1": 1000}})
    alloc = sol.result("O").allocations[0].model_copy(update={"machine": "m3"})
    tampered = with_result(sol, "O", allocations=[alloc])
    assert "no_option" in codes_of(rnd, tampered)
    assert subjects(rnd, tampered, "no_option") == {"O"}


def test_option_on_an_incompatible_machine_is_never_allowed() -> None:
    """An award on the ROCm machine is incompatible for O's CUDA code; listing it as an option
    is bad input, caught when the round is read."""
    rnd = options_round()
    sol = hand_solution(rnd, {"O": {"m1": 2000}})
    alloc = Allocation(machine="amd", gpu_hours=1000, reference_gpu_hours=1000.0)
    tampered = with_result(sol, "O", allocations=[alloc])
    assert "incompatible" in codes_of(rnd, tampered)
    with pytest.raises(ValidationError, match="does not meet the proposal's requirements"):
        make_round2(
            machines=[machine("m1"), machine("amd", stack="rocm")],
            proposals=[proposal2("O", options=[option("amd", 3000, 1000)])],
        )


def efficiency_round(value: str = "fraction") -> Round:
    """E runs ROCm at half speed: 4,000 reference GPU-h (minimum 2,000) are 8 units (minimum 4)
    of 1,000 GPU-h at rate 1 on the ROCm machine."""
    return make_round2(
        machines=[machine("amd", stack="rocm")],
        proposals=[proposal2("E", stacks=("rocm",), request=4000, minimum=2000, efficiency={"rocm": 0.5})],
        value=value,
    )


def test_efficiency_recomputed_by_hand() -> None:
    """8 units fund E in full; each is worth 10^8 x 0.8 / 8 (fraction) or 10^3 x 0.8 x 500 (hours),
    and counts 1,000 reference GPU-h for the shares, whatever the efficiency."""
    for value, coef in (("fraction", 10_000_000), ("hours", 400_000)):
        rnd = efficiency_round(value)
        sol = hand_solution(rnd, {"E": {"amd": 8000}})
        assert verify(rnd, sol) == []
        e = sol.result("E")
        assert (e.decision, e.fraction_of_request, e.reference_gpu_hours) == (Decision.FUNDED, 1.0, 8000.0)
        assert e.objective_contribution == 8 * coef


def test_efficiency_ignored() -> None:
    """A solver that ignores E's efficiency thinks 2 units reach the minimum and 4 the request."""
    rnd = efficiency_round()
    assert codes_of(rnd, hand_solution(rnd, {"E": {"amd": 2000}})) == {"below_minimum"}
    sol = hand_solution(rnd, {"E": {"amd": 4000}})
    assert sol.result("E").decision == Decision.REDUCED
    tampered = with_result(sol, "E", decision=Decision.FUNDED, fraction_of_request=1.0, reasons=[])
    assert codes_of(rnd, tampered) == {"decision", "figures", "metrics"}


def soft_round(objective: str = "merit") -> Round:
    """10,000 GPU-h at rate 1. Science (academic) is soft with a minimum of 90% at 0.00002 per hour
    (2,000 points); Start-ups is soft with a maximum of 15% at 0.0001 per hour (10,000 points)."""
    return make_round2(
        proposals=[
            proposal2("A", request=8000, minimum=1000),
            proposal2("B", kind="start-up", request=2000, minimum=1000),
        ],
        groups=[
            soft_group("science", ["academic"], 0.9, 1.0, penalty=0.00002),
            soft_group("startups", ["start-up"], 0.0, 0.15, penalty=0.0001),
        ],
        objective=objective,
    )


def test_soft_penalty_recomputed_by_hand() -> None:
    """A 8,000 and B 2,000: science is 1,000 short (2,000,000 points), start-ups 500 over
    (5,000,000); merit 8 x 10,000,000 + 2 x 40,000,000."""
    rnd = soft_round()
    sol = hand_solution(rnd, {"A": {"m1": 8000}, "B": {"m1": 2000}})
    assert verify(rnd, sol) == []
    assert (sol.objective.merit_scaled, sol.objective.penalty_scaled) == (160_000_000, 7_000_000)
    assert sol.objective.scaled == 153_000_000
    groups = {
        g.id: (g.shortfall_reference_gpu_hours, g.excess_reference_gpu_hours) for g in sol.metrics.groups
    }
    assert groups == {"science": (1000, 0), "startups": (0, 500)}


def test_soft_shortfall_rounds_up() -> None:
    """A minimum of 33.335% of 10,000 is 3,333.5 reference GPU-h: 2,000 held is 1,334 hours short."""
    rnd = make_round2(
        proposals=[proposal2("B", kind="start-up", request=2000, minimum=1000)],
        groups=[soft_group("startups", ["start-up"], 0.33335, 1.0, penalty=0.0001)],
    )
    sol = hand_solution(rnd, {"B": {"m1": 2000}})
    assert verify(rnd, sol) == []
    assert sol.objective.penalty_scaled == 1334 * 10_000


def test_wrong_penalty() -> None:
    """A penalty 10,000 points low (with the objective, value and bound kept consistent)."""
    rnd = soft_round()
    sol = hand_solution(rnd, {"A": {"m1": 8000}, "B": {"m1": 2000}})
    scaled = sol.objective.scaled + 10_000
    tampered = obj_with(
        sol, penalty_scaled=6_990_000, scaled=scaled, value=scaled / 10**8, best_bound_scaled=scaled
    )
    assert codes_of(rnd, tampered) == {"penalty"}


def test_soft_shortfall_misreported() -> None:
    """Science's shortfall reported as 999 hours instead of 1,000."""
    rnd = soft_round()
    sol = hand_solution(rnd, {"A": {"m1": 8000}, "B": {"m1": 2000}})
    groups = [
        g.model_copy(update={"shortfall_reference_gpu_hours": 999}) if g.id == "science" else g
        for g in sol.metrics.groups
    ]
    tampered = sol.model_copy(update={"metrics": sol.metrics.model_copy(update={"groups": groups})})
    assert codes_of(rnd, tampered) == {"metrics"}
    assert subjects(rnd, tampered, "metrics") == {"science"}


def test_soft_groups_are_hard_under_rank() -> None:
    """The same allocation under the rank objective breaks both bounds."""
    rnd = soft_round("rank")
    sol = hand_solution(rnd, {"A": {"m1": 8000}, "B": {"m1": 2000}})
    assert codes_of(rnd, sol) == {"share_min", "share_max"}


def basis_round(basis: str) -> Round:
    """Start-ups may hold at most 50%, of the capacity (10,000) or of what is awarded."""
    return make_round2(
        proposals=[
            proposal2("A", request=2000, minimum=1000),
            proposal2("B", kind="start-up", request=3000, minimum=1000),
        ],
        groups=[group("startups", ["start-up"], 0.0, 0.5)],
        share_basis=basis,
    )


def test_share_basis_awarded_broken() -> None:
    """B's 3,000 of 5,000 awarded is 60%: within 50% of the capacity, above 50% of the awarded."""
    awards = {"A": {"m1": 2000}, "B": {"m1": 3000}}
    assert verify(basis_round("capacity"), hand_solution(basis_round("capacity"), awards)) == []
    rnd = basis_round("awarded")
    sol = hand_solution(rnd, awards)
    assert codes_of(rnd, sol) == {"share_max"}
    assert sol.metrics.groups[0].share == 0.6
    assert "2,500" in str(verify(rnd, sol)[0])


def test_share_basis_misreported() -> None:
    """Metrics that claim the capacity basis under 'awarded' are caught."""
    rnd = basis_round("awarded")
    sol = hand_solution(rnd, {"A": {"m1": 2000}, "B": {"m1": 2000}})
    assert verify(rnd, sol) == []
    tampered = sol.model_copy(update={"metrics": sol.metrics.model_copy(update={"share_basis": "capacity"})})
    assert codes_of(rnd, tampered) == {"metrics"}


def pins_round() -> Round:
    """A is pinned 'fund' with 2,000 GPU-h on m2, B pinned 'exclude', C pinned 'fund' anywhere."""
    return make_round2(
        machines=[machine("m1"), machine("m2")],
        proposals=[proposal2("A", request=4000), proposal2("B"), proposal2("C")],
        pins=[pin("A", machine_id="m2", gpu_hours=2000), pin("B", "exclude", reason="conflict"), pin("C")],
    )


PINNED = {"A": {"m2": 2000}, "C": {"m1": 1000}}


def test_pins_honoured() -> None:
    """The pinned awards pass, and each result mirrors its pin."""
    rnd = pins_round()
    sol = hand_solution(rnd, PINNED)
    assert verify(rnd, sol) == []
    pin = sol.result("B").pin
    assert pin is not None and pin.reason == "conflict"


@pytest.mark.parametrize(
    ("awards", "code"),
    [
        ({"A": {"m2": 2000}}, "pin_fund"),
        ({"A": {}, "C": {"m1": 1000}}, "pin_fund"),
        ({"A": {"m2": 2000}, "B": {"m1": 1000}, "C": {"m1": 1000}}, "pin_exclude"),
        ({"A": {"m1": 2000}, "C": {"m1": 1000}}, "pin_machine"),
        ({"A": {"m2": 3000}, "C": {"m1": 1000}}, "pin_hours"),
    ],
)
def test_pin_broken(awards: dict[str, dict[str, int]], code: str) -> None:
    """A fund pin unfunded, an exclude pin funded, a pin on the wrong machine or amount."""
    rnd = pins_round()
    assert codes_of(rnd, hand_solution(rnd, awards)) == {code}


def test_pin_misreported() -> None:
    """A result that drops its pin, or changes its reason, is caught."""
    rnd = pins_round()
    sol = hand_solution(rnd, PINNED)
    assert codes_of(rnd, with_result(sol, "A", pin=None)) == {"figures"}
    other = sol.result("B").pin.model_copy(update={"reason": "another"})  # type: ignore[union-attr]
    assert codes_of(rnd, with_result(sol, "B", pin=other)) == {"figures"}


def counted_round() -> Round:
    """A and B come from Org X, C from elsewhere; A and C are the same work (exclusive);
    one award per organisation."""
    return make_round2(
        proposals=[
            proposal2("A", organisation="Org X"),
            proposal2("B", organisation="Org X"),
            proposal2("C"),
        ],
        exclusive=[{"id": "dup", "proposals": ["A", "C"], "reason": "same work"}],
        max_per_organisation=1,
    )


def test_two_exclusive_proposals_funded() -> None:
    rnd = counted_round()
    assert verify(rnd, hand_solution(rnd, {"A": {"m1": 2000}})) == []
    sol = hand_solution(rnd, {"A": {"m1": 2000}, "C": {"m1": 2000}})
    assert codes_of(rnd, sol) == {"exclusive"}
    assert subjects(rnd, sol, "exclusive") == {"dup"}


def test_organisation_cap_exceeded() -> None:
    rnd = counted_round()
    sol = hand_solution(rnd, {"A": {"m1": 2000}, "B": {"m1": 2000}})
    assert codes_of(rnd, sol) == {"organisation_cap"}
    assert subjects(rnd, sol, "organisation_cap") == {"Org X"}


def rank_round(r3_stacks: tuple[str, ...] = ("cuda",), **extra: Any) -> Round:
    """10 units of 1,000 GPU-h. R1 has committee rank 1 (score 3, asks 6,000, minimum 3,000);
    R4 scores 4.6 but needs 200 GB per GPU (not eligible); R2 and R3 tie at 4.5 (6,000 / 4,000 and
    2,000 / 1,000). Order R1, R2, R3; places among all proposals R1 1, R4 2, R2 3, R3 4.
    The walk funds all three at their minimums (8 units), then raises R1 to 5 units."""
    proposals = [
        proposal2("R1", score=3.0, request=6000, minimum=3000, committee_rank=1),
        proposal2("R2", score=4.5, request=6000, minimum=4000),
        proposal2("R3", score=4.5, request=2000, minimum=1000, stacks=r3_stacks),
        proposal2("R4", score=4.6, memory=200.0),
    ]
    return make_round2(proposals=proposals, objective="rank", **extra)


RANKED = {"R1": {"m1": 5000}, "R2": {"m1": 4000}, "R3": {"m1": 1000}}


def test_rank_walk_valid_and_positions() -> None:
    """The hand-worked walk passes; positions count every proposal, eligible or not."""
    rnd = rank_round()
    sol = hand_solution(rnd, RANKED)
    assert verify(rnd, sol) == []
    assert sol.rank is not None and sol.rank.order == ["R1", "R2", "R3"]
    assert {r.id: r.rank_position for r in sol.proposals} == {"R1": 1, "R4": 2, "R2": 3, "R3": 4}
    assert [s.position for s in sol.rank.steps] == [1, 3, 4, 1, 3, 4]


def test_rank_order_wrong() -> None:
    """R3 listed before R2, its score twin with a smaller id."""
    rnd = rank_round()
    tampered = rank_with(hand_solution(rnd, RANKED), order=["R1", "R3", "R2"])
    assert codes_of(rnd, tampered) == {"rank_sequence"}


def test_rank_position_wrong() -> None:
    """Ranking R4 by its place among the eligible proposals is wrong."""
    rnd = rank_round()
    tampered = with_result(hand_solution(rnd, RANKED), "R2", rank_position=2)
    assert codes_of(rnd, tampered) == {"rank_position"}


def test_rank_steps_inconsistent() -> None:
    """A fund step whose outcome is not the decision, a missing raise step, a wrong fraction,
    and positions counted among the eligible only, are each caught."""
    rnd = rank_round()
    sol = hand_solution(rnd, RANKED)
    assert sol.rank is not None
    broken = [
        steps_with(sol, "R3", "fund", outcome="not_funded"),
        rank_with(sol, steps=[s for s in sol.rank.steps if (s.proposal, s.phase) != ("R2", "raise")]),
        steps_with(sol, "R1", "raise", fraction_of_request=1.0),
        rank_with(
            sol, steps=[s.model_copy(update={"position": i % 3 + 1}) for i, s in enumerate(sol.rank.steps)]
        ),
        rank_with(sol, steps=sol.rank.steps[3:] + sol.rank.steps[:3]),
    ]
    for tampered in broken:
        assert codes_of(rnd, tampered) == {"rank_steps"}


def test_skipped_proposal_that_would_fit() -> None:
    """R3 left out although its minimum (1 unit) fits in the unit left over."""
    rnd = rank_round()
    sol = hand_solution(rnd, {"R1": {"m1": 5000}, "R2": {"m1": 4000}})
    assert "rank_order" in codes_of(rnd, sol)
    assert subjects(rnd, sol, "rank_order") == {"R3"}


def test_skipped_proposal_not_flagged_when_unproven_or_excluded() -> None:
    """An unproven fund step, or an exclude pin, explains an unfunded proposal. (R3 is made to
    run on ROCm too, and a ROCm machine of 1,000 GPU-h that only it can use has room.)"""
    rnd = rank_round()
    awards = {"R1": {"m1": 6000}, "R2": {"m1": 4000}}
    sol = hand_solution(rnd, awards)
    assert "rank_order" not in codes_of(rnd, sol)  # no room left for R3
    amd = machine("amd", stack="rocm", gpu_hours=1000)
    roomy = rank_round(("cuda", "rocm"), machines=[machine(), amd])
    sol = hand_solution(roomy, awards)
    assert codes_of(roomy, sol) == {"rank_order"}
    assert subjects(roomy, sol, "rank_order") == {"R3"}
    unproven = steps_with(sol, "R3", "fund", proven=False)
    unproven = rank_with(unproven, all_proven=False)
    unproven = unproven.model_copy(update={"solver": sol.solver.model_copy(update={"status": "feasible"})})
    assert codes_of(roomy, unproven) == set()
    excluded = rank_round(("cuda", "rocm"), machines=[machine(), amd], pins=[pin("R3", "exclude")])
    assert codes_of(excluded, hand_solution(excluded, awards)) == set()


def test_funded_proposal_not_raised() -> None:
    """R1 kept at 4 units though a unit is free: each funded proposal could take it."""
    rnd = rank_round()
    sol = hand_solution(rnd, {"R1": {"m1": 4000}, "R2": {"m1": 4000}, "R3": {"m1": 1000}})
    assert codes_of(rnd, sol) == {"rank_hours"}
    assert subjects(rnd, sol, "rank_hours") == {"R1", "R2", "R3"}


def test_pinned_award_is_not_raised() -> None:
    """R1 pinned at exactly 4,000 GPU-h may not grow; R2 and R3 could."""
    rnd = rank_round(pins=[pin("R1", machine_id="m1", gpu_hours=4000)])
    sol = hand_solution(rnd, {"R1": {"m1": 4000}, "R2": {"m1": 4000}, "R3": {"m1": 1000}})
    assert subjects(rnd, sol, "rank_hours") == {"R2", "R3"}


def test_wrong_all_proven() -> None:
    """all_proven false with every step proven, or a 'feasible' status, is caught."""
    rnd = rank_round()
    sol = hand_solution(rnd, RANKED)
    assert codes_of(rnd, rank_with(sol, all_proven=False)) == {"rank_proven"}
    feasible = sol.model_copy(update={"solver": sol.solver.model_copy(update={"status": "feasible"})})
    assert codes_of(rnd, feasible) == {"rank_proven"}


def test_rank_record_and_bound_follow_the_objective() -> None:
    """No walk under 'merit', a walk under 'rank', and a null bound and gap under 'rank'."""
    rnd = rank_round()
    sol = hand_solution(rnd, RANKED)
    assert codes_of(rnd, sol.model_copy(update={"rank": None})) == {"rank_record"}
    assert codes_of(rnd, obj_with(sol, best_bound_scaled=sol.objective.scaled, gap=0.0)) == {"best_bound"}
    merit = make_round2(proposals=[proposal2("R1")])
    merit_sol = hand_solution(merit, {"R1": {"m1": 2000}})
    assert codes_of(merit, merit_sol.model_copy(update={"rank": sol.rank})) == {"rank_record"}
    assert codes_of(merit, obj_with(merit_sol, best_bound_scaled=None)) == {"best_bound"}


def test_objective_kind_follows_options_then_policy() -> None:
    """A rank solve of a merit round is fine when the options asked for it, not otherwise."""
    rnd = rank_round().model_copy(
        update={"policy": rank_round().policy.model_copy(update={"objective": "merit"})}
    )
    sol = hand_solution(rnd, RANKED, kind="rank")
    assert verify(rnd, sol) == []
    provenance = sol.provenance.model_copy(update={"options": {"objective": None}})
    assert codes_of(rnd, sol.model_copy(update={"provenance": provenance})) == {"objective_kind"}


# --- the recomputation of eligibility for split awards ------------------------------------------


def test_split_only_eligible_when_parts_can_meet_exactly() -> None:
    """Asking exactly 1,500 reference GPU-h with units of 1,000: no award on one machine, and
    1 + 1 units on two machines is 2,000, above the request: not eligible even when split.
    With a second machine at rate 0.5 capped at one unit (500 reference GPU-h), 1 + 1 units make
    exactly 1,500: eligible when split, not on one machine."""
    two = [machine("m1"), machine("m2")]
    for k in (1, 2):
        rnd = make_round2(
            machines=two, proposals=[proposal2("S", request=1500, minimum=1500, max_machines=k)]
        )
        assert hand_solution(rnd, {}).result("S").decision == Decision.NOT_ELIGIBLE
    half = [machine("m1"), machine("m2", exchange_rate=0.5, max_award_gpu_hours=1000)]
    single = make_round2(machines=half, proposals=[proposal2("S", request=1500, minimum=1500)])
    assert hand_solution(single, {}).result("S").decision == Decision.NOT_ELIGIBLE
    split = make_round2(machines=half, proposals=[proposal2("S", request=1500, minimum=1500, max_machines=2)])
    sol = hand_solution(split, {"S": {"m1": 1000, "m2": 1000}})
    assert verify(split, sol) == []
    assert sol.result("S").decision == Decision.FUNDED


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(0, 4)), min_size=1, max_size=4),
    st.integers(1, 3),
)
def test_fundable_matches_enumeration(parts: list[tuple[int, int, int]], k: int) -> None:
    """The dynamic programme agrees with trying every award, on random options (1/f, 1/g in
    ninths, up to 4 units each)."""
    opts = [
        VOption(
            machine=Machine.model_validate(machine(f"m{i}")),
            f=Fraction(a, 9),
            g=Fraction(b, 9),
            d=Fraction(1),
            preference=Fraction(1),
            request_units=math.floor(Fraction(9, a)),
            min_units=max(1, math.ceil(Fraction(9, b))),
            cap_units=cap,
        )
        for i, (a, b, cap) in enumerate(parts)
    ]
    expected = False
    for size in range(1, min(k, len(opts)) + 1):
        for chosen in itertools.combinations(opts, size):
            for units in itertools.product(*(range(1, o.max_units + 1) for o in chosen)):
                fs = sum((o.f * u for o, u in zip(chosen, units, strict=True)), Fraction(0))
                gs = sum((o.g * u for o, u in zip(chosen, units, strict=True)), Fraction(0))
                if fs <= 1 <= gs:
                    expected = True
    assert fundable(opts, k) == expected


# --- solver solutions in the full policy language ------------------------------------------------


def solver_rounds() -> dict[str, Round]:
    """The hand-worked rounds above that the solver can solve, under both objectives."""
    rounds = {
        "split": split_round(),
        "split, three machines": split_round(more_machines=[machine("m3", gpu_hours=1000)]),
        "options": options_round(),
        "efficiency": efficiency_round(),
        "efficiency, hours": efficiency_round("hours"),
        "soft max": make_round2(
            proposals=[proposal2("A", request=8000), proposal2("B", kind="start-up", request=4000)],
            groups=[soft_group("st", ["start-up"], 0.0, 0.1, penalty=0.00001)],
        ),
        "awarded basis": basis_round("awarded"),
        "pins": pins_round(),
        "exclusive and organisations": counted_round(),
        "rank": rank_round(),
        "rank, pinned": rank_round(pins=[pin("R1", machine_id="m1", gpu_hours=4000)]),
    }
    out: dict[str, Round] = {}
    for name, rnd in rounds.items():
        for objective in ("merit", "rank"):
            policy = rnd.policy.model_copy(update={"objective": objective})
            out[f"{name} ({objective})"] = rnd.model_copy(update={"policy": policy})
    return out


SOLVER_ROUNDS = solver_rounds()


@pytest.mark.parametrize("name", sorted(SOLVER_ROUNDS))
def test_solver_solutions_in_policy_language_are_valid(name: str) -> None:
    """solve() on each hand-worked round, under 'merit' and 'rank', gives a solution verify accepts."""
    rnd = SOLVER_ROUNDS[name]
    assert [str(v) for v in verify(rnd, solve(rnd))] == []


def test_solver_rank_walk_matches_the_hand_walk() -> None:
    """The rank walk of rank_round is the hand-worked one."""
    rnd = rank_round()
    sol = solve(rnd)
    assert {r.id: [(a.machine, a.gpu_hours) for a in r.allocations] for r in sol.proposals} == {
        "R1": [("m1", 5000)],
        "R2": [("m1", 4000)],
        "R3": [("m1", 1000)],
        "R4": [],
    }
    assert sol.rank is not None and sol.rank.all_proven


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(policy_rounds(), st.sampled_from(["merit", "rank"]))
def test_solver_solutions_of_random_policy_rounds_are_valid(rnd: Round, objective: str) -> None:
    """Random tiny rounds in the full policy language: every solution solve() writes passes."""
    try:
        sol = solve(rnd, SolveOptions.model_validate({"objective": objective}))
    except (InfeasibleError, InputError):
        return
    assert [str(v) for v in verify(rnd, sol)] == []


# --- where verify and the solver once disagreed -----------------------------------------------


def test_split_proposal_that_cannot_meet_its_request_is_not_eligible() -> None:
    """S asks exactly 1,500 reference GPU-h, in units of 1,000, split over up to 2 machines: one
    unit is below the minimum and two pass the request, so no award exists and S is not
    eligible (the solver once called it 'not_funded' and ranked it under 'rank')."""
    rnd = make_round2(
        machines=[machine("m1"), machine("m2")],
        proposals=[proposal2("S", request=1500, minimum=1500, max_machines=2), proposal2("T")],
    )
    for objective in ("merit", "rank"):
        sol = solve(rnd, SolveOptions.model_validate({"objective": objective}))
        assert sol.result("S").decision == Decision.NOT_ELIGIBLE
        assert verify(rnd, sol) == []
    assert sol.rank is not None and sol.rank.order == ["T"]


def test_unsettled_split_eligibility_is_not_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the split search runs out of budget, verify accepts S as 'not_eligible' or
    'not_funded', listed in the rank order or not."""
    monkeypatch.setattr(verify_module, "SPLIT_SEARCH_BUDGET", 0)
    rnd = make_round2(
        machines=[machine("m1"), machine("m2")],
        proposals=[proposal2("S", request=1500, minimum=1500, max_machines=2), proposal2("T")],
        objective="rank",
    )
    sol = hand_solution(rnd, {"T": {"m1": 2000}})
    assert sol.result("S").decision == Decision.NOT_FUNDED  # unsettled counts as eligible here
    assert sol.rank is not None and sol.rank.order == ["S", "T"]
    assert verify(rnd, sol) == []
    decisions = {**sol.metrics.decisions, "not_funded": 0, "not_eligible": 1}
    ineligible = with_result(sol, "S", decision=Decision.NOT_ELIGIBLE).model_copy(
        update={"metrics": sol.metrics.model_copy(update={"decisions": decisions})}
    )
    steps = [s for s in sol.rank.steps if s.proposal != "S"]
    ineligible = rank_with(ineligible, order=["T"], steps=steps)
    assert verify(rnd, ineligible) == []


def test_soft_minimum_out_of_reach_costs_a_penalty() -> None:
    """A soft group with no proposals cannot reach its 20% minimum: under 'merit' that costs
    2,000 hours x round(10^8 x 0.00001) points, it does not make the round infeasible."""
    rnd = make_round2(
        proposals=[proposal2("A", request=8000)],
        groups=[soft_group("st", ["start-up"], 0.2, 1.0, penalty=0.00001)],
    )
    sol = solve(rnd)
    assert verify(rnd, sol) == []
    assert sol.objective.penalty_scaled == 2000 * 1000


def test_every_rule_code_in_the_source_is_documented() -> None:
    """Every code verify.py can emit is in RULES, and every code in RULES can be emitted."""
    source = Path(verify_module.__file__).read_text(encoding="utf-8")
    emitted = set(re.findall(r'Violation\(\s*"([a-z_]+)"', source)) | {"rank_steps"}
    assert emitted == RULES.keys()
