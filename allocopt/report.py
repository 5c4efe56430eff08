"""Render a solution for people: a terminal table, Markdown, CSV or JSON.

Every renderer reads only the solution file (which embeds its round), so a
report can be made months later from the solution alone. Titles and names are
untrusted text: Markdown escapes them, CSV neutralises cells a spreadsheet
would run as a formula.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from allocopt.compare import Comparison, percent, rank_inversions
from allocopt.explain import Digest, digest, explain, lottery_words
from allocopt.solution import STOPPED_BY, Decision, GroupMetrics, Solution
from allocopt.words import pct

FORMATS = ("table", "markdown", "csv", "json", "html")
COMPARE_FORMATS = ("table", "markdown", "csv", "json")

_DECISION_WORDS = {
    Decision.FUNDED: "funded in full",
    Decision.REDUCED: "reduced",
    Decision.NOT_FUNDED: "not funded",
    Decision.NOT_ELIGIBLE: "not eligible",
}


def render(solution: Solution, fmt: str, *, width: int = 140) -> str:
    """The whole report in one of FORMATS."""
    if fmt == "table":
        return to_text(
            summary_tables(solution), proposals_table(solution), *digest_lines(solution), width=width
        )
    if fmt == "markdown":
        return markdown(solution)
    if fmt == "csv":
        return csv_text(solution)
    if fmt == "json":
        return json.dumps(report_data(solution), indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        from allocopt.html_report import html_report  # imports this module: load it only when asked

        return html_report(solution)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def render_summary(solution: Solution, *, width: int = 140) -> str:
    """Headline, shares and machines as terminal tables (what `solve` prints)."""
    return to_text(summary_tables(solution), width=width)


# -- rows shared by every format ----------------------------------------------


def headline(solution: Solution) -> list[tuple[str, str]]:
    """Key figures of a solution as (label, value) pairs."""
    obj, met = solution.objective, solution.metrics
    basis = "fraction of request" if obj.value_basis == "fraction" else "reference GPU-hours"
    d = met.decisions
    penalty = (
        f", after {obj.penalty_scaled / obj.scale:,.4f} of soft-share penalties" if obj.penalty_scaled else ""
    )
    if solution.rank is not None:
        unproven = sum(not s.proven for s in solution.rank.steps)
        proof = ("Rank walk", "every step proven" if not unproven else f"{unproven} step(s) unproven")
        objective = (
            "Objective",
            f"strict rank; merit of the result {obj.value:,.4f} (value per award: {basis})",
        )
    else:
        if solution.solver.status == "optimal":
            gap = "proven optimal"
        elif solution.solver.stop_reason == "gap_limit":
            limit = float(str(solution.provenance.options.get("gap_limit", 0)))
            gap = f"{percent(obj.gap or 0)}, proven within the {limit:.4%} gap limit"
        else:
            gap = f"{obj.gap or 0:.4%} (stopped by {STOPPED_BY[solution.solver.stop_reason]})"
        proof = ("Gap to best bound", gap)
        objective = ("Objective (merit)", f"{obj.value:,.4f} (value per award: {basis}){penalty}")
    return [
        ("Round", f"{solution.round_name} ({solution.round_id})"),
        ("Status", f"{solution.solver.status}, stopped: {solution.solver.stop_reason.replace('_', ' ')}"),
        objective,
        proof,
        (
            "Proposals",
            f"{d['funded']} funded in full, {d['reduced']} reduced, {d['not_funded']} not funded, "
            f"{d['not_eligible']} not eligible",
        ),
        (
            "Reference GPU-hours",
            f"{met.awarded_reference_gpu_hours:,.0f} awarded of {met.capacity_reference_gpu_hours:,.0f} "
            f"capacity; {met.requested_reference_gpu_hours:,} requested",
        ),
        ("Rank inversions", f"{rank_inversions(solution):,} (see `allocopt explain` for each pair's cause)"),
        *([("Lottery", lottery_words(solution))] if solution.lottery is not None else []),
        ("Input sha256", solution.provenance.input_sha256),
    ]


def proposal_rows(solution: Solution) -> list[dict[str, Any]]:
    """One flat row per proposal, in id order, for tables and CSV."""
    rnd = solution.input
    titles = {p.id: p for p in rnd.proposals}
    names = {m.id: m.name for m in rnd.machines}
    drawn = set(solution.lottery.drawn) if solution.lottery is not None else set()
    rows = []
    for r in solution.proposals:
        p = titles[r.id]
        row: dict[str, Any] = {
            "id": r.id,
            "title": p.title,
            "applicant": p.applicant.name,
            "kind": p.applicant.kind.value,
            "group": r.group or "",
            "score": r.score,
            "decision": r.decision.value,
            "machine": " + ".join(names[a.machine] for a in r.allocations),
            # GPU-hours of different machines do not add up: a split award has no single figure.
            "gpu_hours": sum(a.gpu_hours for a in r.allocations) if len(r.allocations) <= 1 else "",
            "gpu_hours_by_machine": "; ".join(f"{a.machine}={a.gpu_hours}" for a in r.allocations),
            "reference_gpu_hours": r.reference_gpu_hours,
            "requested_reference_gpu_hours": r.requested_reference_gpu_hours,
            "fraction_of_request": r.fraction_of_request,
            "rank": r.rank_position,
            "drawn_by_lot": r.id in drawn,
            "pin": f"{r.pin.action}: {r.pin.reason}" if r.pin else "",
            "reasons": "; ".join(x.detail for x in r.reasons),
        }
        if r.calibrated is not None:
            c = r.calibrated
            row.update(
                score_low=c.low,
                score_high=c.high,
                expected_rank=c.expected_rank,
                rank_interval=f"{c.rank_low}-{c.rank_high}",
            )
        rows.append(row)
    return rows


def _hours(row: dict[str, Any]) -> str:
    """The award's GPU-hours, per machine in the order of the machine column when split."""
    parts = [part.rsplit("=", 1)[1] for part in row["gpu_hours_by_machine"].split("; ") if part]
    return " + ".join(f"{int(h):,}" for h in parts)


