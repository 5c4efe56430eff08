"""Run independent solves in worker processes, stopping them all at once on Ctrl-C.

The workers ignore Ctrl-C: the main process alone decides, and on Ctrl-C (or any
error) it terminates the workers instead of letting them finish their queue, so
nothing is left running and the command ends at once.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def run_all(
    calls: Sequence[Callable[[], T]],
    parallel: int,
    on_done: Callable[[T], None] | None = None,
) -> list[T]:
    """Every call's result, in the order given; ``parallel`` processes (in this one when 1).
    Calls must be picklable (module-level functions, or ``functools.partial`` of them)."""
    if parallel <= 1 or len(calls) <= 1:
        results = []
        for call in calls:
            results.append(call())
            if on_done is not None:
                on_done(results[-1])
        return results
    pool = multiprocessing.Pool(min(parallel, len(calls)), initializer=_ignore_ctrl_c)
    try:
        pending = [pool.apply_async(_run, (call,)) for call in calls]
        results = []
        for job in pending:
            try:
                results.append(job.get())
            except _Interrupted:
                raise KeyboardInterrupt from None
            if on_done is not None:
                on_done(results[-1])
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()
    return results


class _Interrupted(Exception):
    """A worker's KeyboardInterrupt, sent back as an exception the pool can carry."""


def _run(call: Callable[[], T]) -> T:
    # A KeyboardInterrupt would end the worker and leave the pool waiting for its result.
    try:
        return call()
    except KeyboardInterrupt:
        raise _Interrupted from None


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
