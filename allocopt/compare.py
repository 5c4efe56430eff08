"""Compare solutions side by side, in committee words.

Everything here reads solution files only (each embeds its round), so any
two solutions can be compared months later: figures side by side, who got
in or dropped out, and what differed in the inputs and options that made them.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from allocopt.solution import Decision, ProposalResult, Solution
from allocopt.words import pct


@dataclass(frozen=True)
class Figure:
    """One row of the side-by-side table: a label and one value per solution, as shown."""

    label: str
    values: tuple[str, ...]

    @property
    def numbers(self) -> tuple[int | float | None, ...]:
        """Each value as a number where it is one number ('18,000', '97.8247', '12.5%'), else None."""
        return tuple(as_number(v) for v in self.values)


# The software that made a solution: reported beside a re-run, not a difference in its result.
VERSION_FIELDS = {"allocopt_version", "ortools_version", "scipy_version", "highspy_version", "python_version"}
_NUMBER = re.compile(r"-?\d[\d,]*(\.\d+)?")


def as_number(text: str) -> int | float | None:
    """'18,000' -> 18000 (whole), '12.5%' -> 0.125, '97.8247' -> 97.8247; anything else -> None."""
    percent = text.endswith("%")
    body = text[:-1] if percent else text
    if not _NUMBER.fullmatch(body):
        return None
    digits = body.replace(",", "")
    if percent:
        return float(digits) / 100
    return int(digits) if "." not in digits else float(digits)


@dataclass
class Comparison:
    """Solutions compared with the first one (the baseline)."""

    names: list[str]
    figures: list[Figure]
    changes: dict[str, list[str]] = field(default_factory=dict)  # per other solution, in words
    inputs: dict[str, list[str]] = field(default_factory=dict)  # per other solution, in words
    warnings: list[str] = field(default_factory=list)


def compare(solutions: list[Solution], names: list[str]) -> Comparison:
    """Side-by-side figures, and each solution's differences from the first."""
    base = solutions[0]
    result = Comparison(names=names, figures=_figures(solutions))
    for name, other in zip(names[1:], solutions[1:], strict=True):
        if other.round_id != base.round_id:
            result.warnings.append(
                f"{name} solves round '{other.round_id}', not '{base.round_id}': compare with care"
            )
        result.changes[name] = proposal_changes(base, other)
        result.inputs[name] = input_differences(base, other)
    return result


# -- figures --------------------------------------------------------------------


def _figures(solutions: list[Solution]) -> list[Figure]:
    rows: list[tuple[str, list[str]]] = [
        ("Objective", [s.objective.kind for s in solutions]),
        ("Merit (value)", [f"{s.objective.value:,.4f}" for s in solutions]),
        ("Proven gap", [_gap(s) for s in solutions]),
        ("Proposals funded", [str(_funded_count(s)) for s in solutions]),
        (
            "  in full / reduced",
            [f"{s.metrics.decisions['funded']} / {s.metrics.decisions['reduced']}" for s in solutions],
        ),
        # GPU-hours of different machines do not add up: totals are in reference GPU-hours, and
        # each machine's own hours are in its "Used" row.
        ("Reference GPU-hours awarded", [f"{s.metrics.awarded_reference_gpu_hours:,.0f}" for s in solutions]),
        (
            "Idle reference GPU-hours",
            [
                f"{s.metrics.capacity_reference_gpu_hours - s.metrics.awarded_reference_gpu_hours:,.0f}"
                for s in solutions
            ],
        ),
        ("Rank inversions", [str(rank_inversions(s)) for s in solutions]),
        ("Lowest-ranked funded", [_lowest_funded(s) for s in solutions]),
        ("Highest-ranked unfunded", [_highest_unfunded(s) for s in solutions]),
        ("Merit-weighted satisfaction", [f"{satisfaction(s):.1%}" for s in solutions]),
        ("Fairness across groups (Jain)", [_fmt_index(group_fairness(s)) for s in solutions]),
    ]
    group_ids = _union(g.id for s in solutions for g in s.metrics.groups)
    for gid in group_ids:
        rows.append((f"Share: {gid}", [_group_share(s, gid) for s in solutions]))
    machine_ids = _union(m.id for s in solutions for m in s.metrics.machines)
    for mid in machine_ids:
        rows.append((f"Used: {mid}", [_machine_use(s, mid) for s in solutions]))
        rows.append((f"Commercial: {mid}", [_machine_commercial(s, mid) for s in solutions]))
    return [Figure(label, tuple(values)) for label, values in rows]


def rank_inversions(solution: Solution) -> int:
    """Pairs where a lower-ranked proposal got hours while a better-ranked eligible one got a
    smaller fraction of its request (or none)."""
    eligible = sorted(
        (r for r in solution.proposals if r.decision != Decision.NOT_ELIGIBLE), key=lambda r: r.rank_position
    )
    # Walk from the bottom of the ranking up, keeping the fractions of the funded proposals below.
    below: list[float] = []
    count = 0
    for r in reversed(eligible):
        count += len(below) - bisect_right(below, r.fraction_of_request)
        if r.allocations:
            below.insert(bisect_right(below, r.fraction_of_request), r.fraction_of_request)
    return count


