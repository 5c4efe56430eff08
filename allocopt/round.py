"""The round file: machines, policy and proposals, validated with pydantic.

Everything a committee states about one allocation round lives here, with its
unit in the field description. Models are frozen and reject unknown fields, so
a misspelt key is an error rather than a silently ignored setting. Checks that
span several objects (ids, share bounds, score scale) run once the whole round
is read, in ``Round``'s validators.
"""

from __future__ import annotations

from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

FORMAT: Final = "allocopt-round/1"

Id = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Identifier: letters, digits, '.', '_' or '-', starting with a letter or digit.",
    ),
]
Fraction01 = Annotated[float, Field(ge=0.0, le=1.0)]
MAX_HOURS: Final = 10**12  # a trillion GPU-hours: far beyond any round, within exact solver arithmetic


class Strict(BaseModel):
    """Base of every input model: immutable, no unknown keys, finite numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Stack(StrEnum):
    """The GPU software stack a machine offers and a code runs on."""

    CUDA = "cuda"
    ROCM = "rocm"


class Arch(StrEnum):
    """The host CPU architecture (JUPITER's Grace CPUs are aarch64)."""

    X86_64 = "x86_64"
    AARCH64 = "aarch64"


class ApplicantKind(StrEnum):
    """What kind of organisation applies; the policy maps kinds to share groups."""

    ACADEMIC = "academic"
    STARTUP = "start-up"
    INDUSTRY = "industry"
    PUBLIC_SECTOR = "public-sector"


class Machine(Strict):
    """One accelerator partition and the hours it gives to this round."""

    id: Id = Field(
        description="Machine id, unique in the round: letters, digits, '.', '_' or '-', "
        "starting with a letter or digit."
    )
    name: str = Field(min_length=1, description="Display name, e.g. 'LUMI-G'.")
    site: str = Field(min_length=1, description="Hosting site, e.g. 'CSC, Kajaani (FI)'.")
    accelerator: str = Field(min_length=1, description="Accelerator model, e.g. 'AMD MI250X (one GCD)'.")
    stack: Stack = Field(description="GPU software stack: 'cuda' or 'rocm'.")
    cpu_arch: Arch = Field(description="Host CPU architecture: 'x86_64' or 'aarch64'.")
    gpu_memory_gb: float = Field(
        gt=0,
        description="Memory of the unit the machine bills as one GPU, in GB (LUMI: one GCD, 64).",
    )
    gpu_hours: int = Field(
        ge=0,
        le=MAX_HOURS,
        description="GPU-hours of this machine available to the round, after pre-commitments.",
    )
    exchange_rate: float = Field(
        gt=0,
        le=1000,
        description="Reference GPU-hours worth one GPU-hour of this machine (at most 6 decimals).",
    )
    award_unit: int = Field(
        default=1000,
        gt=0,
        le=MAX_HOURS,
        description="Award granularity in GPU-hours: awards are whole multiples.",
    )
    max_award_gpu_hours: int | None = Field(
        default=None,
        gt=0,
        le=MAX_HOURS,
        description="Cap on one proposal's award on this machine, in GPU-hours.",
    )
    max_award_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Cap on one proposal's award as a fraction of this machine's round GPU-hours.",
    )
    commercial_cap: Fraction01 = Field(
        default=0.2,
        description="Fraction of this machine's round GPU-hours that may go to commercial use "
        "(EU rule: at most 0.2).",
    )

    @field_validator("exchange_rate")
    @classmethod
    def _six_decimals(cls, rate: float) -> float:
        if round(rate, 6) != rate:
            raise ValueError(f"exchange rate {rate} has more than 6 decimals; round it to 6 decimals")
        return rate


class Applicant(Strict):
    """Who applies: the organisation, its kind and its country."""

    name: str = Field(min_length=1, description="Applicant organisation.")
    kind: ApplicantKind = Field(description="'academic', 'start-up', 'industry' or 'public-sector'.")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code, e.g. 'DE'.")


