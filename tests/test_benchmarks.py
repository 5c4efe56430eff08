"""The benchmark script's own arithmetic (it is run by hand, not by the tests; these keep it honest)."""

from __future__ import annotations

from rich.console import Console

from allocopt.terms import derive
from benchmarks.run import PHASES, _to_target, bench_round, lp_bound, run_one, scaling_table, time_phases


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
