"""compare: figures side by side, decisions diffed in words, inputs and options diffed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from allocopt.cli import cli
from allocopt.compare import (
    compare,
    fraction_change,
    group_fairness,
    input_differences,
    proposal_changes,
    rank_inversions,
    satisfaction,
)
from allocopt.files import write_atomic
from allocopt.options import SolveOptions
from allocopt.report import render_comparison
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import Keep, solve
from tests.helpers import group, machine, make_round, pin, proposal


def test_merit_against_rank_on_the_tiny_round(tiny: Round, tiny_solution: Solution) -> None:
    """The README's worked difference: P-08 gets in, P-01 gains, P-02, P-04, P-05 lose."""
    ranked = solve(tiny, SolveOptions(objective="rank"))
    comp = compare([tiny_solution, ranked], ["merit", "rank"])
    changes = comp.changes["rank"]
    assert changes[changes.index("got in (1):") + 1].strip() == "P-08 (3,000 GPU-h on lumi-g)"
    gained = changes[changes.index("gained hours (1):") + 1]
    assert gained.strip().startswith("P-01 (+4,000 reference GPU-h, 67% -> 100%")
    lost = changes[changes.index("lost hours (3):") + 1 : changes.index("lost hours (3):") + 4]
    assert [line.split()[0] for line in lost] == ["P-02", "P-04", "P-05"]
    assert comp.inputs["rank"] == ['option objective: "merit" -> "rank"']
    figures = {f.label: f.values for f in comp.figures}
    assert figures["Merit (value)"] == ("3.2550", "3.1040")
    assert figures["Proposals funded"] == ("5", "6")
    assert figures["Share: startups"] == ("25.0% (10%-25%)", "21.4% (10%-25%)")


def test_identical_solutions_have_no_differences(tiny_solution: Solution) -> None:
    """Comparing a solution with itself reports nothing changed."""
    comp = compare([tiny_solution, tiny_solution], ["a", "b"])
    assert comp.changes["b"] == ["no proposal's award changed"]
    assert comp.inputs["b"] == ["the same round and options"]
    assert not comp.warnings


def test_a_knob_change_is_named(tiny: Round, tiny_solution: Solution) -> None:
    """Raising LUMI-G's hours shows up as that one input difference, and who gained."""
    machines = [m.model_copy(update={"gpu_hours": 10_000}) if m.id == "lumi-g" else m for m in tiny.machines]
    more = solve(tiny.model_copy(update={"machines": machines}))
    comp = compare([tiny_solution, more], ["before", "after"])
    assert comp.inputs["after"] == ["machine lumi-g gpu_hours: 8000 -> 10000"]
    assert any(line.strip().startswith("P-08") for line in comp.changes["after"])


def test_different_rounds_are_warned(tiny: Round, tiny_solution: Solution) -> None:
    """Solutions of different rounds are compared, with a clear warning."""
    other = solve(tiny.model_copy(update={"id": "other-round"}))
    comp = compare([tiny_solution, other], ["a", "b"])
    assert comp.warnings == ["b solves round 'other-round', not 'tiny-2026': compare with care"]


def test_rank_inversions_by_brute_force(tiny_solution: Solution) -> None:
    """The O(n log n) count equals the pairwise definition."""
    eligible = [r for r in tiny_solution.proposals if r.decision != "not_eligible"]
    pairs = sum(
        1
        for a in eligible
        for b in eligible
        if a.rank_position < b.rank_position
        and b.allocations
        and a.fraction_of_request < b.fraction_of_request
    )
    # P-02, P-04, P-05 over P-01 (67%); P-05 over P-02; P-04, P-05 over P-03; P-05 over P-04.
    assert rank_inversions(tiny_solution) == pairs == 7


def test_satisfaction_and_fairness_are_in_range(tiny_solution: Solution) -> None:
    """Merit-weighted satisfaction is a fraction; Jain's index lies in [1/n, 1]."""
    assert 0 < satisfaction(tiny_solution) <= 1
    fairness = group_fairness(tiny_solution)
    assert fairness is not None and 0.5 <= fairness <= 1


