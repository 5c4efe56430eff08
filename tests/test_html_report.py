"""The HTML report: self-contained, every proposal present, untrusted text escaped, deterministic."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from allocopt.cli import cli
from allocopt.html_report import html_report
from allocopt.options import SolveOptions
from allocopt.report import FORMATS, headline, render
from allocopt.round import Pin, Round
from allocopt.solution import Solution
from allocopt.solve import solve
from tests.conftest import ROOT

EVIL = "<script>alert(1)</script> \"double\" & 'single'"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &quot;double&quot; &amp; &#x27;single&#x27;"


@pytest.fixture(scope="module")
def hostile(tiny: Round) -> Solution:
    """The tiny round with hostile text in every untrusted field a report shows.

    Round name, a share group's name (soft, so the chart marks it), a machine's
    name (it reaches the reasons too), P-01's title and applicant, and the
    reason of a committee pin on P-08.
    """
    props = list(tiny.proposals)
    p0 = props[0]
    props[0] = p0.model_copy(
        update={
            "title": "Title " + EVIL,
            "applicant": p0.applicant.model_copy(update={"name": "Applicant " + EVIL}),
        }
    )
    policy = tiny.policy
    groups = list(policy.share_groups)
    groups[1] = groups[1].model_copy(update={"name": "Group " + EVIL, "soft": True, "penalty": 1e-5})
    policy = policy.model_copy(
        update={
            "share_groups": groups,
            "pins": [Pin(proposal="P-08", action="exclude", reason="Pin " + EVIL)],
        }
    )
    machines = list(tiny.machines)
    machines[0] = machines[0].model_copy(update={"name": "Machine " + EVIL})
    rnd = tiny.model_copy(
        update={"name": "Round " + EVIL, "proposals": props, "policy": policy, "machines": machines}
    )
    return solve(rnd)


def sections(page: str) -> dict[str, str]:
    """Each <section id=...> of the page by id."""
    return dict(re.findall(r'<section id="([\w-]+)"[^>]*>(.*?)</section>', page, flags=re.S))


def test_html_is_a_report_format() -> None:
    """`report --format html` is offered (the CLI takes its choices from FORMATS)."""
    assert "html" in FORMATS


def test_untrusted_text_is_escaped_everywhere(hostile: Solution) -> None:
    """No raw <script> anywhere; each hostile text appears escaped, in tables and SVG tooltips."""
    page = render(hostile, "html")
    assert "<script" not in page.lower()
    assert "alert(1)</" not in page
    assert '"double"' not in page and "'single'" not in page
    for label in ("Round", "Group", "Machine", "Title", "Applicant", "Pin"):
        assert f"{label} {EVIL_ESCAPED}" in page, label
    # the headline figures and the page title
    assert f"<title>Allocation: Round {EVIL_ESCAPED}</title>" in page
    # SVG tooltips and labels: the share chart names the group, the machine chart the machine,
    # the scatter chart's tooltip the proposal's title and applicant
    parts = sections(page)
    assert f"Group {EVIL_ESCAPED}" in parts["shares"]
    assert f"Machine {EVIL_ESCAPED}" in parts["machines"]
    tooltip = re.search(r"<title>P-01 [^<]*</title>", parts["scores"])
    assert tooltip is not None
    assert f"Title {EVIL_ESCAPED}" in tooltip.group(0)
    assert f"Applicant {EVIL_ESCAPED}" in tooltip.group(0)
    # the committee's pin reason, next to the pinned proposal
    row = re.search(r'<tr id="p-P-08">.*?</tr>', parts["decisions"], flags=re.S)
    assert row is not None
    assert f"Pin {EVIL_ESCAPED}" in row.group(0)
    assert "Pinned by the committee: exclude" in row.group(0)
    # every attribute value is quoted and free of raw markup
    for value in re.findall(r'=\s*"([^"]*)"', page):
        assert "<" not in value and ">" not in value


@pytest.mark.parametrize("which", ["tiny", "hostile", "rank"])
def test_every_proposal_is_present(
    which: str, tiny: Round, tiny_solution: Solution, hostile: Solution
) -> None:
    """Every proposal has its row in the decisions table, and a point in the score chart."""
    solution = {
        "tiny": tiny_solution,
        "hostile": hostile,
        "rank": solve(tiny, SolveOptions(objective="rank")),
    }[which]
    page = html_report(solution)
    parts = sections(page)
    for p in solution.input.proposals:
        assert f'<tr id="p-{p.id}">' in parts["decisions"], p.id
        assert f"<title>{p.id} " in parts["scores"], p.id
    rows = re.findall(r'<tr id="p-([^"]+)">', parts["decisions"])
    assert sorted(rows) == sorted(p.id for p in solution.input.proposals)
    # the funded list: exactly the proposals with an award, in ranking order
    funded = sorted((r for r in solution.proposals if r.allocations), key=lambda r: r.rank_position)
    assert re.findall(r'<a href="#p-([^"]+)">', parts["funded"]) == [r.id for r in funded]


def test_nothing_is_loaded_from_outside(tiny_solution: Solution, hostile: Solution) -> None:
    """No URL, script, stylesheet link or external reference: the page opens offline."""
    for solution in (tiny_solution, hostile):
        page = html_report(solution)
        assert "http://" not in page and "https://" not in page
        assert "<script" not in page.lower()
        assert "<link" not in page.lower()
        assert "@import" not in page and "url(" not in page
        assert "<img" not in page.lower() and "<iframe" not in page.lower()
        for ref in re.findall(r'\b(?:src|href|xlink:href)\s*=\s*"([^"]*)"', page):
            assert ref.startswith("#"), ref
        assert "Content-Security-Policy" in page


def test_summary_has_the_headline_figures(tiny_solution: Solution) -> None:
    """Objective kind, proof status, input sha256 and every headline figure."""
    page = html_report(tiny_solution)
    summary = sections(page)["summary"]
    for label, value in headline(tiny_solution):
        assert html.escape(label) in summary
        assert html.escape(value) in summary
    assert "<b>merit</b>" in summary
    assert "proven optimal" in summary
    assert tiny_solution.provenance.input_sha256 in summary


def test_rank_solution_shows_its_objective_and_proof(tiny: Round) -> None:
    """Under rank the summary says so and whether every step was proven."""
    page = html_report(solve(tiny, SolveOptions(objective="rank")))
    summary = sections(page)["summary"]
    assert "<b>rank</b>" in summary
    assert "every rank step proven" in summary


def test_a_chart_per_section(tiny_solution: Solution, hostile: Solution) -> None:
    """Share, machine and score charts, each one inline SVG; soft groups are marked."""
    for solution in (tiny_solution, hostile):
        page = html_report(solution)
        parts = sections(page)
        assert page.count("<svg") == 3
        for chart in ("shares", "machines", "scores"):
            assert parts[chart].count("<svg") == 1, chart
    soft = sections(html_report(hostile))["shares"]
    assert "soft bounds" in soft and "stroke-dasharray" in soft
    hard = sections(html_report(tiny_solution))["shares"]
    assert "soft bounds" not in hard


def test_same_solution_same_bytes(tiny_solution: Solution, hostile: Solution) -> None:
    """Rendering is deterministic, also after a round trip through the solution file."""
    for solution in (tiny_solution, hostile):
        first = html_report(solution)
        assert html_report(solution) == first
        again = Solution.model_validate_json(solution.model_dump_json(), strict=False)
        assert html_report(again) == first
        # the wall-clock timing is not part of the page
        changed = solution.model_copy(
            update={
                "timing": solution.timing.model_copy(update={"solve_seconds": 123.0, "total_seconds": 456.0})
            }
        )
        assert html_report(changed) == first


def test_cli_writes_the_html_report(tmp_path: Path, tiny_solution: Solution) -> None:
    """`allocopt report X --format html -o out.html` writes the same page html_report makes."""
    solution_file = tmp_path / "tiny.solution.json"
    runner = CliRunner()
    solved = runner.invoke(
        cli, ["solve", str(ROOT / "instances" / "tiny.json"), "-o", str(solution_file), "-q"]
    )
    assert solved.exit_code == 0, solved.output
    out = tmp_path / "out.html"
    result = runner.invoke(cli, ["report", str(solution_file), "--format", "html", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    loaded = Solution.model_validate_json(solution_file.read_text(encoding="utf-8"), strict=False)
    assert page == html_report(loaded)
    for p in tiny_solution.input.proposals:
        assert f'id="p-{p.id}"' in page
