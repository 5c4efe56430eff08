"""The rank walk's CP-SAT checks: their lighter cut and presolve settings decide every step as
CP-SAT's defaults do."""

from __future__ import annotations

from typing import Any

import pytest

from allocopt.generate import generate_round
from allocopt.model import AllocationModel, RawResult
from allocopt.options import SolveOptions
from allocopt.solve import solve
from allocopt.terms import derive


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


def test_the_light_settings_reach_cp_sat(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parameters CP-SAT is given: the walk's checks without cut rounds, the relaxation added
    at once, one presolve pass and no symmetry detection; a plain solve with CP-SAT's defaults."""
    import allocopt.model as model_module

    seen: list[tuple[int, bool, int, int]] = []
    real_run = model_module._run

    def recording(solver: Any, *args: Any, **kwargs: Any) -> Any:
        p = solver.parameters
        seen.append((p.cut_level, p.add_lp_constraints_lazily, p.max_presolve_iterations, p.symmetry_level))
        return real_run(solver, *args, **kwargs)

    monkeypatch.setattr(model_module, "_run", recording)
    model = AllocationModel(derive(generate_round(40, 4, 1)))
    model.maximise_merit()
    model.solve(SolveOptions())
    model.solve(SolveOptions(), light_cuts=True, light_presolve=True)
    plain, light = seen
    assert light == (0, False, 1, 0)
    assert plain[0] != 0 and plain[1] and plain[2] != 1 and plain[3] != 0
    seen.clear()
    solve(generate_round(40, 4, 1), SolveOptions(objective="rank"))
    assert seen and all(s == (0, False, 1, 0) for s in seen)
