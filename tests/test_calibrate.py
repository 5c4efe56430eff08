"""Reviewer calibration: recovering true quality from biased reviews, intervals, and bad review input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from scipy.stats import spearmanr

from allocopt.calibrate import METHODS, calibrate, scored
from allocopt.cli import cli
from allocopt.files import validate_round
from allocopt.round import Round, review_value
from allocopt.solve import solve
from allocopt.terms import derive
from allocopt.verify import verify
from tests.conftest import DATA
from tests.helpers import machine, proposal

REVIEWS = DATA / "reviews"
SEEDS = (0, 1, 2, 3)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def reviewed_round(
    proposals: list[dict[str, Any]], calibration: str = "mean", criteria: dict[str, float] | None = None
) -> Round:
    """A validated round (one large machine, no threshold) from proposal data with reviews."""
    reviews: dict[str, Any] = {"calibration": calibration}
    if criteria is not None:
        reviews["criteria"] = criteria
    data = {
        "id": "calibration-test",
        "name": "Calibration test round",
        "machines": [machine(gpu_hours=1_000_000)],
        "policy": {"score_threshold": 0, "reviews": reviews},
        "proposals": proposals,
    }
    return validate_round(data, "calibration-test")


def unscored(id: str, reviews: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A proposal given reviews and no score (validation fills it in)."""
    data = proposal(id, **fields)
    del data["score"]
    data["reviews"] = reviews
    return data


def synthetic(
    seed: int,
    *,
    proposals: int = 120,
    reviewers: int = 30,
    per_proposal: int = 3,
    bias_sd: float = 0.6,
    noise_sd: float = 0.3,
    panels: int = 0,
    panel_shift: float = 0.5,
) -> tuple[Round, dict[str, float]]:
    """A round whose reviews are true quality + reviewer bias (+ panel bias) + noise, and the truth.

    Quality ~ N(2.5, 0.6) on the 0-5 scale. With ``panels``, reviewer j sits in panel j % panels,
    each proposal is reviewed within one panel, and the panels are alternately lenient and harsh
    by ``panel_shift``.
    """
    rng = np.random.default_rng(seed)
    truth = rng.normal(2.5, 0.6, proposals)
    bias = rng.normal(0.0, bias_sd, reviewers)
    data = []
    for i in range(proposals):
        panel = i % panels if panels else None
        pool = [j for j in range(reviewers) if panel is None or j % panels == panel]
        shift = 0.0 if panel is None else (panel_shift if panel % 2 == 0 else -panel_shift)
        reviews = []
        for j in rng.choice(pool, per_proposal, replace=False):
            value = truth[i] + bias[j] + shift + rng.normal(0.0, noise_sd)
            review: dict[str, Any] = {"reviewer": f"R{j:02d}", "score": round(float(np.clip(value, 0, 5)), 3)}
            if panel is not None:
                review["panel"] = f"panel-{panel}"
            reviews.append(review)
        data.append(unscored(f"P{i:03d}", reviews))
    return reviewed_round(data), {f"P{i:03d}": float(truth[i]) for i in range(proposals)}


def correlations(rnd: Round, truth: dict[str, float]) -> dict[str, float]:
    """Spearman's rank correlation of each method's calibrated scores with the true quality."""
    ids = sorted(truth)
    out = {}
    for method in METHODS:
        calibrated = calibrate(rnd, method)
        out[method] = float(spearmanr([calibrated[i].score for i in ids], [truth[i] for i in ids]).statistic)
    return out


@pytest.fixture(scope="module")
def biased() -> list[tuple[Round, dict[str, float], dict[str, float]]]:
    """Four synthetic rounds with reviewer bias sd 0.6: (round, truth, correlation by method)."""
    out = []
    for seed in SEEDS:
        rnd, truth = synthetic(seed)
        out.append((rnd, truth, correlations(rnd, truth)))
    return out


