"""The solution file: decisions by proposal id, reasons, metrics, status and provenance.

A solution embeds the canonical round it was solved from, so every later
command (verify, report, an appeal) needs only this one file.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from allocopt.files import sha256_of
from allocopt.options import SolveOptions
from allocopt.round import Round, json_path

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
    gpu_hours: int = Field(
        ge=0, description="The award on this machine, in its GPU-hours (whole award units)."
    )
    reference_gpu_hours: float = Field(ge=0, description="The same award in reference GPU-hours.")


class ReasonOut(Out):
    """One reason a proposal is not funded in full."""

    code: str = Field(
        description="below_threshold, publication, incompatible, too_small, cap, pinned, capacity, "
        "commercial_cap, share_max, share_min, exclusive, organisation_cap, rank, kept, combined_rules, "
        "not_reached or zero_merit."
    )
    detail: str = Field(description="The reason in words, with its numbers.")


class PinOut(Out):
    """A pin as it applied to one proposal."""

    action: Literal["fund", "exclude"] = Field(
        description="'fund': the committee requires it funded; 'exclude': the committee rules it out."
    )
    reason: str = Field(description="The committee's written reason for the pin.")


class CalibratedOut(Out):
    """A proposal's calibrated score and rank, with their intervals (rounds with reviews)."""

    method: Literal["none", "mean", "standardised", "model"] = Field(
        description="The policy's calibration method ('none': the score as given, with the "
        "uncertainty of the mean of its reviews around it)."
    )
    reviews: int = Field(description="Number of reviews of this proposal.")
    score: float = Field(description="Calibrated score on the round's scale (the one used, unless 'none').")
    low: float = Field(description="Lower end of the score's interval (policy.reviews.interval).")
    high: float = Field(description="Upper end of the score's interval.")
    expected_rank: float = Field(description="Expected place in the ranking by calibrated score (1 = best).")
    rank_low: int = Field(description="Best place in the rank interval (same coverage as the score's).")
    rank_high: int = Field(description="Worst place in the rank interval.")


class ProposalResult(Out):
    """The decision on one proposal."""

    id: str = Field(description="Proposal id.")
    decision: Decision = Field(
        description="'funded' (the full request, in whole award units), 'reduced' (at least the minimum, "
        "less than the request), 'not_funded' (eligible, no award) or 'not_eligible'."
    )
    allocations: list[Allocation] = Field(description="Empty unless funded or reduced.")
    reference_gpu_hours: float = Field(description="Total award in reference GPU-hours.")
    requested_reference_gpu_hours: int = Field(
        description="The request in reference GPU-hours, rounded up; with machine options, the "
        "first-choice option's GPU-hours times its machine's exchange rate."
    )
    fraction_of_request: float = Field(
        description="Awarded / requested reference GPU-hours, a fraction 0-1 (summed over machines for a "
        "split award)."
    )
    score: float = Field(
        description="Peer-review score on the round's score scale: the calibrated one under a review "
        "calibration."
    )
    calibrated: CalibratedOut | None = Field(
        default=None, description="Calibrated score and rank with intervals, when the round has reviews."
    )
    merit_weight: float = Field(
        description="((score - min) / (max - min)) ** exponent, from 0 (scale minimum) to 1 (maximum)."
    )
    objective_contribution: int = Field(
        description="This award's part of the scaled objective, in scaled merit points (coef x units)."
    )
    group: str | None = Field(description="Share group id, or null when its applicant kind is in no group.")
    rank_position: int = Field(
        description="Place among all proposals of the round in the ranking order (1 = best): committee "
        "rank, then score, then id."
    )
    pin: PinOut | None = Field(default=None, description="The committee's pin on this proposal, if any.")
    commercial: bool = Field(description="True when the commitment does not qualify for free access.")
    reasons: list[ReasonOut] = Field(
        description="Every reason that holds, the decisive one first; empty when funded in full."
    )


