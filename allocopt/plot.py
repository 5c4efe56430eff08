"""Plot a sweep's frontier to PNG and SVG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, same output everywhere

import matplotlib.pyplot as plt


def plot_frontier(rows: list[dict[str, Any]], knob: str, base: Path, title: str) -> list[Path]:
    """Merit against the knob's value, one line per objective; infeasible scenarios marked.

    Writes BASE.png and BASE.svg (both without timestamps, so the same sweep gives the same files).
    """
    plt.rcParams["svg.hashsalt"] = "allocopt"
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    objectives = sorted({str(r.get("objective", "")) for r in rows})
    for objective in objectives:
        mine = [r for r in rows if str(r.get("objective", "")) == objective]
        solved = [r for r in mine if "merit" in r]
        label = f"objective {objective}" if objective else "merit achieved"
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
    ax.set_ylabel("merit (objective value)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    fig.savefig(paths[0], metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return paths