def test_cli_compare_in_every_format(tmp_path: Path, tiny: Round, tiny_solution: Solution) -> None:
    """The CLI compares files in table, markdown, csv and json."""
    a, b = tmp_path / "merit.json", tmp_path / "rank.json"
    write_atomic(a, tiny_solution.model_dump_json(indent=2))
    write_atomic(b, solve(tiny, SolveOptions(objective="rank")).model_dump_json(indent=2))
    runner = CliRunner()
    for fmt in ("table", "markdown", "csv", "json"):
        result = runner.invoke(cli, ["compare", str(a), str(b), "--format", fmt], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "rank.json" in result.output
    rows = list(csv.reader(io.StringIO(render_comparison(compare([tiny_solution] * 2, ["x", "y"]), "csv"))))
    assert rows[0] == ["section", "against", "item", "x", "y"]
    assert {r[0] for r in rows[1:]} == {"figure", "input", "decision"}
    data = json.loads(runner.invoke(cli, ["compare", str(a), str(b), "--format", "json"]).output)
    assert data["inputs"]["rank.json"] == ['option objective: "merit" -> "rank"']
    assert runner.invoke(cli, ["compare", str(a)]).exit_code == 2


# -- constructed pairs whose differences are known in advance ----------------------------------


def _three(gpu_hours: int = 10_000, pins: tuple[dict[str, Any], ...] = ()) -> Round:
    """P1, P2, P3 (scores 5, 4, 3: weights 1, 0.8, 0.6) each ask 4,000 GPU-h, minimum 2,000, on
    m1 (CUDA); with pins, a ROCm machine m2 of 4,000 GPU-h that only P1 can also use."""
    machines = [machine("m1", gpu_hours=gpu_hours)]
    if pins:
        machines.append(machine("m2", stack="rocm", gpu_hours=4000))
    return make_round(
        machines=machines,
        proposals=[
            proposal("P1", score=5, request=4000, minimum=2000, stacks=("cuda", "rocm")),
            proposal("P2", score=4, request=4000, minimum=2000),
            proposal("P3", score=3, request=4000, minimum=2000),
        ],
        pins=pins,
    )


def _mixed(m1_hours: int = 10_000, **policy: Any) -> Round:
    """Two machines, two share groups and the commercial cap at work.

    m1: CUDA, m1_hours at rate 1, cap 0.2. m2: ROCm, 3,000 GPU-h at rate 2 (6,000 reference).
    A1 academic 5, open, 4,000 (min 2,000); I1 and I2 industry 4 and 3.5, confidential, 2,000 each
    (min 2,000): the 2,000 cap of m1 holds one; R1 academic 2.5, ROCm only, 4,000 reference (min 2,000).
    """
    return make_round(
        machines=[
            machine("m1", gpu_hours=m1_hours),
            machine("m2", stack="rocm", gpu_hours=3000, exchange_rate=2.0),
        ],
        proposals=[
            proposal("A1", score=5, request=4000, minimum=2000),
            proposal("I1", kind="industry", commitment="confidential", score=4, request=2000, minimum=2000),
            proposal("I2", kind="industry", commitment="confidential", score=3.5, request=2000, minimum=2000),
            proposal("R1", score=2.5, stacks=("rocm",), request=4000, minimum=2000),
        ],
        groups=[group("academia", ["academic"]), group("industry", ["industry"])],
        **policy,
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # why: 8,000 holds P1 and P2 in full and leaves no room for P3's 2,000 minimum
        (10_000, 8_000, ["dropped out (1):", "  P3 (had 2,000 GPU-h on m1)"]),
        # why: the 2,000 added hold P3's minimum
        (8_000, 10_000, ["got in (1):", "  P3 (2,000 GPU-h on m1)"]),
        # why: 12,000 holds all three requests in full
        (10_000, 12_000, ["gained hours (1):", "  P3 (+2,000 reference GPU-h, 50% -> 100% of request)"]),
        # why: 3/4 of P2 (0.6) plus P3's minimum (0.3) beat P2 in full alone (0.8)
        (10_000, 9_000, ["lost hours (1):", "  P2 (-1,000 reference GPU-h, 100% -> 75% of request)"]),
    ],
)
def test_a_capacity_change_gives_known_decision_lines(before: int, after: int, expected: list[str]) -> None:
    """Changing one machine's hours lists exactly the proposal that got in, dropped out, gained or lost."""
    assert proposal_changes(solve(_three(before)), solve(_three(after))) == expected


