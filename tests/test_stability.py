"""Stability under review noise, and the seeded lottery at the line: reproducible and checkable."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from allocopt.explain import applicant_letter, explain, render_text
from allocopt.files import validate_round
from allocopt.options import SolveOptions
from allocopt.report import render
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve
from allocopt.stability import StabilityOut, draw_order, lot, sample_scores, stability, with_scores
from allocopt.verify import rank_positions, verify
from tests.helpers import funded, machine, proposal
from tests.test_cli import run, strip_timing

SEED = 3


def round_data(
    calibration: str = "standardised", objective: str = "merit", lottery: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ten close proposals with three reviews each by six reviewers of varying leniency, and 'TOP'
    (no reviews, the top score); two machines of 5,000 GPU-hours fit four all-or-nothing awards
    of 2,000, so the line runs through the reviewed proposals."""
    rng = np.random.default_rng(5)
    bias = {f"R{j}": float(b) for j, b in enumerate(rng.normal(0, 0.4, 6))}
    proposals = [proposal("TOP", score=5.0, request=2000, minimum=2000)]
    for i in range(10):
        p = proposal(f"P{i:02d}", request=2000, minimum=2000)
        del p["score"]
        p["reviews"] = [
            {
                "reviewer": str(r),
                "score": round(float(np.clip(3.0 + 0.08 * i + bias[r] + rng.normal(0, 0.4), 0, 5)), 2),
            }
            for r in rng.choice(sorted(bias), 3, replace=False)
        ]
        proposals.append(p)
    policy: dict[str, Any] = {
        "score_threshold": 0,
        "objective": objective,
        "reviews": {"calibration": calibration},
    }
    if lottery is not None:
        policy["lottery"] = lottery
    return {
        "id": "stability-test",
        "name": "Stability test round",
        "machines": [machine("m1", gpu_hours=5000), machine("m2", gpu_hours=5000)],
        "policy": policy,
        "proposals": proposals,
    }


def small(**kwargs: Any) -> Round:
    return validate_round(round_data(**kwargs), "stability-test")


@pytest.fixture(scope="module")
def rnd() -> Round:
    return small()


@pytest.fixture(scope="module")
def run_a(rnd: Round) -> StabilityOut:
    """Ten bootstrap samples of the reviews, seed 3, solved one at a time."""
    return stability(rnd, SolveOptions(), samples=10, seed=SEED, parallel=1)


def test_same_seed_gives_the_same_run_whatever_the_parallelism(rnd: Round, run_a: StabilityOut) -> None:
    """A stability run is reproduced exactly from its seed, serially or in parallel."""
    again = stability(rnd, SolveOptions(), samples=10, seed=SEED, parallel=1)
    parallel = stability(rnd, SolveOptions(), samples=10, seed=SEED, parallel=2)
    assert again.model_dump_json() == run_a.model_dump_json()
    assert parallel.model_dump_json() == run_a.model_dump_json()


def test_another_seed_draws_other_samples(rnd: Round, run_a: StabilityOut) -> None:
    """The seed matters: other seeds give other samples, hence other tallies."""
    assert sample_scores(rnd, 0, SEED, "reviews") != sample_scores(rnd, 0, SEED + 1, "reviews")
    others = [stability(rnd, SolveOptions(), samples=10, seed=s, parallel=1) for s in (SEED + 1, SEED + 2)]
    assert any(o.proposals != run_a.proposals for o in others)
    assert all(o.seed != run_a.seed for o in others)


