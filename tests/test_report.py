"""Reports: every proposal present, untrusted text made harmless, numbers kept numeric."""

from __future__ import annotations

import csv
import html
import io
import json

import pytest

from allocopt.files import read_round
from allocopt.options import SolveOptions
from allocopt.report import render
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve
from tests.conftest import ROOT


def hostile(tiny: Round) -> Solution:
    """The tiny round with titles and names a spreadsheet or Markdown would misread."""
    props = list(tiny.proposals)
    p0 = props[0]
    props[0] = p0.model_copy(
        update={
            "title": '=HYPERLINK("http://x")|*bold*',
            "applicant": p0.applicant.model_copy(update={"name": "@SUM(A1:A9)\nsecond line"}),
        }
    )
    props[1] = props[1].model_copy(update={"title": "-2+3"})
    return solve(tiny.model_copy(update={"proposals": props}))


def test_csv_neutralises_formulas_and_keeps_numbers(tiny: Round) -> None:
    """Cells starting with = + - @ get a leading quote; numeric cells stay numbers."""
    rows = list(csv.DictReader(io.StringIO(render(hostile(tiny), "csv"))))
    assert len(rows) == len(tiny.proposals)
    assert rows[0]["title"].startswith("'=HYPERLINK")
    assert rows[0]["applicant"].startswith("'@SUM")
    assert rows[1]["title"] == "'-2+3"
    assert rows[0]["gpu_hours"] == "4000"
    assert rows[4]["decision"] == "funded"


def test_markdown_escapes_untrusted_text(tiny: Round) -> None:
    """Pipes, emphasis and line breaks in titles cannot break the Markdown table."""
    text = render(hostile(tiny), "markdown")
    line = next(li for li in text.splitlines() if "| P-01 |" in li)
    assert "\\|\\*bold\\*" in line
    assert line.count(" | ") == 8  # nine cells, whatever the title holds
    for p in tiny.proposals:
        assert f"| {p.id} |" in text.replace("\\-", "-")


def test_json_report_has_every_proposal_and_no_embedded_round(tiny_solution: Solution) -> None:
    """The JSON report lists every proposal with its reasons and leaves out the round."""
    data = json.loads(render(tiny_solution, "json"))
    assert "input" not in data
    assert [r["id"] for r in data["proposals"]] == [p.id for p in tiny_solution.input.proposals]
    p08 = next(r for r in data["proposals"] if r["id"] == "P-08")
    assert "LUMI-G has 0 GPU-h left" in p08["reasons"]


def test_table_report_shows_reasons(tiny_solution: Solution) -> None:
    """The terminal table names every proposal and the headline figures."""
    text = render(tiny_solution, "table", width=200)
    assert "proven optimal" in text
    for p in tiny_solution.input.proposals:
        assert p.id in text
    assert "below the score threshold (2.5 < 3)" in text


def test_csv_neutralises_formulas_after_leading_spaces() -> None:
    """A spreadsheet also runs ' =1+1': leading spaces do not let a formula through."""
    from allocopt.report import safe_cell

    assert safe_cell("  =1+1") == "'  =1+1"
    assert safe_cell(" plain text") == " plain text"
    assert safe_cell(-3) == -3


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_every_report_carries_the_explanations(tiny_solution: Solution, fmt: str) -> None:
    """Outcompeted-by, the rank inversions with their causes, and the reserve lists are in the
    report itself, with the same words as `allocopt explain`."""
    from allocopt.explain import explain

    ex = explain(tiny_solution)
    text = render(tiny_solution, fmt)
    outcompeted = [x.text for p in ex.proposals for x in p.reasons if x.code == "outcompeted"]
    assert outcompeted, "the tiny round has a proposal outcompeted under merit"
    flat = " ".join(text.replace("\\", "").split())
    for words in outcompeted:
        shown = html.escape(words) if fmt == "html" else words
        assert " ".join(shown.split()) in flat
    assert f"{ex.inversion_count} pair(s)" in flat
    for res in ex.reserves:
        assert res.name in flat


def test_a_split_award_keeps_its_hours_per_machine() -> None:
    """GPU-hours of two machines are not added into one figure: the CSV gives them per machine,
    the tables side by side in the order of the machine column."""
    from tests.helpers import group, machine, make_round, proposal

    rnd = make_round(
        machines=[machine("a", max_award_gpu_hours=2000), machine("b", max_award_gpu_hours=2000)],
        proposals=[proposal("P1", kind="start-up", request=3000, minimum=1000, max_machines=2)],
        groups=[group("startups", ["start-up"], min_share=0.15)],
    )
    solution = solve(rnd)
    split = {a.machine: a.gpu_hours for a in solution.result("P1").allocations}
    assert len(split) == 2 and sum(split.values()) == 3000
    row = next(csv.DictReader(io.StringIO(render(solution, "csv"))))
    assert row["gpu_hours"] == ""
    assert row["gpu_hours_by_machine"] == "; ".join(f"{m}={h}" for m, h in split.items())
    names = {m.id: m.name for m in rnd.machines}
    shown = " + ".join(f"{h:,}" for h in split.values())
    for fmt in ("table", "markdown"):
        text = render(solution, fmt, width=200)
        line = next(li for li in text.splitlines() if "P1" in li and " + " in li)
        assert " + ".join(names[m] for m in split) in line and shown in line, line


def test_shares_say_what_they_are_fractions_of(tiny: Round, tiny_solution: Solution) -> None:
    """Under share_basis 'awarded' the table and Markdown said 'of the round's capacity' beside
    shares of the hours awarded."""
    awarded = solve(
        tiny.model_copy(update={"policy": tiny.policy.model_copy(update={"share_basis": "awarded"})})
    )
    for fmt in ("table", "markdown"):
        shown, usual = render(awarded, fmt, width=200).lower(), render(tiny_solution, fmt, width=200).lower()
        assert "of the hours awarded in reference gpu-hours" in shown
        assert "of the round's capacity in reference gpu-hours" not in shown
        assert "of the round's capacity in reference gpu-hours" in usual
    science = next(g for g in awarded.metrics.groups if g.id == "science")
    awarded_ref = sum(g.reference_gpu_hours for g in awarded.metrics.groups)
    assert science.share == pytest.approx(science.reference_gpu_hours / awarded_ref, abs=1e-4)


def test_an_80_column_terminal_cuts_no_number_or_hash() -> None:
    """rich shortened cells with '...': 'JUPITER 10,403,0...' and a cut input sha256 on the shipped
    round. Numbers stay whole and the sha256 folds onto the next line."""
    shipped = solve(read_round(ROOT / "instances" / "eurohpc-2026.json"), SolveOptions(work_limit=5))
    text = render(shipped, "table", width=80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    for m in shipped.metrics.machines:
        assert any(f"{m.awarded_gpu_hours:,}" in line.split() for line in lines), m.id
    sha = shipped.provenance.input_sha256
    start = next(i for i, line in enumerate(lines) if "Input sha256" in line)
    assert sha in "".join(line.split()[-1] for line in lines[start : start + 3] if line.strip())
