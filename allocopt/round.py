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

    id: Id
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
        ge=0, description="GPU-hours of this machine available to the round, after pre-commitments."
    )
    exchange_rate: float = Field(
        gt=0,
        le=1000,
        description="Reference GPU-hours worth one GPU-hour of this machine (at most 6 decimals).",
    )
    award_unit: int = Field(
        default=1000,
        gt=0,
        description="Award granularity in GPU-hours: awards are whole multiples.",
    )
    max_award_gpu_hours: int | None = Field(
        default=None, gt=0, description="Cap on one proposal's award on this machine, in GPU-hours."
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


class Request(Strict):
    """Hours asked for, in reference GPU-hours; converted per machine by its exchange rate."""

    reference_gpu_hours: int = Field(gt=0, description="Requested total, in reference GPU-hours.")
    minimum_reference_gpu_hours: int = Field(
        gt=0, description="Smallest useful award, in reference GPU-hours."
    )

    @model_validator(mode="after")
    def _minimum_within_request(self) -> Request:
        if self.minimum_reference_gpu_hours > self.reference_gpu_hours:
            raise ValueError(
                f"the minimum ({self.minimum_reference_gpu_hours}) is above the request "
                f"({self.reference_gpu_hours}); lower the minimum or raise the request"
            )
        return self


class Proposal(Strict):
    """One peer-reviewed proposal."""

    id: Id
    title: str = Field(description="Proposal title (untrusted text: shown escaped).")
    applicant: Applicant
    score: float = Field(description="Peer-review score on the round's score scale.")
    publication: Publication
    requirements: Requirements
    request: Request


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

    id: Id
    name: str = Field(min_length=1, description="Display name, e.g. 'Start-ups'.")
    kinds: list[ApplicantKind] = Field(min_length=1, description="Applicant kinds that belong to this group.")
    min_share: Fraction01 = Field(
        default=0.0,
        description="Hard minimum: fraction of the round's capacity in reference GPU-hours.",
    )
    max_share: Fraction01 = Field(
        default=1.0,
        description="Hard maximum: fraction of the round's capacity in reference GPU-hours.",
    )

    @field_validator("kinds")
    @classmethod
    def _as_sorted_set(cls, kinds: list[ApplicantKind]) -> list[ApplicantKind]:
        return sorted(set(kinds))

    @model_validator(mode="after")
    def _ordered(self) -> ShareGroup:
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


class Policy(Strict):
    """The committee's rules for this round."""

    score_threshold: float = Field(description="Proposals scoring below this are not eligible.")
    share_groups: list[ShareGroup] = Field(
        default_factory=list, description="Share groups with their bounds."
    )
    free_access: FreeAccess = Field(default_factory=FreeAccess)
    commercial: Literal["exclude", "within_cap"] = Field(
        default="within_cap",
        description="Proposals whose commitment does not qualify for free access are commercial: "
        "'exclude' makes them ineligible, 'within_cap' funds them within each machine's "
        "commercial cap.",
    )
    merit: MeritPolicy = Field(default_factory=MeritPolicy)


class Round(Strict):
    """One allocation round: what is shared out, by which rules, among which proposals."""

    format: Literal["allocopt-round/1"] = Field(
        default=FORMAT, description="File format tag: 'allocopt-round/1'."
    )
    id: Id
    name: str = Field(min_length=1, description="Display name of the round.")
    score_scale: ScoreScale = Field(default_factory=ScoreScale)
    machines: list[Machine] = Field(min_length=1)
    policy: Policy
    proposals: list[Proposal]

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
        """The same round with machines, groups and proposals sorted by id."""
        policy = self.policy.model_copy(
            update={"share_groups": sorted(self.policy.share_groups, key=lambda g: g.id)}
        )
        return self.model_copy(
            update={
                "machines": sorted(self.machines, key=lambda m: m.id),
                "proposals": sorted(self.proposals, key=lambda p: p.id),
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
    for i, p in enumerate(rnd.proposals):
        if not lo <= p.score <= hi:
            problems.append(
                (
                    ("proposals", i, "score"),
                    f"score {p.score} is outside the round's scale [{lo}, {hi}]; "
                    "fix the score or the round's score_scale",
                )
            )
    return problems


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
