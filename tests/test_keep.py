"""solve --keep: nothing changes when nothing changed, and only what must after a small change."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from allocopt.cli import cli
from allocopt.compare import proposal_changes
from allocopt.files import write_atomic
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import Keep, solve
from allocopt.verify import verify


def awards(solution: Solution) -> dict[str, list[tuple[str, int]]]:
    return {r.id: [(a.machine, a.gpu_hours) for a in r.allocations] for r in solution.proposals}


def test_keep_changes_nothing_when_nothing_changed(tiny: Round, tiny_solution: Solution) -> None:
    """Re-solving the same round close to its own solution gives the same awards."""
    kept = solve(tiny, keep=Keep.of(tiny_solution, 0.0))
    assert awards(kept) == awards(tiny_solution)
    assert kept.keep is not None and kept.keep.changed_decisions == 0
    assert kept.keep.moved_reference_gpu_hours == 0
    assert verify(tiny, kept) == []


def lumi_cut(tiny: Round, hours: int) -> Round:
    machines = [m.model_copy(update={"gpu_hours": hours}) if m.id == "lumi-g" else m for m in tiny.machines]
    return tiny.model_copy(update={"machines": machines})


def test_keep_after_a_small_cut_changes_only_what_must(tiny: Round, tiny_solution: Solution) -> None:
    """LUMI-G loses 1,000 GPU-h: with a tolerance, only one LUMI-G award shrinks by one unit;
    JUPITER's awards stay exactly as they were."""
    smaller = lumi_cut(tiny, 7000)
    kept = solve(smaller, keep=Keep.of(tiny_solution, 0.05))
    before, after = awards(tiny_solution), awards(kept)
    changed = {pid for pid in before if before[pid] != after[pid]}
    assert len(changed) == 1
    (pid,) = changed
    assert before[pid][0][0] == "lumi-g" and before[pid][0][1] - after[pid][0][1] == 1000
    assert all(after[p] == before[p] for p in ("P-01", "P-03", "P-05"))  # the JUPITER awards
    assert kept.keep is not None and kept.keep.changed_decisions == 0
    assert kept.objective.scaled >= kept.keep.best_scaled * 0.95
    assert verify(smaller, kept) == []


def test_keep_never_changes_more_than_a_fresh_solve(tiny: Round, tiny_solution: Solution) -> None:
    """At zero tolerance the kept allocation is optimal too, and no further from the old one."""
    smaller = lumi_cut(tiny, 6000)
    fresh, kept = solve(smaller), solve(smaller, keep=Keep.of(tiny_solution, 0.0))
    assert kept.objective.scaled == fresh.objective.scaled
    moved = sum(1 for line in proposal_changes(tiny_solution, kept) if line.startswith("  "))
    moved_fresh = sum(1 for line in proposal_changes(tiny_solution, fresh) if line.startswith("  "))
    assert moved <= moved_fresh


def test_cli_keep_and_reproduce(tmp_path: Path, tiny: Round, tiny_solution: Solution) -> None:
    """The CLI keeps close, reports what moved, and the kept solution reproduces; rank refuses --keep."""
    previous = tmp_path / "previous.json"
    write_atomic(previous, tiny_solution.model_dump_json(indent=2))
    smaller = tmp_path / "round.json"
    write_atomic(smaller, json.dumps(lumi_cut(tiny, 7000).model_dump(mode="json")))
    out = tmp_path / "kept.json"
    runner = CliRunner()
    args = ["solve", str(smaller), "-o", str(out), "--keep", str(previous), "--keep-tolerance", "0.05"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Kept close to" in result.output and "0 decision(s) changed" in result.output
    assert runner.invoke(cli, ["reproduce", str(out)]).exit_code == 0
    refused = runner.invoke(cli, [*args, "--objective", "rank"])
    assert refused.exit_code == 2  # bad usage, not infeasibility
    assert "--keep applies to the merit objective" in refused.output
