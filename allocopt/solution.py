"""The solution file: decisions by proposal id, reasons, metrics, status and provenance.

A solution embeds the canonical round it was solved from, so every later
command (verify, report, an appeal) needs only this one file.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from allocopt.round import Round

FORMAT: Final = "allocopt-solution/1"


class Out(BaseModel):
    """Base of the solution models: immutable, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Decision(StrEnum):
    """What happened to a proposal."""

    FUNDED = "funded"  # the full request, rounded down to whole award units
    REDUCED = "reduced"  # at least the minimum, less than the request
    NOT_FUNDED = "not_funded"  # eligible, no award
    NOT_ELIGIBLE = "not_eligible"  # ruled out before any hours were shared


class Allocation(Out):
    """Hours awarded on one machine."""

    machine: str = Field(description="Machine id.")
    gpu_hours: int = Field(ge=0, description="GPU-hours of this machine.")
    reference_gpu_hours: float = Field(ge=0, description="The same award in reference GPU-hours.")


class ReasonOut(Out):
    """One reason a proposal is not funded in full."""

    code: str = Field(
        description="below_threshold, publication, incompatible, too_small, cap, pinned, capacity, "
        "commercial_cap, share_max, share_min, exclusive, organisation_cap, rank, combined_rules, "
        "not_reached or zero_merit."
    )
    detail: str = Field(description="The reason in words, with its numbers.")


class PinOut(Out):
    """A pin as it applied to one proposal."""

    action: Literal["fund", "exclude"]
    reason: str


class ProposalResult(Out):
    """The decision on one proposal."""

    id: str
    decision: Decision
    allocations: list[Allocation] = Field(description="Empty unless funded or reduced.")
    reference_gpu_hours: float = Field(description="Total award in reference GPU-hours.")
    requested_reference_gpu_hours: int
    fraction_of_request: float = Field(description="Awarded / requested reference GPU-hours.")
    score: float
    merit_weight: float = Field(description="((score - min) / (max - min)) ** exponent.")
    objective_contribution: int = Field(description="This award's part of the scaled objective.")
    group: str | None = Field(description="Share group id, or null.")
    rank_position: int = Field(description="Place in the ranking order (1 = best), see the rank objective.")
    pin: PinOut | None = Field(default=None, description="The committee's pin on this proposal, if any.")
    commercial: bool = Field(description="True when the commitment does not qualify for free access.")
    reasons: list[ReasonOut] = Field(
        description="Every reason that holds, the decisive one first; empty when funded in full."
    )


class GroupMetrics(Out):
    id: str
    name: str
    reference_gpu_hours: float = Field(description="Reference GPU-hours awarded to the group.")
    share: float = Field(description="Fraction of the share basis (capacity or awarded hours).")
    min_share: float
    max_share: float
    soft: bool
    shortfall_reference_gpu_hours: int = Field(
        description="Whole reference GPU-hours below the minimum (soft groups only; 0 otherwise)."
    )
    excess_reference_gpu_hours: int = Field(
        description="Whole reference GPU-hours above the maximum (soft groups only; 0 otherwise)."
    )
    proposals_funded: int


class MachineMetrics(Out):
    id: str
    name: str
    gpu_hours: int = Field(description="GPU-hours available to the round.")
    awarded_gpu_hours: int
    idle_gpu_hours: int
    utilisation: float = Field(description="Awarded / available.")
    commercial_gpu_hours: int
    commercial_cap_gpu_hours: int
    proposals_funded: int


class Metrics(Out):
    share_basis: Literal["capacity", "awarded"]
    capacity_reference_gpu_hours: float
    requested_reference_gpu_hours: int
    awarded_reference_gpu_hours: float
    decisions: dict[str, int] = Field(description="Number of proposals per decision.")
    groups: list[GroupMetrics]
    machines: list[MachineMetrics]


class ObjectiveOut(Out):
    kind: Literal["merit", "rank"]
    value_basis: Literal["fraction", "hours"]
    scale: int = Field(description="Scaled objective points per unit of value.")
    merit_scaled: int = Field(description="Sum of every award unit's scaled merit (coef x units).")
    penalty_scaled: int = Field(description="Scaled penalties for soft share deviations.")
    scaled: int = Field(description="merit_scaled - penalty_scaled: what 'merit' maximises (integer).")
    value: float = Field(description="scaled / scale.")
    best_bound_scaled: int | None = Field(
        description="Proven upper bound on the scaled objective (merit only; null under rank)."
    )
    gap: float | None = Field(
        description="(bound - objective) / max(1, bound); 0 when proven optimal (merit only)."
    )


class RankStep(Out):
    """One step of the rank objective's walk down the ranking."""

    position: int = Field(description="Place in the ranking order (1 = best).")
    proposal: str
    phase: Literal["fund", "raise"] = Field(
        description="'fund': is it funded at its minimum? 'raise': how far towards its request?"
    )
    outcome: Literal["funded", "not_funded", "raised"]
    fraction_of_request: float = Field(description="The proposal's fraction of its request after the step.")
    settled_by: Literal["pin", "witness", "solver"] = Field(
        description="A pin, an allocation already found, or a CP-SAT check."
    )
    proven: bool = Field(description="False when the CP-SAT check ran out of its work limit.")


class RankOut(Out):
    """The record of a rank solve: the order and every step."""

    order: list[str] = Field(description="Eligible proposal ids, best first.")
    steps: list[RankStep]
    all_proven: bool


class SolverOut(Out):
    status: Literal["optimal", "feasible"] = Field(
        description="Merit: proven optimal or not. Rank: optimal when every step was proven."
    )
    stop_reason: Literal["finished", "work_limit", "time_limit", "interrupted"]
    deterministic_seconds: float = Field(description="CP-SAT's deterministic work measure.")
    options_considered: int = Field(description="(proposal, machine) pairs in the model.")


class Timing(Out):
    """Wall-clock figures: the only part of a solution that differs between runs."""

    solve_seconds: float
    total_seconds: float


class Provenance(Out):
    input_sha256: str = Field(description="sha256 of the canonical round embedded below.")
    allocopt_version: str
    ortools_version: str
    python_version: str
    options: dict[str, object] = Field(description="Every solve option, as used.")
    seed: int


class Solution(Out):
    """Everything `solve` decided, and enough to check and re-run it."""

    format: Literal["allocopt-solution/1"] = FORMAT
    round_id: str
    round_name: str
    objective: ObjectiveOut
    rank: RankOut | None = Field(default=None, description="The rank walk (objective 'rank' only).")
    proposals: list[ProposalResult]
    metrics: Metrics
    solver: SolverOut
    timing: Timing
    provenance: Provenance
    input: Round = Field(description="The canonical round that was solved.")

    def result(self, proposal_id: str) -> ProposalResult:
        for r in self.proposals:
            if r.id == proposal_id:
                return r
        raise KeyError(proposal_id)