class Publication(Strict):
    """What the applicant commits to publish about the results."""

    commitment: Literal["open", "embargo", "confidential"] = Field(
        description="'open' (publish), 'embargo' (publish after embargo_months) or 'confidential'."
    )
    embargo_months: int | None = Field(
        default=None, ge=1, le=120, description="Months before publication; only with 'embargo'."
    )

    @model_validator(mode="after")
    def _embargo_needs_months(self) -> Publication:
        if self.commitment == "embargo" and self.embargo_months is None:
            raise ValueError("an embargo needs embargo_months; add it (e.g. 12)")
        if self.commitment != "embargo" and self.embargo_months is not None:
            raise ValueError(
                f"embargo_months is set but the commitment is '{self.commitment}'; "
                "remove embargo_months or make the commitment 'embargo'"
            )
        return self


class Requirements(Strict):
    """What the proposal's code needs from a machine."""

    stacks: list[Stack] = Field(min_length=1, description="Software stacks the code runs on.")
    cpu_archs: list[Arch] = Field(min_length=1, description="CPU architectures the code runs on.")
    min_gpu_memory_gb: float = Field(
        default=0, ge=0, description="Minimum memory per GPU the code needs, in GB."
    )

    @field_validator("stacks", "cpu_archs")
    @classmethod
    def _as_sorted_set(cls, values: list[StrEnum]) -> list[StrEnum]:
        return sorted(set(values))


class MachineOption(Strict):
    """One machine a proposal can run on, with the hours it needs there."""

    machine: Id = Field(description="Machine id.")
    gpu_hours: int = Field(gt=0, le=MAX_HOURS, description="Requested GPU-hours of this machine.")
    minimum_gpu_hours: int = Field(
        gt=0, le=MAX_HOURS, description="Smallest useful award on this machine, in its GPU-hours."
    )
    preference: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Preference weight in (0, 1]: 1.0 for the first choice; multiplies this option's merit.",
    )

    @model_validator(mode="after")
    def _minimum_within_request(self) -> MachineOption:
        if self.minimum_gpu_hours > self.gpu_hours:
            raise ValueError(
                f"the minimum ({self.minimum_gpu_hours}) is above the request ({self.gpu_hours}); "
                "lower the minimum or raise the request"
            )
        return self


