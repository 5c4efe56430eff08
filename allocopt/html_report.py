"""A self-contained HTML report of a solution, for a committee.

One file that opens offline: inline CSS, charts drawn as inline SVG by plain
string building, no scripts and nothing fetched (a Content-Security-Policy
forbids any load). The page holds the headline figures, a share chart, a
machine chart, a score-against-award chart, the funded list and every
proposal's decision with its reasons and pins.

Titles, applicant names, reasons, pin reasons and names of rounds, groups and
machines are untrusted text: every piece of text passes through ``_e``
(``html.escape`` with ``quote=True``), in elements, attributes and SVG tooltips
alike. The output depends on the solution alone, iterated in sorted order, so
the same solution always gives the same bytes; the wall-clock ``timing`` block
is left out, so a reproduced solution gives the same page too.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from html import escape

from allocopt.explain import Digest
from allocopt.report import explanation_digest, headline
from allocopt.round import Pin, Proposal
from allocopt.solution import (
    STOPPED_BY,
    Decision,
    GroupMetrics,
    MachineMetrics,
    PinOut,
    ProposalResult,
    Solution,
)

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies),
# paired with a distinct marker shape per decision in the scatter chart.
_DECISIONS: dict[Decision, tuple[str, str, str]] = {
    # decision: (words, css class, colour)
    Decision.FUNDED: ("funded in full", "funded", "#0072b2"),
    Decision.REDUCED: ("reduced", "reduced", "#e69f00"),
    Decision.NOT_FUNDED: ("not funded", "notfunded", "#d55e00"),
    Decision.NOT_ELIGIBLE: ("not eligible", "ineligible", "#8c8c8c"),
}
_ORDER = (Decision.FUNDED, Decision.REDUCED, Decision.NOT_FUNDED, Decision.NOT_ELIGIBLE)
_BAR = "#0072b2"
_OUTSIDE = "#d55e00"
_COMMERCIAL = "#e69f00"
_GRID = "#e3e6ea"
_AXIS = "#5b6470"
_INK = "#1d232b"

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: #1d232b;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 24px 48px; }
header h1 { font-size: 24px; margin: 0 0 2px; }
header p { margin: 0 0 16px; color: #5b6470; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 16px 20px;
  margin: 0 0 20px; }
h2 { font-size: 18px; margin: 0 0 4px; }
p.note { margin: 0 0 12px; color: #5b6470; font-size: 13px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 5px 7px; border-bottom: 1px solid #e6e8eb; text-align: left; vertical-align: top; }
thead th { position: sticky; top: 0; background: #f8f9fa; border-bottom: 2px solid #cfd4da;
  white-space: nowrap; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: #4a525c; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.n { white-space: nowrap; }
td.id { white-space: nowrap; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; }
tbody tr:hover { background: #f7f9fc; }
tr:target { background: #fff6d9; }
tfoot td { font-weight: 600; border-top: 2px solid #cfd4da; border-bottom: none; }
table.facts th { width: 190px; color: #4a525c; font-weight: 600; white-space: nowrap; }
table.facts td, table.facts th { border-bottom: 1px solid #eef0f2; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px;
  word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 0 0 16px; }
.card { flex: 1 1 150px; border: 1px solid #dde1e6; border-top-width: 4px; border-radius: 6px;
  padding: 8px 12px; }
.card b { display: block; font-size: 26px; line-height: 1.2; }
.card span { color: #4a525c; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; color: #fff;
  white-space: nowrap; }
.proof { display: inline-block; padding: 1px 8px; border-radius: 4px; font-size: 13px; font-weight: 600; }
.proof.ok { background: #dcefe2; color: #14522a; }
.proof.gap { background: #dde9f5; color: #123f6b; }
.proof.warn { background: #fde6cf; color: #7a3b00; }
.funded { background: #0072b2; border-top-color: #0072b2; }
.reduced { background: #e69f00; border-top-color: #e69f00; color: #1d232b; }
.notfunded { background: #d55e00; border-top-color: #d55e00; }
.ineligible { background: #8c8c8c; border-top-color: #8c8c8c; }
.card.funded, .card.reduced, .card.notfunded, .card.ineligible { background: #fff; color: #1d232b; }
.pin { background: #fff4d6; border-left: 3px solid #e69f00; padding: 2px 6px; margin: 0 0 4px; }
td.why { min-width: 260px; width: 32%; }
td.title { min-width: 150px; }
ul.reasons { margin: 0; padding-left: 18px; }
ul.reasons li { margin: 0 0 2px; }
.code { color: #6b7480; font-size: 12px; }
.muted { color: #8a929c; }
.small { font-size: 12px; color: #5b6470; }
figure { margin: 8px 0 0; }
figcaption { font-size: 13px; color: #5b6470; margin-top: 4px; }
svg { max-width: 100%; height: auto; display: block; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
a { color: #0b5c99; }
footer { color: #6b7480; font-size: 12px; text-align: center; }
@media print {
  body { background: #fff; }
  main { max-width: none; padding: 0; }
  section { border: none; padding: 0; }
  thead th { position: static; }
  .chart { break-inside: avoid; }
}
"""


