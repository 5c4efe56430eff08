"""Synthetic EuroHPC-like allocation rounds, deterministic for a seed.

``generate_round(proposals, machines, seed)`` draws a round from numpy's
``default_rng(seed)``: the same arguments give the same round, byte for byte.
The policy-language features draw from a second stream, ``default_rng((seed, 1))``,
and the optional individual reviews (``reviews=True``) from a third,
``default_rng((seed, 2))``, drawn last: turning reviews on changes nothing else.
Machines are the first ``machines`` partitions of ``allocopt.fleet.FLEET``
(then synthetic mid-range partitions); proposals are drawn from the
distributions below. Real figures come from /work/shared/domain.md; every
other number is an ASSUMPTION, named as such.

Sources of the real figures
===========================

=======================================  ==============================================================
Figure                                   Source (domain.md section)
=======================================  ==============================================================
GPU counts, memory, stacks, CPU archs    §2 machines table; URLs in allocopt/fleet.py
Nameplate hours = GPUs x 8,760 h         §2 (Vega publishes this formula)
EuroHPC share 50 % / 35 %                §1.1, Regulation (EU) 2021/1173 Art. 17
Commercial cap 20 % per machine          §1.1, Art. 18(3)
Per-proposal cap 25 % (mid-range)        §3, ALCC's 25 % rule
Oversubscription ~3x                     §5 (INCITE ~2.3x, TeraGrid ~2x, 7-m ALMA 3x; HST/ESO higher)
Request sizes 10^3..10^7 GPU-h           §5 (Fast Lane <= 50k, awards 1.5 M/3 M/5 M, strategic > 10 M)
Score scale 0-5, threshold 3             §1.5/§5 (IT4I and EU-grant 0-5 criteria with thresholds)
Reviewer noise: ~55 % top-quartile       §4/§5 (Patat 2018: two panels agree 55 +- 5 % on top quartile)
Users from the EU or associated states   §1.2
Free access: open or short embargo       §1.6 (open R&D), §1.1 Art. 17(6)
=======================================  ==============================================================

Assumptions (none of these is in the sources)
=============================================

=======================================  ==============================================================
Assumption                               Value
=======================================  ==============================================================
Exchange rates (A100 = 1)                GH200 2.2, H100 2.0, MI250X GCD 0.9 (see fleet.py)
Call fraction                            0.1 of a year's Union time per call (picked so that 250
                                         proposals of the sizes below ask ~3x a 6-machine round)
Oversubscription target                  exactly 3.0x by reference GPU-hours (requests are scaled)
Award unit                               1,000 GPU-h (high-end), 500 GPU-h (mid-range)
Per-proposal cap                         25 % of the machine's round hours on mid-range machines only
Request size                             log10 ~ Normal(5.0, 0.8), clipped to [10^3, 10^7], scaled
                                         to the target, rounded to 100 GPU-h
Minimum viable award                     Uniform(0.3, 0.7) x request, rounded up to 100 GPU-h
Scores                                   quality ~ N(3.2, 0.65) + mean of 2 reviewers' N(0, 0.7)
                                         noise, clipped to [0, 5], rounded to 0.1 (ties allowed);
                                         two such panels agree ~56 % on the top quartile
Applicant kinds                          academic 70 %, start-up 18 %, industry 7 %, public sector 5 %
Publication (academic)                   open 90 %, 6-month embargo 5 %, 12-month embargo 5 %
Publication (public sector)              open 85 %, 12-month embargo 15 %
Publication (start-up)                   open 25 %, embargo 6/12 months 25 %, 24/36 months 20 %,
                                         confidential 30 %
Publication (industry)                   open 40 %, 12-month embargo 20 %, 24 months 10 %,
                                         confidential 30 %
Stacks                                   CUDA only 60 %, CUDA + ROCm 30 %, ROCm only 10 %
CPU architectures                        x86_64 only 55 %, x86_64 + aarch64 40 %, aarch64 only 5 %
GPU memory needed                        none 45 %, 40 GB 25 %, 64 GB 25 %, 80 GB 5 %
Countries                                EU-27 and six Horizon Europe associated states, weighted
                                         roughly by research-system size
Policy                                   threshold 3.0; science (academic, public sector) min 50 %;
                                         start-ups (start-up, industry) min 10 %, max 30 %; free
                                         access up to a 12-month embargo; commercial within the cap;
                                         merit value 'fraction'. A share minimum is lowered (to two
                                         decimals) when a rule-abiding allocation cannot reach it.
Synthetic machines (machines > 8)        mid-range copies of the fleet's types, 256-768 GPUs,
                                         ids midrange-09, midrange-10, ...
Titles and applicant names               plain synthetic strings from small word lists
=======================================  ==============================================================

Policy-language features (``policy_language=True``, all ASSUMPTIONS)
====================================================================

=======================================  ==============================================================
Efficiency                               60 % of portable CUDA + ROCm codes run slower on ROCm:
                                         efficiency 0.60-0.95 (steps of 0.05)
Machine options                          12 % of the other proposals with 2+ compatible machines ask
                                         per machine (up to 3): hours = request / (rate x speed),
                                         speed 0.8-1.2; preferences 1.0 / 0.9 / 0.75
Split awards                             30 % of requests >= 1 M reference GPU-h allow 2 machines
Soft start-up share                      penalty 1e-5 merit points per reference GPU-h outside it
Pin                                      'fund' on the best-scored eligible public-sector proposal
                                         whose minimum is <= 2 % of capacity (urgent computing)
Exclusive pair                           the median-scored eligible academic proposal is made a
                                         resubmission of the best one (same title and applicant);
                                         at most one is funded
=======================================  ==============================================================

Individual reviews (``reviews=True``, off by default, all ASSUMPTIONS)
======================================================================

Reviews scatter around each proposal's generated ``score``, which is left exactly as it is
(it already carries the reviewer noise of the sources: two panels agree ~55 % on the top
quartile, domain.md §4, Patat 2018). ``policy.reviews.calibration`` stays 'none'.

=======================================  ==============================================================
Reviewer pool                            max(6, round(proposals / 3)) reviewers, ids R-001, R-002, ...
Panels                                   min(6, reviewers // 4) panels by scientific field of the title's
                                         topic: physics, earth, life, materials, ai-models, ai-applied
                                         (merged into fewer panels in small rounds, one 'all' panel when
                                         there are under 8 reviewers); reviewers split over the panels in
                                         proportion to their proposals, at least 4 each (PRACE
                                         sub-panels have a chair + 5-6 experts, domain.md §1.5)
Reviews per proposal                     3, or 4 with probability 0.25, by distinct reviewers of its
                                         panel, the least-loaded first (ties at random)
Review score                             score + reviewer bias N(0, 0.4) (drawn once per reviewer)
                                         + panel bias N(0, 0.2) (once per panel) + noise N(0, 0.35),
                                         clipped to [0, 5] and rounded to 0.5 steps
Resulting agreement                      the mean of a proposal's reviews shares ~78 % of the score's
                                         top quartile; two independent draws of the reviews agree on
                                         ~70 % (on top of the score's own ~55 %, domain.md §4)
=======================================  ==============================================================
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from allocopt.files import write_atomic
from allocopt.fleet import FLEET, HOURS_PER_YEAR, MID_RANGE_SHARE, Partition
from allocopt.round import (
    Applicant,
    ApplicantKind,
    Arch,
    ExclusiveGroup,
    FreeAccess,
    Machine,
    MachineOption,
    MeritPolicy,
    Pin,
    Policy,
    Proposal,
    Publication,
    Request,
    Requirements,
    Review,
    Round,
    ShareGroup,
    Stack,
)
from allocopt.terms import cap_units

CALL_FRACTION = Fraction(1, 10)
OVERSUBSCRIPTION = 3.0
COMMERCIAL_CAP = 0.2
MID_RANGE_MAX_AWARD_FRACTION = 0.25
REQUEST_LOG10_MEAN, REQUEST_LOG10_SD = 5.0, 0.8
REQUEST_MIN, REQUEST_MAX = 1_000, 10_000_000
REQUEST_GRAIN = 100
MINIMUM_FRACTION = (0.3, 0.7)
QUALITY_MEAN, QUALITY_SD = 3.2, 0.65
REVIEWERS, REVIEWER_SD = 2, 0.7
SCORE_THRESHOLD = 3.0

# Policy-language features (all ASSUMPTIONS).
EFFICIENCY_SHARE = 0.6  # of portable (CUDA + ROCm) codes, the share slower on ROCm
OPTIONS_SHARE = 0.12  # of the others with 2+ compatible machines, the share asking per machine
PREFERENCES = (1.0, 0.9, 0.75)  # first, second and third choice
SPLIT_FROM = 1_000_000  # requests this large (reference GPU-h) ...
SPLIT_SHARE = 0.3  # ... allow two machines with this probability
STARTUP_PENALTY = 1e-5  # merit points per reference GPU-h outside the soft start-up share
PIN_MAX_SHARE = 0.02  # the pinned proposal's minimum is at most this share of capacity
PIN_REASON = (
    "Urgent computing for civil protection: granted without a call under the access policy's "
    "strategic-initiatives clause"
)
DUPLICATE_REASON = "the same work submitted twice by one team"
MAX_EMBARGO_MONTHS = 12

# Individual reviews (all ASSUMPTIONS; domain.md §4 for the noise the scores already carry).
REVIEWS_STREAM = 2  # the reviews draw from default_rng((seed, REVIEWS_STREAM)), after everything else
PROPOSALS_PER_REVIEWER = 3
MIN_REVIEWERS = 6
MAX_PANELS = 6
MIN_PANEL_REVIEWERS = 4  # enough for a fourth review
REVIEWS_PER_PROPOSAL = 3
FOURTH_REVIEW_SHARE = 0.25
REVIEWER_BIAS_SD = 0.4  # leniency (+) or harshness (-), drawn once per reviewer
PANEL_BIAS_SD = 0.2
REVIEW_NOISE_SD = 0.35
REVIEW_STEP = 0.5
SCORE_MIN, SCORE_MAX = 0.0, 5.0

KINDS = (ApplicantKind.ACADEMIC, ApplicantKind.STARTUP, ApplicantKind.INDUSTRY, ApplicantKind.PUBLIC_SECTOR)
KIND_SHARES = (0.70, 0.18, 0.07, 0.05)

# (commitment, embargo months or None, probability), per applicant kind.
PublicationChoice = tuple[str, int | None, float]
PUBLICATION: dict[ApplicantKind, tuple[PublicationChoice, ...]] = {
    ApplicantKind.ACADEMIC: (("open", None, 0.90), ("embargo", 6, 0.05), ("embargo", 12, 0.05)),
    ApplicantKind.PUBLIC_SECTOR: (("open", None, 0.85), ("embargo", 12, 0.15)),
    ApplicantKind.STARTUP: (
        ("open", None, 0.25),
        ("embargo", 6, 0.10),
        ("embargo", 12, 0.15),
        ("embargo", 24, 0.12),
        ("embargo", 36, 0.08),
        ("confidential", None, 0.30),
    ),
    ApplicantKind.INDUSTRY: (
        ("open", None, 0.40),
        ("embargo", 12, 0.20),
        ("embargo", 24, 0.10),
        ("confidential", None, 0.30),
    ),
}
STACK_CHOICES: tuple[tuple[tuple[Stack, ...], float], ...] = (
    ((Stack.CUDA,), 0.60),
    ((Stack.CUDA, Stack.ROCM), 0.30),
    ((Stack.ROCM,), 0.10),
)
ARCH_CHOICES: tuple[tuple[tuple[Arch, ...], float], ...] = (
    ((Arch.X86_64,), 0.55),
    ((Arch.X86_64, Arch.AARCH64), 0.40),
    ((Arch.AARCH64,), 0.05),
)
MEMORY_CHOICES: tuple[tuple[float, float], ...] = ((0.0, 0.45), (40.0, 0.25), (64.0, 0.25), (80.0, 0.05))

# fmt: off
# EU-27 and Horizon Europe associated states (domain §1.2), with rough weights.
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("DE", 12), ("FR", 10), ("IT", 9), ("ES", 8), ("NL", 5), ("SE", 4), ("PL", 4), ("BE", 3),
    ("AT", 3), ("DK", 3), ("FI", 3), ("CZ", 3), ("PT", 3), ("GR", 3), ("IE", 2), ("HU", 2),
    ("RO", 2), ("SI", 1), ("SK", 1), ("HR", 1), ("BG", 1), ("LT", 1), ("LV", 1), ("EE", 1),
    ("LU", 1), ("CY", 1), ("MT", 1), ("NO", 3), ("GB", 4), ("IS", 1), ("IL", 2), ("TR", 2),
    ("RS", 1),
)

SYLLABLES_START = ("Al", "Bel", "Cor", "Dra", "El", "Fen", "Gal", "Hal", "Ist", "Kar", "Lum", "Mar",
                   "Nor", "Or", "Pel", "Ros", "Sil", "Tar", "Ul", "Ves", "Wen", "Zar")
SYLLABLES_END = ("ada", "berg", "dor", "enna", "grad", "ia", "ivo", "mark", "mont", "ora", "sund",
                 "ta", "vik", "wen", "ix", "ona")
ACADEMIC_FORMS = ("University of {}", "{} Institute of Technology", "{} Research Centre", "{} University")
STARTUP_FORMS = ("{} AI", "{} Labs", "{} Analytics", "{} Robotics", "{} Bio")
INDUSTRY_FORMS = ("{} Industries", "{} Energy", "{} Aerospace", "{} Pharma", "{} Motors")
PUBLIC_FORMS = ("{} Weather Service", "{} Geological Survey", "{} Health Agency", "{} Space Agency")
TITLE_PREFIXES = ("Exascale", "GPU-accelerated", "Data-driven", "High-resolution", "Multiscale",
                  "Scalable", "Physics-informed", "Ensemble", "Foundation models for", "Adaptive")
SCIENCE_TOPICS = ("lattice QCD", "climate downscaling", "ocean circulation", "protein folding",
                  "plasma turbulence", "galaxy formation", "materials discovery", "seismic imaging",
                  "combustion chemistry", "battery electrolytes", "drug docking", "wind-farm wakes",
                  "gravitational waves", "epidemic forecasting", "catalyst design", "brain connectomics")
AI_TOPICS = ("multilingual language models", "speech recognition", "medical imaging", "code generation",
             "weather forecasting", "robot control", "document understanding", "chip design",
             "recommender systems", "molecular generation")
# fmt: on


@dataclass(frozen=True)
class _GroupSpec:
    id: str
    name: str
    kinds: tuple[ApplicantKind, ...]
    min_share: float
    max_share: float


GROUPS = (
    _GroupSpec("science", "Science", (ApplicantKind.ACADEMIC, ApplicantKind.PUBLIC_SECTOR), 0.5, 1.0),
    _GroupSpec("startups", "Start-ups", (ApplicantKind.STARTUP, ApplicantKind.INDUSTRY), 0.1, 0.3),
)


def generate_round(
    proposals: int, machines: int, seed: int, *, policy_language: bool = True, reviews: bool = False
) -> Round:
    """A synthetic, feasible, ~3x oversubscribed round; the same arguments give the same round.

    With ``policy_language`` (the default) the round also uses the fuller policy language:
    per-stack efficiencies, machine options, split awards, a soft start-up share, a pin and
    an exclusive pair (see "Policy-language features" above). Without it, only the core
    rules: what the benchmark's greedy fills and LP bound model.

    With ``reviews`` every proposal also gets 3 or 4 individual reviews by a pool of
    reviewers in panels (see "Individual reviews" above), drawn from their own stream after
    everything else: the round is otherwise the one generated without them.
    """
    if proposals < 1:
        raise ValueError(f"proposals must be at least 1 (got {proposals})")
    if not 1 <= machines <= 99:
        raise ValueError(f"machines must be between 1 and 99 (got {machines})")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more (got {seed})")
    rng = np.random.default_rng(seed)
    fleet = [_machine(p) for p in FLEET[:machines]]
    fleet += [_synthetic_machine(i) for i in range(len(fleet), machines)]
    capacity = sum((m.gpu_hours * Fraction(str(m.exchange_rate)) for m in fleet), Fraction(0))
    props = _proposals(rng, proposals, float(capacity))
    pins: list[Pin] = []
    exclusive: list[ExclusiveGroup] = []
    if policy_language:
        # A second stream, so the core draws above stay what they are without these features.
        extra = np.random.default_rng((seed, 1))
        props = _fuller_requests(extra, fleet, props)
        pins, exclusive, props = _pins_and_duplicates(fleet, props, float(capacity))
    # The witness behind the share minimums funds at most one proposal of each exclusive pair.
    left_out = {e.proposals[1] for e in exclusive}
    groups = _feasible_groups(
        fleet, [p for p in props if p.id not in left_out], soft_startups=policy_language
    )
    if reviews:
        props = _with_reviews(np.random.default_rng((seed, REVIEWS_STREAM)), props)
    return Round(
        id=f"synthetic-{proposals}p-{machines}m-s{seed}",
        name=f"Synthetic EuroHPC-like round ({proposals} proposals, {machines} machines, seed {seed})",
        machines=fleet,
        policy=Policy(
            score_threshold=SCORE_THRESHOLD,
            share_groups=groups,
            free_access=FreeAccess(max_embargo_months=MAX_EMBARGO_MONTHS),
            commercial="within_cap",
            merit=MeritPolicy(value="fraction", exponent=1),
            pins=pins,
            exclusive=exclusive,
        ),
        proposals=props,
    )


def write_round(rnd: Round, path: str | Path) -> None:
    """Write a round as indented JSON with a trailing newline, atomically."""
    write_atomic(path, json.dumps(rnd.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")


# -- machines ------------------------------------------------------------------


def _round_hours(gpus: int, share: float, unit: int) -> int:
    """GPUs x 8,760 h x share x call fraction, rounded down to whole award units."""
    hours = gpus * HOURS_PER_YEAR * Fraction(str(share)) * CALL_FRACTION
    return math.floor(hours / unit) * unit


def _machine(p: Partition) -> Machine:
    return Machine(
        id=p.id,
        name=p.name,
        site=p.site,
        accelerator=p.accelerator,
        stack=p.stack,
        cpu_arch=p.cpu_arch,
        gpu_memory_gb=p.gpu_memory_gb,
        gpu_hours=_round_hours(p.gpus, p.eurohpc_share, p.award_unit),
        exchange_rate=p.exchange_rate,
        award_unit=p.award_unit,
        max_award_fraction=MID_RANGE_MAX_AWARD_FRACTION if p.tier == "mid-range" else None,
        commercial_cap=COMMERCIAL_CAP,
    )


SYNTHETIC_GPUS = (512, 384, 768, 256)


def _synthetic_machine(index: int) -> Machine:
    """A synthetic mid-range partition of one of the fleet's types (index counts from 0)."""
    template = FLEET[index % len(FLEET)]
    gpus = SYNTHETIC_GPUS[index % len(SYNTHETIC_GPUS)]
    unit = 500
    return Machine(
        id=f"midrange-{index + 1:02d}",
        name=f"Synthetic mid-range {index + 1:02d} ({template.accelerator})",
        site=f"synthetic site, modelled on {template.name}",
        accelerator=template.accelerator,
        stack=template.stack,
        cpu_arch=template.cpu_arch,
        gpu_memory_gb=template.gpu_memory_gb,
        gpu_hours=_round_hours(gpus, MID_RANGE_SHARE, unit),
        exchange_rate=template.exchange_rate,
        award_unit=unit,
        max_award_fraction=MID_RANGE_MAX_AWARD_FRACTION,
        commercial_cap=COMMERCIAL_CAP,
    )


