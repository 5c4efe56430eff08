"""sweep: every scenario solved and written, a frontier that behaves as it must, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from allocopt.cli import cli
from allocopt.errors import InputError
from allocopt.files import write_atomic
from allocopt.options import SolveOptions
from allocopt.report import frontier_columns, render_frontier
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.sweep import Scenario, apply, frontier_rows, parse_knob, run, scenarios
from tests.conftest import ROOT
from tests.helpers import group, machine, make_round, proposal

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


# -- tiny hand-made rounds through the CLI --------------------------------------------------------


def _two_machines() -> Round:
    """m1 (CUDA, 10,000 GPU-h) and m2 (ROCm, 3,000 GPU-h at rate 2); A1 academic on m1, I1
    industry on m1 (commercial cap 0.2), R1 academic on m2; share groups academia and industry."""
    return make_round(
        machines=[machine("m1"), machine("m2", stack="rocm", gpu_hours=3000, exchange_rate=2.0)],
        proposals=[
            proposal("A1", score=5, request=4000, minimum=2000),
            proposal("I1", kind="industry", commitment="confidential", score=4, request=2000, minimum=2000),
            proposal("R1", score=2.5, stacks=("rocm",), request=4000, minimum=2000),
        ],
        groups=[group("academia", ["academic"]), group("industry", ["industry"])],
    )


def _three() -> Round:
    """P1, P2, P3 (scores 5, 4, 3) each ask 4,000 GPU-h, minimum 2,000, on one machine m1."""
    return make_round(
        proposals=[proposal(f"P{i}", score=6 - i, request=4000, minimum=2000) for i in (1, 2, 3)],
    )


def _sweep(tmp_path: Path, rnd: Round, *varies: str) -> tuple[Path, str]:
    """Write the round, run `allocopt sweep` on it; the output folder and what was printed."""
    path, out = tmp_path / "round.json", tmp_path / "sweep"
    write_atomic(path, rnd.model_dump_json(indent=2))
    args = [
        "sweep",
        str(path),
        *(x for v in varies for x in ("--vary", v)),
        "-o",
        str(out),
        "--parallel",
        "1",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.stdout


def _plots_written(out: Path) -> str:
    """Both plot files are there; the SVG's text."""
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (out / "frontier.svg").read_text()
    assert svg.lstrip().startswith("<?xml")
    return svg


def test_cli_sweep_of_the_objective_alone_is_a_bar_chart(tmp_path: Path) -> None:
    """Varying only the objective writes one solution per objective and a bar chart by objective."""
    out, printed = _sweep(tmp_path, _two_machines(), "objective=merit,rank")
    assert "2 of 2 scenarios solved" in printed
    names = sorted(p.name for p in out.glob("*.solution.json"))
    assert names == ["objective-merit.solution.json", "objective-rank.solution.json"]
    kinds = [Solution.model_validate_json((out / n).read_text()).objective.kind for n in names]
    assert kinds == ["merit", "rank"]
    svg = _plots_written(out)
    # matplotlib keeps each text as a comment: the x axis is the objective, one bar label each.
    for text in ("objective", "merit", "rank", "rule-test: merit by objective"):
        assert f"<!-- {text} -->" in svg


@pytest.mark.parametrize(
    ("varies", "headings"),
    [
        # why: both end in gpu_hours, so the table shows the whole paths
        (
            ("machines.m1.gpu_hours=6000,10000", "machines.m2.gpu_hours=2000,3000"),
            ["machines.m1.gpu_hours", "machines.m2.gpu_hours"],
        ),
        # why: distinct last parts are shown short
        (
            ("machines.m1.gpu_hours=6000,10000", "policy.share_groups.industry.min_share=0,0.1"),
            ["gpu_hours", "min_share"],
        ),
    ],
)
def test_cli_sweep_of_two_knobs_has_distinct_headings(
    tmp_path: Path, varies: tuple[str, str], headings: list[str]
) -> None:
    """With two numeric knobs the frontier table tells them apart, the CSV keeps whole paths, and
    the plots are written."""
    out, printed = _sweep(tmp_path, _two_machines(), *varies)
    header = next(line for line in printed.splitlines() if " status " in line).split()
    assert header[:2] == headings
    paths = [v.split("=")[0] for v in varies]
    assert list(csv.DictReader((out / "frontier.csv").read_text().splitlines()).fieldnames or [])[:2] == paths
    _plots_written(out)


