"""The rank walk's CP-SAT checks: their lighter cut and presolve settings decide every step as
CP-SAT's defaults do."""

from __future__ import annotations

from typing import Any

import pytest

from allocopt.generate import generate_round
from allocopt.model import AllocationModel, RawResult
from allocopt.options import SolveOptions
from allocopt.solve import solve


@pytest.mark.parametrize(("proposals", "machines", "seed"), [(40, 4, 1), (60, 4, 2), (50, 6, 3), (120, 6, 4)])
def test_light_settings_decide_every_step_as_the_defaults(
    monkeypatch: pytest.MonkeyPatch, proposals: int, machines: int, seed: int
) -> None:
    """Each step is proven either way, so the walk must fund the same proposals with the same
    fractions; and the walk's checks do ask for the lighter settings."""
    rnd = generate_round(proposals, machines, seed)
    options = SolveOptions(objective="rank")
    asked: list[tuple[bool, bool]] = []
    original = AllocationModel.solve

    def recording(self: AllocationModel, opts: SolveOptions, *args: Any, **kwargs: Any) -> RawResult:
        asked.append((bool(kwargs.get("light_cuts")), bool(kwargs.get("light_presolve"))))
        return original(self, opts, *args, **kwargs)

    monkeypatch.setattr(AllocationModel, "solve", recording)
    light = solve(rnd, options)
    assert asked and all(cuts and presolve for cuts, presolve in asked)

    def default_cuts(self: AllocationModel, opts: SolveOptions, *args: Any, **kwargs: Any) -> RawResult:
        return original(self, opts, *args, **{**kwargs, "light_cuts": False, "light_presolve": False})

    monkeypatch.setattr(AllocationModel, "solve", default_cuts)
    default = solve(rnd, options)
    assert light.rank is not None and default.rank is not None
    assert light.rank.all_proven and default.rank.all_proven

    def decided(sol: Any) -> list[tuple[str, str, str, float]]:
        return [(s.phase, s.proposal, s.outcome, s.fraction_of_request) for s in sol.rank.steps]

    assert decided(light) == decided(default)
