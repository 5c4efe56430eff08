"""sweep: every scenario solved and written, a frontier that behaves as it must, plots."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from allocopt import Round, SolveOptions
from allocopt.cli import cli
from allocopt.errors import InputError
from allocopt.sweep import Scenario, apply, frontier_rows, parse_knob, run, scenarios
from tests.conftest import ROOT

TINY = str(ROOT / "instances" / "tiny.json")


def test_parse_knob_ranges_and_lists() -> None:
    """Ranges are inclusive decimal steps; lists are taken as written."""
    assert parse_knob("policy.score_threshold=3:4:0.5").values == (3, 3.5, 4)
    assert parse_knob("machines.lumi-g.gpu_hours=6000,8000").values == (6000, 8000)
    assert parse_knob("objective=merit,rank").values == ("merit", "rank")
    for bad in ("policy.score_threshold", "x=1:0:1", "x=a,b", "objective=fast"):
        with pytest.raises(ValueError, match="--vary"):
            parse_knob(bad)


def test_apply_sets_fields_by_id_and_rejects_unknown_paths(tiny: Round) -> None:
    """Lists are addressed by id; a wrong path or value is reported like bad input."""
    changed, objective = apply(
        tiny, Scenario((("machines.lumi-g.gpu_hours", 9000), ("objective", "rank"))), "t"
    )
    assert changed.machine("lumi-g").gpu_hours == 9000 and objective == "rank"
    for path, value in (("machines.nowhere.gpu_hours", 1), ("policy.nothing", 1), ("machines.lumi-g", 1)):
        with pytest.raises(InputError):
            apply(tiny, Scenario(((path, value),)), "t")
    with pytest.raises(InputError, match="less than or equal to 1"):
        apply(tiny, Scenario((("policy.share_groups.startups.max_share", 1.5),)), "t")


def test_relaxing_a_maximum_never_lowers_merit(tiny: Round) -> None:
    """Raising the start-up maximum relaxes a rule: merit never falls along the sweep."""
    knobs = [parse_knob("policy.share_groups.startups.max_share=0.15:0.4:0.05")]
    rows = frontier_rows(run(tiny, knobs, SolveOptions(), "tiny", parallel=2))
    merits = [r["merit"] for r in rows]
    assert merits == sorted(merits)
    assert merits[2] == pytest.approx(3.255)  # max_share 0.25: the shipped round
    assert len(scenarios(knobs)) == len(rows) == 6


def test_cli_sweep_writes_solutions_frontier_and_plots(tmp_path: Path) -> None:
    """The CLI writes one solution per solved scenario, frontier.csv, and PNG and SVG plots."""
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        cli,
        [
            "sweep",
            TINY,
            "--vary",
            "policy.share_groups.startups.max_share=0.1:0.2:0.1",
            "--vary",
            "objective=merit,rank",
            "-o",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "2 of 4 scenarios solved" in result.output  # max_share 0.1 is below the 0.1 minimum's reach
    rows = list(csv.DictReader((out / "frontier.csv").read_text().splitlines()))
    assert [r["status"] for r in rows] == ["infeasible", "infeasible", "optimal", "optimal"]
    assert sorted(p.name for p in out.glob("*.solution.json")) == [
        "max_share-0.2_objective-merit.solution.json",
        "max_share-0.2_objective-rank.solution.json",
    ]
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "frontier.svg").read_text().lstrip().startswith("<?xml")
    bad = CliRunner().invoke(cli, ["sweep", TINY, "--vary", "nonsense", "-o", str(out)])
    assert bad.exit_code == 2
