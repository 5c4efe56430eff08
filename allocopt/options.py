"""Solve options: what the solver is allowed to do, recorded in every solution."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SEED_MAX = 2**31 - 1  # CP-SAT's random seed is a 32-bit signed integer


class SolveOptions(BaseModel):
    """How to solve a round. Every field is recorded in the solution's provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objective: Literal["merit", "rank"] | None = Field(
        default=None, description="What to optimise; null: the round policy's objective."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CP-SAT search workers; more than one runs interleaved, which stays deterministic.",
    )
    seed: int = Field(default=0, ge=0, le=SEED_MAX, description="CP-SAT random seed.")
    work_limit: float = Field(
        default=30.0,
        gt=0,
        description="Deterministic work limit in CP-SAT deterministic seconds: the same limit "
        "stops at the same point on any machine, so results reproduce.",
    )
    gap_limit: float = Field(
        default=1e-5,
        ge=0,
        lt=1,
        description="Stop once the allocation is proven within this relative gap of the best possible "
        "(1e-5 = 0.001 %); 0 asks for a proof of optimality however long it takes.",
    )
    time_limit: float | None = Field(
        default=None,
        gt=0,
        description="Wall-clock safety cap in seconds; a solve it stops may not reproduce.",
    )
    warm_start: bool = Field(
        default=True,
        description="Merit objective: hint CP-SAT with a first allocation from the LP relaxation, "
        "rounded, improved by a small node-limited MILP and filled greedily, then improved by "
        "re-solving neighbourhoods near the LP's cut exactly (deterministic); used only when it "
        "satisfies every rule.",
    )