def test_standardised_and_model_recover_quality_better_than_the_mean(
    biased: list[tuple[Round, dict[str, float], dict[str, float]]],
) -> None:
    """With lenient and harsh reviewers, calibrating ranks proposals clearly closer to their true quality."""
    for _, _, rho in biased:
        assert rho["standardised"] > rho["mean"], rho
        assert rho["model"] > rho["mean"], rho
    average = {m: float(np.mean([rho[m] for _, _, rho in biased])) for m in METHODS}
    assert average["standardised"] >= average["mean"] + 0.05, average
    assert average["model"] >= average["mean"] + 0.05, average
    assert average["model"] >= 0.85, average


def test_model_with_panel_ids_corrects_panel_bias() -> None:
    """When whole panels score +/-0.5 apart, the model (given panel ids) still ranks close to the truth."""
    gains = []
    for seed in SEEDS:
        rnd, truth = synthetic(seed, bias_sd=0.2, panels=4)
        rho = correlations(rnd, truth)
        assert rho["model"] > rho["mean"], rho
        gains.append(rho["model"] - rho["mean"])
    assert float(np.mean(gains)) >= 0.05, gains


def test_without_reviewer_bias_the_mean_is_as_good_as_calibration() -> None:
    """Calibration costs (almost) nothing when reviewers are unbiased: the mean is not clearly worse."""
    rhos = [correlations(*synthetic(seed, bias_sd=0.0)) for seed in SEEDS]
    average = {m: float(np.mean([rho[m] for rho in rhos])) for m in METHODS}
    assert average["mean"] >= average["standardised"] - 0.02, average
    assert average["mean"] >= average["model"] - 0.02, average
    assert average["model"] >= average["mean"] - 0.02, average


def test_model_intervals_cover_the_truth_about_as_often_as_stated(
    biased: list[tuple[Round, dict[str, float], dict[str, float]]],
) -> None:
    """The model's 90% intervals contain the true quality for roughly 90% of proposals."""
    shares = []
    for rnd, truth, _ in biased:
        assert rnd.policy.reviews.interval == 0.9
        c = calibrate(rnd, "model")
        share = float(np.mean([c[i].low <= truth[i] <= c[i].high for i in truth]))
        assert share >= 0.75, share
        shares.append(share)
    assert 0.8 <= float(np.mean(shares)) <= 0.99, shares  # neither too narrow nor uselessly wide


def test_mean_intervals_cover_the_truth_without_bias() -> None:
    """With unbiased reviewers the plain mean's 90% intervals contain the truth for most proposals."""
    rnd, truth = synthetic(7, bias_sd=0.0)
    c = calibrate(rnd, "mean")
    assert float(np.mean([c[i].low <= truth[i] <= c[i].high for i in truth])) >= 0.75


def test_expected_ranks_follow_the_scores() -> None:
    """Expected ranks average to the middle place, follow the calibrated scores, and have sane intervals."""
    rnd, _ = synthetic(1, proposals=40, reviewers=12)
    for method in METHODS:
        c = calibrate(rnd, method)
        n = len(c)
        assert float(np.mean([x.expected_rank for x in c.values()])) == pytest.approx((n + 1) / 2, abs=0.01)
        ids = sorted(c)
        rho = spearmanr([-c[i].score for i in ids], [c[i].expected_rank for i in ids]).statistic
        assert rho > 0.95, (method, rho)
        for x in c.values():
            assert 1 <= x.rank_low <= x.rank_high <= n
            assert x.rank_low - 1 <= x.expected_rank <= x.rank_high + 1
            assert x.reviews == 3


def test_calibrate_is_deterministic() -> None:
    """The same round always gives the same calibrated scores, intervals and rank intervals."""
    rnd, _ = synthetic(2, proposals=40, reviewers=12)
    for method in METHODS:
        assert calibrate(rnd, method) == calibrate(rnd, method)
    again, _ = synthetic(2, proposals=40, reviewers=12)
    assert calibrate(again, "model") == calibrate(rnd, "model")