class Request(Strict):
    """Hours asked for: a total in reference GPU-hours, or per-machine options.

    A total is converted to each compatible machine's hours by its exchange rate
    (times the proposal's efficiency on that machine's stack); options name the
    machines and their hours directly.
    """

    reference_gpu_hours: int | None = Field(
        default=None, gt=0, le=MAX_HOURS, description="Requested total, in reference GPU-hours."
    )
    minimum_reference_gpu_hours: int | None = Field(
        default=None, gt=0, le=MAX_HOURS, description="Smallest useful award, in reference GPU-hours."
    )
    machine_options: list[MachineOption] | None = Field(
        default=None,
        min_length=1,
        description="Instead of a total: the machines the proposal can use, each with its own hours.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Request:
        total = (self.reference_gpu_hours, self.minimum_reference_gpu_hours)
        if self.machine_options is not None:
            if total != (None, None):
                raise ValueError(
                    "give either reference_gpu_hours with minimum_reference_gpu_hours, or machine_options, "
                    "not both"
                )
            return self
        if self.reference_gpu_hours is None or self.minimum_reference_gpu_hours is None:
            raise ValueError(
                "give reference_gpu_hours and minimum_reference_gpu_hours (or machine_options instead)"
            )
        if self.minimum_reference_gpu_hours > self.reference_gpu_hours:
            raise ValueError(
                f"the minimum ({self.minimum_reference_gpu_hours}) is above the request "
                f"({self.reference_gpu_hours}); lower the minimum or raise the request"
            )
        return self


class Review(Strict):
    """One reviewer's score of a proposal: a single score, or scores per criterion."""

    reviewer: Id = Field(description="Reviewer id (pseudonymous), the same across the proposals they review.")
    panel: Id | None = Field(default=None, description="Review panel id, if the round has panels.")
    score: float | None = Field(default=None, description="The reviewer's score on the round's score scale.")
    criteria: dict[str, float] | None = Field(
        default=None,
        description="Instead of a score: a score per criterion, on the round's scale; combined with the "
        "policy's criterion weights (policy.reviews.criteria).",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Review:
        if (self.score is None) == (self.criteria is None):
            raise ValueError("give a review either a score or criteria scores, not both or neither")
        if self.criteria is not None and not self.criteria:
            raise ValueError("criteria is empty; give a score per criterion, or a score instead")
        return self


class Proposal(Strict):
    """One peer-reviewed proposal."""

    id: Id = Field(
        description="Proposal id, unique in the round: letters, digits, '.', '_' or '-', "
        "starting with a letter or digit."
    )
    title: str = Field(description="Proposal title (untrusted text: shown escaped).")
    applicant: Applicant = Field(description="Who applies: organisation name, kind and country.")
    score: float = Field(
        description="Peer-review score on the round's score scale. In a round file it may be left out "
        "when reviews are given: it is then the plain (criterion-weighted) mean of the reviews."
    )
    reviews: list[Review] | None = Field(
        default=None,
        description="Individual reviews; the policy's calibration (policy.reviews) may rank by them "
        "instead of the score.",
    )
    publication: Publication = Field(
        description="What the applicant commits to publish; decides free (non-commercial) access."
    )
    requirements: Requirements = Field(
        description="Software stacks, CPU architectures and GPU memory (GB) the code needs from a machine."
    )
    request: Request = Field(
        description="Hours asked for: a total and minimum in reference GPU-hours, or per-machine options "
        "in each machine's GPU-hours."
    )
    efficiency: dict[Stack, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=dict,
        description="Per software stack, the fraction of reference speed the code reaches there "
        "(e.g. {'rocm': 0.7} for a code ported from CUDA); multiplies the exchange rate when a "
        "reference-hour request is converted. Missing stacks: 1.0.",
    )
    max_machines: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Split awards: at most this many machines; the minimum applies to the total.",
    )
    committee_rank: int | None = Field(
        default=None,
        ge=1,
        description="Position in the committee's ranking (1 = best); objective 'rank' uses it before "
        "the score.",
    )


class ScoreScale(Strict):
    """The scale reviewers score on; higher is better."""

    min: float = Field(default=0, description="Lowest possible score.")
    max: float = Field(default=5, description="Highest possible score.")

    @model_validator(mode="after")
    def _ordered(self) -> ScoreScale:
        if self.min >= self.max:
            raise ValueError(f"score scale min ({self.min}) must be below max ({self.max})")
        return self


class ShareGroup(Strict):
    """A constituency with a share of the round (e.g. scientists, start-ups)."""

    id: Id = Field(
        description="Share group id, unique in the policy: letters, digits, '.', '_' or '-', "
        "starting with a letter or digit."
    )
    name: str = Field(min_length=1, description="Display name, e.g. 'Start-ups'.")
    kinds: list[ApplicantKind] = Field(min_length=1, description="Applicant kinds that belong to this group.")
    min_share: Fraction01 = Field(
        default=0.0,
        description="Minimum: fraction of the round's capacity (or awarded hours, per share_basis).",
    )
    max_share: Fraction01 = Field(
        default=1.0,
        description="Maximum: fraction of the round's capacity (or awarded hours, per share_basis).",
    )
    soft: bool = Field(
        default=False,
        description="Soft bounds may be crossed at a cost (penalty); under objective 'rank' they are hard.",
    )
    penalty: float | None = Field(
        default=None,
        gt=0,
        description="For soft bounds: merit points lost per reference GPU-hour outside the bounds.",
    )

    @field_validator("kinds")
    @classmethod
    def _as_sorted_set(cls, kinds: list[ApplicantKind]) -> list[ApplicantKind]:
        return sorted(set(kinds))

    @model_validator(mode="after")
    def _ordered(self) -> ShareGroup:
        if self.soft and self.penalty is None:
            raise ValueError(
                "a soft share group needs a penalty (merit points per reference GPU-hour); add one"
            )
        if not self.soft and self.penalty is not None:
            raise ValueError("penalty is set but the group is not soft; set soft to true or remove penalty")
        if self.min_share > self.max_share:
            raise ValueError(
                f"min_share ({self.min_share}) is above max_share ({self.max_share}); "
                "lower the minimum or raise the maximum"
            )
        return self


class FreeAccess(Strict):
    """Which publication commitments qualify for free (non-commercial) access."""

    max_embargo_months: int | None = Field(
        default=12,
        ge=0,
        description="An embargo up to this many months still qualifies; null: no embargo does. "
        "'open' always qualifies, 'confidential' never does.",
    )


class MeritPolicy(Strict):
    """How scores become merit and what an award is worth."""

    value: Literal["fraction", "hours"] = Field(
        default="fraction",
        description="'fraction': an award is worth the fraction of the request it covers "
        "(favours many awards); 'hours': worth its reference GPU-hours (favours large awards).",
    )
    exponent: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Merit weight = ((score - scale.min) / (scale.max - scale.min)) ** exponent.",
    )


