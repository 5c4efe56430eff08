"""How stable is the allocation under review noise? Re-solve with resampled scores.

Each sample perturbs every reviewed proposal's score and re-solves the round with
everything else unchanged:

- ``reviews`` (bootstrap): each proposal's reviews are drawn with replacement from
  its own reviews, and the policy's calibration is recomputed on them (under
  calibration 'none' the score moves by the resampled mean minus the mean);
- ``model``: each score is drawn from a normal around the calibrated score with the
  calibration's standard deviation.

Sample k draws from ``numpy.random.default_rng([seed, k])``, and every solve uses
the deterministic solve options, so a run is reproduced exactly from its seed,
whatever the number of parallel solves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from allocopt.calibrate import calibrate
from allocopt.errors import AllocoptError, InfeasibleError
from allocopt.options import SolveOptions
from allocopt.parallel import run_all
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve_or_stop

Draw = Literal["reviews", "model"]
DECIMALS = 4


class Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProposalStability(Out):
    """One proposal across the samples."""

    id: str = Field(description="Proposal id.")
    rank_position: int = Field(description="Place in the ranking of the round as given (1 = best).")
    score: float = Field(
        description="The score used in the round as given (calibrated, if the policy says so)."
    )
    reviews: int = Field(description="Number of reviews (0: its score never moves).")
    funded: bool = Field(description="Funded (in full or reduced) in the round as given.")
    reference_gpu_hours: float = Field(description="Its award in the round as given, in reference GPU-hours.")
    probability_funded: float = Field(description="Fraction of the feasible samples in which it is funded.")
    expected_reference_gpu_hours: float = Field(
        description="Mean award over the feasible samples, in reference GPU-hours."
    )
    flips: int = Field(description="Feasible samples in which its funded / not funded decision differs.")


class StabilityOut(Out):
    """The result of ``allocopt stability``."""

    format: Literal["allocopt-stability/1"] = Field(default="allocopt-stability/1", description="Format tag.")
    round_id: str = Field(description="Id of the round.")
    input_sha256: str = Field(description="sha256 of the canonical round.")
    objective: Literal["merit", "rank"] = Field(description="Objective of every solve.")
    calibration: str = Field(description="The policy's review calibration method.")
    draw: Draw = Field(description="'reviews' (bootstrap of each proposal's reviews) or 'model'.")
    samples: int = Field(description="Samples asked for.")
    seed: int = Field(description="Seed: sample k draws from numpy's default_rng([seed, k]).")
    feasible_samples: int = Field(description="Samples whose round could be solved (the rest: infeasible).")
    flip_fraction: float = Field(
        description="Fraction of (proposal, feasible sample) decisions that differ from the round as given."
    )
    options: dict[str, object] = Field(description="The solve options of every solve.")
    proposals: list[ProposalStability] = Field(description="Every proposal, in ranking order.")
    failures: list[str] = Field(description="Why each sample that could not be solved failed.")


def sample_scores(rnd: Round, k: int, seed: int, draw: Draw) -> dict[str, float]:
    """Sample k's score for every proposal (unreviewed ones keep theirs)."""
    rng = np.random.default_rng([seed, k])
    lo, hi = rnd.score_scale.min, rnd.score_scale.max
    method = rnd.policy.reviews.calibration
    base = calibrate(rnd)
    if draw == "model":
        noise = rng.standard_normal(len(rnd.proposals))
        out = {p.id: base[p.id].score + base[p.id].sd * z for p, z in zip(rnd.proposals, noise, strict=True)}
    else:
        resampled = []
        for p in rnd.proposals:
            reviews = p.reviews or []
            picks: list[int] = (
                [int(i) for i in rng.integers(0, len(reviews), len(reviews))] if reviews else []
            )
            resampled.append(p.model_copy(update={"reviews": [reviews[i] for i in picks] or None}))
        again = rnd.model_copy(update={"proposals": resampled})
        if method == "none":
            before, after = calibrate(rnd, "mean"), calibrate(again, "mean")
            out = {
                p.id: p.score + (after[p.id].score - before[p.id].score) if p.reviews else p.score
                for p in rnd.proposals
            }
        else:
            redone = calibrate(again)
            out = {p.id: redone[p.id].score for p in rnd.proposals}
    return {pid: round(float(min(max(v, lo), hi)), DECIMALS) for pid, v in out.items()}


