"""The rank walk's top-up: a raise step's award grown with room taken from worse-ranked awards,
every rule and every better-ranked award kept."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import allocopt.rank as rank_module
from allocopt.generate import generate_round
from allocopt.model import AllocationModel
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solve import solve
from allocopt.terms import Terms, derive
from allocopt.topup import top_up
from allocopt.warmstart import feasible
from tests.helpers import group, machine, make_round, pin, proposal
from tests.strategies import policy_rounds


def _gains(terms: Terms, pid: str) -> dict[tuple[str, str], int]:
    a = terms.assessments[pid]
    scale = AllocationModel(terms, soft_shares=False).fraction_expr(a)[1]
    return {o.key: int(o.f * scale) for o in a.options}


def _level(gains: dict[tuple[str, str], int], units: dict[tuple[str, str], int]) -> int:
    return sum(g * units.get(k, 0) for k, g in gains.items())


def _three_on_one_machine(
    groups: list[dict[str, object]] | None = None, pins: list[dict[str, object]] | None = None
) -> Terms:
    """m1 has 10 units of 1,000 GPU-hours. P0 ranks first, then P1, then P2 (the worst); each
    asks for 6 units, P0 and P2 with a minimum of 2, P1 of 1."""
    rnd = make_round(
        machines=[machine("m1", gpu_hours=10_000)],
        proposals=[
            proposal("P0", score=5.0, request=6000, minimum=2000),
            proposal("P1", score=4.5, request=6000, minimum=1000),
            proposal("P2", score=4.0, request=6000, minimum=2000, kind="industry"),
        ],
        groups=groups or [],
        pins=pins or [],
    )
    return derive(rnd.canonical())


def _top_up_p1(terms: Terms, units: dict[tuple[str, str], int], most: float = math.inf) -> object:
    """A top-up of P1, with P2 the only worse-ranked funded proposal."""
    return top_up(terms, units, terms.assessments["P1"], [terms.assessments["P2"]], _gains(terms, "P1"), most)


def test_the_award_grows_into_what_a_worse_ranked_award_holds_above_its_minimum() -> None:
    terms = _three_on_one_machine()
    units = {("P0", "m1"): 3, ("P1", "m1"): 2, ("P2", "m1"): 5}
    assert feasible(terms, units)
    grown = _top_up_p1(terms, units)
    # P2 gives up all it holds above its minimum (3 units); P0, better-ranked, keeps its 3
    # although it is above its own minimum.
    assert grown == {("P0", "m1"): 3, ("P1", "m1"): 5, ("P2", "m1"): 2}


def test_the_award_grows_no_further_than_the_bound_and_takes_only_what_it_needs() -> None:
    terms = _three_on_one_machine()
    units = {("P0", "m1"): 3, ("P1", "m1"): 2, ("P2", "m1"): 5}
    gains = _gains(terms, "P1")
    most = 4 * gains[("P1", "m1")] + 0.5  # no allocation gives P1 more than 4 units
    grown = _top_up_p1(terms, units, most)
    assert grown == {("P0", "m1"): 3, ("P1", "m1"): 4, ("P2", "m1"): 3}


def test_no_award_grows_past_a_share_minimum_of_the_awards_it_takes_from() -> None:
    # Industry must hold at least 40 % of the 10,000 hours: P2 may give up only one unit.
    terms = _three_on_one_machine([group("ind", ["industry"], min_share=0.4)])
    units = {("P0", "m1"): 3, ("P1", "m1"): 2, ("P2", "m1"): 5}
    assert feasible(terms, units, hard_shares=True)
    grown = _top_up_p1(terms, units)
    assert grown == {("P0", "m1"): 3, ("P1", "m1"): 3, ("P2", "m1"): 4}
    # With nothing to take and no room left, there is no top-up.
    full = {("P0", "m1"): 3, ("P1", "m1"): 3, ("P2", "m1"): 4}
    assert _top_up_p1(terms, full) is None


def test_the_award_moves_to_another_of_its_machines_when_that_has_more_room() -> None:
    # P0 (better-ranked) holds 3 of m1's 5 units; m2's 5 are free. P1 can grow only on m2.
    rnd = make_round(
        machines=[machine("m1", gpu_hours=5000), machine("m2", gpu_hours=5000)],
        proposals=[
            proposal("P0", score=5.0, request=3000, minimum=1000),
            proposal("P1", score=4.5, request=4000, minimum=1000),
        ],
    )
    terms = derive(rnd.canonical())
    units = {("P0", "m1"): 3, ("P1", "m1"): 2}
    grown = top_up(terms, units, terms.assessments["P1"], [], _gains(terms, "P1"), math.inf)
    assert grown == {("P0", "m1"): 3, ("P1", "m2"): 4}


def test_a_commercial_award_takes_what_the_commercial_cap_needs_from_commercial_awards_only() -> None:
    # m1: 10 units, at most 7 of them commercial. P1 and P2 are commercial (confidential), P3 is
    # not; P1 may grow from 2 to 5 units: 3 more, 2 of them under the commercial cap.
    rnd = make_round(
        machines=[machine("m1", gpu_hours=10_000, commercial_cap=0.7)],
        proposals=[
            proposal("P1", score=5.0, commitment="confidential", request=5000, minimum=1000),
            proposal("P2", score=4.5, commitment="confidential", request=6000, minimum=1000),
            proposal("P3", score=4.0, request=6000, minimum=1000),
        ],
    )
    terms = derive(rnd.canonical())
    units = {("P1", "m1"): 2, ("P2", "m1"): 4, ("P3", "m1"): 4}
    assert feasible(terms, units)
    later = [terms.assessments["P2"], terms.assessments["P3"]]
    grown = top_up(terms, units, terms.assessments["P1"], later, _gains(terms, "P1"), math.inf)
    # P2 gives the 2 units the cap needs; the third comes from P3, the worst-ranked.
    assert grown == {("P1", "m1"): 5, ("P2", "m1"): 2, ("P3", "m1"): 3}


def test_pinned_and_split_awards_are_left_as_they_are() -> None:
    terms = _three_on_one_machine()
    units = {("P0", "m1"): 3, ("P1", "m1"): 2, ("P2", "m1"): 5}
    pinned = _three_on_one_machine(pins=[pin("P2")])
    assert _top_up_p1(terms, units) is not None
    assert _top_up_p1(pinned, units) is None  # P2's pinned award gives nothing up
    split = derive(
        make_round(
            machines=[machine("m1", gpu_hours=10_000), machine("m2", gpu_hours=10_000)],
            proposals=[proposal("P1", request=6000, minimum=1000, max_machines=2)],
        ).canonical()
    )
    assert (
        top_up(split, {("P1", "m1"): 2}, split.assessments["P1"], [], _gains(split, "P1"), math.inf) is None
    )


sizes = (st.integers(4, 30), st.integers(1, 4), st.integers(0, 10**6))
generated_rounds = st.builds(generate_round, *sizes, policy_language=st.booleans())


def _tried(rnd: Round, pick: int, extra: int | None) -> bool:
    """Top up one funded proposal (the pick-th in rank order) of the first allocation CP-SAT
    finds under the rank model's rules (as the walk's first check does), at most ``extra`` of
    its smallest steps above what it has (None: no bound). Checks what a top-up must keep;
    True when it grew the award."""
    terms = derive(rnd.canonical())
    first = AllocationModel(terms, soft_shares=False).solve(SolveOptions()).units
    funded = [pid for pid in terms.order if any(first.get(o.key, 0) for o in terms.assessments[pid].options)]
    if not funded:
        return False
    i = pick % len(funded)
    a = terms.assessments[funded[i]]
    later = [terms.assessments[pid] for pid in funded[i + 1 :]]
    gains = _gains(terms, a.proposal.id)
    most = (
        math.inf
        if extra is None
        else _level(gains, first) + extra * min(g for g in gains.values() if g) + 0.5
    )
    grown = top_up(terms, dict(first), a, later, gains, most)
    if grown is None:
        return False
    assert _level(gains, first) < _level(gains, grown) <= most

    def funded_in(units: dict[tuple[str, str], int]) -> set[str]:
        return {key[0] for key, u in units.items() if u > 0}

    assert funded_in(grown) == funded_in(first)
    free = {a.proposal.id} | {b.proposal.id for b in later}
    changed = {key[0] for key in set(grown) | set(first) if grown.get(key, 0) != first.get(key, 0)}
    assert changed <= free
    # The rank model's own rules (CP-SAT, share bounds hard) accept exactly these awards.
    model = AllocationModel(terms, soft_shares=False)
    for o in terms.options:
        model.model.add(model.u[o.key] == grown.get(o.key, 0))
    assert model.solve(SolveOptions()).status in ("optimal", "feasible")
    return True


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.one_of(policy_rounds(), policy_rounds(split=True), generated_rounds),
    st.integers(0, 10**6),
    st.one_of(st.none(), st.integers(1, 20)),
)
def test_a_top_up_keeps_every_rule_and_every_decision_but_its_own(
    rnd: Round, pick: int, extra: int | None
) -> None:
    """A top-up either finds nothing or gives the proposal more, within the bound; the rank
    model accepts the result; the same proposals are funded; no award changes but its own and
    those of worse-ranked funded proposals."""
    _tried(rnd, pick, extra)


def test_top_ups_happen_on_generated_rounds() -> None:
    """The property above is not vacuous: on generated rounds, many first allocations leave room."""
    grown = sum(_tried(generate_round(20, 3, seed), seed, None) for seed in range(12))
    assert grown >= 3


@pytest.mark.parametrize(("size", "machines", "seed"), [(60, 4, 2), (80, 4, 5)])
def test_the_walk_with_top_ups_ends_as_it_would_without_and_checks_less(
    monkeypatch: pytest.MonkeyPatch, size: int, machines: int, seed: int
) -> None:
    """Generated rounds: the walk funds the same proposals with the same fractions, every step
    proven, whether or not raise steps first try a top-up; with it, CP-SAT runs fewer checks."""
    rnd = generate_round(size, machines, seed)
    options = SolveOptions(objective="rank")
    with_top_ups = solve(rnd, options)
    monkeypatch.setattr(rank_module, "top_up", lambda *args: None)
    without = solve(rnd, options)
    assert with_top_ups.rank is not None and without.rank is not None
    assert with_top_ups.rank.all_proven and without.rank.all_proven

    def outcome(steps: list[rank_module.RankStep]) -> list[tuple[str, str, str, float]]:
        return [(s.phase, s.proposal, s.outcome, s.fraction_of_request) for s in steps]

    assert outcome(with_top_ups.rank.steps) == outcome(without.rank.steps)
    checks = Counter(s.settled_by for s in with_top_ups.rank.steps)["solver"]
    assert checks < Counter(s.settled_by for s in without.rank.steps)["solver"]