class GroupMetrics(Out):
    """What one share group received."""

    id: str = Field(description="Share group id.")
    name: str = Field(description="Display name of the share group.")
    reference_gpu_hours: float = Field(description="Reference GPU-hours awarded to the group.")
    share: float = Field(
        description="Fraction 0-1 of the share basis (the round's capacity or the awarded reference "
        "GPU-hours) that the group received."
    )
    min_share: float = Field(description="The group's minimum share, a fraction 0-1 of the share basis.")
    max_share: float = Field(description="The group's maximum share, a fraction 0-1 of the share basis.")
    soft: bool = Field(description="True when the group's bounds are soft: crossing them costs a penalty.")
    shortfall_reference_gpu_hours: int = Field(
        description="Whole reference GPU-hours below the minimum (soft groups only; 0 otherwise)."
    )
    excess_reference_gpu_hours: int = Field(
        description="Whole reference GPU-hours above the maximum (soft groups only; 0 otherwise)."
    )
    proposals_funded: int = Field(
        description="Number of the group's proposals with an award (funded or reduced)."
    )


class MachineMetrics(Out):
    """How one machine's hours were used."""

    id: str = Field(description="Machine id.")
    name: str = Field(description="Display name of the machine.")
    gpu_hours: int = Field(description="GPU-hours of this machine available to the round.")
    awarded_gpu_hours: int = Field(description="GPU-hours of this machine awarded, in total.")
    idle_gpu_hours: int = Field(description="GPU-hours of this machine left unawarded: available - awarded.")
    utilisation: float = Field(
        description="Awarded / available GPU-hours, a fraction 0-1 (0 when the machine gives no hours)."
    )
    commercial_gpu_hours: int = Field(
        description="GPU-hours of this machine awarded to commercial proposals."
    )
    commercial_cap_gpu_hours: int = Field(
        description="Most GPU-hours of this machine commercial proposals may get: commercial_cap x "
        "available, rounded down."
    )
    proposals_funded: int = Field(description="Number of proposals with an award on this machine.")


class Metrics(Out):
    """Round-level figures, recomputed from the decisions."""

    share_basis: Literal["capacity", "awarded"] = Field(
        description="What shares are fractions of: the round's capacity ('capacity') or the reference "
        "GPU-hours awarded ('awarded')."
    )
    capacity_reference_gpu_hours: float = Field(
        description="The round's capacity in reference GPU-hours: every machine's GPU-hours times its "
        "exchange rate."
    )
    requested_reference_gpu_hours: int = Field(
        description="Sum of every proposal's request, in reference GPU-hours (each rounded up)."
    )
    awarded_reference_gpu_hours: float = Field(description="Reference GPU-hours awarded, in total.")
    decisions: dict[str, int] = Field(description="Number of proposals per decision.")
    groups: list[GroupMetrics] = Field(description="Figures per share group.")
    machines: list[MachineMetrics] = Field(description="Figures per machine.")


class ObjectiveOut(Out):
    """The objective's value, its proven bound and the gap between them."""

    kind: Literal["merit", "rank"] = Field(
        description="The objective solved: 'merit' (maximise merit) or 'rank' (fund down the ranking)."
    )
    value_basis: Literal["fraction", "hours"] = Field(
        description="What an award is worth (policy merit value): 'fraction' of its request covered, "
        "or 'hours': its reference GPU-hours."
    )
    scale: int = Field(
        gt=0, description="Scaled objective points per merit point (10^8 for 'fraction', 10^3 for 'hours')."
    )
    merit_scaled: int = Field(
        description="Sum of every award unit's scaled merit (coef x units), in scaled merit points."
    )
    penalty_scaled: int = Field(
        description="Scaled penalties for soft share deviations, in scaled merit points."
    )
    scaled: int = Field(description="merit_scaled - penalty_scaled: what 'merit' maximises (integer).")
    value: float = Field(description="The objective in merit points: scaled / scale.")
    best_bound_scaled: int | None = Field(
        description="Proven upper bound on the scaled objective (merit only; null under rank)."
    )
    gap: float | None = Field(
        description="(bound - objective) / max(1, bound), a fraction; 0 when proven optimal (merit only)."
    )


class RankStep(Out):
    """One step of the rank objective's walk down the ranking."""

    position: int = Field(
        description="The proposal's place among all proposals in the ranking order (1 = best)."
    )
    proposal: str = Field(description="Proposal id.")
    phase: Literal["fund", "raise"] = Field(
        description="'fund': is it funded at its minimum? 'raise': how far towards its request?"
    )
    outcome: Literal["funded", "not_funded", "raised"] = Field(
        description="A 'fund' step's answer ('funded' or 'not_funded'); a 'raise' step is 'raised'."
    )
    fraction_of_request: float = Field(
        description="The proposal's final fraction of its request, 0-1 (0 when not funded)."
    )
    settled_by: Literal["pin", "witness", "bound", "solver"] = Field(
        description="A pin, an allocation already found, an allocation already found with an LP "
        "bound proving no more is possible (raise steps), or a CP-SAT check."
    )
    proven: bool = Field(description="False when the CP-SAT check ran out of its work limit.")