def satisfaction(solution: Solution) -> float:
    """Merit-weighted share of requests met: sum(w x fraction) / sum(w) over eligible proposals."""
    eligible = [r for r in solution.proposals if r.decision != Decision.NOT_ELIGIBLE]
    weight = sum(r.merit_weight for r in eligible)
    return sum(r.merit_weight * r.fraction_of_request for r in eligible) / weight if weight else 0.0


def group_fairness(solution: Solution) -> float | None:
    """Jain's index over share groups of (reference hours awarded / reference hours asked by the
    group's eligible proposals): 1 when every group gets the same fraction of its demand."""
    ratios = []
    for g in solution.metrics.groups:
        asked = sum(
            r.requested_reference_gpu_hours
            for r in solution.proposals
            if r.group == g.id and r.decision != Decision.NOT_ELIGIBLE
        )
        if asked:
            ratios.append(g.reference_gpu_hours / asked)
    if not ratios or not any(ratios):
        return None
    return sum(ratios) ** 2 / (len(ratios) * sum(x * x for x in ratios))


# -- per-proposal changes ----------------------------------------------------------


def proposal_changes(base: Solution, other: Solution) -> list[str]:
    """Who got in, who dropped out, who gained or lost hours, who moved machine."""
    before = {r.id: r for r in base.proposals}
    after = {r.id: r for r in other.proposals}
    got_in, dropped, gained, lost, moved = [], [], [], [], []
    for pid in sorted(before.keys() & after.keys()):
        a, b = before[pid], after[pid]
        if not a.allocations and b.allocations:
            got_in.append(f"{pid} ({_award(b)})")
        elif a.allocations and not b.allocations:
            dropped.append(f"{pid} (had {_award(a)})")
        elif a.allocations and b.allocations:
            delta = b.reference_gpu_hours - a.reference_gpu_hours
            change = fraction_change(a.fraction_of_request, b.fraction_of_request)
            if {x.machine for x in a.allocations} != {x.machine for x in b.allocations}:
                moved.append(f"{pid} ({_award(a)} -> {_award(b)})")
            elif delta > 0:
                gained.append(f"{pid} (+{delta:,.0f} reference GPU-h, {change} of request)")
            elif delta < 0:
                lost.append(f"{pid} ({delta:,.0f} reference GPU-h, {change} of request)")
    out = []
    for head, items in (
        ("got in", got_in),
        ("dropped out", dropped),
        ("gained hours", gained),
        ("lost hours", lost),
        ("moved machine", moved),
    ):
        if items:
            out.append(f"{head} ({len(items)}):")
            out += [f"  {item}" for item in items]
    only_base = sorted(before.keys() - after.keys())
    only_other = sorted(after.keys() - before.keys())
    if only_base:
        out.append(f"{len(only_base)} only in the first: {', '.join(only_base)}")
    if only_other:
        out.append(f"{len(only_other)} only in this one: {', '.join(only_other)}")
    return out or ["no proposal's award changed"]


# -- inputs and options -------------------------------------------------------------


def input_differences(base: Solution, other: Solution) -> list[str]:
    """What differs in the rounds and options that produced the two solutions."""
    a, b = base.input.model_dump(mode="json"), other.input.model_dump(mode="json")
    out = [
        f"round {key}: {json.dumps(a[key])} -> {json.dumps(b[key])}"
        for key in ("id", "name")
        if a[key] != b[key]
    ]
    out += [f"policy {line}" for line in _dict_diff(a["policy"], b["policy"])]
    for key in ("score_scale",):
        out += [f"{key} {line}" for line in _dict_diff(a[key], b[key])]
    out += _by_id("machine", a["machines"], b["machines"])
    changed = _by_id("proposal", a["proposals"], b["proposals"], detail=False)
    out += changed
    out += [f"option {line}" for line in _dict_diff(base.provenance.options, other.provenance.options)]
    out += _keep_difference(base, other)
    if base.provenance.allocopt_version != other.provenance.allocopt_version:
        out.append(f"allocopt {base.provenance.allocopt_version} -> {other.provenance.allocopt_version}")
    if not out and base.provenance.input_sha256 == other.provenance.input_sha256:
        return ["the same round and options"]
    return out or ["the rounds differ only in names or titles"]


def _keep_difference(base: Solution, other: Solution) -> list[str]:
    """--keep is an option of the solve too: whether it was given, with which tolerance, and
    which previous solution (by its round's sha256) it stayed close to."""

    def keep(s: Solution) -> str:
        k = s.keep
        if k is None:
            return "none"
        return f"a solution of round sha256 {k.previous_input_sha256[:12]}..., tolerance {k.tolerance:g}"

    a, b = keep(base), keep(other)
    same_previous = (
        base.keep is not None and other.keep is not None and base.keep.previous == other.keep.previous
    )
    if a != b:
        return [f"option keep: {a} -> {b}"]
    if base.keep is not None and not same_previous:
        return ["option keep: the same tolerance, other previous awards"]
    return []


