"""Differences between solutions, in committee words."""

from __future__ import annotations

from allocopt.solution import ProposalResult, Solution


def differences_apart_from_timing(a: Solution, b: Solution) -> list[str]:
    """Every way b differs from a, ignoring the wall-clock timing block (empty: identical)."""
    if a.model_dump(exclude={"timing"}) == b.model_dump(exclude={"timing"}):
        return []
    out = []
    if a.provenance.input_sha256 != b.provenance.input_sha256:
        out.append("they were made from different rounds (input sha256)")
    if a.objective != b.objective:
        out.append(f"objective {a.objective.scaled:,} in the first, {b.objective.scaled:,} in the second")
    before = {r.id: r for r in a.proposals}
    for r in b.proposals:
        old = before.get(r.id)
        if old is None or old.allocations != r.allocations:
            out.append(f"{r.id}: {_award(old)} in the first, {_award(r)} in the second")
    for block in ("metrics", "solver", "rank", "provenance"):
        if getattr(a, block) != getattr(b, block):
            out.append(f"the {block} block")
    return out or ["the reasons or other recorded details"]


def _award(r: ProposalResult | None) -> str:
    if r is None:
        return "absent"
    return ", ".join(f"{x.gpu_hours:,} GPU-h on {x.machine}" for x in r.allocations) or "no award"
