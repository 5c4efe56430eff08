"""Worker processes: results in order, and Ctrl-C stops every worker at once."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest

from allocopt.parallel import run_all


def _square(x: int) -> int:
    return x * x


def _slow_then_interrupted(x: int, marker: str) -> int:
    if x == 0:
        raise KeyboardInterrupt  # as Ctrl-C reaching one worker
    time.sleep(0.5)
    Path(marker, str(os.getpid())).write_text("")
    return x


@pytest.mark.parametrize("parallel", [1, 2])
def test_results_come_in_the_order_asked(parallel: int) -> None:
    seen: list[int] = []
    calls = [partial(_square, x) for x in range(7)]
    assert run_all(calls, parallel, on_done=seen.append) == [x * x for x in range(7)]
    assert seen == [x * x for x in range(7)]


def test_ctrl_c_in_a_worker_stops_the_whole_run(tmp_path: Path) -> None:
    """A worker's KeyboardInterrupt reaches the caller, the queue is dropped and no worker is left:
    before, the pool waited for a result that never came."""
    calls = [partial(_slow_then_interrupted, x, str(tmp_path)) for x in range(20)]
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_all(calls, 2)
    assert time.perf_counter() - started < 5  # 20 x 0.5 s of queued work was not done
    time.sleep(1)
    assert len(list(tmp_path.iterdir())) <= 2  # at most the calls already running finished
