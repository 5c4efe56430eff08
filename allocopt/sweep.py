"""Sweep a policy or machine knob: solve each scenario and collect the frontier.

A knob is a dotted path into the round file, with id-keyed lists addressed by
id: ``policy.score_threshold``, ``policy.share_groups.startups.min_share``,
``machines.lumi-g.gpu_hours``. ``objective`` varies the objective itself.
Each scenario is validated like a round file, so a value out of range is a
clear error, and solved like any round (deterministically).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from allocopt.compare import rank_inversions
from allocopt.errors import AllocoptError, InfeasibleError, InputError, Problem
from allocopt.files import validate_round
from allocopt.options import SolveOptions
from allocopt.parallel import run_all
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve_or_stop

MAX_SCENARIOS = 200


@dataclass(frozen=True)
class Knob:
    """One --vary: a path and the values it takes."""

    path: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Scenario:
    """One combination of knob values."""

    settings: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{path}={value}" for path, value in self.settings)

    @property
    def slug(self) -> str:
        parts = [f"{path.rsplit('.', 1)[-1]}-{value}" for path, value in self.settings]
        return "_".join(parts).replace("/", "-")


@dataclass(frozen=True)
class Outcome:
    """A scenario's result: a solution, or why there is none."""

    scenario: Scenario
    solution: Solution | None
    failure: str = ""


def parse_knob(text: str) -> Knob:
    """KEY=START:STOP:STEP (inclusive, decimal steps) or KEY=a,b,c (numbers; for ``objective``,
    merit and rank). A value listed twice would be one scenario solved twice."""
    knob = _parse_knob(text)
    if len(set(knob.values)) < len(knob.values):
        raise ValueError(f"--vary {text!r}: a value is listed twice")
    return knob


def _parse_knob(text: str) -> Knob:
    if "=" not in text:
        raise ValueError(f"--vary {text!r}: write KEY=START:STOP:STEP or KEY=a,b,c")
    path, spec = (part.strip() for part in text.split("=", 1))
    if not path or not spec:
        raise ValueError(f"--vary {text!r}: write KEY=START:STOP:STEP or KEY=a,b,c")
    if path == "objective":
        values = tuple(v.strip() for v in spec.split(","))
        if not set(values) <= {"merit", "rank"}:
            raise ValueError(f"--vary {text!r}: the objective is 'merit' or 'rank'")
        return Knob(path, values)
    if ":" in spec:
        try:
            start, stop, step = (Decimal(x) for x in spec.split(":"))
        except (ValueError, InvalidOperation):
            raise ValueError(f"--vary {text!r}: START:STOP:STEP must be three numbers") from None
        if not all(d.is_finite() for d in (start, stop, step)):
            raise ValueError(f"--vary {text!r}: START, STOP and STEP must be finite numbers")
        if step <= 0 or stop < start:
            raise ValueError(f"--vary {text!r}: need STOP >= START and STEP > 0")
        count = int((stop - start) / step) + 1
        if count > MAX_SCENARIOS:
            raise ValueError(f"--vary {text!r}: {count} values; use a larger step (at most {MAX_SCENARIOS})")
        return Knob(path, tuple(_number(start + i * step) for i in range(count)))
    try:
        numbers = [Decimal(v.strip()) for v in spec.split(",")]
    except InvalidOperation:
        raise ValueError(f"--vary {text!r}: the values must be numbers") from None
    if not all(d.is_finite() for d in numbers):
        raise ValueError(f"--vary {text!r}: the values must be finite numbers (no NaN or infinity)")
    return Knob(path, tuple(_number(d) for d in numbers))


def scenarios(knobs: list[Knob]) -> list[Scenario]:
    """Every combination of the knobs' values, in order."""
    paths = [k.path for k in knobs]
    if len(set(paths)) < len(paths):
        twice = next(p for p in paths if paths.count(p) > 1)
        raise ValueError(f"--vary {twice} is given twice; give all its values in one --vary")
    combos = list(itertools.product(*(k.values for k in knobs)))
    if len(combos) > MAX_SCENARIOS:
        raise ValueError(f"{len(combos)} scenarios; at most {MAX_SCENARIOS}: use fewer values")
    return [Scenario(tuple(zip((k.path for k in knobs), combo, strict=True))) for combo in combos]