# -- proposals -----------------------------------------------------------------


def _pick(rng: np.random.Generator, n: int, weights: tuple[float, ...]) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(weights), size=n, p=p / p.sum())


def _requests(rng: np.random.Generator, n: int, capacity: float) -> np.ndarray:
    """Log-normal sizes, scaled (with clipping) so they add up to OVERSUBSCRIPTION x capacity."""
    raw = 10.0 ** rng.normal(REQUEST_LOG10_MEAN, REQUEST_LOG10_SD, n)
    target = OVERSUBSCRIPTION * capacity
    scale = 1.0
    for _ in range(60):
        total = np.clip(raw * scale, REQUEST_MIN, REQUEST_MAX).sum()
        if abs(total / target - 1) < 1e-9:
            break
        scale *= target / total
    sized = np.clip(raw * scale, REQUEST_MIN, REQUEST_MAX)
    return np.maximum(REQUEST_MIN, np.round(sized / REQUEST_GRAIN) * REQUEST_GRAIN).astype(np.int64)


def _proposals(rng: np.random.Generator, n: int, capacity: float) -> list[Proposal]:
    # Every draw is vectorised and made in a fixed order: the seed fixes the round.
    kinds = _pick(rng, n, KIND_SHARES)
    quality = rng.normal(QUALITY_MEAN, QUALITY_SD, n)
    noise = rng.normal(0.0, REVIEWER_SD, (REVIEWERS, n)).mean(axis=0)
    scores = np.round(np.clip(quality + noise, 0.0, 5.0), 1)
    requests = _requests(rng, n, capacity)
    min_fraction = rng.uniform(*MINIMUM_FRACTION, n)
    stacks = _pick(rng, n, tuple(w for _, w in STACK_CHOICES))
    archs = _pick(rng, n, tuple(w for _, w in ARCH_CHOICES))
    memory = _pick(rng, n, tuple(w for _, w in MEMORY_CHOICES))
    publication_draw = rng.random(n)
    countries = _pick(rng, n, tuple(w for _, w in COUNTRIES))
    name_parts = rng.integers(0, 1 << 30, (3, n))
    title_parts = rng.integers(0, 1 << 30, (2, n))

    width = max(4, len(str(n)))
    out = []
    for i in range(n):
        kind = KINDS[kinds[i]]
        request = int(requests[i])
        minimum = min(request, max(REQUEST_GRAIN, _round_up(request * float(min_fraction[i]), REQUEST_GRAIN)))
        out.append(
            Proposal(
                id=f"P-{i + 1:0{width}d}",
                title=_title(kind, int(title_parts[0, i]), int(title_parts[1, i])),
                applicant=Applicant(
                    name=_applicant_name(kind, *(int(v) for v in name_parts[:, i])),
                    kind=kind,
                    country=COUNTRIES[countries[i]][0],
                ),
                score=float(scores[i]),
                publication=_publication(kind, float(publication_draw[i])),
                requirements=Requirements(
                    stacks=list(STACK_CHOICES[stacks[i]][0]),
                    cpu_archs=list(ARCH_CHOICES[archs[i]][0]),
                    min_gpu_memory_gb=MEMORY_CHOICES[memory[i]][0],
                ),
                request=Request(reference_gpu_hours=request, minimum_reference_gpu_hours=minimum),
            )
        )
    return out