class Pin(Strict):
    """A decision the committee fixes in advance, with its written reason."""

    proposal: Id = Field(description="Proposal id.")
    action: Literal["fund", "exclude"] = Field(description="'fund': must be funded; 'exclude': must not be.")
    machine: Id | None = Field(default=None, description="With 'fund': the machine it must be funded on.")
    gpu_hours: int | None = Field(
        default=None,
        gt=0,
        le=MAX_HOURS,
        description="With 'fund' and a machine: the exact award, in that machine's GPU-hours.",
    )
    reason: str = Field(min_length=1, description="The committee's reason; shown in every report.")

    @model_validator(mode="after")
    def _consistent(self) -> Pin:
        if self.action == "exclude" and (self.machine is not None or self.gpu_hours is not None):
            raise ValueError("an 'exclude' pin takes no machine or gpu_hours; remove them")
        if self.gpu_hours is not None and self.machine is None:
            raise ValueError("an exact award (gpu_hours) needs the machine too; add machine")
        return self


class ExclusiveGroup(Strict):
    """Proposals of which at most one may be funded (e.g. the same work submitted twice)."""

    id: Id = Field(
        description="Exclusive group id, unique in the policy: letters, digits, '.', '_' or '-', "
        "starting with a letter or digit."
    )
    proposals: list[Id] = Field(min_length=2, description="Proposal ids; at most one is funded.")
    reason: str = Field(default="", description="Why they exclude each other; shown in reports.")

    @field_validator("proposals")
    @classmethod
    def _as_sorted_set(cls, ids: list[str]) -> list[str]:
        return sorted(set(ids))


class ReviewPolicy(Strict):
    """How individual reviews become the score that ranks and weighs a proposal."""

    calibration: Literal["none", "mean", "standardised", "model"] = Field(
        default="none",
        description="'none': each proposal's score as given; 'mean': the plain mean of its reviews; "
        "'standardised': reviews relative to each reviewer's own mean and spread (shrunk for reviewers "
        "with few reviews); 'model': a random-effects model of proposal quality and reviewer and panel "
        "bias. Proposals without reviews keep their score.",
    )
    criteria: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="Weight of each review criterion (any positive numbers; they are normalised).",
    )
    shrinkage: float = Field(
        default=3.0,
        ge=0,
        le=100,
        description="'standardised': a reviewer's mean and spread are pulled toward the whole round's as if "
        "they had this many more reviews at the round's mean and spread.",
    )
    interval: float = Field(
        default=0.9, gt=0, lt=1, description="Probability covered by each calibrated score's interval."
    )


class LotteryPolicy(Strict):
    """A seeded lottery among the proposals whose funding is uncertain (objective 'rank' only)."""

    low: Fraction01 = Field(
        default=0.1, description="The grey zone starts at this probability of being funded (inclusive)."
    )
    high: Fraction01 = Field(
        default=0.9, description="The grey zone ends at this probability of being funded (inclusive)."
    )
    samples: int = Field(
        default=20,
        ge=2,
        le=1000,
        description="Re-solves of the stability run that measures the probabilities.",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the stability run and of the draw; published.")

    @model_validator(mode="after")
    def _ordered(self) -> LotteryPolicy:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high}); swap them")
        return self