def _score(row: dict[str, Any]) -> str:
    """The score, with its interval when reviews were calibrated."""
    if "score_low" not in row:
        return f"{row['score']:g}"
    return f"{row['score']:.2f} ({row['score_low']:.2f}-{row['score_high']:.2f})"


def report_data(solution: Solution) -> dict[str, Any]:
    """The report as plain data (the 'json' format): everything but the embedded round, with the
    explanations' digest."""
    data = solution.model_dump(mode="json", exclude={"input"})
    data["proposals"] = proposal_rows(solution)
    found = explanation_digest(solution)
    data["explanations"] = {
        "outcompeted": [{"proposal": pid, "reason": text} for pid, text in found.outcompeted],
        "rank_inversions": found.inversions,
        "first_rank_inversions": found.first_inversions,
        "reserve_lists": [{"machine": head, "first": entries} for head, entries in found.reserves],
    }
    return data


def explanation_digest(solution: Solution) -> Digest:
    """The explanations every report carries (see ``allocopt explain`` for all of them)."""
    return digest(explain(solution, listed=10))


def digest_lines(solution: Solution) -> list[str]:
    """The explanations' digest as plain lines (markup escaped), for the terminal report."""
    found = explanation_digest(solution)
    lines = ["", "Explanations (every one: allocopt explain)"]
    if found.outcompeted:
        lines.append("  Outcompeted (merit per hour):")
        lines += [f"    {escape(pid)}: {escape(text)}" for pid, text in found.outcompeted]
    lines.append(f"  Rank inversions: {escape(found.inversions)}")
    lines += [f"    {escape(x)}" for x in found.first_inversions]
    lines.append("  Reserve lists (who would be funded first if hours came back):")
    for head, entries in found.reserves:
        lines.append(f"    {escape(head)}")
        lines += [f"      {escape(x)}" for x in entries]
    return lines


# -- terminal tables ----------------------------------------------------------


def _share_basis(solution: Solution) -> str:
    """What the shares are fractions of (policy.share_basis)."""
    return "the round's capacity" if solution.metrics.share_basis == "capacity" else "the hours awarded"