def _round_up(x: float, grain: int) -> int:
    return math.ceil(x / grain) * grain


def _publication(kind: ApplicantKind, u: float) -> Publication:
    choices = PUBLICATION[kind]
    total = sum(p for _, _, p in choices)
    acc = 0.0
    for commitment, months, p in choices:
        acc += p / total
        if u < acc:
            return Publication.model_validate({"commitment": commitment, "embargo_months": months})
    commitment, months, _ = choices[-1]
    return Publication.model_validate({"commitment": commitment, "embargo_months": months})


def _title(kind: ApplicantKind, a: int, b: int) -> str:
    topics = AI_TOPICS if kind in (ApplicantKind.STARTUP, ApplicantKind.INDUSTRY) else SCIENCE_TOPICS
    return f"{TITLE_PREFIXES[a % len(TITLE_PREFIXES)]} {topics[b % len(topics)]}"


def _applicant_name(kind: ApplicantKind, a: int, b: int, c: int) -> str:
    stem = SYLLABLES_START[a % len(SYLLABLES_START)] + SYLLABLES_END[b % len(SYLLABLES_END)]
    forms = {
        ApplicantKind.ACADEMIC: ACADEMIC_FORMS,
        ApplicantKind.STARTUP: STARTUP_FORMS,
        ApplicantKind.INDUSTRY: INDUSTRY_FORMS,
        ApplicantKind.PUBLIC_SECTOR: PUBLIC_FORMS,
    }[kind]
    return forms[c % len(forms)].format(stem)