class Policy(Strict):
    """The committee's rules for this round."""

    score_threshold: float = Field(description="Proposals scoring below this are not eligible.")
    share_groups: list[ShareGroup] = Field(
        default_factory=list, description="Share groups with their bounds."
    )
    free_access: FreeAccess = Field(
        default_factory=FreeAccess,
        description="Which publication commitments qualify for free (non-commercial) access; by default "
        "'open' and embargoes of up to 12 months.",
    )
    commercial: Literal["exclude", "within_cap"] = Field(
        default="within_cap",
        description="Proposals whose commitment does not qualify for free access are commercial: "
        "'exclude' makes them ineligible, 'within_cap' funds them within each machine's "
        "commercial cap.",
    )
    merit: MeritPolicy = Field(
        default_factory=MeritPolicy,
        description="How scores become merit weights (exponent) and what an award is worth (value).",
    )
    objective: Literal["merit", "rank"] = Field(
        default="merit",
        description="'merit': maximise merit-weighted value; 'rank': fund strictly down the ranking.",
    )
    share_basis: Literal["capacity", "awarded"] = Field(
        default="capacity",
        description="Shares are fractions of the round's capacity ('capacity') or of the reference "
        "GPU-hours actually awarded ('awarded').",
    )
    pins: list[Pin] = Field(default_factory=list, description="Committee decisions fixed in advance.")
    exclusive: list[ExclusiveGroup] = Field(
        default_factory=list, description="Groups of proposals of which at most one may be funded."
    )
    max_awards_per_organisation: int | None = Field(
        default=None, ge=1, description="At most this many funded proposals per applicant organisation."
    )
    reviews: ReviewPolicy = Field(
        default_factory=ReviewPolicy,
        description="How individual reviews are calibrated into the score that ranks and weighs proposals.",
    )
    lottery: LotteryPolicy | None = Field(
        default=None,
        description="Under objective 'rank': proposals in the grey zone are put in an order drawn by a "
        "seeded lot, in the places they held in the ranking.",
    )


class Round(Strict):
    """One allocation round: what is shared out, by which rules, among which proposals."""

    format: Literal["allocopt-round/1"] = Field(
        default=FORMAT, description="File format tag: 'allocopt-round/1'."
    )
    id: Id = Field(
        description="Round id (letters, digits, '.', '_' or '-', starting with a letter or digit)."
    )
    name: str = Field(min_length=1, description="Display name of the round.")
    score_scale: ScoreScale = Field(
        default_factory=ScoreScale,
        description="The scale reviewers score on, higher is better (default 0 to 5).",
    )
    machines: list[Machine] = Field(
        min_length=1,
        description="The machines whose GPU-hours this round shares out, each in its own GPU-hours; "
        "at least one.",
    )
    policy: Policy = Field(
        description="The committee's rules: score threshold, share groups, free access and commercial "
        "use, merit, objective, pins, exclusive groups and the organisation cap."
    )
    proposals: list[Proposal] = Field(
        description="The proposals. In a round file an entry may also be a file name, relative to the "
        "round file, holding one proposal or a list of them."
    )

    @model_validator(mode="after")
    def _cross_references(self, info: ValidationInfo) -> Round:
        # The loader asks to skip this and calls cross_check itself, to report
        # each problem at its own JSON path.
        if not (info.context or {}).get("defer_cross_checks"):
            problems = cross_check(self)
            if problems:
                raise ValueError("; ".join(f"{json_path(loc)}: {msg}" for loc, msg in problems))
        return self

    def canonical(self) -> Round:
        """The same round with every id-keyed list sorted by id: order carries no meaning."""
        policy = self.policy.model_copy(
            update={
                "share_groups": sorted(self.policy.share_groups, key=lambda g: g.id),
                "pins": sorted(self.policy.pins, key=lambda p: p.proposal),
                "exclusive": sorted(self.policy.exclusive, key=lambda e: e.id),
            }
        )
        proposals = []
        for p in sorted(self.proposals, key=lambda p: p.id):
            if p.request.machine_options is not None:
                options = sorted(p.request.machine_options, key=lambda o: o.machine)
                p = p.model_copy(
                    update={"request": p.request.model_copy(update={"machine_options": options})}
                )
            proposals.append(p)
        return self.model_copy(
            update={
                "machines": sorted(self.machines, key=lambda m: m.id),
                "proposals": proposals,
                "policy": policy,
            }
        )

    def machine(self, machine_id: str) -> Machine:
        """The machine with this id (KeyError if there is none)."""
        for m in self.machines:
            if m.id == machine_id:
                return m
        raise KeyError(machine_id)

    def proposal(self, proposal_id: str) -> Proposal:
        """The proposal with this id (KeyError if there is none)."""
        for p in self.proposals:
            if p.id == proposal_id:
                return p
        raise KeyError(proposal_id)


