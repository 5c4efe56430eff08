"""The synthetic round generator: deterministic, valid, ~3x oversubscribed, feasible, solvable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from allocopt.calibrate import calibrate
from allocopt.cli import cli
from allocopt.diagnose import diagnostics
from allocopt.files import canonical_json, read_round, validate_round
from allocopt.fleet import FLEET
from allocopt.generate import AI_TOPICS, FIELDS, SCIENCE_TOPICS, generate_round, write_round
from allocopt.options import SolveOptions
from allocopt.round import ApplicantKind, Round
from allocopt.solve import solve
from allocopt.terms import derive
from allocopt.verify import verify

SHIPPED = Path(__file__).resolve().parent.parent / "instances" / "eurohpc-2026.json"
FLEET_IDS = [p.id for p in FLEET]


def oversubscription(rnd: Round) -> float:
    terms = derive(rnd)
    return float(sum(a.requested_ref for a in terms.assessments.values()) / terms.total_ref)


def test_same_seed_gives_the_same_round() -> None:
    assert canonical_json(generate_round(120, 8, 5)) == canonical_json(generate_round(120, 8, 5))


def test_different_seeds_give_different_rounds() -> None:
    a, b = generate_round(120, 8, 5), generate_round(120, 8, 6)
    assert canonical_json(a) != canonical_json(b)
    assert [p.request for p in a.proposals] != [p.request for p in b.proposals]


@pytest.mark.parametrize(("proposals", "machines"), [(1, 1), (40, 3), (250, 6), (120, 12)])
def test_round_validates_as_a_file_would(proposals: int, machines: int) -> None:
    rnd = generate_round(proposals, machines, 11)
    again = validate_round(rnd.model_dump(mode="json"), "generated")
    assert again == rnd.canonical()
    assert [p.id for p in rnd.proposals] == [f"P-{i:04d}" for i in range(1, proposals + 1)]


@pytest.mark.parametrize(("proposals", "machines", "seed"), [(100, 8, 1), (250, 6, 2026), (2000, 8, 3)])
def test_oversubscription_is_about_three(proposals: int, machines: int, seed: int) -> None:
    assert 2.5 <= oversubscription(generate_round(proposals, machines, seed)) <= 3.5


@pytest.mark.parametrize("machines", [1, 6, 8])
def test_machines_are_the_fleet_in_order(machines: int) -> None:
    rnd = generate_round(30, machines, 0)
    assert [m.id for m in rnd.machines] == FLEET_IDS[:machines]


def test_synthetic_machines_follow_the_fleet() -> None:
    rnd = generate_round(30, 11, 0)
    assert [m.id for m in rnd.machines] == [*FLEET_IDS, "midrange-09", "midrange-10", "midrange-11"]
    for m in rnd.machines[len(FLEET) :]:
        assert "Synthetic" in m.name
        assert m.max_award_fraction == 0.25


def test_machine_hours_follow_the_fleet() -> None:
    jupiter = generate_round(10, 1, 0).machines[0]
    # 23,752 GH200 x 8,760 h x 50 % EuroHPC share x 0.1 of the year per call, in whole award units
    assert jupiter.gpu_hours == 10_403_000
    assert jupiter.stack == "cuda"
    assert jupiter.cpu_arch == "aarch64"


def test_round_has_the_promised_mix() -> None:
    rnd = generate_round(2000, 8, 4)
    kinds = [p.applicant.kind for p in rnd.proposals]
    assert 0.6 < kinds.count(ApplicantKind.ACADEMIC) / len(kinds) < 0.8
    assert 0.12 < kinds.count(ApplicantKind.STARTUP) / len(kinds) < 0.25
    scores = [p.score for p in rnd.proposals]
    assert all(0 <= s <= 5 and round(s, 1) == s for s in scores)
    assert len(set(scores)) < len(scores)  # ties happen
    terms = derive(rnd)
    codes = {r.code for a in terms.assessments.values() for r in a.ineligible}
    assert {"below_threshold", "incompatible"} <= codes
    assert any(a.commercial for a in terms.assessments.values())
    totals = [p.request for p in rnd.proposals if p.request.machine_options is None]
    assert all((r.minimum_reference_gpu_hours or 0) <= (r.reference_gpu_hours or 0) for r in totals)


def test_default_round_speaks_the_whole_policy_language() -> None:
    """The default generator uses options, efficiencies, splits, a soft share, a pin and a duplicate."""
    rnd = generate_round(250, 6, 2026)
    assert any(p.request.machine_options for p in rnd.proposals)
    assert any(p.efficiency for p in rnd.proposals)
    assert any(p.max_machines > 1 for p in rnd.proposals)
    assert any(g.soft for g in rnd.policy.share_groups)
    assert [pin.action for pin in rnd.policy.pins] == ["fund"]
    (pair,) = rnd.policy.exclusive
    first, second = (rnd.proposal(pid) for pid in pair.proposals)
    assert first.title == second.title and first.applicant == second.applicant
    core = generate_round(250, 6, 2026, policy_language=False)
    assert not core.policy.pins and not core.policy.exclusive
    assert not any(p.request.machine_options or p.efficiency or p.max_machines > 1 for p in core.proposals)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    proposals=st.integers(min_value=1, max_value=80),
    machines=st.integers(min_value=1, max_value=12),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_share_minimums_never_rule_the_round_out(proposals: int, machines: int, seed: int) -> None:
    rnd = generate_round(proposals, machines, seed)
    assert not [d for d in diagnostics(derive(rnd)) if d.level == "error"]
    solve(rnd, SolveOptions(work_limit=5))  # raises InfeasibleError if the rules cannot hold
    groups = {g.id: g for g in rnd.policy.share_groups}
    assert groups["science"].min_share <= 0.5
    assert groups["startups"].min_share <= 0.1
    assert groups["startups"].max_share == 0.3


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="proposals"):
        generate_round(0, 6, 1)
    with pytest.raises(ValueError, match="machines"):
        generate_round(10, 0, 1)
    with pytest.raises(ValueError, match="seed"):
        generate_round(10, 6, -1)


def test_write_round_round_trips(tmp_path: Path) -> None:
    rnd = generate_round(25, 4, 9)
    out = tmp_path / "round.json"
    write_round(rnd, out)
    text = out.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text) == rnd.model_dump(mode="json")
    assert read_round(out) == rnd.canonical()


def test_shipped_round_is_seed_2026(tmp_path: Path) -> None:
    out = tmp_path / "eurohpc-2026.json"
    write_round(generate_round(250, 6, 2026, reviews=True), out)
    assert SHIPPED.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


def test_a_300_by_8_round_solves() -> None:
    rnd = generate_round(300, 8, 1)
    solution = solve(rnd, SolveOptions(work_limit=10))
    assert solution.solver.status in ("optimal", "feasible")
    assert solution.metrics.decisions.get("funded", 0) > 0
    assert verify(rnd, solution) == []


# -- individual reviews ----------------------------------------------------------


def without_reviews(rnd: Round) -> dict[str, object]:
    data = rnd.model_dump(mode="json")
    for p in data["proposals"]:
        p["reviews"] = None
    return data


@pytest.mark.parametrize(
    ("proposals", "machines", "seed", "policy_language"),
    [(1, 1, 0, True), (17, 3, 4, True), (40, 6, 7, False), (250, 6, 2026, True)],
)
def test_reviews_leave_the_rest_of_the_round_alone(
    proposals: int, machines: int, seed: int, policy_language: bool
) -> None:
    plain = generate_round(proposals, machines, seed, policy_language=policy_language)
    rnd = generate_round(proposals, machines, seed, policy_language=policy_language, reviews=True)
    assert all(p.reviews is None for p in plain.proposals)
    assert without_reviews(rnd) == plain.model_dump(mode="json")
    assert rnd.policy.reviews.calibration == "none"


@pytest.mark.parametrize(
    ("proposals", "machines", "seed"), [(1, 1, 0), (17, 3, 4), (250, 6, 2026), (1200, 8, 3)]
)
def test_reviewed_round_validates_with_three_or_four_reviews(
    proposals: int, machines: int, seed: int
) -> None:
    rnd = generate_round(proposals, machines, seed, reviews=True)
    assert validate_round(rnd.model_dump(mode="json"), "generated") == rnd.canonical()
    lo, hi = rnd.score_scale.min, rnd.score_scale.max
    panel_of: dict[str, str] = {}
    for p in rnd.proposals:
        reviews = p.reviews or []
        assert 3 <= len(reviews) <= 4
        assert len({r.reviewer for r in reviews}) == len(reviews)
        assert len({r.panel for r in reviews}) == 1  # reviewed by the proposal's own panel
        for r in reviews:
            assert r.score is not None and r.criteria is None
            assert lo <= r.score <= hi and r.score * 2 == round(r.score * 2)
            assert panel_of.setdefault(r.reviewer, r.panel or "") == r.panel  # one panel per reviewer
    assert len(panel_of) <= max(6, round(proposals / 3))
    assert 1 <= len(set(panel_of.values())) <= 6


def test_reviews_come_from_panels_by_field_and_share_the_work() -> None:
    assert sorted(t for _, topics in FIELDS for t in topics) == sorted(SCIENCE_TOPICS + AI_TOPICS)
    rnd = generate_round(250, 6, 2026, reviews=True)
    reviews = [r for p in rnd.proposals for r in p.reviews or []]
    assert {r.panel for r in reviews} == {name for name, _ in FIELDS}
    load: dict[str, int] = {}
    for r in reviews:
        load[r.reviewer] = load.get(r.reviewer, 0) + 1
    assert len(load) == 83
    assert max(load.values()) - min(load.values()) <= 6
    assert 3.1 < len(reviews) / len(rnd.proposals) < 3.4  # a fourth review for about a quarter
    # The reviews scatter around the score; a calibration that models reviewer bias does better.
    scores = {p.id: p.score for p in rnd.proposals}
    errors = {}
    for method in ("mean", "model"):
        calibrated = calibrate(rnd, method)
        errors[method] = sum(abs(calibrated[pid].score - s) for pid, s in scores.items()) / len(scores)
    assert errors["model"] < errors["mean"] < 0.5


def test_reviewed_round_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_round(generate_round(120, 8, 5, reviews=True), a)
    write_round(generate_round(120, 8, 5, reviews=True), b)
    assert a.read_bytes() == b.read_bytes()
    assert canonical_json(generate_round(120, 8, 5, reviews=True)) != canonical_json(
        generate_round(120, 8, 6, reviews=True)
    )


def test_cli_reviews_flag(tmp_path: Path) -> None:
    args = ["generate", "--proposals", "30", "--machines", "3", "--seed", "5"]
    runner = CliRunner()
    assert (
        runner.invoke(cli, [*args, "-o", str(tmp_path / "plain.json")], catch_exceptions=False).exit_code == 0
    )
    out = tmp_path / "reviewed.json"
    assert runner.invoke(cli, [*args, "--reviews", "-o", str(out)], catch_exceptions=False).exit_code == 0
    plain, reviewed = read_round(tmp_path / "plain.json"), read_round(out)
    assert all(p.reviews is None for p in plain.proposals)
    assert all(p.reviews for p in reviewed.proposals)
    assert reviewed == generate_round(30, 3, 5, reviews=True).canonical()


def test_the_pinned_proposal_is_always_eligible() -> None:
    """The generator's fund pin never lands on a proposal no machine can take (a round found by a
    random search once pinned one whose minimum was above a machine's per-proposal cap)."""
    rnd = generate_round(54, 8, 413)
    assert derive(rnd).problems == []
    solve(rnd, SolveOptions(work_limit=5))
