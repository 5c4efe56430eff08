"""The benchmark script's own arithmetic (it is run by hand, not by the tests; these keep it honest)."""

from __future__ import annotations

from rich.console import Console

from benchmarks.run import PHASES, scaling_table, time_phases


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