def summary_tables(solution: Solution) -> Group:
    """Headline, shares per group and use per machine."""
    head = Table(show_header=False, box=box.SIMPLE)
    for label, value in headline(solution):
        head.add_row(label, escape(value))

    groups = Table(title=f"Shares (of {_share_basis(solution)} in reference GPU-hours)", box=box.SIMPLE_HEAD)
    for col in ("Group", "Reference GPU-h", "Share", "Bounds", "Funded"):
        groups.add_column(col, justify="left" if col == "Group" else "right")
    for g in solution.metrics.groups:
        groups.add_row(
            escape(g.name),
            f"{g.reference_gpu_hours:,.0f}",
            f"{g.share:.1%}",
            _bounds(g),
            str(g.proposals_funded),
        )

    machines = Table(title="Machines", box=box.SIMPLE_HEAD)
    for col in ("Machine", "Awarded GPU-h", "Available", "Used", "Idle GPU-h", "Commercial / cap", "Awards"):
        machines.add_column(col, justify="left" if col == "Machine" else "right")
    for m in solution.metrics.machines:
        machines.add_row(
            escape(m.name),
            f"{m.awarded_gpu_hours:,}",
            f"{m.gpu_hours:,}",
            f"{m.utilisation:.1%}",
            f"{m.idle_gpu_hours:,}",
            f"{m.commercial_gpu_hours:,} / {m.commercial_cap_gpu_hours:,}",
            str(m.proposals_funded),
        )
    return Group(head, groups, machines)


def proposals_table(solution: Solution) -> Table:
    """Every proposal with its decision, award and reasons."""
    table = Table(title="Proposals", box=box.SIMPLE_HEAD)
    for col in ("Rank", "Proposal", "Score", "Decision", "Machine", "GPU-h", "Of request", "Reasons"):
        table.add_column(col, justify="right" if col in ("Rank", "Score", "GPU-h", "Of request") else "left")
    for row in sorted(proposal_rows(solution), key=lambda r: r["rank"]):
        table.add_row(
            f"{row['rank']}*" if row["drawn_by_lot"] else str(row["rank"]),
            escape(row["id"]),
            _score(row),
            _DECISION_WORDS[Decision(row["decision"])],
            escape(row["machine"]),
            _hours(row),
            pct(row["fraction_of_request"], short=True) if row["reference_gpu_hours"] else "",
            escape(_with_pin(row)),
        )
    return table


def _bounds(g: GroupMetrics) -> str:
    soft = (
        f" soft (off by {g.shortfall_reference_gpu_hours + g.excess_reference_gpu_hours:,} h)"
        if g.soft
        else ""
    )
    return f"{g.min_share:.0%}-{g.max_share:.0%}{soft}"


def _with_pin(row: dict[str, Any]) -> str:
    """The reasons, with the committee's pin (and its reason) first."""
    pin = f"pinned ({row['pin']})" if row["pin"] else ""
    return "; ".join(x for x in (pin, row["reasons"]) if x)


