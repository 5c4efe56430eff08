"""The benchmark script's own arithmetic (it is run by hand, not by the tests; these keep it honest)."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace

from rich.console import Console

from allocopt.terms import derive
from benchmarks.run import (
    PHASES,
    TARGETS,
    HighsResult,
    Row,
    _parser,
    _to_target,
    bench_round,
    lp_bound,
    run_one,
    runs,
    scaling_table,
    time_phases,
    verdicts,
)
from tests.conftest import ROOT


def test_bench_round_sets_the_merit_value_and_changes_nothing_else() -> None:
    fraction, hours = bench_round(40, 3, 5), bench_round(40, 3, 5, "hours")
    assert fraction.policy.merit.value == "fraction" and hours.policy.merit.value == "hours"
    assert hours.proposals == fraction.proposals and hours.machines == fraction.machines
    # Under 'hours' an award's worth grows with its GPU-hours, so the coefficients differ.
    coefs = {o.key: o.coef for o in derive(fraction).options}
    assert any(o.coef != coefs[o.key] for o in derive(hours).options)


def test_a_round_under_hours_is_solved_verified_and_within_the_lp_bound() -> None:
    row = run_one(40, 3, 5, work_limit=5.0, workers=1, value="hours")
    assert row.status in ("optimal", "feasible") and row.objective is not None
    assert row.lp_bound is not None and row.objective <= row.lp_bound * (1 + 1e-9)
    assert row.lp_bound == lp_bound(derive(bench_round(40, 3, 5, "hours")))
    assert max(row.rank_objective, row.density_objective) <= row.lp_bound * (1 + 1e-9)


def test_the_time_to_a_target_gap_is_the_first_incumbent_proven_within_it() -> None:
    # (seconds, objective, bound proven by then)
    found = [(0.5, 900, 1000), (1.0, 990, 1000), (2.0, 995, 996)]
    assert _to_target(found, 3.0, 0.001, 0.01) == 1.0  # 990 is within 1 % of 1,000
    assert _to_target(found, 3.0, 0.001, 0.002) == 2.0  # 995 within 0.2 % of 996
    # Not reached by any incumbent: the end of the solve, if its own gap is within the target.
    assert _to_target(found, 3.0, 0.0, 1e-4) == 3.0
    assert _to_target(found, 3.0, 5e-4, 1e-4) is None
    assert _to_target(found, 3.0, 0.0, None) is None


def test_a_target_run_records_when_the_target_gap_was_reached() -> None:
    row = run_one(40, 3, 5, work_limit=5.0, workers=1, target_gap=1e-2)
    assert row.target_gap == 1e-2 and row.to_target is not None
    assert 0 < row.to_target < row.wall  # an incumbent reported during the solve, not its end


def test_time_phases_times_every_step_around_the_search() -> None:
    options, seconds = time_phases(60, 4, 1)
    assert options > 60  # several machines per proposal
    assert set(seconds) == set(PHASES)
    assert all(s > 0 for s in seconds.values())


def test_scaling_table_reports_the_growth_of_time_per_option() -> None:
    """Twice the options in four times the time is twice the time per option (x2.00); in twice
    the time, flat (x1.00)."""
    small = {phase: 1.0 for phase in PHASES}
    large = {phase: 2.0 for phase in PHASES} | {"LP": 4.0}
    console = Console(width=400, record=True)
    console.print(scaling_table([(100, 1000, small), (200, 2000, large)]))
    last = console.export_text().splitlines()[-2]
    assert "x2 options" in last
    assert last.count("x1.00") == len(PHASES) - 1 and last.count("x2.00") == 1


def _row(proposals: int, seed: int, **fields: object) -> Row:
    base: dict[str, object] = dict(
        proposals=proposals,
        seed=seed,
        options=0,
        status="feasible",
        stop="converged",
        objective=1000,
        gap=1e-3,
        wall=10.0,
        det=1.0,
        rank_objective=0,
        rank_mins=True,
        density_objective=0,
        density_mins=True,
        lp_bound=1001.0,
        lp_seconds=0.1,
        peak_mb=900.0,
        machines=TARGETS[proposals],
        bound=1001,
    )
    return Row(**(base | fields))  # type: ignore[arg-type]


def _verdict_lines(rows: list[Row]) -> list[str]:
    console = Console(width=400, record=True)
    console.print(verdicts(rows))
    return console.export_text().splitlines()


def test_the_verdicts_count_the_rounds_that_meet_each_target() -> None:
    """At 300 x 8 the target is the gap in 5 s: a round within it after 4 s meets it, one within
    it only after 6 s or never does not. At equal time an allocation worth at least HiGHS's and a
    bound no looser count; a round HiGHS found no allocation for counts for ours, and its bound is
    not compared (HiGHS's is recorded with an allocation). At 10,000 x 30 the peak memory is
    judged too. Rank rounds meet theirs when every step is proven in time."""
    highs = HighsResult(
        objective=1000.0, status="feasible", gap=1e-3, seconds=10.0, peak_mb=1.0, bound=1001.0
    )
    rows = [
        _row(300, 1, to_target=4.0, target_gap=1e-4, highs=highs),
        _row(300, 2, to_target=6.0, target_gap=1e-4, highs=replace(highs, objective=1000.5, bound=1000.5)),
        _row(300, 3, to_target=None, target_gap=1e-4, highs=replace(highs, objective=None, bound=None)),
        _row(10000, 1, to_target=50.0, target_gap=5e-5, peak_mb=2100.0),
        _row(300, 1, kind="rank", status="optimal", wall=4.0),
        _row(300, 2, kind="rank", status="optimal", wall=8.0),
    ]
    lines = _verdict_lines(rows)
    merit_300 = next(line for line in lines if "merit, fraction" in line and "300 x 8" in line)
    assert "gap <= 1e-04 in <= 5 s" in merit_300
    assert "1 of 3" in merit_300  # only seed 1 in time
    assert "6.0 (1 never)" in merit_300  # the slowest in time, and the one never within
    # Allocations: seeds 1 and 3 (HiGHS found none there); bounds: compared on seeds 1 and 2 only.
    assert "2 of 3 (HiGHS found none on 1)" in merit_300
    assert "1 of 2 (HiGHS found none on 1)" in merit_300
    big = next(line for line in lines if "10000 x 30" in line)
    assert "1 of 1" in big and "2100 (<= 2048: not met)" in big
    rank = next(line for line in lines if "rank, fraction" in line)
    assert "every step proven in <= 5 s" in rank and "1 of 2" in rank and "8.0" in rank


def _plan(*argv: str) -> list[tuple[str, str, list[tuple[int, int, int]], bool]]:
    return runs(_parser().parse_args(list(argv)))


def test_targets_alone_runs_every_table_of_the_readme() -> None:
    """One command reproduces the README's tables: each merit value at every target size (seeds
    1-4 at 300 and 2,000 proposals, 1-2 at 10,000) with HiGHS, then the rank walk at 300 x 8."""
    every = [(300, 8, s) for s in (1, 2, 3, 4)] + [(2000, 12, s) for s in (1, 2, 3, 4)]
    every += [(10000, 30, 1), (10000, 30, 2)]
    assert _plan("--targets") == [
        ("merit", "fraction", every, True),
        ("merit", "hours", every, True),
        ("rank", "fraction", [(300, 8, 1), (300, 8, 2), (300, 8, 3), (300, 8, 4)], False),
    ]
    # Narrowed down: one value, one objective, chosen sizes and seeds, no HiGHS.
    assert _plan(
        "--targets", "--value", "hours", "--objective", "merit", "--target-sizes", "300", "--seeds", "5"
    ) == [("merit", "hours", [(300, 8, 5)], True)]
    assert _plan("--targets", "--objective", "rank", "--no-highs") == [
        ("rank", "fraction", [(300, 8, s) for s in (1, 2, 3, 4)], False)
    ]
    # Without --targets: the plain run, one value, no HiGHS unless asked.
    assert _plan() == [("merit", "fraction", [(n, 8, s) for n in (100, 500, 2000) for s in (1, 2)], False)]
    assert _plan("--quick", "--highs") == [("merit", "fraction", [(100, 8, 1)], True)]


def test_every_benchmark_command_in_the_readme_parses() -> None:
    """The README's benchmark commands name options the script has (they are run by hand)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^python benchmarks/run\.py([^#\n]*)", text, flags=re.M)
    assert len(commands) >= 5
    for command in commands:
        runs(_parser().parse_args(shlex.split(command)))