# -- policy-language features -----------------------------------------------


def _fuller_requests(
    rng: np.random.Generator, machines: list[Machine], proposals: list[Proposal]
) -> list[Proposal]:
    """Efficiencies for portable codes, machine options for some, split awards for large requests."""
    draws = rng.random((len(proposals), 4))
    out = []
    for p, (u_kind, u_speed, u_split, u_pref) in zip(proposals, draws, strict=True):
        request, minimum = _asked(p)
        compatible = sorted((m for m in machines if _compatible(m, p)), key=lambda m: m.id)
        update: dict[str, object] = {}
        portable = Stack.CUDA in p.requirements.stacks and Stack.ROCM in p.requirements.stacks
        if portable and u_kind < EFFICIENCY_SHARE:
            update["efficiency"] = {Stack.ROCM: round(round((0.6 + 0.35 * u_speed) * 20) / 20, 2)}
        elif len(compatible) >= 2 and u_kind > 1 - OPTIONS_SHARE:
            options = []
            for j, m in enumerate(compatible[:3]):
                speed = 0.8 + 0.4 * ((u_speed * (j + 2)) % 1.0)  # how fast the code runs there
                hours = _round_up(request / (m.exchange_rate * speed), REQUEST_GRAIN)
                least = min(hours, _round_up(hours * minimum / request, REQUEST_GRAIN))
                first = int(u_pref * len(compatible[:3]))
                options.append(
                    MachineOption(
                        machine=m.id,
                        gpu_hours=hours,
                        minimum_gpu_hours=least,
                        preference=PREFERENCES[(j - first) % 3],
                    )
                )
            update["request"] = Request(machine_options=options)
        if request >= SPLIT_FROM and u_split < SPLIT_SHARE:
            update["max_machines"] = 2
        out.append(p.model_copy(update=update) if update else p)
    return out


