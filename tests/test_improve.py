"""The neighbourhood search: a neighbourhood model is exact, and improve() only ever improves.

A neighbourhood model (``AllocationModel(terms, free=..., around=...)``) decides the free
proposals while every other one keeps its award; its optimum must be the best allocation that
agrees with ``around`` outside the neighbourhood, on the whole round's objective. improve()
re-solves growing neighbourhoods: it must never hand back less than it was given, its answer
must satisfy every rule and reproduce, and once the neighbourhood is the whole round it must
have proven the round's optimum.
"""

from __future__ import annotations

import importlib
import inspect
from itertools import combinations, pairwise
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import allocopt.improve as improve_module
from allocopt.generate import generate_round
from allocopt.improve import Improved, improve
from allocopt.model import AllocationModel, OptionKey, Progress, RawResult
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solve import _worth, solve
from allocopt.terms import Terms, derive
from allocopt.warmstart import Relaxation, feasible, lp_units, rounded, warm_start
from tests.bruteforce import Award, PinError, check_shares, complete_plans
from tests.helpers import group, machine, make_round, proposal
from tests.strategies import policy_rounds

EXACT = SolveOptions(gap_limit=0.0, work_limit=10.0)
Parts = tuple[tuple[str, int], ...]


def describe(rnd: Round) -> str:
    """The round as JSON, to reproduce a failure."""
    return rnd.model_dump_json(exclude_defaults=True)


def allowed_plans(rnd: Round) -> list[tuple[list[Award], int]] | None:
    """Every plan brute force allows (soft shares may be missed, at their penalty) with its
    value, merit less penalties; None when a pin is bad input."""
    try:
        plans = []
        for plan in complete_plans(rnd):
            shares = check_shares(rnd, plan)
            if shares.hard_ok:
                plans.append((plan, sum(a.points for a in plan) - shares.penalty))
    except PinError:
        return None
    return plans


def awards(plan: list[Award]) -> dict[str, Parts]:
    """Each funded proposal's award, (machine, GPU-hours) parts."""
    return {a.proposal_id: a.parts for a in plan}


def units_of(terms: Terms, plan: list[Award]) -> dict[OptionKey, int]:
    """A brute-force plan as the model's award units per (proposal, machine) option."""
    unit_hours = {o.key: o.unit_hours for o in terms.options}
    units: dict[OptionKey, int] = {}
    for a in plan:
        for machine_id, hours in a.parts:
            key = (a.proposal_id, machine_id)
            assert key in unit_hours, f"brute force awards {key}, which terms has no option for"
            assert hours % unit_hours[key] == 0
            units[key] = hours // unit_hours[key]
    return units


def merged(
    around: dict[OptionKey, int], free: frozenset[str], inside: dict[OptionKey, int]
) -> dict[OptionKey, int]:
    """``around`` outside the neighbourhood, the neighbourhood model's units inside (zeros left out)."""
    out = {k: v for k, v in around.items() if k[0] not in free and v > 0}
    out.update({k: v for k, v in inside.items() if v > 0})
    return out


def check_neighbourhood(
    rnd: Round, plans: list[tuple[list[Award], int]], start: list[Award], free: frozenset[str]
) -> None:
    """The neighbourhood model around ``start`` with ``free`` decided proves the brute-force best
    of the allowed plans that agree with ``start`` outside ``free``, and its units merged into
    ``start`` make an allowed plan of that value."""
    terms = derive(rnd.canonical())
    fixed = {pid: parts for pid, parts in awards(start).items() if pid not in free}

    def agrees(plan: list[Award]) -> bool:
        return {pid: parts for pid, parts in awards(plan).items() if pid not in free} == fixed

    expected = max(value for plan, value in plans if agrees(plan))
    # All of A, the free proposals' awards too: those must not count as constants.
    around = units_of(terms, start)
    model = AllocationModel(terms, free=free, around=around)
    model.maximise_merit()
    raw = model.solve(EXACT, light_cuts=True)  # as the search's neighbourhoods are solved
    where = (sorted(free), around, describe(rnd))
    assert raw.status == "optimal", where
    assert raw.objective == expected, where
    assert raw.bound == expected, where
    # Every free option is decided, but for those whose least award cannot fit in the room the
    # fixed awards leave (the model leaves them out: they can only be 0).
    assert set(raw.units) <= {o.key for o in terms.options if o.proposal_id in free}, where
    for o in terms.options:
        if o.proposal_id in free and o.key not in raw.units:
            a, m = terms.assessments[o.proposal_id], rnd.machine(o.machine_id)
            held = [(pid, u) for (pid, mid), u in around.items() if mid == m.id and pid not in free]
            room = m.gpu_hours // m.award_unit - sum(u for _, u in held)
            if a.commercial:
                commercial = sum(u for pid, u in held if terms.assessments[pid].commercial)
                room = min(room, terms.commercial_cap_hours[m.id] // m.award_unit - commercial)
            assert (1 if a.split else o.min_units) > room, where
    whole = merged(around, free, raw.units)
    assert feasible(terms, whole), (whole, where)
    assert _worth(terms, whole) == expected, (whole, where)
    # The merged allocation is a plan brute force allows, worth the neighbourhood's optimum.
    found = [value for plan, value in plans if units_of(terms, plan) == whole]
    assert found == [expected], (whole, where)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.one_of(policy_rounds(), policy_rounds(split=True)), st.data())