def test_cli_sweep_of_a_machines_hours_changes_the_awards(tmp_path: Path) -> None:
    """Each value of machines.m1.gpu_hours is solved for real: awards follow the hours as worked out."""
    out, _ = _sweep(tmp_path, _three(), "machines.m1.gpu_hours=8000,9000,10000,13000")
    # Weights 1, 0.8, 0.6 per 4,000 GPU-h: fill in score order, P3 at its 2,000 minimum or more;
    # at 9,000, 3,000 for P2 and 2,000 for P3 (0.6 + 0.3) beat P2 in full alone (0.8).
    expected = {
        8000: ({"P1": 4000, "P2": 4000, "P3": 0}, 1.8),
        9000: ({"P1": 4000, "P2": 3000, "P3": 2000}, 1.9),
        10000: ({"P1": 4000, "P2": 4000, "P3": 2000}, 2.1),
        13000: ({"P1": 4000, "P2": 4000, "P3": 4000}, 2.4),
    }
    rows = list(csv.DictReader((out / "frontier.csv").read_text().splitlines()))
    assert [int(r["machines.m1.gpu_hours"]) for r in rows] == list(expected)
    for row, (capacity, (awards, merit)) in zip(rows, expected.items(), strict=True):
        solution = Solution.model_validate_json((out / f"gpu_hours-{capacity}.solution.json").read_text())
        got = {r.id: sum(a.gpu_hours for a in r.allocations) for r in solution.proposals}
        assert got == awards, capacity
        assert solution.metrics.machines[0].gpu_hours == capacity
        assert solution.metrics.machines[0].idle_gpu_hours == capacity - sum(awards.values())
        assert float(row["merit"]) == pytest.approx(merit)
        assert int(row["funded"]) == sum(1 for h in awards.values() if h)


@pytest.mark.parametrize(
    ("varies", "message"),
    [
        (["policy.score_threshold=3,3.0"], "a value is listed twice"),
        (["policy.score_threshold=3,4", "policy.score_threshold=3.5"], "is given twice"),
    ],
)
def test_a_scenario_given_twice_is_refused(varies: list[str], message: str) -> None:
    """Two knobs on one path made rows and file names that lied about their values; a repeated
    value solved one scenario twice."""
    with pytest.raises(ValueError, match=message):
        scenarios([parse_knob(v) for v in varies])


def test_frontier_columns_do_not_depend_on_which_scenario_failed() -> None:
    failed = {"k": 1, "status": "infeasible", "note": "why"}
    solved = {"k": 2, "status": "optimal", "merit": 1.0, "note": ""}
    assert (
        frontier_columns([failed, solved])
        == frontier_columns([solved, failed])
        == [
            "k",
            "status",
            "merit",
            "note",
        ]
    )


def test_frontier_numbers_read_down_each_column() -> None:
    """Every number in a column has the same decimals: the knob's as the most precise value needs,
    merit and shares alike in every row; the note column only when a scenario failed."""
    rows = [
        {"policy.score_threshold": v, "status": "optimal", "merit": m, "share_a": s, "note": ""}
        for v, m, s in [(3, 9.5, 0.5), (3.5, 12.25, 0.61234), (4, 10.0, 1.0)]
    ]
    lines = render_frontier(rows).splitlines()
    body = [line.split() for line in lines if line.strip().split(" ")[0][:1].isdigit()]
    assert [r[0] for r in body] == ["3.0", "3.5", "4.0"]
    assert [r[2] for r in body] == ["9.50", "12.25", "10.00"]
    assert [r[3] for r in body] == ["0.5000", "0.6123", "1.0000"]
    assert "note" not in "\n".join(lines)
    failed = [*rows, {"policy.score_threshold": 4.5, "status": "infeasible", "note": "share minimum"}]
    assert "note" in render_frontier(failed)
    assert "4.5" in render_frontier(failed) and "3.0" in render_frontier(failed)


def test_a_sweep_with_nothing_solved_fails_and_says_what_it_wrote(tmp_path: Path) -> None:
    """Every scenario infeasible: exit 1, the frontier (with each row's note) but no plot of
    failures alone, and no claim of solutions written."""
    data = json.loads((ROOT / "instances" / "tiny.json").read_text())
    data["machines"][0]["commercial_cap"] = 0.1
    next(g for g in data["policy"]["share_groups"] if g["id"] == "startups")["min_share"] = 0.25
    path, out = tmp_path / "infeasible.json", tmp_path / "sweep"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(
        cli, ["sweep", str(path), "--vary", "policy.score_threshold=3,3.5", "-o", str(out), "--parallel", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "0 of 2 scenarios solved; wrote" in result.output and "(frontier.csv)" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["frontier.csv"]
    rows = list(csv.DictReader((out / "frontier.csv").read_text().splitlines()))
    assert [r["status"] for r in rows] == ["infeasible", "infeasible"]


@pytest.mark.parametrize(
    "vary", ["policy.score_threshold=nan", "policy.score_threshold=3,inf", "policy.score_threshold=3:nan:1"]
)
def test_a_knob_value_that_is_not_finite_is_refused(vary: str) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_knob(vary)


def test_tiny_knob_values_stay_apart_in_the_frontier() -> None:
    """A penalty swept over 1e-7, 2.5e-7 and 1e-6 showed as 0.000000, 0.000000, 0.000001."""
    rows = [
        {"policy.share_groups.a.penalty": v, "status": "optimal", "note": ""} for v in (1e-7, 2.5e-7, 1e-6)
    ]
    cells = [line.split()[0] for line in render_frontier(rows).splitlines() if line.strip().startswith("0.")]
    assert cells == ["0.00000010", "0.00000025", "0.00000100"]