def _fundable_on(m: Machine, p: Proposal) -> bool:
    """Whether the machine can hold the proposal's minimum award within its request and the
    machine's per-proposal cap (a pinned proposal must be eligible)."""
    if not _compatible(m, p):
        return False
    request, minimum = _asked(p)
    per_unit = Fraction(str(m.exchange_rate)) * Fraction(str(p.efficiency.get(m.stack, 1.0))) * m.award_unit
    most = math.floor(Fraction(request) / per_unit)
    cap = cap_units(m)
    if cap is not None:
        most = min(most, cap)
    return max(1, math.ceil(Fraction(minimum) / per_unit)) <= most


def _pins_and_duplicates(
    machines: list[Machine], proposals: list[Proposal], capacity: float
) -> tuple[list[Pin], list[ExclusiveGroup], list[Proposal]]:
    """A 'fund' pin on the best small public-sector proposal; one proposal made a resubmission."""
    pins = []
    public = [
        p
        for p in proposals
        if p.applicant.kind == ApplicantKind.PUBLIC_SECTOR
        and p.score >= SCORE_THRESHOLD
        and not _commercial(p)
        and p.request.machine_options is None
        and any(_fundable_on(m, p) for m in machines)
        and _asked(p)[1] <= PIN_MAX_SHARE * capacity
    ]
    if public:
        chosen = max(public, key=lambda p: (p.score, p.id))
        pins.append(Pin(proposal=chosen.id, action="fund", reason=PIN_REASON))
    exclusive = []
    # The best eligible academic proposal and the median one: the same work, scored by two panels.
    pinned = {x.proposal for x in pins}
    academic = sorted(
        (
            p
            for p in proposals
            if p.applicant.kind == ApplicantKind.ACADEMIC
            and p.score >= SCORE_THRESHOLD
            and p.id not in pinned
        ),
        key=lambda p: (-p.score, p.id),
    )
    if len(academic) >= 3:
        first, second = academic[0], academic[len(academic) // 2]
        copy = second.model_copy(update={"title": first.title, "applicant": first.applicant})
        proposals = [copy if p.id == second.id else p for p in proposals]
        exclusive.append(
            ExclusiveGroup(id="resubmission-1", proposals=[first.id, second.id], reason=DUPLICATE_REASON)
        )
    return pins, exclusive, proposals


# -- individual reviews ----------------------------------------------------------

# The scientific field of each title topic (ASSUMPTION), in panel order.
FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("physics", ("lattice QCD", "plasma turbulence", "galaxy formation", "gravitational waves")),
    ("earth", ("climate downscaling", "ocean circulation", "seismic imaging", "wind-farm wakes")),
    ("life", ("protein folding", "drug docking", "epidemic forecasting", "brain connectomics")),
    ("materials", ("materials discovery", "combustion chemistry", "battery electrolytes", "catalyst design")),
    (
        "ai-models",
        (
            "multilingual language models",
            "speech recognition",
            "code generation",
            "document understanding",
            "recommender systems",
        ),
    ),
    (
        "ai-applied",
        ("medical imaging", "weather forecasting", "robot control", "chip design", "molecular generation"),
    ),
)
# Panels for each panel count: (panel id, the indices of its FIELDS).
PANELS: dict[int, tuple[tuple[str, tuple[int, ...]], ...]] = {
    1: (("all", (0, 1, 2, 3, 4, 5)),),
    2: (("science", (0, 1, 2, 3)), ("ai", (4, 5))),
    3: (("physics-earth", (0, 1)), ("life-materials", (2, 3)), ("ai", (4, 5))),
    4: (("physics-earth", (0, 1)), ("life", (2,)), ("materials", (3,)), ("ai", (4, 5))),
    5: (("physics", (0,)), ("earth", (1,)), ("life", (2,)), ("materials", (3,)), ("ai", (4, 5))),
    6: tuple((name, (k,)) for k, (name, _) in enumerate(FIELDS)),
}