def test_tallies_are_consistent(rnd: Round, run_a: StabilityOut) -> None:
    """Probabilities lie in [0, 1], the baseline is the plain solve, flips and flip_fraction add up."""
    assert run_a.samples == 10 and run_a.feasible_samples == 10 and run_a.failures == []
    assert {p.id for p in run_a.proposals} == {p.id for p in rnd.proposals}
    assert [p.rank_position for p in run_a.proposals] == list(range(1, len(rnd.proposals) + 1))
    base = solve(rnd)
    assert {p.id for p in run_a.proposals if p.funded} == funded(base)
    k = run_a.feasible_samples
    for p in run_a.proposals:
        assert 0.0 <= p.probability_funded <= 1.0
        expected_flips = (1 - p.probability_funded) * k if p.funded else p.probability_funded * k
        assert p.flips == pytest.approx(expected_flips, abs=1e-3), p
        assert p.reviews == (0 if p.id == "TOP" else 3)
    total = sum(p.flips for p in run_a.proposals)
    assert run_a.flip_fraction == pytest.approx(total / (k * len(run_a.proposals)), abs=1e-6)
    assert total > 0  # the line runs through the reviewed proposals: something moves


def test_unreviewed_proposal_far_above_the_line_is_always_funded(rnd: Round, run_a: StabilityOut) -> None:
    """A proposal without reviews keeps its top score in every sample, so it is funded every time."""
    top = next(p for p in run_a.proposals if p.id == "TOP")
    assert top.funded and top.probability_funded == 1.0 and top.flips == 0
    assert top.expected_reference_gpu_hours == top.reference_gpu_hours == 2000
    for k in range(5):
        assert sample_scores(rnd, k, SEED, "reviews")["TOP"] == 5.0
        assert sample_scores(rnd, k, SEED, "model")["TOP"] == 5.0


def test_model_draw_is_reproducible_and_on_the_scale(rnd: Round) -> None:
    """Draw 'model' also reproduces from its seed, and every sampled score stays on the scale."""
    a = stability(rnd, SolveOptions(), samples=6, seed=1, draw="model", parallel=1)
    b = stability(rnd, SolveOptions(), samples=6, seed=1, draw="model", parallel=2)
    assert a.model_dump_json() == b.model_dump_json()
    assert a.draw == "model"
    for k in range(6):
        scores = sample_scores(rnd, k, 1, "model")
        assert all(0.0 <= s <= 5.0 for s in scores.values())
        assert scores == sample_scores(rnd, k, 1, "model")


def test_with_scores_takes_the_scores_as_given(rnd: Round) -> None:
    """A sample's round uses exactly the sampled scores: no calibration, reviews or lottery left."""
    scores = sample_scores(rnd, 2, SEED, "reviews")
    sample = with_scores(rnd, scores)
    assert {p.id: p.score for p in sample.proposals} == scores
    assert sample.policy.reviews.calibration == "none" and sample.policy.lottery is None
    assert all(p.reviews is None for p in sample.proposals)


def test_cli_stability_writes_the_run_as_json(tmp_path: Path, run_a: StabilityOut) -> None:
    """`allocopt stability -o` exits 0 and writes the same run as the library, for any --parallel."""
    round_file = tmp_path / "round.json"
    round_file.write_text(json.dumps(round_data()))
    outs = []
    for parallel in ("1", "2"):
        out = tmp_path / f"stability-{parallel}.json"
        result = run(
            *("stability", str(round_file), "--samples", "10", "--seed", str(SEED)),
            *("--parallel", parallel, "--format", "json", "-o", str(out)),
        )
        assert result.exit_code == 0, result.output
        assert f"wrote {out}" in result.output
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    written = StabilityOut.model_validate_json(outs[0])
    assert written.proposals == run_a.proposals
    assert written.flip_fraction == run_a.flip_fraction
    table = run("stability", str(round_file), "--samples", "4", "--seed", "1", "--parallel", "1")
    assert table.exit_code == 0, table.output
    assert "samples solved" in table.output


def test_cli_stability_without_reviews_is_bad_input() -> None:
    """Stability needs reviews: a round without any exits 2 with one clear line."""
    from tests.conftest import ROOT

    result = run("stability", str(ROOT / "instances" / "tiny.json"), "--samples", "2")
    assert result.exit_code == 2
    assert "no proposal has reviews" in result.output
    assert "Traceback" not in result.output