def html_report(solution: Solution) -> str:
    """The whole report as one self-contained, deterministic HTML document."""
    name = solution.round_name
    found = explanation_digest(solution)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>Allocation: {_e(name)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<header>",
        f"<h1>Allocation: {_e(name)}</h1>",
        f"<p>Round <code>{_e(solution.round_id)}</code> &middot; objective "
        f"<b>{_e(solution.objective.kind)}</b> &middot; {len(solution.proposals)} proposals on "
        f"{len(solution.metrics.machines)} machine(s)</p>",
        "</header>",
        _summary(solution),
        _charts(solution),
        _funded_list(solution),
        _decisions(solution, found),
        _explanations(found),
        "<footer>",
        f"Made by allocopt from the solution file alone (solved with allocopt "
        f"{_e(solution.provenance.allocopt_version)}); input sha256 "
        f"<code>{_e(solution.provenance.input_sha256)}</code>.",
        "</footer>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# -- text helpers --------------------------------------------------------------


def _e(text: object) -> str:
    """Escape any text for HTML element content and quoted attributes (and SVG)."""
    return escape(str(text), quote=True)


def _short(text: str, limit: int) -> str:
    """Shorten text for a chart label (before escaping, so no entity is cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _pct(fraction: float, digits: int = 1) -> str:
    """A percentage that never shows 100 % for less than the whole."""
    text = f"{fraction:.{digits}%}"
    if fraction < 1 and text == f"{1:.{digits}%}":
        scale = 10 ** (digits + 2)
        text = f"{math.floor(fraction * scale) / scale:.{digits}%}"
    return text


def _n(x: float) -> str:
    """An SVG coordinate: one decimal, stable across platforms."""
    return f"{x:.1f}"


def _hours(x: float) -> str:
    return f"{x:,.0f}"


def _proof(solution: Solution) -> tuple[str, str]:
    """(css class, words) for the proof badge."""
    if solution.rank is not None:
        unproven = sum(not s.proven for s in solution.rank.steps)
        if not unproven:
            return "ok", "every rank step proven"
        return "warn", f"{unproven} rank step(s) unproven"
    if solution.solver.status == "optimal":
        return "ok", "proven optimal"
    gap = solution.objective.gap or 0
    if solution.solver.stop_reason == "gap_limit":
        return "gap", f"proven within {gap:.4%} of the best possible"
    return (
        "warn",
        f"not proven: gap {gap:.4%}, stopped by {STOPPED_BY[solution.solver.stop_reason]}",
    )


# -- summary -------------------------------------------------------------------


def _summary(solution: Solution) -> str:
    counts = solution.metrics.decisions
    cards = []
    for d in _ORDER:
        words, cls, _ = _DECISIONS[d]
        cards.append(f'<div class="card {cls}"><b>{counts.get(d.value, 0)}</b><span>{_e(words)}</span></div>')
    proof_cls, proof_words = _proof(solution)
    obj = solution.objective
    rows: list[tuple[str, str]] = [
        (
            "Objective kind",
            f"<b>{_e(obj.kind)}</b> (value per award: "
            f"{_e('fraction of request' if obj.value_basis == 'fraction' else 'reference GPU-hours')})",
        ),
        ("Proof", f'<span class="proof {proof_cls}">{_e(proof_words)}</span>'),
    ]
    for label, value in headline(solution):
        if label == "Input sha256":
            rows.append((_e(label), f"<code>{_e(value)}</code>"))
        else:
            rows.append((_e(label), _e(value)))
    prov = solution.provenance
    basis = "the round's capacity" if solution.metrics.share_basis == "capacity" else "the hours awarded"
    options = ", ".join(
        f"{k} {'none' if v is None else v}" for k, v in sorted(prov.options.items(), key=lambda kv: kv[0])
    )
    rows += [
        ("Shares measured against", _e(basis)),
        ("Solver", _e(f"{solution.solver.deterministic_seconds:,.2f} deterministic seconds of CP-SAT work")),
        ("Solve options", _e(f"{options}; seed {prov.seed}")),
        (
            "Software",
            _e(
                f"allocopt {prov.allocopt_version}, OR-Tools {prov.ortools_version}, "
                f"SciPy {prov.scipy_version}, highspy {prov.highspy_version or 'none'}, "
                f"Python {prov.python_version}"
            ),
        ),
    ]
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return (
        '<section id="summary">\n<h2>Summary</h2>\n'
        f'<div class="cards">{"".join(cards)}</div>\n'
        f'<table class="facts"><tbody>{table}</tbody></table>\n</section>'
    )


# -- charts --------------------------------------------------------------------


def _charts(solution: Solution) -> str:
    basis = "the round's capacity" if solution.metrics.share_basis == "capacity" else "the hours awarded"
    return "\n".join(
        [
            '<section id="shares" class="chart">',
            "<h2>Shares</h2>",
            f'<p class="note">Each share group\'s part of {_e(basis)} in reference GPU-hours, against the '
            "range its bounds allow. A dashed range is soft: it may be crossed at a penalty.</p>",
            f"<figure>{_share_chart(solution.metrics.groups, solution)}</figure>",
            "</section>",
            '<section id="machines" class="chart">',
            "<h2>Machines</h2>",
            '<p class="note">GPU-hours awarded on each machine against those available to the round, in the '
            "machine's own GPU-hours; the commercial part of the award against the machine's commercial cap."
            "</p>",
            f"<figure>{_machine_chart(solution.metrics.machines)}</figure>",
            "</section>",
            '<section id="scores" class="chart">',
            "<h2>Score and award</h2>",
            '<p class="note">Each proposal\'s peer-review score against the fraction of its request awarded. '
            "Proposals not eligible are in the strip below the axis. Points are nudged slightly sideways "
            "so that equal scores stay visible; hover a point for the proposal.</p>",
            f"<figure>{_score_chart(solution)}</figure>",
            "</section>",
        ]
    )


def _svg(width: int, height: int, label: str, body: Iterable[str]) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(label)}">\n' + "\n".join(body) + "\n</svg>"
    )


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: int = 12,
    anchor: str = "start",
    fill: str = _INK,
    weight: str = "normal",
) -> str:
    weight_attr = f' font-weight="{weight}"' if weight != "normal" else ""
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"'
        f"{weight_attr}>{_e(text)}</text>"
    )


def _share_chart(groups: list[GroupMetrics], solution: Solution) -> str:
    width, left, right = 1100, 220, 260
    plot = width - left - right
    if not groups:
        return _svg(width, 40, "Shares: no share groups", [_text(10, 24, "This round has no share groups.")])
    penalties = {g.id: g.penalty for g in solution.input.policy.share_groups}
    top, row = 34, 56
    height = top + row * len(groups) + 30

    def x(fraction: float) -> float:
        return left + plot * max(0.0, min(1.0, fraction))

    out = [
        # legend
        f'<rect x="{left}" y="6" width="18" height="10" fill="{_BAR}"/>',
        _text(left + 24, 15, "awarded share", size=11),
        f'<rect x="{left + 130}" y="4" width="26" height="14" fill="#dbe7f3" stroke="#7b9cc0"/>',
        _text(left + 162, 15, "allowed range (hard)", size=11),
        f'<rect x="{left + 300}" y="4" width="26" height="14" fill="#dbe7f3" stroke="#7b9cc0" '
        'stroke-dasharray="4 3"/>',
        _text(left + 332, 15, "soft range", size=11),
        f'<rect x="{left + 410}" y="6" width="18" height="10" fill="{_OUTSIDE}"/>',
        _text(left + 434, 15, "outside its range", size=11),
    ]
    bottom = top + row * len(groups)
    for i in range(6):
        tx = x(i / 5)
        out.append(f'<line x1="{_n(tx)}" y1="{top}" x2="{_n(tx)}" y2="{bottom}" stroke="{_GRID}"/>')
        out.append(_text(tx, bottom + 16, f"{i * 20}%", size=11, anchor="middle", fill=_AXIS))
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{left + plot}" y2="{bottom}" stroke="{_AXIS}"/>')
    for i, g in enumerate(groups):
        y0 = top + row * i
        mid = y0 + row / 2
        outside = g.share < g.min_share - 1e-9 or g.share > g.max_share + 1e-9
        penalty = penalties.get(g.id)
        kind = f"soft, penalty {penalty:g} per hour outside" if g.soft and penalty is not None else "hard"
        if g.soft and penalty is None:
            kind = "soft"
        off = g.shortfall_reference_gpu_hours + g.excess_reference_gpu_hours
        tip = (
            f"{g.name}: {g.share:.1%} ({_hours(g.reference_gpu_hours)} reference GPU-h), bounds "
            f"{g.min_share:.0%}-{g.max_share:.0%} ({kind}); {g.proposals_funded} proposal(s) funded"
            + (f"; off its bounds by {off:,} reference GPU-h" if off else "")
        )
        dash = ' stroke-dasharray="4 3"' if g.soft else ""
        out.append(f"<g><title>{_e(tip)}</title>")
        out.append(
            f'<rect x="{_n(x(g.min_share))}" y="{_n(mid - 15)}" '
            f'width="{_n(x(g.max_share) - x(g.min_share))}" height="30" fill="#dbe7f3" '
            f'stroke="#7b9cc0"{dash}/>'
        )
        colour = _OUTSIDE if outside else _BAR
        out.append(
            f'<rect x="{left}" y="{_n(mid - 8)}" width="{_n(x(g.share) - left)}" height="16" '
            f'fill="{colour}"/>'
        )
        for bound in (g.min_share, g.max_share):
            out.append(
                f'<line x1="{_n(x(bound))}" y1="{_n(mid - 17)}" x2="{_n(x(bound))}" y2="{_n(mid + 17)}" '
                f'stroke="{_INK}" stroke-width="2"/>'
            )
        out.append(_text(left - 10, mid - 2, _short(g.name, 26), anchor="end", weight="600"))
        out.append(
            _text(
                left - 10,
                mid + 13,
                "soft bounds" if g.soft else "hard bounds",
                size=11,
                anchor="end",
                fill=_AXIS,
            )
        )
        out.append(_text(left + plot + 12, mid - 2, f"{g.share:.1%} awarded", weight="600"))
        out.append(
            _text(
                left + plot + 12,
                mid + 13,
                f"bounds {g.min_share:.0%}-{g.max_share:.0%}" + (f", off by {off:,} h" if off else ""),
                size=11,
                fill=_AXIS,
            )
        )
        out.append("</g>")
    return _svg(width, height, "Awarded share per share group against its bounds", out)


def _machine_chart(machines: list[MachineMetrics]) -> str:
    width, left, right = 1100, 220, 350
    plot = width - left - right
    top, row = 34, 52
    height = top + row * len(machines) + 30
    out = [
        f'<rect x="{left}" y="6" width="18" height="10" fill="{_BAR}"/>',
        _text(left + 24, 15, "awarded", size=11),
        f'<rect x="{left + 90}" y="6" width="18" height="10" fill="{_COMMERCIAL}"/>',
        _text(left + 114, 15, "of which commercial", size=11),
        f'<rect x="{left + 250}" y="6" width="18" height="10" fill="#edf0f3" stroke="#c5cbd3"/>',
        _text(left + 274, 15, "idle", size=11),
        f'<line x1="{left + 320}" y1="3" x2="{left + 320}" y2="19" stroke="{_OUTSIDE}" stroke-width="2" '
        'stroke-dasharray="3 2"/>',
        _text(left + 328, 15, "commercial cap", size=11),
    ]
    bottom = top + row * len(machines)
    for i in range(6):
        tx = left + plot * i / 5
        out.append(f'<line x1="{_n(tx)}" y1="{top}" x2="{_n(tx)}" y2="{bottom}" stroke="{_GRID}"/>')
        out.append(_text(tx, bottom + 16, f"{i * 20}%", size=11, anchor="middle", fill=_AXIS))
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{left + plot}" y2="{bottom}" stroke="{_AXIS}"/>')
    for i, m in enumerate(machines):
        y0 = top + row * i
        mid = y0 + row / 2
        avail = m.gpu_hours

        def x(h: float, avail: int = avail) -> float:
            return left + (plot * max(0.0, min(1.0, h / avail)) if avail > 0 else 0.0)

        commercial_share = (
            m.commercial_gpu_hours / m.commercial_cap_gpu_hours if m.commercial_cap_gpu_hours else 0
        )
        tip = (
            f"{m.name}: {m.awarded_gpu_hours:,} of {avail:,} GPU-h awarded ({_pct(m.utilisation)}), "
            f"{m.idle_gpu_hours:,} idle; commercial {m.commercial_gpu_hours:,} of a cap of "
            f"{m.commercial_cap_gpu_hours:,} GPU-h; {m.proposals_funded} award(s)"
        )
        out.append(f"<g><title>{_e(tip)}</title>")
        out.append(
            f'<rect x="{left}" y="{_n(mid - 10)}" width="{plot}" height="20" fill="#edf0f3" '
            'stroke="#c5cbd3"/>'
        )
        out.append(
            f'<rect x="{left}" y="{_n(mid - 10)}" width="{_n(x(m.awarded_gpu_hours) - left)}" height="20" '
            f'fill="{_BAR}"/>'
        )
        if m.commercial_gpu_hours:
            out.append(
                f'<rect x="{left}" y="{_n(mid - 10)}" width="{_n(x(m.commercial_gpu_hours) - left)}" '
                f'height="20" fill="{_COMMERCIAL}"/>'
            )
        cap_x = x(m.commercial_cap_gpu_hours)
        out.append(
            f'<line x1="{_n(cap_x)}" y1="{_n(mid - 15)}" x2="{_n(cap_x)}" y2="{_n(mid + 15)}" '
            f'stroke="{_OUTSIDE}" stroke-width="2" stroke-dasharray="3 2"/>'
        )
        out.append(_text(left - 10, mid - 2, _short(m.name, 26), anchor="end", weight="600"))
        out.append(
            _text(left - 10, mid + 13, f"{m.proposals_funded} award(s)", size=11, anchor="end", fill=_AXIS)
        )
        out.append(
            _text(
                left + plot + 12,
                mid - 2,
                f"{_pct(m.utilisation)} used: {m.awarded_gpu_hours:,} of {avail:,} GPU-h",
                weight="600",
            )
        )
        out.append(
            _text(
                left + plot + 12,
                mid + 13,
                f"commercial {m.commercial_gpu_hours:,} of cap {m.commercial_cap_gpu_hours:,}"
                + (f" ({_pct(commercial_share, 0)})" if m.commercial_cap_gpu_hours else ""),
                size=11,
                fill=_AXIS,
            )
        )
        out.append("</g>")
    return _svg(width, height, "Awarded against available GPU-hours and commercial use per machine", out)


def _ticks(lo: float, hi: float, most: int = 10) -> list[float]:
    """Round tick values from lo to hi, at most `most` intervals."""
    span = hi - lo
    if span <= 0:
        return [lo]
    magnitude = 10 ** math.floor(math.log10(span / most))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if span / (m * magnitude) <= most)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 10))
        k += 1
    return ticks


def _jitter(key: str, spread: float) -> float:
    """A fixed pseudo-random offset in [-spread, spread] from a proposal id (same id, same offset)."""
    return (zlib.crc32(key.encode("utf-8")) % 2001 / 1000 - 1) * spread


def _marker(decision: Decision, cx: float, cy: float) -> str:
    colour = _DECISIONS[decision][2]
    if decision is Decision.FUNDED:
        return f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="5" fill="{colour}" fill-opacity="0.8" stroke="#fff"/>'
    if decision is Decision.REDUCED:
        pts = (
            f"{_n(cx)},{_n(cy - 6.5)} {_n(cx + 6.5)},{_n(cy)} {_n(cx)},{_n(cy + 6.5)} {_n(cx - 6.5)},{_n(cy)}"
        )
        return f'<polygon points="{pts}" fill="{colour}" fill-opacity="0.9" stroke="#fff"/>'
    if decision is Decision.NOT_FUNDED:
        d = 4.5
        return (
            f'<path d="M{_n(cx - d)},{_n(cy - d)}L{_n(cx + d)},{_n(cy + d)}M{_n(cx - d)},{_n(cy + d)}'
            f'L{_n(cx + d)},{_n(cy - d)}" stroke="{colour}" stroke-width="2.2" fill="none"/>'
        )
    return (
        f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="4" fill="none" stroke="{colour}" stroke-width="1.5" '
        'stroke-opacity="0.8"/>'
    )


def _score_chart(solution: Solution) -> str:
    width, height = 1100, 480
    left, right, top = 70, 30, 50
    plot_w = width - left - right
    plot_h = 320
    bottom = top + plot_h
    strip_top, strip_h = bottom + 26, 34
    scale = solution.input.score_scale
    lo, hi = scale.min, scale.max
    span = hi - lo or 1.0

    def x(score: float) -> float:
        return left + plot_w * max(0.0, min(1.0, (score - lo) / span))

    def y(fraction: float) -> float:
        return bottom - plot_h * max(0.0, min(1.0, fraction))

    out: list[str] = []
    # legend
    lx = left
    for d in _ORDER:
        words = _DECISIONS[d][0]
        out.append(_marker(d, lx + 6, 14))
        out.append(_text(lx + 16, 18, words, size=12))
        lx += 30 + 8 * len(words)
    # grid and axes
    for i in range(6):
        f = i / 5
        out.append(
            f'<line x1="{left}" y1="{_n(y(f))}" x2="{left + plot_w}" y2="{_n(y(f))}" stroke="{_GRID}"/>'
        )
        out.append(_text(left - 8, y(f) + 4, f"{f:.0%}", size=11, anchor="end", fill=_AXIS))
    for t in _ticks(lo, hi):
        out.append(f'<line x1="{_n(x(t))}" y1="{top}" x2="{_n(x(t))}" y2="{bottom}" stroke="{_GRID}"/>')
        out.append(_text(x(t), strip_top + strip_h + 18, f"{t:g}", size=11, anchor="middle", fill=_AXIS))
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="{_AXIS}"/>')
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="{_AXIS}"/>')
    out.append(
        f'<rect x="{left}" y="{strip_top}" width="{plot_w}" height="{strip_h}" fill="#f3f4f6" '
        f'stroke="{_GRID}"/>'
    )
    out.append(
        _text(left - 8, strip_top + strip_h / 2 + 4, "not eligible", size=11, anchor="end", fill=_AXIS)
    )
    threshold = solution.input.policy.score_threshold
    if lo <= threshold <= hi:
        tx = x(threshold)
        out.append(
            f'<line x1="{_n(tx)}" y1="{top}" x2="{_n(tx)}" y2="{strip_top + strip_h}" stroke="{_AXIS}" '
            'stroke-dasharray="5 4"/>'
        )
        out.append(_text(tx, top - 6, f"threshold {threshold:g}", size=11, anchor="middle", fill=_AXIS))
    out.append(
        _text(
            left + plot_w / 2,
            strip_top + strip_h + 36,
            f"peer-review score ({lo:g} to {hi:g})",
            size=12,
            anchor="middle",
            fill=_INK,
        )
    )
    out.append(
        f'<text x="16" y="{_n(top + plot_h / 2)}" font-size="12" text-anchor="middle" fill="{_INK}" '
        f'transform="rotate(-90 16 {_n(top + plot_h / 2)})">fraction of request awarded</text>'
    )
    # points: drawn in a fixed order (not eligible first, funded last), each group by id
    titles = {p.id: p for p in solution.input.proposals}
    by_decision: dict[Decision, list[ProposalResult]] = {d: [] for d in _ORDER}
    for r in sorted(solution.proposals, key=lambda r: r.id):
        by_decision[r.decision].append(r)
    for d in reversed(_ORDER):
        for r in by_decision[d]:
            cx = x(r.score) + _jitter(r.id, 4.0)
            if d is Decision.NOT_ELIGIBLE:
                cy = strip_top + strip_h / 2 + _jitter(r.id[::-1], strip_h / 2 - 6)
            else:
                cy = y(r.fraction_of_request)
            p = titles[r.id]
            tip = (
                f"{r.id} \u2013 {p.title} ({p.applicant.name}): score {r.score:g}, {_DECISIONS[d][0]}, "
                f"{_pct(r.fraction_of_request)} of request"
            )
            out.append(f"<g><title>{_e(tip)}</title>{_marker(d, cx, cy)}</g>")
    return _svg(width, height, "Score against fraction of request awarded, by decision", out)


# -- tables --------------------------------------------------------------------


def _award_cells(r: ProposalResult, machine_names: dict[str, str]) -> tuple[str, str]:
    """(machine names, GPU-hours), one line per machine of the award."""
    names = "<br>".join(_e(machine_names.get(a.machine, a.machine)) for a in r.allocations)
    hours = "<br>".join(f"{a.gpu_hours:,}" for a in r.allocations)
    return names, hours


def _lot_mark(solution: Solution, pid: str) -> str:
    """A star on a rank the lottery drew (explained in the headline)."""
    drawn = solution.lottery is not None and pid in solution.lottery.drawn
    return '<span title="place drawn by lot">*</span>' if drawn else ""


def _funded_list(solution: Solution) -> str:
    titles = {p.id: p for p in solution.input.proposals}
    machine_names = {m.id: m.name for m in solution.input.machines}
    funded = sorted(
        (r for r in solution.proposals if r.allocations),
        key=lambda r: (r.rank_position, r.id),
    )
    rows = []
    for r in funded:
        p = titles[r.id]
        names, hours = _award_cells(r, machine_names)
        rows.append(
            "<tr>"
            f'<td class="n">{r.rank_position}{_lot_mark(solution, r.id)}</td>'
            f'<td class="id"><a href="#p-{_e(r.id)}">{_e(r.id)}</a></td>'
            f"<td>{_e(p.title)}</td>"
            f"<td>{_e(p.applicant.name)}</td>"
            f"<td>{names}</td>"
            f'<td class="n">{hours}</td>'
            f'<td class="n">{_hours(r.reference_gpu_hours)}</td>'
            f'<td class="n">{_pct(r.fraction_of_request)}</td>'
            f"<td>{_badge(r.decision)}</td>"
            "</tr>"
        )
    total = sum(r.reference_gpu_hours for r in funded)
    body = "\n".join(rows) if rows else '<tr><td colspan="9" class="muted">No proposal is funded.</td></tr>'
    return (
        '<section id="funded">\n<h2>Funded proposals</h2>\n'
        f'<p class="note">{len(funded)} proposal(s) with an award, in ranking order (committee rank, then '
        "score, then id). GPU-hours are each machine's own; reference GPU-hours are comparable across "
        "machines.</p>\n"
        "<table><thead><tr>"
        '<th class="n">Rank</th><th>Proposal</th><th>Title</th><th>Applicant</th><th>Machine(s)</th>'
        '<th class="n">GPU-h</th><th class="n">Reference GPU-h</th><th class="n">Of request</th>'
        "<th>Decision</th></tr></thead>\n"
        f"<tbody>\n{body}\n</tbody>\n"
        f'<tfoot><tr><td colspan="6">Total</td><td class="n">{_hours(total)}</td><td colspan="2"></td></tr>'
        "</tfoot></table>\n</section>"
    )


def _badge(decision: Decision) -> str:
    words, cls, _ = _DECISIONS[decision]
    return f'<span class="badge {cls}">{_e(words)}</span>'


def _pin_text(r: ProposalResult, given: PinOut, pins: dict[str, Pin], machine_names: dict[str, str]) -> str:
    pin = pins.get(r.id)
    what: str = given.action
    if pin is not None and pin.machine is not None:
        what += f" on {machine_names.get(pin.machine, pin.machine)}"
    if pin is not None and pin.gpu_hours is not None:
        what += f", exactly {pin.gpu_hours:,} GPU-h"
    return (
        f'<div class="pin"><b>Pinned by the committee: {_e(what)}.</b> '
        f"Committee's reason: {_e(given.reason)}</div>"
    )


def _score(r: ProposalResult) -> str:
    """The score, with its calibrated interval when the round has reviews."""
    c = r.calibrated
    if c is None:
        return f"{r.score:g}"
    return f'{r.score:.2f}<br><span class="small">{c.low:.2f}\u2013{c.high:.2f}</span>'


def _applicant(p: Proposal) -> str:
    a = p.applicant
    return f'{_e(a.name)}<br><span class="small">{_e(a.kind.value)}, {_e(a.country)}</span>'


def _explanations(found: Digest) -> str:
    """Rank inversions with their causes and the head of each reserve list."""
    inversions = "".join(f"<li>{_e(x)}</li>" for x in found.first_inversions)
    reserves = ""
    for head, entries in found.reserves:
        # Each entry reads "N. ..."; the list numbers them itself.
        listed = "".join(f"<li>{_e(x.split('. ', 1)[1])}</li>" for x in entries)
        reserves += f"<li>{_e(head)}<ol>{listed}</ol></li>"
    return (
        '<section id="explanations">\n<h2>Rank inversions and reserve lists</h2>\n'
        f"<p>Rank inversions (a lower-ranked proposal got hours while a better-ranked one got a smaller "
        f"fraction of its request): {_e(found.inversions)}. The first ones:</p>\n"
        f'<ul class="reasons">{inversions}</ul>\n'
        "<p>Reserve lists: who would be funded first on each machine if hours came back.</p>\n"
        f'<ul class="reasons">{reserves}</ul>\n'
        '<p class="note">Every inversion, reserve entry and counterfactual: '
        "<code>allocopt explain</code>.</p>\n"
        "</section>"
    )


def _decisions(solution: Solution, found: Digest) -> str:
    outcompeted = dict(found.outcompeted)
    titles = {p.id: p for p in solution.input.proposals}
    machine_names = {m.id: m.name for m in solution.input.machines}
    group_names = {g.id: g.name for g in solution.input.policy.share_groups}
    pins = {pin.proposal: pin for pin in solution.input.policy.pins}
    rows = []
    for r in sorted(solution.proposals, key=lambda r: (r.rank_position, r.id)):
        p = titles[r.id]
        names, hours = _award_cells(r, machine_names)
        notes = []
        if r.pin is not None:
            notes.append(_pin_text(r, r.pin, pins, machine_names))
        if r.reasons:
            items = "".join(
                f'<li>{_e(x.detail)} <span class="code">({_e(x.code)})</span></li>' for x in r.reasons
            )
            if r.id in outcompeted:
                items += f'<li>{_e(outcompeted[r.id])} <span class="code">(outcompeted)</span></li>'
            notes.append(f'<ul class="reasons">{items}</ul>')
        group = _e(group_names.get(r.group, r.group)) if r.group else '<span class="muted">none</span>'
        commercial = '<br><span class="small">commercial</span>' if r.commercial else ""
        rows.append(
            f'<tr id="p-{_e(r.id)}">'
            f'<td class="n">{r.rank_position}{_lot_mark(solution, r.id)}</td>'
            f'<td class="id">{_e(r.id)}</td>'
            f'<td class="title">{_e(p.title)}</td>'
            f"<td>{_applicant(p)}</td>"
            f"<td>{group}{commercial}</td>"
            f'<td class="n">{_score(r)}</td>'
            f"<td>{_badge(r.decision)}</td>"
            f"<td>{names}</td>"
            f'<td class="n">{hours}</td>'
            f'<td class="n">{_pct(r.fraction_of_request) if r.allocations else ""}</td>'
            f'<td class="why">{"".join(notes)}</td>'
            "</tr>"
        )
    return (
        '<section id="decisions">\n<h2>Every proposal</h2>\n'
        f'<p class="note">All {len(solution.proposals)} proposals in ranking order, each with its decision, '
        "its award and every reason it is not funded in full (the decisive one first). A committee pin and "
        "its written reason come first.</p>\n"
        "<table><thead><tr>"
        '<th class="n">Rank</th><th>Proposal</th><th>Title</th><th>Applicant</th><th>Group</th>'
        '<th class="n">Score</th><th>Decision</th><th>Machine(s)</th><th class="n">GPU-h</th>'
        '<th class="n">Of request</th><th>Pin and reasons</th></tr></thead>\n'
        "<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n</section>"
    )