def test_calibrated_scores_and_intervals_stay_on_the_scale() -> None:
    """Even with reviews piled at the scale's ends, every score and interval end lies within it."""
    rng = np.random.default_rng(4)
    data = []
    for i in range(20):
        top = i < 10
        reviews = [
            {"reviewer": f"R{j}", "score": 5.0 if top else float(rng.choice([0.0, 0.5]))}
            for j in rng.choice(8, 3, replace=False)
        ]
        data.append(unscored(f"P{i:02d}", reviews))
    data.append(proposal("NOREV", score=4.2))
    rnd = reviewed_round(data)
    for method in (*METHODS, "none"):
        for pid, x in calibrate(rnd, method).items():
            assert 0.0 <= x.low <= x.score <= x.high <= 5.0, (method, pid, x)
        assert calibrate(rnd, method)["NOREV"].score == 4.2
        assert calibrate(rnd, method)["NOREV"].sd == 0.0


def test_criteria_weights_combine_as_documented() -> None:
    """A criteria review counts as the weighted mean of its criteria; weights are normalised."""
    reviews = [
        {"reviewer": "R1", "criteria": {"science": 4.0, "impact": 2.0}},  # (3*4 + 1*2) / 4 = 3.5
        {"reviewer": "R2", "criteria": {"science": 5.0, "impact": 1.0}},  # (3*5 + 1*1) / 4 = 4.0
    ]
    weightings: list[dict[str, float]] = [{"science": 3, "impact": 1}, {"science": 0.75, "impact": 0.25}]
    for weights in weightings:
        rnd = reviewed_round([unscored("P1", reviews)], criteria=weights)
        p = rnd.proposal("P1")
        assert [review_value(rnd, r) for r in p.reviews or []] == [3.5, 4.0]
        assert p.score == 3.75
        assert calibrate(rnd, "mean")["P1"].score == 3.75


def test_a_missing_score_is_the_mean_of_the_reviews() -> None:
    """A proposal with reviews and no score gets their plain mean; a given score is kept as given."""
    reviews = [
        {"reviewer": "R1", "score": 3.0},
        {"reviewer": "R2", "score": 4.0},
        {"reviewer": "R3", "score": 4.0},
    ]
    given = proposal("GIVEN", score=2.0)
    given["reviews"] = reviews
    rnd = reviewed_round([unscored("FILLED", reviews), given], calibration="none")
    assert rnd.proposal("FILLED").score == round(11 / 3, 6)
    assert rnd.proposal("GIVEN").score == 2.0
    assert calibrate(rnd, "mean")["GIVEN"].score == round(11 / 3, 4)


def test_scored_leaves_an_uncalibrated_round_unchanged() -> None:
    """With calibration 'none' every rule reads the scores exactly as given."""
    reviews = [{"reviewer": "R1", "score": 1.0}, {"reviewer": "R2", "score": 5.0}]
    given = proposal("P1", score=2.5)
    given["reviews"] = reviews
    rnd = reviewed_round([given, proposal("P2", score=3.0)], calibration="none")
    assert scored(rnd) == rnd
    assert derive(rnd).round.proposal("P1").score == 2.5


def test_rules_read_the_calibrated_score() -> None:
    """Under a calibration the round's rules use the calibrated score, not the given one."""
    rnd, _ = synthetic(3, proposals=30, reviewers=10)
    rnd = rnd.model_copy(
        update={
            "policy": rnd.policy.model_copy(
                update={"reviews": rnd.policy.reviews.model_copy(update={"calibration": "model"})}
            )
        }
    )
    c = calibrate(rnd)
    assert {p.id: p.score for p in scored(rnd).proposals} == {pid: x.score for pid, x in c.items()}
    assert {p.id: p.score for p in derive(rnd).round.proposals} == {pid: x.score for pid, x in c.items()}


# --- the solution's calibrated figures ---------------------------------------------------------


def small_round(calibration: str = "model") -> Round:
    """Eight proposals with three reviews each (one lenient reviewer) and one without reviews, on
    one machine that funds four."""
    rng = np.random.default_rng(9)
    bias = {"R1": 0.8, "R2": 0.0, "R3": -0.3, "R4": 0.2, "R5": -0.5}
    data = [proposal("NOREV", score=4.9)]
    for i in range(8):
        reviews = [
            {
                "reviewer": r,
                "score": round(float(np.clip(2.8 + 0.15 * i + bias[r] + rng.normal(0, 0.3), 0, 5)), 2),
            }
            for r in sorted(rng.choice(sorted(bias), 3, replace=False))
        ]
        data.append(unscored(f"P{i}", reviews, request=2000, minimum=2000))
    rnd = reviewed_round(data, calibration=calibration)
    return rnd.model_copy(update={"machines": [rnd.machines[0].model_copy(update={"gpu_hours": 9000})]})