def _by_id(what: str, a: list[dict[str, Any]], b: list[dict[str, Any]], detail: bool = True) -> list[str]:
    left, right = {x["id"]: x for x in a}, {x["id"]: x for x in b}
    out = []
    for ident in sorted(left.keys() - right.keys()):
        out.append(f"{what} {ident} removed")
    for ident in sorted(right.keys() - left.keys()):
        out.append(f"{what} {ident} added")
    changed = [i for i in sorted(left.keys() & right.keys()) if left[i] != right[i]]
    if detail:
        for ident in changed:
            out += [f"{what} {ident} {line}" for line in _dict_diff(left[ident], right[ident])]
    elif changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        out.append(f"{len(changed)} {what}(s) changed: {shown}")
    return out


def _dict_diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Leaf-by-leaf differences between two JSON-like values, as 'path: old -> new'."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(a.keys() | b.keys()):
            out += _dict_diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return out
    if a != b:
        return [f"{path}: {json.dumps(a)} -> {json.dumps(b)}"]
    return []


# -- small helpers ----------------------------------------------------------------


def _gap(s: Solution) -> str:
    if s.objective.gap is None:
        return "all steps proven" if s.solver.status == "optimal" else "some steps unproven"
    return "optimal" if s.solver.status == "optimal" else percent(s.objective.gap)


def percent(x: float) -> str:
    """A small relative gap as a percentage that never rounds a proven nonzero gap to 0."""
    return f"{x:.4%}" if x == 0 or x >= 1e-6 else "< 0.0001%"


def _funded_count(s: Solution) -> int:
    return s.metrics.decisions["funded"] + s.metrics.decisions["reduced"]


def _lowest_funded(s: Solution) -> str:
    funded = [r for r in s.proposals if r.allocations]
    if not funded:
        return "-"
    r = max(funded, key=lambda r: r.rank_position)
    return f"{r.id} (#{r.rank_position}, score {r.score:g})"


def _highest_unfunded(s: Solution) -> str:
    unfunded = [r for r in s.proposals if r.decision == Decision.NOT_FUNDED]
    if not unfunded:
        return "-"
    r = min(unfunded, key=lambda r: r.rank_position)
    return f"{r.id} (#{r.rank_position}, score {r.score:g})"


def _group_share(s: Solution, gid: str) -> str:
    g = next((g for g in s.metrics.groups if g.id == gid), None)
    return f"{g.share:.1%} ({g.min_share:.0%}-{g.max_share:.0%})" if g else "-"


def _machine_use(s: Solution, mid: str) -> str:
    m = next((m for m in s.metrics.machines if m.id == mid), None)
    return f"{m.utilisation:.1%} of {m.gpu_hours:,}" if m else "-"


def _machine_commercial(s: Solution, mid: str) -> str:
    m = next((m for m in s.metrics.machines if m.id == mid), None)
    return f"{m.commercial_gpu_hours:,} / {m.commercial_cap_gpu_hours:,}" if m else "-"


def _fmt_index(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _union(ids: Any) -> list[str]:
    return sorted(set(ids))


def _award(r: ProposalResult) -> str:
    return ", ".join(f"{x.gpu_hours:,} GPU-h on {x.machine}" for x in r.allocations) or "no award"


def fraction_change(a: float, b: float) -> str:
    """Fractions of request before and after, with the decimals that tell them apart."""
    before, after = pct(a), pct(b)
    if before == after:
        before, after = f"{a:.2%}", f"{b:.2%}"
    return f"{before} -> {after}"


def differences_apart_from_timing(
    a: Solution, b: Solution, names: tuple[str, str] = ("in the first", "in the second")
) -> list[str]:
    """Every way b differs from a, ignoring the wall-clock timing block and the software
    versions (which the caller reports on their own: a solution made before a version was
    recorded must still reproduce); empty: identical. ``names`` say where each figure comes
    from."""
    first, second = names
    apart: Any = {"timing": True, "provenance": VERSION_FIELDS}
    if a.model_dump(exclude=apart) == b.model_dump(exclude=apart):
        return []
    out = []
    if a.provenance.input_sha256 != b.provenance.input_sha256:
        out.append("they were made from different rounds (input sha256)")
    if a.objective != b.objective:
        out.append(f"objective {a.objective.scaled:,} {first}, {b.objective.scaled:,} {second}")
    before = {r.id: r for r in a.proposals}
    for r in b.proposals:
        old = before.get(r.id)
        if old is None or old.allocations != r.allocations:
            out.append(f"{r.id}: {_award(old) if old else 'absent'} {first}, {_award(r)} {second}")
    for block in ("metrics", "solver", "rank"):
        if getattr(a, block) != getattr(b, block):
            out.append(f"the {block} block")
    if a.provenance.model_dump(exclude=VERSION_FIELDS) != b.provenance.model_dump(exclude=VERSION_FIELDS):
        out.append("the provenance block")
    return out or ["the reasons or other recorded details"]
