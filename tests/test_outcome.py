"""Turning units into results: the garbage collector is paused while they are built, and left as found."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import allocopt.outcome as outcome
from allocopt.generate import generate_round
from allocopt.outcome import proposal_results
from allocopt.solution import ProposalResult
from allocopt.terms import derive
from allocopt.warmstart import warm_start


@pytest.mark.parametrize("collector_on", [True, False])
def test_results_are_built_with_the_collector_off_and_leave_it_as_found(
    collector_on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each proposal's result is built with Python's cyclic collector off (its full passes walk
    the whole heap and doubled the time per option at 10,000 proposals); afterwards the
    collector is on again only if it was on before, and the results do not depend on it."""
    terms = derive(generate_round(60, 4, 2, policy_language=True).canonical())
    units = warm_start(terms)
    assert units is not None
    collecting: list[bool] = []  # the collector's state as each proposal's result is built
    build = outcome._result

    def spied(*args: Any, **kwargs: Any) -> ProposalResult:
        collecting.append(gc.isenabled())
        return build(*args, **kwargs)

    monkeypatch.setattr(outcome, "_result", spied)
    was_on = gc.isenabled()
    try:
        (gc.enable if collector_on else gc.disable)()
        results = proposal_results(terms, units, objective="merit", optimal=False, gap=0.0)
        assert gc.isenabled() is collector_on
        gc.enable()
        again = proposal_results(terms, units, objective="merit", optimal=False, gap=0.0)
    finally:
        (gc.enable if was_on else gc.disable)()
    assert len(collecting) == 2 * len(terms.assessments) and not any(collecting)
    assert results == again
    assert [r.id for r in results] == sorted(terms.assessments)


def test_the_collector_comes_back_on_when_building_results_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while results are built leaves the collector on (as it was), not paused for good."""
    terms = derive(generate_round(20, 3, 1, policy_language=False).canonical())

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(outcome, "_result", broken)
    was_on = gc.isenabled()
    gc.enable()
    try:
        with pytest.raises(RuntimeError):
            proposal_results(terms, {}, objective="merit", optimal=False, gap=0.0)
        assert gc.isenabled()
    finally:
        (gc.enable if was_on else gc.disable)()
