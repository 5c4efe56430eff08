"""Plot a sweep's frontier to PNG and SVG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, same output everywhere

import matplotlib.pyplot as plt


def plot_frontier(
    rows: list[dict[str, Any]], knob: str | None, base: Path, title: str, series: list[str] | None = None
) -> list[Path]:
    """Merit against the knob's value, one line per objective and per value of each other knob
    in ``series``; infeasible scenarios marked. With no knob (only the objective varies), one bar
    per objective.

    Writes BASE.png and BASE.svg (both without timestamps, so the same sweep gives the same files).
    """
    plt.rcParams["svg.hashsalt"] = "allocopt"
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    if knob is None:
        solved = [r for r in rows if "merit" in r]
        ax.bar([str(r.get("objective", "")) for r in solved], [r["merit"] for r in solved])
        ax.set_xlabel("objective")
        return _finish(fig, ax, base, title, legend=False)
    keys = ["objective", *(series or [])]

    def line_of(r: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(r.get(k, "")) for k in keys)

    for line in sorted({line_of(r) for r in rows}):
        mine = [r for r in rows if line_of(r) == line]
        solved = [r for r in mine if "merit" in r]
        objective = line[0]
        named = [f"{k} {v}" for k, v in zip(keys, line, strict=True) if v]
        label = ", ".join(named) if named else "merit achieved"
        if solved:
            ax.plot([r[knob] for r in solved], [r["merit"] for r in solved], marker="o", label=label)
        failed = [r for r in mine if "merit" not in r]
        if failed:
            bottom = min((r["merit"] for r in rows if "merit" in r), default=0.0)
            ax.scatter(
                [r[knob] for r in failed],
                [bottom] * len(failed),
                marker="x",
                color="red",
                label=f"infeasible{f' ({objective})' if objective else ''}",
            )
    ax.set_xlabel(knob)
    return _finish(fig, ax, base, title, legend=True)


def _finish(fig: Any, ax: Any, base: Path, title: str, *, legend: bool) -> list[Path]:
    ax.set_ylabel("merit (objective value)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend()
    fig.tight_layout()
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    fig.savefig(paths[0], metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return paths