class PreviousAward(Out):
    """One award of the previous solution a re-solve kept close to."""

    proposal: str = Field(description="Proposal id.")
    machine: str = Field(description="Machine id.")
    gpu_hours: int = Field(description="The previous award, in GPU-hours of that machine.")


class KeepOut(Out):
    """How a re-solve with --keep stayed close to a previous solution."""

    previous_input_sha256: str = Field(description="sha256 of the round the previous solution was made from.")
    tolerance: float = Field(description="Merit allowed below the best found, as a fraction (0.001 = 0.1 %).")
    best_scaled: int = Field(description="The best scaled merit objective found before keeping close.")
    changed_decisions: int = Field(
        description="Proposals whose funding or machines differ from the previous solution."
    )
    moved_reference_gpu_hours: float = Field(
        description="Reference GPU-hours added or removed, summed over every award, against the "
        "previous solution."
    )
    previous: list[PreviousAward] = Field(
        description="The previous solution's awards, so the re-solve can be re-run."
    )


class GreyZoneEntry(Out):
    """A proposal in the lottery's grey zone."""

    proposal: str = Field(description="Proposal id.")
    probability_funded: float = Field(description="Its probability of being funded in the stability run.")
    lot: str = Field(
        description="sha256 of '<seed>:<proposal id>' in hex; lots in increasing order are the draw."
    )


class LotteryOut(Out):
    """The lottery at the line: who was in the grey zone, the seed and the draw."""

    seed: int = Field(description="The published seed of the stability run and the lots.")
    low: float = Field(description="The grey zone's lowest probability of being funded.")
    high: float = Field(description="The grey zone's highest probability of being funded.")
    samples: int = Field(
        description="Samples of the stability run (bootstrap of the reviews, objective 'rank')."
    )
    grey_zone: list[GreyZoneEntry] = Field(
        description="The eligible proposals in the grey zone, in ranking order."
    )
    drawn: list[str] = Field(description="The grey zone's proposals in the drawn order (increasing lot).")


class RankOut(Out):
    """The record of a rank solve: the order and every step."""

    order: list[str] = Field(description="Eligible proposal ids, best first.")
    steps: list[RankStep] = Field(
        description="The rank walk's steps in order: a 'fund' step per eligible proposal, best first, "
        "then a 'raise' step per funded proposal."
    )
    all_proven: bool = Field(
        description="True when every step was proven (no check ran out of its work limit)."
    )


STOPPED_BY = {
    "finished": "the search finishing",
    "gap_limit": "the gap limit",
    "work_limit": "the work limit",
    "time_limit": "the time limit",
    "interrupted": "Ctrl-C",
    "converged": "the neighbourhood search, which found nothing better",
}  # a stop reason in words, after "stopped by"


class SolverOut(Out):
    """How the solve ended."""

    status: Literal["optimal", "feasible"] = Field(
        description="Merit: proven optimal or not. Rank: optimal when every step was proven."
    )
    stop_reason: Literal["finished", "gap_limit", "work_limit", "time_limit", "interrupted", "converged"] = (
        Field(
            description="Why the solve stopped: 'finished', 'gap_limit' (proven within the gap limit), "
            "'work_limit' (deterministic work limit), 'time_limit' (wall-clock safety cap), 'interrupted' "
            "(Ctrl-C) or 'converged' (merit: the neighbourhood search found nothing better, in a round "
            "too large to search whole)."
        )
    )
    deterministic_seconds: float = Field(
        description="Work done, in CP-SAT deterministic seconds (a machine-independent measure, not "
        "wall-clock)."
    )
    options_considered: int = Field(description="Number of (proposal, machine) pairs in the model.")


class Timing(Out):
    """Wall-clock figures: the only part of a solution that differs between runs."""

    solve_seconds: float = Field(
        description="Wall-clock seconds in CP-SAT (under rank, every check of the walk together)."
    )
    total_seconds: float = Field(description="Wall-clock seconds for the whole solve, round to solution.")


