"""verify: the solver's solutions pass, and each kind of tampering is caught by its own rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from allocopt import Round, Solution, read_round, solve
from allocopt.solution import Allocation, Decision
from allocopt.verify import RULES, Violation, verify

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
    """A second allocation for P-02 breaks the one-machine rule."""
    p02 = sol.result("P-02")
    extra = Allocation(machine="jupiter", gpu_hours=1000, reference_gpu_hours=2000.0)
    tampered = with_result(sol, "P-02", allocations=[*p02.allocations, extra])
    assert "two_machines" in rules(rnd, tampered)


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
