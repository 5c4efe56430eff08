"""compare: figures side by side, decisions diffed in words, inputs and options diffed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from allocopt import Round, Solution, SolveOptions, solve
from allocopt.cli import cli
from allocopt.compare import compare, group_fairness, rank_inversions, satisfaction
from allocopt.files import write_atomic
from allocopt.report import render_comparison


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