def test_neighbourhood_optimum_equals_brute_force(rnd: Round, data: st.DataObject) -> None:
    """Around any allowed allocation A of a tiny round and for any set F of free proposals, the
    neighbourhood model proves the brute-force best of all allowed allocations that give every
    proposal outside F its award in A (merit less soft-share penalties, the fixed awards counted
    in every rule and in the objective). Its units name exactly the free proposals' options, and
    A outside F with them inside is an allocation brute force allows, of that value."""
    plans = allowed_plans(rnd)
    # A bad pin, or at most two allocations (most of the rounds drawn): too little to choose
    # between; such rounds are drawn again, so that every example counted has a choice to make.
    assume(plans is not None and len(plans) >= 3)
    assert plans is not None
    drawn, _ = plans[data.draw(st.integers(0, len(plans) - 1), label="allocation A")]
    # And the fullest allocation: its fixed awards leave the free proposals least room.
    fullest, _ = max(plans, key=lambda pv: sum(a.reference_hours for a in pv[0]))
    ids = [p.id for p in rnd.proposals]
    for start in (drawn, fullest):
        # Every F (at most 16 of them): each is a few milliseconds' solve.
        for size in range(len(ids) + 1):
            for free in combinations(ids, size):
                check_neighbourhood(rnd, plans, start, frozenset(free))


# Hand-made rounds in which one rule binds on what a fixed award holds (the generated tiny
# rounds reach some of these only rarely): the round, the allocation A as award units, and F.
FIXED_AWARD_CASES: dict[str, tuple[Round, dict[OptionKey, int], frozenset[str]]] = {
    # A's award of the free P2 is in ``around`` too: it must not be counted as taken.
    "machine capacity": (
        make_round(
            machines=[machine(gpu_hours=4000)],
            proposals=[proposal("P1", request=3000), proposal("P2", score=5.0)],
        ),
        {("P1", "m1"): 3, ("P2", "m1"): 1},
        frozenset({"P2"}),
    ),
    "commercial cap": (
        make_round(
            machines=[machine(commercial_cap=0.3)],
            proposals=[
                proposal("P1", commitment="confidential"),
                proposal("P2", commitment="confidential", score=5.0),
            ],
        ),
        {("P1", "m1"): 2},
        frozenset({"P2"}),
    ),
    "share maximum": (
        make_round(
            proposals=[proposal("P1", kind="industry"), proposal("P2", kind="industry", score=5.0)],
            groups=[group("ind", ["industry"], max_share=0.3)],
        ),
        {("P1", "m1"): 2},
        frozenset({"P2"}),
    ),
    "share minimum": (
        make_round(
            machines=[machine(gpu_hours=4000)],
            proposals=[
                proposal("P1", kind="industry"),
                proposal("P2", kind="industry", score=1.0, request=3000),
                proposal("P3", score=5.0),
            ],
            groups=[group("ind", ["industry"], min_share=0.75)],
        ),
        {("P1", "m1"): 2, ("P2", "m1"): 1},
        frozenset({"P2", "P3"}),
    ),
    "awarded share basis": (
        make_round(
            proposals=[proposal("P1"), proposal("P2", kind="industry", score=5.0)],
            groups=[group("ind", ["industry"], max_share=0.5)],
            share_basis="awarded",
        ),
        {("P1", "m1"): 1},
        frozenset({"P2"}),
    ),
    "soft share penalty": (
        make_round(
            proposals=[proposal("P1", kind="industry"), proposal("P2", kind="industry")],
            groups=[group("ind", ["industry"], max_share=0.1, penalty=0.5)],
        ),
        {("P1", "m1"): 2},
        frozenset({"P2"}),
    ),
    "exclusive group": (
        make_round(proposals=[proposal("P1"), proposal("P2", score=5.0)], exclusive=[["P1", "P2"]]),
        {("P1", "m1"): 2},
        frozenset({"P2"}),
    ),
    "awards per organisation": (
        make_round(
            proposals=[proposal("P1", organisation="Org"), proposal("P2", organisation="Org", score=5.0)],
            max_awards_per_organisation=1,
        ),
        {("P1", "m1"): 2},
        frozenset({"P2"}),
    ),
    "split award over two machines": (
        make_round(
            machines=[machine("m1", gpu_hours=3000), machine("m2", gpu_hours=3000)],
            proposals=[
                proposal("P1", request=4000, minimum=2000, max_machines=2),
                proposal("P2", score=5.0, request=4000, max_machines=2),
            ],
        ),
        {("P1", "m1"): 2, ("P1", "m2"): 2},
        frozenset({"P2"}),
    ),
}


