"""Tables of the review analyses: the ranking by each calibration method, and stability runs."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from allocopt.calibrate import METHODS, Calibrated, calibrate
from allocopt.report import safe_cell, to_text
from allocopt.round import Round
from allocopt.stability import StabilityOut
from allocopt.terms import rank_key

FORMATS = ("table", "csv", "json")


def ranking_rows(rnd: Round) -> list[dict[str, Any]]:
    """One row per proposal, in the order of the round as given (committee rank, then score):
    its score and, per calibration method, the calibrated score, interval and ranks."""
    by_method = {m: calibrate(rnd, m) for m in METHODS}
    # Each method's ranking by calibrated score (ties by id), 1 = best.
    places = {m: _places(c) for m, c in by_method.items()}
    rows = []
    for i, p in enumerate(sorted(rnd.proposals, key=rank_key)):
        row: dict[str, Any] = {
            "proposal": p.id,
            "rank": i + 1,
            "score": p.score,
            "reviews": len(p.reviews or []),
        }
        for m, c in by_method.items():
            cal = c[p.id]
            row[f"{m}_score"] = cal.score
            row[f"{m}_rank"] = places[m][p.id]
        model = by_method["model"][p.id]
        row.update(
            model_low=model.low,
            model_high=model.high,
            model_expected_rank=model.expected_rank,
            model_rank_low=model.rank_low,
            model_rank_high=model.rank_high,
        )
        rows.append(row)
    return rows


def _places(calibrated: dict[str, Calibrated]) -> dict[str, int]:
    """A method's ranking by calibrated score (ties by id), 1 = best."""
    ordered = sorted(calibrated, key=lambda pid: (-calibrated[pid].score, pid))
    return {pid: i + 1 for i, pid in enumerate(ordered)}


def render_ranking(rnd: Round, fmt: str, *, width: int = 140) -> str:
    """The ranking each calibration method gives, side by side."""
    rows = ranking_rows(rnd)
    if fmt == "json":
        return json.dumps({"round_id": rnd.id, "proposals": rows}, indent=2) + "\n"
    if fmt == "csv":
        return _csv(rows)
    interval = f"{rnd.policy.reviews.interval:.0%}"
    table = _table(
        f"{escape(rnd.id)}: ranking by each calibration method (policy: "
        f"{rnd.policy.reviews.calibration}; intervals {interval})",
        [
            "rank",
            "proposal",
            "score",
            "reviews",
            "mean",
            "standardised",
            "model",
            f"model {interval}",
            "model rank (expected, interval)",
        ],
        left=("proposal",),
    )
    for r in rows:
        table.add_row(
            str(r["rank"]),
            escape(r["proposal"]),
            f"{r['score']:g}",
            str(r["reviews"]),
            f"{r['mean_score']:.2f} (#{r['mean_rank']})",
            f"{r['standardised_score']:.2f} (#{r['standardised_rank']})",
            f"{r['model_score']:.2f} (#{r['model_rank']})",
            f"{r['model_low']:.2f}-{r['model_high']:.2f}",
            f"{r['model_expected_rank']:.1f} ({r['model_rank_low']}-{r['model_rank_high']})",
        )
    return to_text(table, width=width)


def render_stability(result: StabilityOut, fmt: str, *, width: int = 140, rows: int | None = None) -> str:
    """A stability run: the round-level figures, then every proposal whose decision ever flips
    (all of them in csv and json)."""
    if fmt == "json":
        return result.model_dump_json(indent=2) + "\n"
    data = [p.model_dump() for p in result.proposals]
    if fmt == "csv":
        return _csv(data)
    head = (
        f"{result.round_id}: {result.feasible_samples} of {result.samples} samples solved "
        f"(objective {result.objective}, calibration {result.calibration}, draw {result.draw}, "
        f"seed {result.seed}); {result.flip_fraction:.2%} of decisions flip"
    )
    moving = [p for p in result.proposals if p.flips > 0]
    table = _table(
        f"Proposals whose decision flips in some sample ({len(moving)} of {len(result.proposals)})",
        [
            "rank",
            "proposal",
            "score",
            "reviews",
            "funded",
            "award (ref GPU-h)",
            "P(funded)",
            "expected award",
            "flips",
        ],
        left=("proposal", "funded"),
    )
    for p in moving[:rows] if rows is not None else moving:
        table.add_row(
            str(p.rank_position),
            escape(p.id),
            f"{p.score:g}",
            str(p.reviews),
            "yes" if p.funded else "no",
            f"{p.reference_gpu_hours:,.0f}",
            f"{p.probability_funded:.0%}",
            f"{p.expected_reference_gpu_hours:,.0f}",
            str(p.flips),
        )
    notes = [f"  {escape(f)}" for f in result.failures]
    return to_text(head, table, *notes, width=width)


def _table(title: str, columns: list[str], left: tuple[str, ...]) -> Table:
    """A table with these columns, right-aligned but for the ``left`` ones."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    return table


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return buf.getvalue()