Loc = tuple[str | int, ...]


def cross_check(rnd: Round) -> list[tuple[Loc, str]]:
    """Problems that span several objects, each with the location it points at."""
    problems: list[tuple[Loc, str]] = []
    problems += _duplicates("machine", ("machines",), [m.id for m in rnd.machines])
    problems += _duplicates("proposal", ("proposals",), [p.id for p in rnd.proposals])
    groups = rnd.policy.share_groups
    problems += _duplicates("share group", ("policy", "share_groups"), [g.id for g in groups])
    seen: dict[ApplicantKind, str] = {}
    for i, group in enumerate(groups):
        for kind in group.kinds:
            if kind in seen and seen[kind] != group.id:
                problems.append(
                    (
                        ("policy", "share_groups", i, "kinds"),
                        f"applicant kind '{kind}' is also in share group '{seen[kind]}'; "
                        "put each kind in one group only",
                    )
                )
            seen[kind] = group.id
    total_min = sum(Fraction(str(g.min_share)) for g in groups)
    if total_min > 1:
        problems.append(
            (
                ("policy", "share_groups"),
                f"the share minimums add up to {float(total_min):.4g}, above 1; lower some min_share",
            )
        )
    lo, hi = rnd.score_scale.min, rnd.score_scale.max
    if rnd.policy.score_threshold > hi:
        problems.append(
            (
                ("policy", "score_threshold"),
                f"{rnd.policy.score_threshold:g} is above the score scale's maximum ({hi:g}), so no "
                "proposal could be eligible; lower it",
            )
        )
    machine_ids = {m.id for m in rnd.machines}
    proposal_ids = {p.id for p in rnd.proposals}
    for i, p in enumerate(rnd.proposals):
        if not lo <= p.score <= hi:
            problems.append(
                (
                    ("proposals", i, "score"),
                    f"score {p.score} is outside the round's scale [{lo}, {hi}]; "
                    "fix the score or the round's score_scale",
                )
            )
        problems += _review_problems(rnd, i, p)
        options = p.request.machine_options or []
        seen_machines: set[str] = set()
        for j, o in enumerate(options):
            where: Loc = ("proposals", i, "request", "machine_options", j, "machine")
            if o.machine not in machine_ids:
                problems.append((where, f"unknown machine '{o.machine}'; use one of {_listing(machine_ids)}"))
            elif not _runs_on(p, rnd.machine(o.machine)):
                problems.append(
                    (
                        where,
                        f"machine '{o.machine}' does not meet the proposal's requirements (stack, CPU "
                        "architecture or GPU memory); remove the option or fix the requirements",
                    )
                )
            if o.machine in seen_machines:
                problems.append(
                    (where, f"machine '{o.machine}' is listed twice; keep one option per machine")
                )
            seen_machines.add(o.machine)
        if options and p.efficiency:
            problems.append(
                (
                    ("proposals", i, "efficiency"),
                    "efficiency applies to a reference-hour request only; with machine_options give "
                    "each machine's hours directly and remove efficiency",
                )
            )
    method = rnd.policy.reviews.calibration
    if method != "none" and not any(p.reviews for p in rnd.proposals):
        problems.append(
            (
                ("policy", "reviews", "calibration"),
                f"calibration '{method}' needs reviews, and no proposal has any; add reviews or set "
                "calibration to 'none'",
            )
        )
    pinned: set[str] = set()
    for i, pin in enumerate(rnd.policy.pins):
        if pin.proposal not in proposal_ids:
            problems.append(
                (("policy", "pins", i, "proposal"), f"unknown proposal '{pin.proposal}'; check the id")
            )
        if pin.proposal in pinned:
            problems.append(
                (
                    ("policy", "pins", i, "proposal"),
                    f"proposal '{pin.proposal}' is pinned twice; keep one pin per proposal",
                )
            )
        pinned.add(pin.proposal)
        if pin.machine is not None and pin.machine not in machine_ids:
            problems.append(
                (
                    ("policy", "pins", i, "machine"),
                    f"unknown machine '{pin.machine}'; use one of {_listing(machine_ids)}",
                )
            )
    problems += _duplicates("exclusive group", ("policy", "exclusive"), [e.id for e in rnd.policy.exclusive])
    for i, exclusive in enumerate(rnd.policy.exclusive):
        for pid in exclusive.proposals:
            if pid not in proposal_ids:
                problems.append(
                    (("policy", "exclusive", i, "proposals"), f"unknown proposal '{pid}'; check the id")
                )
    return problems


