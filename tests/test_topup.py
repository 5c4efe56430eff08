"""The rank walk's top-up: a raise step's award grown with room taken from worse-ranked awards,
every rule and every better-ranked award kept."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import allocopt.rank as rank_module
from allocopt import Round, SolveOptions, solve
from allocopt.generate import generate_round
from allocopt.model import AllocationModel
from allocopt.terms import Terms, derive
from allocopt.topup import top_up
from allocopt.warmstart import feasible
from tests.helpers import group, machine, make_round, proposal
from tests.strategies import policy_rounds


def _gains(terms: Terms, pid: str) -> dict[tuple[str, str], int]:
    a = terms.assessments[pid]
    scale = AllocationModel(terms, soft_shares=False).fraction_expr(a)[1]
    return {o.key: int(o.f * scale) for o in a.options}


def _level(gains: dict[tuple[str, str], int], units: dict[tuple[str, str], int]) -> int:
    return sum(g * units.get(k, 0) for k, g in gains.items())


def _three_on_one_machine(groups: list[dict[str, object]] | None = None) -> Terms:
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


sizes = (st.integers(4, 30), st.integers(1, 4), st.integers(0, 10**6))
generated_rounds = st.builds(generate_round, *sizes, policy_language=st.booleans())


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.one_of(policy_rounds(), policy_rounds(split=True), generated_rounds), st.integers(0, 10**6))
def test_a_top_up_keeps_every_rule_and_every_decision_but_its_own(rnd: Round, pick: int) -> None:
    """From the first allocation CP-SAT finds under the rank model's rules (as the walk's first
    check does), a top-up of any funded proposal either finds nothing or gives it more, keeps
    every hard rule (share bounds hard), funds the same proposals, and changes no award but its
    own and those of the worse-ranked funded ones."""
    terms = derive(rnd.canonical())
    first = AllocationModel(terms, soft_shares=False).solve(SolveOptions()).units
    funded = [pid for pid in terms.order if any(first.get(o.key, 0) for o in terms.assessments[pid].options)]
    if not funded:
        return
    i = pick % len(funded)
    a = terms.assessments[funded[i]]
    later = [terms.assessments[pid] for pid in funded[i + 1 :]]
    gains = _gains(terms, a.proposal.id)
    before = dict(first)
    grown = top_up(terms, before, a, later, gains, math.inf)
    if grown is None:
        return
    assert feasible(terms, grown, hard_shares=True)
    assert _level(gains, grown) > _level(gains, before)

    def funded_in(units: dict[tuple[str, str], int]) -> set[str]:
        return {key[0] for key, u in units.items() if u > 0}

    assert funded_in(grown) == funded_in(before)
    free = {a.proposal.id} | {b.proposal.id for b in later}
    changed = {key[0] for key in set(grown) | set(before) if grown.get(key, 0) != before.get(key, 0)}
    assert changed <= free


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