def test_cli_rank_shows_every_proposal_under_each_method(tmp_path: Path, rnd: Round) -> None:
    """`allocopt rank` lists every proposal with the mean, standardised and model rankings."""
    round_file = tmp_path / "round.json"
    round_file.write_text(json.dumps(round_data()))
    table = run("rank", str(round_file))
    assert table.exit_code == 0, table.output
    for word in ("mean", "standardised", "model"):
        assert word in table.output
    for p in rnd.proposals:
        assert p.id in table.output
    result = run("rank", str(round_file), "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.output)["proposals"]
    assert sorted(r["proposal"] for r in rows) == sorted(p.id for p in rnd.proposals)
    for method in ("mean", "standardised", "model"):
        places = sorted(r[f"{method}_rank"] for r in rows)
        assert places == list(range(1, len(rows) + 1)), method
    csv = run("rank", str(round_file), "--format", "csv")
    assert csv.exit_code == 0
    assert len(csv.output.strip().splitlines()) == len(rows) + 1


# --- the lottery at the line ------------------------------------------------------------------

LOTTERY = {"low": 0.0, "high": 1.0, "samples": 6, "seed": 11}


@pytest.fixture(scope="module")
def lottery_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A rank round whose lottery takes in every eligible proposal, solved twice by the CLI."""
    folder = tmp_path_factory.mktemp("lottery")
    round_file = folder / "round.json"
    round_file.write_text(json.dumps(round_data(objective="rank", lottery=LOTTERY)))
    a, b = folder / "a.json", folder / "b.json"
    for out in (a, b):
        result = run("solve", str(round_file), "-o", str(out), "-q")
        assert result.exit_code == 0, result.output
    return round_file, a, b


def test_lottery_solve_is_identical_apart_from_timing(lottery_files: tuple[Path, Path, Path]) -> None:
    """Solving a round with a lottery twice gives the same file but for the timing block."""
    _, a, b = lottery_files
    assert strip_timing(a.read_text()) == strip_timing(b.read_text())
    assert a.read_text().split('"timing"')[0] == b.read_text().split('"timing"')[0]


def test_lottery_draw_is_the_grey_zone_in_order_of_published_lots(
    lottery_files: tuple[Path, Path, Path],
) -> None:
    """Anyone can recompute the draw: the grey zone sorted by sha256('<seed>:<id>'), put in its places."""
    round_file, a, _ = lottery_files
    data = json.loads(a.read_text())
    lottery = data["lottery"]
    assert (lottery["seed"], lottery["low"], lottery["high"], lottery["samples"]) == (11, 0.0, 1.0, 6)
    ids = [g["proposal"] for g in lottery["grey_zone"]]
    assert len(ids) >= 2
    assert set(ids) == {p["id"] for p in data["proposals"]}  # [0, 1] takes in every eligible proposal

    def sha(pid: str) -> str:
        return hashlib.sha256(f"11:{pid}".encode()).hexdigest()

    assert [g["lot"] for g in lottery["grey_zone"]] == [sha(pid) for pid in ids]
    assert lottery["drawn"] == sorted(ids, key=sha)
    assert all(lot(11, pid) == sha(pid) for pid in ids)
    # The rank walk follows the drawn order, and every result's rank position is its place in it.
    assert data["rank"]["order"] == lottery["drawn"]
    positions = {r["id"]: r["rank_position"] for r in data["proposals"]}
    assert positions == {pid: i + 1 for i, pid in enumerate(lottery["drawn"])}
    from allocopt.cli import read_solution
    from allocopt.files import read_round

    assert rank_positions(read_round(round_file), read_solution(a)) == positions


def test_lottery_grey_zone_is_the_published_stability_run() -> None:
    """The grey zone's probabilities are a stability run of the round without its lottery, from the seed."""
    rnd = small(objective="rank", lottery={"low": 0.1, "high": 0.9, "samples": 8, "seed": 4})
    solution = solve(rnd)
    assert solution.lottery is not None
    run_ = stability(rnd, SolveOptions(objective="rank"), samples=8, seed=4, parallel=2)
    chance = {p.id: p.probability_funded for p in run_.proposals}
    zone = [g.proposal for g in solution.lottery.grey_zone]
    assert zone == [p.id for p in run_.proposals if 0.1 <= chance[p.id] <= 0.9]
    assert all(g.probability_funded == chance[g.proposal] for g in solution.lottery.grey_zone)
    assert len(zone) >= 2 and "TOP" not in zone
    plain = [p.id for p in run_.proposals]
    order, drawn = draw_order(plain, zone, 4)
    assert drawn == solution.lottery.drawn
    assert solution.rank is not None and solution.rank.order == order
    assert verify(rnd, solution) == []


def test_no_lottery_under_merit_or_without_a_policy() -> None:
    """The lottery only runs under objective 'rank' with a lottery policy."""
    assert solve(small(objective="rank")).lottery is None
    assert solve(small(objective="merit", lottery=LOTTERY)).lottery is None


def test_verify_and_reproduce_accept_a_lottery_solution(lottery_files: tuple[Path, Path, Path]) -> None:
    """verify passes and reproduce re-runs the stability run and the draw to the identical solution."""
    round_file, a, _ = lottery_files
    assert run("verify", str(round_file), str(a)).exit_code == 0
    result = run("reproduce", str(a))
    assert result.exit_code == 0, result.output
    assert "reproduced" in result.output


def test_verify_rejects_a_tampered_draw(tmp_path: Path, lottery_files: tuple[Path, Path, Path]) -> None:
    """Swapping two proposals in the recorded draw makes verify exit 1 naming the lottery."""
    round_file, a, _ = lottery_files
    data = json.loads(a.read_text())
    drawn = data["lottery"]["drawn"]
    drawn[0], drawn[1] = drawn[1], drawn[0]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    result = run("verify", str(round_file), str(tampered))
    assert result.exit_code == 1, result.output
    assert "lottery" in result.output
    assert "Traceback" not in result.output


def test_verify_rejects_a_tampered_lot_or_seed(
    tmp_path: Path, lottery_files: tuple[Path, Path, Path]
) -> None:
    """A recorded lot that is not sha256('seed:id'), or a seed other than the policy's, fails verify."""
    round_file, a, _ = lottery_files
    for edit in ("lot", "seed"):
        data = json.loads(a.read_text())
        if edit == "lot":
            data["lottery"]["grey_zone"][0]["lot"] = "0" * 64
        else:
            data["lottery"]["seed"] = 12
        tampered = tmp_path / f"tampered-{edit}.json"
        tampered.write_text(json.dumps(data))
        result = run("verify", str(round_file), str(tampered))
        assert result.exit_code == 1, (edit, result.output)
        assert "lottery" in result.output


def test_a_lottery_is_shown_wherever_ranks_are(lottery_files: tuple[Path, Path, Path]) -> None:
    """It was recorded in the solution but named in no report, explanation or letter."""
    _, a, _ = lottery_files
    solution = Solution.model_validate_json(a.read_text())
    assert solution.lottery is not None
    drawn = solution.lottery.drawn
    for fmt in ("table", "markdown", "html"):
        text = render(solution, fmt, width=200)
        assert "by lot (seed 11)" in text, fmt
        assert f"drawn order: {', '.join(drawn[:3])}" in text, fmt
    table = render(solution, "table", width=200)
    first = next(r for r in solution.proposals if r.id == drawn[0])
    assert any(line.split()[:2] == [f"{first.rank_position}*", first.id] for line in table.splitlines())
    assert "Lottery: " in render_text(explain(solution))
    letter = applicant_letter(solution, drawn[0])
    assert "published lottery (seed 11)" in letter and "place above is the one drawn" in letter
    rows = list(csv.DictReader(render(solution, "csv").splitlines()))
    assert {r["id"] for r in rows if r["drawn_by_lot"] == "True"} == set(drawn)