def with_scores(rnd: Round, scores: dict[str, float]) -> Round:
    """The round with these scores taken as given (no calibration, no reviews, no lottery)."""
    policy = rnd.policy.model_copy(
        update={"reviews": rnd.policy.reviews.model_copy(update={"calibration": "none"}), "lottery": None}
    )
    proposals = [p.model_copy(update={"score": scores[p.id], "reviews": None}) for p in rnd.proposals]
    return rnd.model_copy(update={"policy": policy, "proposals": proposals})


def stability(
    rnd: Round,
    options: SolveOptions,
    *,
    samples: int,
    seed: int,
    draw: Draw = "reviews",
    parallel: int = 2,
    baseline: Solution | None = None,
    on_done: Callable[[dict[str, float] | str], None] | None = None,
) -> StabilityOut:
    """Solve the round as given and ``samples`` perturbed copies; tally every proposal."""
    rnd = rnd.canonical().model_copy(update={"policy": rnd.policy.model_copy(update={"lottery": None})})
    objective = options.objective or rnd.policy.objective
    options = options.model_copy(update={"objective": objective})
    base = baseline or solve_or_stop(rnd, options)
    calls = [partial(_solve_sample, rnd, options, k, seed, draw) for k in range(samples)]
    results = dict(enumerate(run_all(calls, parallel, on_done=on_done)))
    awards = [r for _, r in sorted(results.items()) if isinstance(r, dict)]
    failures = [f"sample {k}: {r}" for k, r in sorted(results.items()) if isinstance(r, str)]
    proposals = []
    flips_total = 0
    for r in sorted(base.proposals, key=lambda r: r.rank_position):
        funded = r.reference_gpu_hours > 0
        got = [a.get(r.id, 0.0) for a in awards]
        flips = sum(1 for g in got if (g > 0) != funded)
        flips_total += flips
        proposals.append(
            ProposalStability(
                id=r.id,
                rank_position=r.rank_position,
                score=r.score,
                reviews=len(rnd.proposal(r.id).reviews or []),
                funded=funded,
                reference_gpu_hours=r.reference_gpu_hours,
                probability_funded=round(sum(1 for g in got if g > 0) / len(got), DECIMALS) if got else 0.0,
                expected_reference_gpu_hours=round(sum(got) / len(got), 1) if got else 0.0,
                flips=flips,
            )
        )
    decisions = len(awards) * len(base.proposals)
    return StabilityOut(
        round_id=rnd.id,
        input_sha256=base.provenance.input_sha256,
        objective=objective,
        calibration=rnd.policy.reviews.calibration,
        draw=draw,
        samples=samples,
        seed=seed,
        feasible_samples=len(awards),
        flip_fraction=round(flips_total / decisions, 6) if decisions else 0.0,
        options=options.model_dump(mode="json"),
        proposals=proposals,
        failures=failures,
    )


def _solve_sample(rnd: Round, options: SolveOptions, k: int, seed: int, draw: Draw) -> dict[str, float] | str:
    """Sample k's awards in reference GPU-hours by proposal (funded ones only), or why it failed."""
    try:
        solution = solve_or_stop(with_scores(rnd, sample_scores(rnd, k, seed, draw)), options)
    except InfeasibleError as exc:
        return f"infeasible: {str(exc).splitlines()[-1].lstrip('- ')}"
    except AllocoptError as exc:
        return str(exc)
    return {r.id: r.reference_gpu_hours for r in solution.proposals if r.reference_gpu_hours > 0}


# -- the lottery at the line --------------------------------------------------------------------


def lot(seed: int, proposal_id: str) -> str:
    """A proposal's lot: the sha256 of '<seed>:<proposal id>', in hex. Lots in increasing order
    give the draw; anyone can recompute them from the published seed."""
    return hashlib.sha256(f"{seed}:{proposal_id}".encode()).hexdigest()


def draw_order(order: list[str], grey: list[str], seed: int) -> tuple[list[str], list[str]]:
    """The ranking with the grey zone's proposals put, in the places they held, in the order of
    their lots; and that drawn order."""
    drawn = sorted(grey, key=lambda pid: lot(seed, pid))
    places = [i for i, pid in enumerate(order) if pid in set(grey)]
    new = list(order)
    for i, pid in zip(places, drawn, strict=True):
        new[i] = pid
    return new, drawn