def to_text(*renderables: Any, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    for r in renderables:
        _unclipped(r)
        console.print(r)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return str(out)


def _unclipped(renderable: Any) -> None:
    """On a narrow terminal rich shortens cells with '...': a number, a machine name or an
    input's sha256 cut short is worse than a wrapped line. Each column is kept at least as wide
    as its longest number, and text wraps between words or, a word too long for its column,
    folds onto the next line instead of being cut."""
    if isinstance(renderable, Group):
        for inner in renderable.renderables:
            _unclipped(inner)
        return
    if not isinstance(renderable, Table):
        return
    for column in renderable.columns:
        numbers = [w for cell in column.cells for w in str(cell).split() if any(c.isdigit() for c in w)]
        longest = max((len(w) for w in numbers), default=0)
        column.min_width = max(column.min_width or 0, min(longest, 24))  # a sha256 folds
        column.overflow = "fold"


# -- Markdown -----------------------------------------------------------------


def markdown(solution: Solution) -> str:
    """A Markdown report: headline, shares, machines and every proposal."""
    lines = [f"# Allocation: {_md(solution.round_name)}", ""]
    lines += _md_table(("Figure", "Value"), headline(solution))
    lines += ["", "## Shares", "", f"Of {_share_basis(solution)} in reference GPU-hours.", ""]
    lines += _md_table(
        ("Group", "Reference GPU-h", "Share", "Bounds", "Funded"),
        (
            (
                g.name,
                f"{g.reference_gpu_hours:,.0f}",
                f"{g.share:.1%}",
                _bounds(g),
                str(g.proposals_funded),
            )
            for g in solution.metrics.groups
        ),
    )
    lines += ["", "## Machines", ""]
    lines += _md_table(
        ("Machine", "Awarded GPU-h", "Available", "Used", "Idle GPU-h", "Commercial / cap"),
        (
            (
                m.name,
                f"{m.awarded_gpu_hours:,}",
                f"{m.gpu_hours:,}",
                f"{m.utilisation:.1%}",
                f"{m.idle_gpu_hours:,}",
                f"{m.commercial_gpu_hours:,} / {m.commercial_cap_gpu_hours:,}",
            )
            for m in solution.metrics.machines
        ),
    )
    lines += ["", "## Proposals", ""]
    lines += _md_table(
        ("Rank", "Proposal", "Title", "Score", "Decision", "Machine", "GPU-h", "Of request", "Reasons"),
        (
            (
                f"{r['rank']}*" if r["drawn_by_lot"] else str(r["rank"]),
                r["id"],
                r["title"],
                _score(r),
                _DECISION_WORDS[Decision(r["decision"])],
                r["machine"],
                _hours(r),
                pct(r["fraction_of_request"], short=True),
                _with_pin(r),
            )
            for r in sorted(proposal_rows(solution), key=lambda r: r["rank"])
        ),
    )
    found = explanation_digest(solution)
    lines += ["", "## Explanations", "", "Every one of them: `allocopt explain`.", ""]
    if found.outcompeted:
        lines += ["### Outcompeted", ""]
        lines += [f"- **{_md(pid)}**: {_md(text)}" for pid, text in found.outcompeted]
        lines.append("")
    lines += ["### Rank inversions", "", _md(found.inversions), ""]
    lines += [f"- {_md(x)}" for x in found.first_inversions]
    lines += ["", "### Reserve lists", ""]
    for head, entries in found.reserves:
        lines.append(f"- {_md(head)}")
        lines += [f"  - {_md(x)}" for x in entries]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Escape text for a Markdown table cell: no raw pipes, markup or line breaks."""
    out = text.replace("\\", "\\\\").replace("\r", " ").replace("\n", " ")
    for ch in "|*_`[]<>#":
        out = out.replace(ch, "\\" + ch)
    return out


def _md_table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out


# -- CSV ----------------------------------------------------------------------


def csv_text(solution: Solution) -> str:
    """One row per proposal; text a spreadsheet would run as a formula is neutralised."""
    rows = proposal_rows(solution)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["id"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return buf.getvalue()


def safe_cell(value: Any) -> Any:
    """Prefix a quote to text starting with = + - @ (after any spaces) or a tab/CR: shown, never run.
    A float keeps 12 significant digits: 0.673, not the 0.6729999999999999 a sum of floats gives."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if value == "-":  # a dash for "none" is no formula
        return value
    if isinstance(value, str) and (value[:1] in ("\t", "\r") or value.lstrip()[:1] in ("=", "+", "-", "@")):
        return "'" + value
    return value


# -- comparisons ------------------------------------------------------------------


def render_comparison(comp: Comparison, fmt: str, *, width: int = 140) -> str:
    """A comparison of solutions in one of COMPARE_FORMATS."""
    if fmt == "json":
        data = {
            "solutions": comp.names,
            "warnings": comp.warnings,
            "figures": [
                {"label": f.label.strip(), "values": list(f.values), "numbers": list(f.numbers)}
                for f in comp.figures
            ],
            "changes": comp.changes,
            "inputs": comp.inputs,
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        # One sheet a spreadsheet can filter by section: the figures (numbers as numbers), then
        # each solution's differences from the first, then any warning.
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["section", "against", "item", *comp.names])
        for f in comp.figures:
            cells = [v if n is None else n for v, n in zip(f.values, f.numbers, strict=True)]
            writer.writerow(["figure", "", safe_cell(f.label.strip()), *(safe_cell(c) for c in cells)])
        for name in comp.names[1:]:
            writer.writerows(["input", name, safe_cell(x)] for x in comp.inputs[name])
            writer.writerows(["decision", name, safe_cell(x.strip())] for x in comp.changes[name])
        writer.writerows(["warning", "", safe_cell(w)] for w in comp.warnings)
        return buf.getvalue()
    sections = [
        (f"Differences from {comp.names[0]}: {name}", comp.inputs[name], comp.changes[name])
        for name in comp.names[1:]
    ]
    if fmt == "markdown":
        lines = ["# Comparison", ""]
        for w in comp.warnings:  # a blank line ends the quote before the table starts
            lines += [f"> **Warning:** {_md(w)}", ""]
        lines += _md_table(("Figure", *comp.names), ((f.label.strip(), *f.values) for f in comp.figures))
        for title, inputs, changes in sections:
            lines += ["", f"## {_md(title)}", "", "Inputs and options:", ""]
            lines += [f"- {_md(x)}" for x in inputs]
            lines += ["", "Decisions:", ""]
            lines += [f"  - {_md(x.strip())}" if x.startswith("  ") else f"- {_md(x)}" for x in changes]
        return "\n".join(lines) + "\n"
    if fmt == "table":
        table = Table(title="Side by side", box=box.SIMPLE_HEAD)
        table.add_column("Figure")
        for name in comp.names:
            table.add_column(escape(name), justify="right")
        for f in comp.figures:
            table.add_row(escape(f.label), *(escape(v) for v in f.values))
        parts: list[Any] = [f"warning: {escape(w)}" for w in comp.warnings] + [table]
        for title, inputs, changes in sections:
            parts.append(f"\n{escape(title)}\n  Inputs and options:")
            parts += [f"    - {escape(x)}" for x in inputs]
            parts.append("  Decisions:")
            parts += [f"    {'  ' if x.startswith('  ') else '- '}{escape(x.strip())}" for x in changes]
        return to_text(*parts, width=width)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(COMPARE_FORMATS)}")