@pytest.mark.parametrize("case", list(FIXED_AWARD_CASES))
def test_each_rule_counts_the_fixed_awards(case: str) -> None:
    """Capacity, the commercial cap, share bounds (both bases, soft ones with their penalty),
    exclusive groups, the organisation cap and split awards all count what the proposals
    outside the neighbourhood hold: the neighbourhood's optimum is brute force's."""
    rnd, around, free = FIXED_AWARD_CASES[case]
    plans = allowed_plans(rnd)
    assert plans
    terms = derive(rnd.canonical())
    start = [plan for plan, _ in plans if units_of(terms, plan) == around]
    assert len(start) == 1, "A is an allocation brute force allows"
    check_neighbourhood(rnd, plans, start[0], free)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.one_of(policy_rounds(), policy_rounds(split=True)))
def test_whole_round_neighbourhood_equals_the_full_model(rnd: Round) -> None:
    """Freeing every proposal gives the full model back: the same status and proven optimum,
    whatever ``around`` says (empty, or every option at its most units, which no rule allows:
    the free proposals' awards in it must be ignored)."""
    terms = derive(rnd.canonical())
    if terms.problems:  # a pin the round cannot honour: bad input, which solve() refuses
        return
    full = AllocationModel(terms)
    full.maximise_merit()
    expected = full.solve(EXACT)
    everyone = [p.id for p in rnd.proposals]
    for around in ({}, {o.key: o.max_units for o in terms.options}):
        model = AllocationModel(terms, free=everyone, around=around)
        model.maximise_merit()
        raw = model.solve(EXACT)
        assert raw.status == expected.status, describe(rnd)
        assert raw.objective == expected.objective, describe(rnd)
        if raw.status == "optimal":
            assert feasible(terms, raw.units), describe(rnd)
            assert _worth(terms, raw.units) == raw.objective, describe(rnd)


def _start(rnd: Round) -> tuple[Terms, dict[OptionKey, int], int, Relaxation]:
    """The round's terms, the warm start (as solve() hands it to improve), its objective and the LP."""
    terms = derive(rnd.canonical())
    relaxation = lp_units(terms)
    assert relaxation is not None
    units = warm_start(terms, None, relaxation)
    assert units is not None
    assert feasible(terms, units)
    return terms, units, _worth(terms, units), relaxation