def check_paths(rnd: Round, knobs: list[Knob], shown: str) -> None:
    """Raise ``InputError`` for a knob whose path names nothing settable, before any solving."""
    data = rnd.model_dump(mode="json")
    for knob in knobs:
        if knob.path != "objective":
            _set(data, knob.path, knob.values[0], shown)


def apply(rnd: Round, scenario: Scenario, shown: str) -> tuple[Round, str | None]:
    """The round with the scenario's values set (validated), and its objective if it sets one."""
    data = rnd.model_dump(mode="json")
    objective = None
    for path, value in scenario.settings:
        if path == "objective":
            objective = str(value)
        else:
            _set(data, path, value, shown)
    return validate_round(data, f"{shown} [{scenario.label}]"), objective


def run(
    rnd: Round,
    knobs: list[Knob],
    options: SolveOptions,
    shown: str,
    *,
    parallel: int = 2,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Solve every scenario (in parallel processes) and return the outcomes in scenario order."""
    jobs = []
    outcomes: dict[Scenario, Outcome] = {}
    for scenario in scenarios(knobs):
        try:
            jobs.append((scenario, *apply(rnd, scenario, shown)))
        except InputError as exc:
            # A value the round's rules do not accept is that scenario's outcome, not the sweep's end.
            outcomes[scenario] = Outcome(scenario, None, "invalid: " + exc.problems[0].message)
    calls = [
        partial(_solve_one, scenario, r, options.model_copy(update={"objective": obj} if obj else {}))
        for scenario, r, obj in jobs
    ]
    for outcome in run_all(calls, parallel, on_done=on_done):
        outcomes[outcome.scenario] = outcome
    return [outcomes[s] for s in scenarios(knobs)]


def frontier_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """One row per scenario: its settings and the figures a committee trades off."""
    rows = []
    for o in outcomes:
        row: dict[str, Any] = dict(o.scenario.settings)
        s = o.solution
        if s is None:
            row.update(
                {
                    "status": o.failure.split(":", 1)[0]
                    if o.failure.startswith(("infeasible", "invalid"))
                    else "failed",
                    "note": o.failure,
                }
            )
        else:
            row.update(
                {
                    "status": s.solver.status,
                    "merit": s.objective.value,
                    "funded": s.metrics.decisions["funded"] + s.metrics.decisions["reduced"],
                    "rank_inversions": rank_inversions(s),
                    **{f"share_{g.id}": g.share for g in s.metrics.groups},
                    "note": "",
                }
            )
        rows.append(row)
    return rows


def _solve_one(scenario: Scenario, rnd: Round, options: SolveOptions) -> Outcome:
    try:
        return Outcome(scenario, solve_or_stop(rnd, options))
    except InfeasibleError as exc:
        lines = str(exc).splitlines()
        rule = next((li for li in lines if li.startswith("    ")), lines[-1])  # the first rule named
        return Outcome(scenario, None, f"infeasible: {rule.strip().lstrip('- ')}")
    except AllocoptError as exc:
        return Outcome(scenario, None, str(exc))


def _set(data: dict[str, Any], path: str, value: Any, shown: str) -> None:
    """Set a dotted path; list members are found by their id."""
    parts = path.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            match = next((x for x in node if isinstance(x, dict) and x.get("id") == part), None)
            if match is None:
                ids = ", ".join(str(x.get("id")) for x in node if isinstance(x, dict))
                raise _bad(shown, path, f"no member '{part}' there; use one of: {ids}")
            if last:
                raise _bad(shown, path, "names a whole object; name one of its numeric fields")
            node = match
        elif isinstance(node, dict):
            if part not in node:
                raise _bad(shown, path, f"no field '{part}' there; see `allocopt schema round`")
            if last:
                if isinstance(node[part], bool) or not isinstance(node[part], int | float | type(None)):
                    raise _bad(shown, path, "is not a numeric field")
                node[part] = (
                    int(value) if isinstance(node[part], int) and float(value).is_integer() else value
                )
            else:
                node = node[part]
        else:
            raise _bad(shown, path, f"'{part}' cannot be reached")


def _bad(shown: str, path: str, message: str) -> InputError:
    return InputError([Problem(shown, f"--vary {path}", message)])


def _number(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)