def test_a_pin_to_another_machine_is_a_move() -> None:
    """Pinning P1 to m2 instead of m1 shows P1 moved, and P3 gaining the hours P1 left on m1."""
    on_m1 = solve(_three(pins=(pin("P1", machine="m1"),)))
    on_m2 = solve(_three(pins=(pin("P1", machine="m2"),)))
    assert proposal_changes(on_m1, on_m2) == [
        "gained hours (1):",
        "  P3 (+2,000 reference GPU-h, 50% -> 100% of request)",
        "moved machine (1):",
        "  P1 (4,000 GPU-h on m1 -> 4,000 GPU-h on m2)",
    ]
    assert proposal_changes(on_m2, on_m1)[-2:] == [
        "moved machine (1):",
        "  P1 (4,000 GPU-h on m2 -> 4,000 GPU-h on m1)",
    ]


def _jain(ratios: list[float]) -> float:
    return sum(ratios) ** 2 / (len(ratios) * sum(x * x for x in ratios))


def test_figures_of_a_known_pair() -> None:
    """Every headline figure is the hand-computed one, side by side."""
    full, cut = solve(_mixed()), solve(_mixed(m1_hours=6000))
    # full: A1 4,000 + I1 2,000 on m1 (6,000 of 10,000), R1 2,000 on m2 (4,000 reference); I2 is
    # left out by the commercial cap. cut: the cap is 1,200 < I1's minimum: only A1 and R1.
    figures = {f.label.strip(): f for f in compare([full, cut], ["full", "cut"]).figures}

    def values(label: str) -> tuple[str, ...]:
        return figures[label].values

    assert values("Proven gap") == ("optimal", "optimal")
    assert "GPU-hours awarded" not in figures  # hours of two machines do not add up
    assert values("Reference GPU-hours awarded") == ("10,000", "8,000")
    assert figures["Reference GPU-hours awarded"].numbers == (10000, 8000)
    assert values("Idle reference GPU-hours") == ("6,000", "4,000")  # 4,000 + 1,000 x 2; 2,000 + 1,000 x 2
    assert values("Used: m1") == ("60.0% of 10,000", "66.7% of 6,000")
    assert values("Used: m2") == ("66.7% of 3,000", "66.7% of 3,000")
    assert values("Commercial: m1") == ("2,000 / 2,000", "0 / 1,200")
    assert values("Commercial: m2") == ("0 / 600", "0 / 600")
    assert values("Lowest-ranked funded") == ("R1 (#4, score 2.5)", "R1 (#4, score 2.5)")
    assert values("Highest-ranked unfunded") == ("I2 (#3, score 3.5)", "I1 (#2, score 4)")
    assert values("Rank inversions") == ("1", "2")  # I2 over R1; I1 over R1, I2 over R1
    weights = {"A1": 1.0, "I1": 0.8, "I2": 0.7, "R1": 0.5}  # score / 5
    sat_full = (1.0 + 0.8 + 0.5) / sum(weights.values())
    sat_cut = (1.0 + 0.5) / sum(weights.values())
    assert satisfaction(full) == pytest.approx(sat_full) and satisfaction(cut) == pytest.approx(sat_cut)
    assert values("Merit-weighted satisfaction") == ("76.7%", "50.0%")
    # awarded / asked, in reference hours: academia 8,000 / 8,000; industry 2,000 / 4,000, then 0.
    assert group_fairness(full) == pytest.approx(_jain([1.0, 0.5])) == pytest.approx(0.9)
    assert group_fairness(cut) == pytest.approx(_jain([1.0, 0.0])) == pytest.approx(0.5)
    assert values("Fairness across groups (Jain)") == ("0.900", "0.500")