def _review_problems(rnd: Round, i: int, p: Proposal) -> list[tuple[Loc, str]]:
    lo, hi = rnd.score_scale.min, rnd.score_scale.max
    weights = rnd.policy.reviews.criteria
    problems: list[tuple[Loc, str]] = []
    reviewers: set[str] = set()
    for j, review in enumerate(p.reviews or []):
        where: Loc = ("proposals", i, "reviews", j)
        if review.reviewer in reviewers:
            problems.append(
                (
                    (*where, "reviewer"),
                    f"reviewer '{review.reviewer}' reviews this proposal twice; keep one review per reviewer",
                )
            )
        reviewers.add(review.reviewer)
        scores = {"score": review.score} if review.score is not None else dict(review.criteria or {})
        for name, value in scores.items():
            if not lo <= value <= hi:
                at = (*where, "score") if name == "score" else (*where, "criteria", name)
                problems.append(
                    (at, f"score {value} is outside the round's scale [{lo}, {hi}]; fix the score")
                )
        if review.criteria is not None and set(review.criteria) != set(weights):
            missing, unknown = set(weights) - set(review.criteria), set(review.criteria) - set(weights)
            fix = (
                "add the criteria and their weights to policy.reviews.criteria"
                if not weights
                else f"score exactly the criteria of policy.reviews.criteria ({', '.join(sorted(weights))})"
            )
            said = [f"criteria missing: {', '.join(sorted(missing))}"] if missing else []
            said += [f"criteria the policy does not declare: {', '.join(sorted(unknown))}"] if unknown else []
            problems.append(((*where, "criteria"), f"{'; '.join(said)}; {fix}"))
    return problems


def review_value(rnd: Round, review: Review) -> float:
    """A review as one number on the round's scale: its score, or its criteria's weighted mean."""
    if review.score is not None:
        return review.score
    weights = rnd.policy.reviews.criteria
    total = sum(weights.values())
    return sum(weights[name] * value for name, value in (review.criteria or {}).items()) / total


def _runs_on(p: Proposal, m: Machine) -> bool:
    req = p.requirements
    return m.stack in req.stacks and m.cpu_arch in req.cpu_archs and m.gpu_memory_gb >= req.min_gpu_memory_gb


def _listing(ids: set[str]) -> str:
    return ", ".join(f"'{i}'" for i in sorted(ids))


def _duplicates(what: str, where: Loc, ids: list[str]) -> list[tuple[Loc, str]]:
    first: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for i, ident in enumerate(ids):
        if ident in first:
            problems.append(
                (
                    (*where, i, "id"),
                    f"{what} id '{ident}' is already used at index {first[ident]}; "
                    f"give each {what} its own id",
                )
            )
        else:
            first[ident] = i
    return problems


def json_path(loc: Loc) -> str:
    """A JSON path such as $.proposals[3].request."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