@pytest.mark.parametrize(
    ("proposals", "machines", "seed", "fuller", "margin", "work"),
    [(120, 6, 1, False, 100, 5.0), (120, 6, 1, False, 10, 5.0), (200, 8, 2, True, 10, 3.0)],
)
def test_improve_never_worse_feasible_and_deterministic(
    proposals: int,
    machines: int,
    seed: int,
    fuller: bool,
    margin: int,
    work: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """improve() never returns an allocation worse than the one it is given; what it returns
    satisfies every rule and is worth the objective it reports; and the same inputs give the same
    answer (neighbourhoods of the first size, and smaller ones that must grow)."""
    monkeypatch.setattr(improve_module, "FIRST_MARGIN", margin)
    rnd = generate_round(proposals, machines, seed, policy_language=fuller)
    terms, units, objective, relaxation = _start(rnd)
    given_units = dict(units)
    options = SolveOptions(gap_limit=0.0)
    first = improve(terms, dict(units), objective, relaxation, options, work)
    assert units == given_units  # the allocation given is left alone
    assert first.objective >= objective
    assert feasible(terms, first.units)
    assert _worth(terms, first.units) == first.objective
    assert first.neighbourhoods >= 1
    assert first.deterministic_seconds <= work + 0.5
    if first.bound is not None:  # the whole round was searched: its bound holds
        assert first.bound >= first.objective
    again = improve(terms, dict(units), objective, relaxation, options, work)
    assert again.units == first.units
    assert again.objective == first.objective
    assert (again.neighbourhoods, again.proven_optimal, again.bound) == (
        first.neighbourhoods,
        first.proven_optimal,
        first.bound,
    )


@pytest.mark.parametrize(
    ("proposals", "machines", "seed", "fuller"), [(40, 3, 1, True), (60, 4, 2, False), (80, 5, 3, True)]
)
@pytest.mark.parametrize("margin", [100, 8])
def test_improve_proves_the_optimum_of_a_whole_round(
    proposals: int, machines: int, seed: int, fuller: bool, margin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the neighbourhood grows to the whole round within the work given (at once, or from a
    small one doubling), improve() says the allocation is proven optimal, and it is: its objective
    is the optimum a full solve proves, and its bound is that optimum too."""
    monkeypatch.setattr(improve_module, "FIRST_MARGIN", margin)
    rnd = generate_round(proposals, machines, seed, policy_language=fuller)
    terms, units, objective, relaxation = _start(rnd)
    result: Improved = improve(terms, units, objective, relaxation, SolveOptions(gap_limit=0.0), 20.0)
    optimum = solve(rnd, SolveOptions(gap_limit=0.0))
    assert optimum.solver.status == "optimal"
    assert result.proven_optimal
    assert result.stopped is None
    assert result.objective == optimum.objective.scaled
    assert result.bound == optimum.objective.scaled
    assert feasible(terms, result.units)
    assert _worth(terms, result.units) == result.objective
    decided = {o.proposal_id for o in terms.options}
    if len(decided) > 2 * margin:  # a first neighbourhood short of the round: it had to grow
        assert result.neighbourhoods >= 2


def test_neighbourhoods_use_light_cuts_and_the_whole_round_keeps_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A neighbourhood's own bound proves nothing for the round, so its search leaves out CP-SAT's
    cut rounds; the whole round's search, whose bound is the round's, keeps them."""
    monkeypatch.setattr(improve_module, "FIRST_MARGIN", 8)
    rnd = generate_round(60, 4, 2, policy_language=False)
    terms, units, objective, relaxation = _start(rnd)
    total = sum(len(a.options) for a in terms.assessments.values())
    asked: list[tuple[bool, bool]] = []  # (the whole round, light cuts) for each CP-SAT call
    real_solve = AllocationModel.solve

    def recorded(self: AllocationModel, options: SolveOptions, *args: object, **kwargs: object) -> object:
        asked.append((self.decided_options == total, bool(kwargs.get("light_cuts", False))))
        return real_solve(self, options, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(AllocationModel, "solve", recorded)
    result = improve(terms, units, objective, relaxation, SolveOptions(gap_limit=0.0), 20.0)
    assert result.proven_optimal  # so the search reached the whole round
    assert (False, True) in asked and (True, False) in asked
    assert (False, False) not in asked and (True, True) not in asked


@pytest.mark.parametrize(("margin_gain", "widens"), [(1e12, True), (1e-12, False)])
def test_the_margin_widens_only_while_it_closes_enough_of_the_gap(
    margin_gain: float, widens: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round's margin doubles after a margin proven optimal only if that margin closed at
    least 1/MARGIN_GAIN of the gap to the LP bound: with any gain enough, a first margin that
    gains is followed by one twice as wide; with no gain enough, it is the only one."""
    monkeypatch.setattr(improve_module, "FIRST_MARGIN", 10)
    monkeypatch.setattr(improve_module, "MARGIN_GAIN", margin_gain)
    widths: list[int] = []
    margin = improve_module._margin

    def recorded(terms: Terms, units: dict[OptionKey, int], relaxation: Relaxation, k: int) -> list[str]:
        widths.append(k)
        return margin(terms, units, relaxation, k)

    monkeypatch.setattr(improve_module, "_margin", recorded)
    terms, units, objective, relaxation = _start(generate_round(200, 8, 2, policy_language=True))
    result = improve(terms, units, objective, relaxation, SolveOptions(gap_limit=0.0), 3.0)
    assert feasible(terms, result.units) and result.objective >= objective
    assert widths[0] == 10
    assert (widths[:2] == [10, 20]) is widens
    if not widens:
        assert widths == [10]


def test_the_search_stops_once_within_the_gap_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a gap limit the search reaches part-way, no neighbourhood is solved after the first
    one that leaves the allocation within the limit of the LP bound, and the result is within it."""
    terms, units, objective, relaxation = _start(generate_round(200, 8, 2, policy_language=True))
    bound = relaxation.bound
    exact = improve(terms, dict(units), objective, relaxation, SolveOptions(gap_limit=0.0), 3.0)
    assert exact.objective > objective  # the search gains here, so a limit part-way exists
    limit = ((bound - objective) + (bound - exact.objective)) / 2 / bound
    after: list[int] = []  # the objective after each step
    step = improve_module._Search.step

    def recorded(self: improve_module._Search, *args: object, **kwargs: object) -> object:
        raw = step(self, *args, **kwargs)  # type: ignore[arg-type]
        after.append(self.objective)
        return raw

    monkeypatch.setattr(improve_module._Search, "step", recorded)
    result = improve(terms, dict(units), objective, relaxation, SolveOptions(gap_limit=limit), 3.0)
    assert bound - result.objective <= limit * bound
    assert after and all(bound - o > limit * bound for o in after[:-1])
    assert result.neighbourhoods == len(after) < exact.neighbourhoods


def test_a_bound_tighter_than_the_lp_ends_the_search_sooner() -> None:
    """Given a bound proven for the whole round tighter than the LP's (solve()'s probe gives
    CP-SAT's), improve() measures the gap against it: with the optimum itself as the bound and
    no gap allowed, it stops as soon as it reaches the optimum, where the LP bound alone sends
    it on to prove it; every report it makes carries that bound."""
    rnd = generate_round(80, 5, 3, policy_language=True)
    terms, units, objective, relaxation = _start(rnd)
    optimum = solve(rnd, EXACT).objective.scaled
    assert objective < optimum < relaxation.bound  # the LP bound is loose here
    reports: list[Progress] = []
    plain = improve(terms, dict(units), objective, relaxation, EXACT, 20.0)
    tight = improve(
        terms, dict(units), objective, relaxation, EXACT, 20.0, on_progress=reports.append, bound=optimum
    )
    assert plain.objective == tight.objective == optimum
    assert plain.proven_optimal and not tight.proven_optimal  # tight: no whole-round search needed
    assert tight.neighbourhoods < plain.neighbourhoods
    assert reports and all(p.bound == optimum for p in reports)
    # A bound looser than the LP's changes nothing: the LP's holds.
    looser = improve(terms, dict(units), objective, relaxation, EXACT, 20.0, bound=relaxation.bound + 10**6)
    assert (looser.objective, looser.neighbourhoods) == (plain.objective, plain.neighbourhoods)


def test_the_whole_round_is_searched_against_the_tighter_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole-round step adds the round's bound to the model as a ceiling on the objective:
    with the true optimum as the bound it still finds the optimum and proves it (the ceiling cuts
    off no allowed allocation); with a bound one point below the optimum (not a valid bound, only
    to show the ceiling is the one given) it cannot reach the optimum."""
    monkeypatch.setattr(
        improve_module, "_disagreement", lambda *_: []
    )  # the margin step first: the whole round
    rnd = generate_round(80, 5, 3, policy_language=True)
    terms, units, objective, relaxation = _start(rnd)
    optimum = solve(rnd, EXACT).objective.scaled
    assert objective < optimum < relaxation.bound
    exact = improve(terms, dict(units), objective, relaxation, EXACT, 20.0, bound=optimum)
    assert exact.proven_optimal and exact.neighbourhoods == 1
    assert exact.objective == exact.bound == optimum
    below = improve(terms, dict(units), objective, relaxation, EXACT, 20.0, bound=optimum - 1)
    assert below.objective < optimum


def test_the_neighbourhood_search_gets_the_probes_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a round small enough for the probe, the probe is hinted with the LP rounded (no MILP
    warm start runs) and the neighbourhood search measures its gap against the tighter of the
    probe's and the LP's bounds."""
    solve_module = importlib.import_module("allocopt.solve")
    given: list[int | None] = []
    real_improve = solve_module.improve

    def spied(*args: Any, **kwargs: Any) -> Improved:
        given.append(inspect.signature(real_improve).bind(*args, **kwargs).arguments["bound"])
        return real_improve(*args, **kwargs)

    hints: list[dict[OptionKey, int]] = []
    real_hint = AllocationModel.hint

    def hinted(self: AllocationModel, units: dict[OptionKey, int]) -> None:
        hints.append(dict(units))
        real_hint(self, units)

    def no_milp(*_: object, **__: object) -> None:
        raise AssertionError("the warm start's MILP ran")

    monkeypatch.setattr(solve_module, "improve", spied)
    monkeypatch.setattr(solve_module, "warm_start", no_milp)
    monkeypatch.setattr(AllocationModel, "hint", hinted)
    rnd = generate_round(300, 8, 1, policy_language=False)
    terms = derive(rnd.canonical())
    relaxation = lp_units(terms)
    assert relaxation is not None
    solution = solve(rnd, SolveOptions(work_limit=3.0))
    assert hints[0] == rounded(terms, relaxation)  # the probe's hint
    assert len(given) == 1 and given[0] is not None
    assert solution.objective.best_bound_scaled is not None
    assert solution.objective.best_bound_scaled <= given[0] < relaxation.bound  # the probe's was tighter


def _swap_round() -> Round:
    """Two machines of 3,000 GPU-hours. P1 runs twice as fast on ROCm (machine B), P2 on CUDA
    (machine A): each needs 4,000 GPU-hours for its whole request on its slow machine (3,000 fit:
    3/4 of it), 2,000 on its fast one."""
    both: dict[str, Any] = {"stacks": ("cuda", "rocm"), "request": 2000, "minimum": 1000}
    return make_round(
        machines=[machine("A", gpu_hours=3000), machine("B", gpu_hours=3000, stack="rocm")],
        proposals=[
            proposal("P1", efficiency={"cuda": 0.5, "rocm": 1.0}, **both),
            proposal("P2", efficiency={"cuda": 1.0, "rocm": 0.5}, **both),
        ],
        value="hours",
    )


# P1 and P2 each fill the machine that suits them least, with 3/4 of their request.
WRONG_WAY_ROUND = {("P1", "A"): 3, ("P2", "B"): 3}


def test_movers_are_the_awards_that_could_change_machine() -> None:
    terms = derive(_swap_round().canonical())
    assert improve_module._movers(terms, WRONG_WAY_ROUND, ["A", "B"]) == {"P1", "P2"}
    assert improve_module._movers(terms, WRONG_WAY_ROUND, ["A"]) == set()  # no other machine among these
    assert improve_module._movers(terms, {("P1", "A"): 3}, ["B"]) == set()  # funded elsewhere
    assert (
        improve_module._movers(terms, {("P9", "A"): 3, ("P1", "Z"): 1}, ["A", "B"]) == set()
    )  # no such options


def test_pairs_are_each_machine_with_those_most_awards_could_move_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three machines: three CUDA-only awards on A could move to B; one award on C (ROCm) could
    move to A or B. Each machine takes its PARTNERS busiest pairs, ties by id, each pair once."""
    cuda: dict[str, Any] = {"stacks": ("cuda",)}
    both: dict[str, Any] = {"stacks": ("cuda", "rocm")}
    rnd = make_round(
        machines=[machine("A"), machine("B"), machine("C", stack="rocm")],
        proposals=[*(proposal(f"X{i}", **cuda) for i in (1, 2, 3)), proposal("Y1", **both)],
    )
    terms = derive(rnd.canonical())
    units = {("X1", "A"): 2, ("X2", "A"): 2, ("X3", "A"): 2, ("Y1", "C"): 2}
    assert improve_module._pairs(terms, units) == [["A", "B"], ["A", "C"], ["B", "C"]]
    monkeypatch.setattr(improve_module, "PARTNERS", 1)
    assert improve_module._pairs(terms, units) == [["A", "B"], ["A", "C"]]  # C: (A, C) before (B, C)
    assert improve_module._pairs(terms, {}) == []


def test_a_pair_neighbourhood_swaps_awards_each_machine_alone_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    """With both machines full, neither award alone can move (the other machine has no room);
    the pair's neighbourhood (here only its movers: no margins) frees both, and swaps them."""
    monkeypatch.setattr(improve_module, "MACHINE_MARGIN", 0)
    terms = derive(_swap_round().canonical())
    relaxation = lp_units(terms)
    assert relaxation is not None
    start = dict(WRONG_WAY_ROUND)
    assert feasible(terms, start)

    def search() -> improve_module._Search:
        return improve_module._Search(
            terms, dict(start), _worth(terms, start), relaxation, relaxation.bound, EXACT, 10.0, None, None
        )

    alone = search()
    for pid in ("P1", "P2"):
        assert alone.step([pid]).status == "optimal"
    assert alone.units == start  # either award alone is stuck where it is
    paired = search()
    assert improve_module._sweep(paired, improve_module._pairs(terms, paired.units))
    assert paired.count == 1
    assert paired.units == {("P1", "B"): 2, ("P2", "A"): 2}  # each whole, on its fast machine
    assert paired.objective == _worth(terms, paired.units) > _worth(terms, start)
    assert feasible(terms, paired.units)


def _random_search(rnd: Round, seed: int = 0, spent: float = 1.0) -> improve_module._Search:
    """A search from the round's warm start that has spent ``spent`` deterministic seconds on the
    steps before the random draws (they may spend as much again)."""
    terms, units, objective, relaxation = _start(rnd)
    options = SolveOptions(gap_limit=0.0, seed=seed)
    search = improve_module._Search(
        terms, units, objective, relaxation, relaxation.bound, options, 10.0, None, None
    )
    search.spent = spent
    return search


def test_the_random_pool_is_the_movable_awards_and_the_unfunded_nearest_the_cut() -> None:
    """Random draws come from the funded proposals that could change machine, and a quarter as
    many unfunded ones: those of least LP reduced cost (no unfunded one left out is nearer).
    (Half the warm start's awards are dropped, so that more are unfunded than a quarter.)"""
    terms, units, _, relaxation = _start(generate_round(120, 6, 1, policy_language=False))
    kept = sorted({pid for (pid, _), v in units.items() if v > 0})[::2]
    units = {key: v for key, v in units.items() if key[0] in kept}
    pool = improve_module._random_pool(terms, units, relaxation)
    funded = set(kept)
    movable = {pid for pid in funded if len(terms.assessments[pid].options) > 1}
    assert movable and funded - movable  # both kinds of funded proposal are here
    assert pool == sorted(set(pool))
    assert set(pool) & funded == movable
    taken = [pid for pid in pool if pid not in funded]
    left_out = {o.proposal_id for o in terms.options} - funded - set(taken)
    assert len(taken) == len(funded) // 4 and left_out

    def cost(pid: str) -> float:
        return min(relaxation.cost.get(o.key, float("inf")) for o in terms.assessments[pid].options)

    assert max(cost(pid) for pid in taken) <= min(cost(pid) for pid in left_out)


def _scripted_steps(
    monkeypatch: pytest.MonkeyPatch, gains: list[int], status: str = "optimal"
) -> list[list[str]]:
    """Replace each neighbourhood's CP-SAT call with a script: the i-th step raises the objective
    by gains[i] points (0 once they run out) and ends with ``status``. Returns the draws."""
    drawn: list[list[str]] = []

    def scripted(self: improve_module._Search, free: list[str], **_: object) -> RawResult:
        gain = gains[len(drawn)] if len(drawn) < len(gains) else 0
        drawn.append(list(free))
        self.objective += gain
        self.spent += 0.01
        return RawResult(status=status, stop_reason="finished", deterministic_seconds=0.01)

    monkeypatch.setattr(improve_module._Search, "step", scripted)
    return drawn


ROUND_120 = generate_round(120, 6, 1, policy_language=False)


@pytest.mark.parametrize(
    ("status", "sizes"),
    [
        # Settled draws that gain nothing: the size doubles after every RANDOM_MISSES of them.
        ("optimal", [8] * 4 + [16] * 4 + [32] * 4),
        # Draws too wide to settle: the size halves, down to a quarter of the first.
        ("feasible", [8, 4] + [2] * 10),
    ],
)
def test_random_draws_grow_or_shrink_and_stop_after_a_stall(
    status: str, sizes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(improve_module, "RANDOM_SIZE", 8)
    drawn = _scripted_steps(monkeypatch, [], status)
    search = _random_search(ROUND_120)
    pool = set(improve_module._random_pool(search.terms, search.units, search.relaxation))
    improve_module._random_neighbourhoods(search)
    assert len(drawn) == improve_module.RANDOM_STALL
    assert [len(d) for d in drawn] == sizes
    assert all(d == sorted(set(d)) and set(d) <= pool for d in drawn)


def test_random_draws_go_on_while_they_gain_and_crumbs_are_no_gain(monkeypatch: pytest.MonkeyPatch) -> None:
    """A draw that closes 1/RANDOM_GAIN of the gap to the ceiling starts the stall count again;
    draws that gain a point each do not (their gains are kept, but count as none)."""
    monkeypatch.setattr(improve_module, "RANDOM_SIZE", 8)
    stall = improve_module.RANDOM_STALL
    search = _random_search(ROUND_120)
    gap = search.ceiling - search.objective
    assert gap > 4 * improve_module.RANDOM_GAIN
    drawn = _scripted_steps(monkeypatch, [gap // 4] * 3)
    improve_module._random_neighbourhoods(search)
    assert [len(d) for d in drawn] == [8] * 3 + [8] * 4 + [16] * 4 + [32] * 4
    assert len(drawn) == 3 + stall
    search = _random_search(ROUND_120)
    drawn = _scripted_steps(monkeypatch, [1] * stall + [gap // 4])
    improve_module._random_neighbourhoods(search)
    assert len(drawn) == stall  # the crumbs end the draws before the gain
    assert search.objective == _random_search(ROUND_120).objective + stall  # and are kept


def test_random_draws_spend_at_most_what_the_search_spent_before_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each scripted draw costs 1/8 of a deterministic second: after half a second of earlier
    steps, four draws, each given what is left of that half second; none after no earlier work."""
    budgets: list[float] = []

    def priced(self: improve_module._Search, free: list[str], **kwargs: Any) -> RawResult:
        budgets.append(kwargs["most"])
        self.spent += 0.125
        return RawResult(status="optimal", stop_reason="finished", deterministic_seconds=0.125)

    monkeypatch.setattr(improve_module._Search, "step", priced)
    monkeypatch.setattr(improve_module, "RANDOM_SIZE", 8)
    improve_module._random_neighbourhoods(_random_search(ROUND_120, spent=0.5))
    assert budgets == [0.5, 0.375, 0.25, 0.125]
    budgets.clear()
    improve_module._random_neighbourhoods(_random_search(ROUND_120, spent=0.0))
    assert budgets == []


def test_random_draws_are_seeded_by_the_solve_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(improve_module, "RANDOM_SIZE", 8)
    runs = []
    for seed in (0, 0, 1):
        drawn = _scripted_steps(monkeypatch, [])
        improve_module._random_neighbourhoods(_random_search(ROUND_120, seed=seed))
        runs.append(drawn)
    assert runs[0] == runs[1]  # the same seed, the same draws
    assert runs[0] != runs[2]


@pytest.mark.parametrize("limit", ["pool", "size"])
def test_no_random_draws_from_a_pool_too_large_or_too_small(
    limit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No draw from a pool of over RANDOM_POOL proposals (at 10,000 x 30 they gained nothing),
    nor from one no larger than a draw (that draw would be the whole pool)."""
    search = _random_search(ROUND_120)
    size = len(improve_module._random_pool(search.terms, search.units, search.relaxation))
    monkeypatch.setattr(
        improve_module,
        "RANDOM_POOL" if limit == "pool" else "RANDOM_SIZE",
        size - 1 if limit == "pool" else size,
    )
    drawn = _scripted_steps(monkeypatch, [1] * 100)
    improve_module._random_neighbourhoods(search)
    assert drawn == []


def test_random_draws_find_what_margins_and_pairs_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    """On this 200 x 8 round the margins, machines and pairs converge short of an allocation the
    random draws then find: improve() ends higher with them, feasible, worth what it says, and
    the same twice."""
    terms, units, objective, relaxation = _start(generate_round(200, 8, 7, policy_language=False))
    options = SolveOptions()  # the default gap limit and seed, as a solve runs it
    found = [improve(terms, dict(units), objective, relaxation, options, 5.0) for _ in range(2)]
    monkeypatch.setattr(improve_module, "_random_neighbourhoods", lambda _: None)
    without = improve(terms, dict(units), objective, relaxation, options, 5.0)
    assert found[0].objective > without.objective >= objective
    assert (found[0].units, found[0].objective) == (found[1].units, found[1].objective)
    assert feasible(terms, found[0].units) and _worth(terms, found[0].units) == found[0].objective


def test_solve_with_and_without_the_probe_proves_the_same_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """A round above PROBE_OPTIONS skips CP-SAT's probe and goes straight to the warm start and
    the neighbourhood search; either way the solve proves the same optimum, and verify passes."""
    from allocopt.verify import verify

    solve_module = importlib.import_module("allocopt.solve")  # the package's `solve` is the function
    rnd = generate_round(60, 4, 3, policy_language=True)
    options_in_round = len(derive(rnd.canonical()).options)
    calls: list[tuple[int, float]] = []  # each CP-SAT call: the options it decides, its work limit
    real_solve = AllocationModel.solve

    def counted(self: AllocationModel, options: SolveOptions, *args: object, **kwargs: object) -> object:
        calls.append((len(self.options), options.work_limit))
        return real_solve(self, options, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(AllocationModel, "solve", counted)
    found = []
    for probe_options in (10**9, 0):  # always probe, never probe
        monkeypatch.setattr(solve_module, "PROBE_OPTIONS", probe_options)
        calls.clear()
        solution = solve(rnd, EXACT)
        assert solution.solver.status == "optimal", probe_options
        assert verify(rnd, solution) == []
        found.append(solution.objective.scaled)
        probed = calls[0] == (options_in_round, solve_module.PROBE_WORK)
        assert probed == (probe_options > 0), calls[:3]
    assert found[0] == found[1]


def test_progress_reports_bounds_that_hold_for_the_whole_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every report solve() makes (probe, warm start, neighbourhoods) comes with a bound for the
    whole round: never below the best allocation the solve ends with (a neighbourhood's own
    bound can be). Each report is news (a better allocation or a tighter bound), and the seconds
    count from the start of the solve."""
    neighbourhood_reports: list[Progress] = []
    with_round_bound = improve_module._Search._with_round_bound

    def spied(self: improve_module._Search, p: Progress) -> None:
        neighbourhood_reports.append(p)
        with_round_bound(self, p)

    monkeypatch.setattr(improve_module._Search, "_with_round_bound", spied)
    rnd = generate_round(300, 8, 4)
    reports: list[Progress] = []
    solution = solve(rnd, SolveOptions(gap_limit=0.0, work_limit=4.0), on_progress=reports.append)
    assert neighbourhood_reports and reports
    assert any(p.bound < solution.objective.scaled for p in neighbourhood_reports)  # their own bounds
    assert all(p.bound >= solution.objective.scaled for p in reports)

    def news(a: Progress, b: Progress) -> bool:
        better = a.objective < b.objective and a.bound >= b.bound
        return better or (a.objective == b.objective and a.bound > b.bound)

    assert all(news(a, b) for a, b in pairwise(reports))
    assert all(a.seconds <= b.seconds for a, b in pairwise(reports))
    assert reports[-1].seconds <= solution.timing.total_seconds