def _field(title: str) -> int:
    """The index in FIELDS of the field of a generated title's topic."""
    for k, (_, topics) in enumerate(FIELDS):
        if any(title.endswith(" " + topic) for topic in topics):
            return k
    raise ValueError(f"no field for the title {title!r}")


def _panel_sizes(loads: list[int], reviewers: int) -> list[int]:
    """Reviewers per panel: at least MIN_PANEL_REVIEWERS each, the rest in proportion to the
    panels' proposals (largest remainders, ties to the earlier panel)."""
    sizes = [MIN_PANEL_REVIEWERS] * len(loads)
    spare = reviewers - sum(sizes)
    total = sum(loads)
    shares = [Fraction(spare * load, total) for load in loads]
    sizes = [s + math.floor(x) for s, x in zip(sizes, shares, strict=True)]
    left = reviewers - sum(sizes)
    order = sorted(range(len(loads)), key=lambda k: (-(shares[k] - math.floor(shares[k])), k))
    for k in order[:left]:
        sizes[k] += 1
    return sizes


def _with_reviews(rng: np.random.Generator, proposals: list[Proposal]) -> list[Proposal]:
    """Each proposal with 3 or 4 reviews by distinct reviewers of its field's panel; scores untouched."""
    n = len(proposals)
    reviewers = max(MIN_REVIEWERS, round(n / PROPOSALS_PER_REVIEWER))
    layout = PANELS[max(1, min(MAX_PANELS, reviewers // MIN_PANEL_REVIEWERS))]
    panel_of_field = {k: j for j, (_, fields) in enumerate(layout) for k in fields}
    panel_of = [panel_of_field[_field(p.title)] for p in proposals]
    used = sorted(set(panel_of))  # panels with proposals; the others are left out
    sizes = _panel_sizes([panel_of.count(j) for j in used], reviewers)
    width = max(3, len(str(reviewers)))
    members: dict[int, list[str]] = {}
    start = 0
    for j, size in zip(used, sizes, strict=True):
        members[j] = [f"R-{start + r + 1:0{width}d}" for r in range(size)]
        start += size
    # Every draw in a fixed order: biases, panel biases, review counts, noise, then assignments.
    reviewer_bias = dict(
        zip((r for j in used for r in members[j]), rng.normal(0.0, REVIEWER_BIAS_SD, reviewers), strict=True)
    )
    panel_bias = rng.normal(0.0, PANEL_BIAS_SD, len(layout))
    counts = REVIEWS_PER_PROPOSAL + (rng.random(n) < FOURTH_REVIEW_SHARE)
    noise = rng.normal(0.0, REVIEW_NOISE_SD, (n, REVIEWS_PER_PROPOSAL + 1))
    load = dict.fromkeys(reviewer_bias, 0)
    out = []
    for i, p in enumerate(proposals):
        j = panel_of[i]
        pool = members[j]
        ties = rng.random(len(pool))
        chosen = sorted(range(len(pool)), key=lambda r: (load[pool[r]], ties[r]))[: int(counts[i])]
        reviews = []
        for k, r in enumerate(sorted(chosen)):
            reviewer = pool[r]
            load[reviewer] += 1
            raw = p.score + reviewer_bias[reviewer] + panel_bias[j] + noise[i, k]
            value = float(np.clip(np.round(raw / REVIEW_STEP) * REVIEW_STEP, SCORE_MIN, SCORE_MAX))
            reviews.append(Review(reviewer=reviewer, panel=layout[j][0], score=value))
        out.append(p.model_copy(update={"reviews": reviews}))
    return out


# -- feasibility ---------------------------------------------------------------


def _feasible_groups(
    machines: list[Machine], proposals: list[Proposal], *, soft_startups: bool = False
) -> list[ShareGroup]:
    """The share groups, each minimum lowered if needed to what a rule-abiding allocation reaches.

    A greedy allocation (start-ups first, up to their maximum, then science on
    what is left; largest requests first) that obeys every rule of the round is a witness: any minimum
    at or below what it gives each group can be met, so the round is feasible.
    """
    reached = _witness(machines, proposals)
    total = sum((m.gpu_hours * Fraction(str(m.exchange_rate)) for m in machines), Fraction(0))
    groups = []
    for g in GROUPS:
        min_share = g.min_share
        if reached[g.id] < Fraction(str(min_share)) * total:
            min_share = math.floor(reached[g.id] / total * 100) / 100
        soft = soft_startups and g.id == "startups"
        groups.append(
            ShareGroup(
                id=g.id,
                name=g.name,
                kinds=list(g.kinds),
                min_share=min_share,
                max_share=g.max_share,
                soft=soft,
                penalty=STARTUP_PENALTY if soft else None,
            )
        )
    return groups


def _commercial(p: Proposal) -> bool:
    pub = p.publication
    if pub.commitment == "open":
        return False
    if pub.commitment == "confidential":
        return True
    return (pub.embargo_months or 0) > MAX_EMBARGO_MONTHS


def _compatible(m: Machine, p: Proposal) -> bool:
    req = p.requirements
    return m.stack in req.stacks and m.cpu_arch in req.cpu_archs and m.gpu_memory_gb >= req.min_gpu_memory_gb


def _witness(machines: list[Machine], proposals: list[Proposal]) -> dict[str, Fraction]:
    """Reference hours a simple greedy allocation gives each group, under every rule of the round."""
    total = sum((m.gpu_hours * Fraction(str(m.exchange_rate)) for m in machines), Fraction(0))
    left = {m.id: m.gpu_hours // m.award_unit for m in machines}
    commercial_left = {
        m.id: math.floor(Fraction(str(COMMERCIAL_CAP)) * m.gpu_hours) // m.award_unit for m in machines
    }
    reached: dict[str, Fraction] = {}
    for g in sorted(GROUPS, key=lambda g: g.max_share):  # the capped group first
        room = Fraction(str(g.max_share)) * total
        got = Fraction(0)
        # Only plain requests count towards the witness: leaving the others out can only lower it.
        members = [
            p
            for p in proposals
            if p.applicant.kind in g.kinds
            and p.score >= SCORE_THRESHOLD
            and p.request.machine_options is None
            and not p.efficiency
            and p.max_machines == 1
        ]
        for p in sorted(members, key=lambda p: (-_asked(p)[0], p.id)):
            best: tuple[Fraction, str, int] | None = None
            for m in machines:
                if not _compatible(m, p):
                    continue
                units = _most_units(m, p, left[m.id], commercial_left[m.id], room - got)
                if units:
                    ref = units * m.award_unit * Fraction(str(m.exchange_rate))
                    if best is None or ref > best[0]:
                        best = (ref, m.id, units)
            if best is not None:
                ref, machine_id, units = best
                got += ref
                left[machine_id] -= units
                if _commercial(p):
                    commercial_left[machine_id] -= units
        reached[g.id] = got
    return reached


def _most_units(m: Machine, p: Proposal, left: int, commercial_left: int, room: Fraction) -> int:
    """The largest award (in units) p can get on m now, or 0 if it is below p's minimum."""
    ref_per_unit = m.award_unit * Fraction(str(m.exchange_rate))
    request, minimum = _asked(p)
    request_units = math.floor(request / ref_per_unit)
    min_units = max(1, math.ceil(minimum / ref_per_unit))
    units = min(request_units, left, math.floor(room / ref_per_unit))
    if m.max_award_fraction is not None:
        units = min(units, math.floor(Fraction(str(m.max_award_fraction)) * m.gpu_hours) // m.award_unit)
    if _commercial(p):
        units = min(units, commercial_left)
    return units if units >= min_units else 0


def _asked(p: Proposal) -> tuple[int, int]:
    """The request and its minimum, in reference GPU-hours (generated proposals always have both)."""
    request, minimum = p.request.reference_gpu_hours, p.request.minimum_reference_gpu_hours
    assert request is not None and minimum is not None
    return request, minimum