class Provenance(Out):
    """What was solved, with which software and options: enough to re-run it."""

    input_sha256: str = Field(description="sha256 of the canonical round embedded below.")
    allocopt_version: str = Field(description="allocopt version that solved the round.")
    ortools_version: str = Field(description="OR-Tools (CP-SAT) version used.")
    scipy_version: str = Field(description="SciPy version used (its HiGHS computes the warm start).")
    highspy_version: str | None = Field(
        default=None,
        description="highspy (HiGHS) version used (the rank walk's LP bounds); absent in solutions "
        "made before allocopt used it.",
    )
    python_version: str = Field(description="Python version used.")
    options: dict[str, object] = Field(description="Every solve option, as used.")
    seed: int = Field(description="CP-SAT random seed used.")


class Solution(Out):
    """Everything `solve` decided, and enough to check and re-run it."""

    format: Literal["allocopt-solution/1"] = Field(
        default=FORMAT, description="File format tag: 'allocopt-solution/1'."
    )
    round_id: str = Field(description="Id of the round solved.")
    round_name: str = Field(description="Display name of the round solved.")
    objective: ObjectiveOut = Field(
        description="The objective: kind, scaled value, value in merit points, proven bound and gap."
    )
    rank: RankOut | None = Field(default=None, description="The rank walk (objective 'rank' only).")
    lottery: LotteryOut | None = Field(
        default=None, description="The lottery at the line, when the policy has one (objective 'rank' only)."
    )
    keep: KeepOut | None = Field(
        default=None, description="The previous solution this one was kept close to (solve --keep only)."
    )
    proposals: list[ProposalResult] = Field(description="The decision on every proposal of the round, by id.")
    metrics: Metrics = Field(
        description="Round-level figures: reference GPU-hours and share per group, hours per machine, "
        "counts per decision."
    )
    solver: SolverOut = Field(description="The solver's status, why it stopped and the work it did.")
    timing: Timing = Field(
        description="Wall-clock seconds: the only part of a solution that differs between identical runs."
    )
    provenance: Provenance = Field(
        description="Input hash, software versions, solve options and seed: what an appeal needs to "
        "re-run it."
    )
    input: Round = Field(description="The canonical round that was solved.")

    def edits(self) -> list[tuple[str, str]]:
        """(JSON path, message) for every sign that the file was edited after `solve` wrote it:
        an embedded round whose hash is not the one recorded, recorded options `solve` would not
        take, or an id the embedded round lacks (or figures missing for one it has)."""
        found = []
        if sha256_of(self.input) != self.provenance.input_sha256:
            found.append(
                ("$.input", "is not the round that was solved (its sha256 differs from the recorded one)")
            )
        try:
            SolveOptions.model_validate(self.provenance.options)
        except ValidationError as exc:
            found += [
                (json_path(("provenance", "options", *e["loc"])), str(e["msg"]).removeprefix("Value error, "))
                for e in exc.errors()
            ]
        return found + self._unknown_ids()

    def _unknown_ids(self) -> list[tuple[str, str]]:
        proposals = [p.id for p in self.input.proposals]
        machines = {m.id for m in self.input.machines}
        groups = {g.id for g in self.input.policy.share_groups}
        found = []
        if sorted(r.id for r in self.proposals) != sorted(proposals):
            found.append(("$.proposals", "does not list each proposal of the round it embeds exactly once"))
        for i, r in enumerate(self.proposals):
            for j, a in enumerate(r.allocations):
                if a.machine not in machines:
                    found.append(
                        (
                            f"$.proposals[{i}].allocations[{j}].machine",
                            f"no machine '{a.machine}' in the round it embeds",
                        )
                    )
            if r.group is not None and r.group not in groups:
                found.append(
                    (f"$.proposals[{i}].group", f"no share group '{r.group}' in the round it embeds")
                )
        for i, m in enumerate(self.metrics.machines):
            if m.id not in machines:
                found.append((f"$.metrics.machines[{i}].id", f"no machine '{m.id}' in the round it embeds"))
        for i, g in enumerate(self.metrics.groups):
            if g.id not in groups:
                found.append((f"$.metrics.groups[{i}].id", f"no share group '{g.id}' in the round it embeds"))
        if {m.id for m in self.metrics.machines} < machines:
            found.append(("$.metrics.machines", "does not list every machine"))
        if {g.id for g in self.metrics.groups} < groups:
            found.append(("$.metrics.groups", "does not list every share group"))
        return found

    def result(self, proposal_id: str) -> ProposalResult:
        for r in self.proposals:
            if r.id == proposal_id:
                return r
        raise KeyError(proposal_id)