# -- sweeps ------------------------------------------------------------------------


def frontier_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every row's columns in first-seen order, the note last: the same order whichever
    scenario failed."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [c for c in columns if c != "note"] + (["note"] if "note" in columns else [])


def render_frontier(rows: list[dict[str, Any]], *, width: int = 140) -> str:
    """A sweep's frontier as a terminal table: one row per scenario."""
    table = Table(title="Frontier", box=box.SIMPLE_HEAD)
    columns = frontier_columns(rows)
    if not any(row.get("note") for row in rows):  # every scenario solved: nothing to note
        columns = [c for c in columns if c != "note"]
    short = [col.rsplit(".", 1)[-1] for col in columns]
    for col, name in zip(columns, short, strict=True):
        # A knob's path is shown by its last part unless two knobs share it; frontier.csv keeps
        # the whole path.
        table.add_column(
            escape(name if short.count(name) == 1 else col),
            justify="left" if col in ("status", "note", "objective") else "right",
        )
    shown = {col: _column_cells([row.get(col, "") for row in rows], col) for col in columns}
    for i in range(len(rows)):
        table.add_row(*(escape(shown[col][i]) for col in columns))
    return to_text(table, width=width)


def frontier_csv(rows: list[dict[str, Any]]) -> str:
    """A sweep's frontier as CSV (formula-like text neutralised)."""
    columns = frontier_columns(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return buf.getvalue()


def _column_cells(values: list[Any], column: str) -> list[str]:
    """One frontier column as text, every number in it with the same decimals so that the
    column reads down: a knob's values with as many as the most precise needs (3.0, 3.5, 4.0),
    a share with 4, merit with 4 below 10 and 2 from there."""
    if column == "note":
        return [str(v)[:57] + "..." if len(str(v)) > 60 else str(v) for v in values]

    def is_number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    numbers = [v for v in values if is_number(v)]
    if not any(isinstance(v, float) for v in numbers):
        return [str(v) for v in values]
    if column.startswith("share_"):
        spec = ".4f"
    elif column == "merit":
        spec = ".4f" if max(abs(v) for v in numbers) < 10 else ",.2f"
    else:  # a knob: exact, as the user gave it
        spec = f".{max(_decimals(v) for v in numbers)}f"
    return [format(v, spec) if is_number(v) else str(v) for v in values]


def _decimals(value: float) -> int:
    """The decimals a value given on the command line needs (0.82: 2; 4: 0; 1e-07: 7)."""
    exponent = Decimal(repr(value)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