def test_solution_reports_calibrated_scores_and_intervals() -> None:
    """Every result carries its calibrated score, interval and rank interval; the score used is it."""
    rnd = small_round()
    solution = solve(rnd)
    c = calibrate(rnd)
    for r in solution.proposals:
        assert r.calibrated is not None
        assert r.calibrated.method == "model"
        assert r.score == c[r.id].score == r.calibrated.score
        assert (r.calibrated.low, r.calibrated.high) == (c[r.id].low, c[r.id].high)
        assert (r.calibrated.rank_low, r.calibrated.rank_high) == (c[r.id].rank_low, c[r.id].rank_high)
    norev = solution.result("NOREV")
    assert norev.calibrated is not None
    assert norev.calibrated.reviews == 0
    assert norev.calibrated.low == norev.calibrated.high == norev.score == 4.9
    assert verify(rnd, solution) == []


def test_solution_without_reviews_has_no_calibrated_figures(tiny: Round) -> None:
    """A round without reviews gets no calibrated block."""
    assert all(r.calibrated is None for r in solve(tiny).proposals)


@pytest.mark.parametrize("field", ["score", "calibrated"])
def test_verify_rejects_a_tampered_calibrated_score(tmp_path: Path, field: str) -> None:
    """A solution whose calibrated score (used, or reported) was edited fails verify with exit 1."""
    rnd = small_round()
    round_file = tmp_path / "round.json"
    round_file.write_text(rnd.model_dump_json())
    out = tmp_path / "s.json"
    assert run("solve", str(round_file), "-o", str(out), "-q").exit_code == 0
    assert run("verify", str(round_file), str(out)).exit_code == 0
    data = json.loads(out.read_text())
    i = next(k for k, r in enumerate(data["proposals"]) if r["id"] == "P3")
    if field == "score":
        data["proposals"][i]["score"] = round(data["proposals"][i]["score"] + 0.1, 4)
    else:
        data["proposals"][i]["calibrated"]["score"] = round(
            data["proposals"][i]["calibrated"]["score"] + 0.1, 4
        )
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    result = run("verify", str(round_file), str(tampered))
    assert result.exit_code == 1, result.output
    assert "P3" in result.output
    assert ("calibration" if field == "calibrated" else "score") in result.output


# --- bad review input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "fragment"),
    [
        ("review_score_outside_scale", "$.proposals[1].reviews[2].score", "outside the round's scale"),
        (
            "criteria_not_matching_weights",
            "$.proposals[0].reviews[1].criteria",
            "criteria missing: impact; criteria the policy does not declare: feasibility",
        ),
        ("same_reviewer_twice", "$.proposals[2].reviews[1].reviewer", "twice"),
        ("model_without_reviews", "$.policy.reviews.calibration", "needs reviews"),
        ("no_score_no_reviews", "$.proposals[1].score", "give a score, or reviews"),
        ("review_score_and_criteria", "$.proposals[0].reviews[0]", "not both"),
        ("lottery_low_above_high", "$.policy.lottery", "swap them"),
    ],
)
def test_bad_review_input_is_one_line_with_file_and_path(name: str, path: str, fragment: str) -> None:
    """Each review defect: validate exits 2 with one line naming the file, the JSON path and the fix."""
    file = str(REVIEWS / f"{name}.json")
    result = run("validate", file)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {file}: {path}: "), lines[0]
    assert fragment in lines[0]


def test_bad_criteria_without_a_score_names_the_criteria() -> None:
    """Reviews with a wrong criterion and no score: told about the criterion, not a missing score."""
    file = str(REVIEWS / "criteria_not_matching_weights_no_score.json")
    result = run("validate", file)
    assert result.exit_code == 2
    assert "$.proposals[0].reviews[1].criteria" in result.output