@pytest.mark.parametrize(
    ("change", "round_id", "expected"),
    [
        ({"threshold": 1.0}, None, ["policy score_threshold: 0.0 -> 1.0"]),  # why: a policy knob
        ({"exponent": 2}, None, ["policy merit.exponent: 1 -> 2"]),  # why: a nested knob by its dotted path
        ({"m1_hours": 6000}, None, ["machine m1 gpu_hours: 10000 -> 6000"]),  # why: a machine field by id
        ({}, "rule-test-2", ['round id: "rule-test" -> "rule-test-2"']),  # why: another round
        ({}, None, ["the same round and options"]),  # why: the same round, solved twice
    ],
)
def test_input_differences_name_the_change(
    change: dict[str, Any], round_id: str | None, expected: list[str]
) -> None:
    """The inputs section names exactly the knob, machine field or round id that differs."""
    other = _mixed(**change)
    if round_id is not None:
        other = other.model_copy(update={"id": round_id})
    assert input_differences(solve(_mixed()), solve(other)) == expected


def _pair_files(tmp_path: Path) -> tuple[Path, Path]:
    """a.json: _mixed() solved; b.json: m1 cut to 6,000 in a round with another id."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_atomic(a, solve(_mixed()).model_dump_json(indent=2))
    cut = _mixed(m1_hours=6000).model_copy(update={"id": "rule-test-2"})
    write_atomic(b, solve(cut).model_dump_json(indent=2))
    return a, b


def _read(path: Path) -> Solution:
    return Solution.model_validate_json(path.read_text())


WARNING = "b.json solves round 'rule-test-2', not 'rule-test': compare with care"


def _cli_compare(a: Path, b: Path, fmt: str) -> str:
    result = CliRunner().invoke(cli, ["compare", str(a), str(b), "--format", fmt], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert WARNING in result.stderr
    return result.stdout


def test_cli_csv_is_one_long_sheet(tmp_path: Path) -> None:
    """The CSV has figures as plain numbers, then inputs and decisions against b, then the warning."""
    rows = list(csv.reader(io.StringIO(_cli_compare(*_pair_files(tmp_path), "csv"))))
    assert rows[0] == ["section", "against", "item", "a.json", "b.json"]
    figures = {r[2]: r[3:] for r in rows if r[0] == "figure"}
    assert [float(x) for x in figures["Reference GPU-hours awarded"]] == [10000, 8000]  # no separator
    assert [float(x) for x in figures["Idle reference GPU-hours"]] == [6000, 4000]
    assert [float(x) for x in figures["Merit-weighted satisfaction"]] == [0.767, 0.5]
    assert figures["Lowest-ranked funded"] == ["R1 (#4, score 2.5)", "R1 (#4, score 2.5)"]
    assert figures["Used: m1"] == ["60.0% of 10,000", "66.7% of 6,000"]
    assert [r for r in rows[1:] if r[0] != "figure"] == [
        ["input", "b.json", 'round id: "rule-test" -> "rule-test-2"'],
        ["input", "b.json", "machine m1 gpu_hours: 10000 -> 6000"],
        ["decision", "b.json", "dropped out (1):"],
        ["decision", "b.json", "I1 (had 2,000 GPU-h on m1)"],
        ["warning", "", WARNING],
    ]


def test_cli_csv_counts_are_integers(tmp_path: Path) -> None:
    """Counts of hours and proposals read back as integers in a spreadsheet or a script."""
    rows = list(csv.reader(io.StringIO(_cli_compare(*_pair_files(tmp_path), "csv"))))
    figures = {r[2]: r[3:] for r in rows if r[0] == "figure"}
    assert [int(x) for x in figures["Reference GPU-hours awarded"]] == [10000, 8000]
    assert [int(x) for x in figures["Proposals funded"]] == [3, 2]


def test_cli_markdown_has_a_row_per_figure_and_the_decisions(tmp_path: Path) -> None:
    """The Markdown has one table row per figure, the warning, and the Decisions list."""
    a, b = _pair_files(tmp_path)
    lines = _cli_compare(a, b, "markdown").splitlines()
    labels = [f.label.strip() for f in compare([_read(a), _read(b)], ["a", "b"]).figures]
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| Figure ")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == labels
    assert "| Reference GPU-hours awarded | 10,000 | 8,000 |" in rows
    assert "| Fairness across groups (Jain) | 0.900 | 0.500 |" in rows
    assert f"> **Warning:** {WARNING}" in lines
    decisions = lines[lines.index("Decisions:") :]
    assert decisions[2:4] == ["- dropped out (1):", "  - I1 (had 2,000 GPU-h on m1)"]


def test_cli_markdown_warning_does_not_swallow_the_table(tmp_path: Path) -> None:
    """A warning quote ends before the figures table starts, so the table renders as a table."""
    lines = _cli_compare(*_pair_files(tmp_path), "markdown").splitlines()
    assert lines[lines.index(f"> **Warning:** {WARNING}") + 1] == ""


def test_cli_json_numbers_match_values(tmp_path: Path) -> None:
    """In JSON each figure's numbers are its shown values read as numbers, None where text."""
    data = json.loads(_cli_compare(*_pair_files(tmp_path), "json"))
    assert data["warnings"] == [WARNING]
    numbers = {f["label"]: f["numbers"] for f in data["figures"]}
    assert numbers["Reference GPU-hours awarded"] == [10000, 8000]
    assert numbers["Reference GPU-hours awarded"] == [10000, 8000]
    assert numbers["Merit-weighted satisfaction"] == [0.767, 0.5]
    assert numbers["Fairness across groups (Jain)"] == [0.9, 0.5]
    assert numbers["Proven gap"] == numbers["Used: m1"] == numbers["Lowest-ranked funded"] == [None, None]
    for f in data["figures"]:
        for value, number in zip(f["values"], f["numbers"], strict=True):
            plain = value.replace(",", "").removesuffix("%")
            if number is None:
                assert not plain.replace(".", "", 1).isdigit(), (f["label"], value)
            else:
                assert float(plain) / (100 if value.endswith("%") else 1) == pytest.approx(number), f["label"]
    assert data["changes"]["b.json"] == ["dropped out (1):", "  I1 (had 2,000 GPU-h on m1)"]


def test_cli_table_shows_the_round_id_warning(tmp_path: Path) -> None:
    """The terminal table leads with the warning when the solutions solve different rounds."""
    out = _cli_compare(*_pair_files(tmp_path), "table")
    assert out.splitlines()[0] == f"warning: {WARNING}"
    assert 'round id: "rule-test" -> "rule-test-2"' in out


def test_a_change_too_small_for_whole_percentages_shows_decimals() -> None:
    """'100% -> 100%' beside +900 GPU-h read as no change at all."""
    assert fraction_change(0.9994, 0.9999) == "99.94% -> 99.99%"
    assert fraction_change(0.9994, 0.46) == "over 99% -> 46%"
    assert fraction_change(0.5, 1.0) == "50% -> 100%"


def test_keep_is_an_input_difference(tiny: Round, tiny_solution: Solution) -> None:
    """A re-solve with --keep was listed as 'the same round and options'."""
    kept = solve(tiny, keep=Keep.of(tiny_solution, 0.002))
    (line,) = input_differences(tiny_solution, kept)
    assert line.startswith("option keep: none -> a solution of round sha256 ")
    assert line.endswith("tolerance 0.002")
    assert input_differences(kept, kept) == ["the same round and options"]
