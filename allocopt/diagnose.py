"""Pre-solve diagnostics and the explanation of an infeasible round.

``diagnostics`` is cheap arithmetic on the round's terms (used by `validate`
and before every solve); ``share_shortfalls`` re-solves without share minimums
to say exactly how much of a minimum can be met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from allocopt.model import AllocationModel
from allocopt.options import SolveOptions
from allocopt.terms import LEAST_UNIT_WORTH, OBJECTIVE_SCALE, STACK_NAMES, Assessment, Terms


@dataclass(frozen=True)
class Diagnostic:
    """One finding: 'error' means the round cannot be solved as it stands."""

    level: str  # error | warning | info
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def coarse_units(terms: Terms) -> Diagnostic | None:
    """A warning when the merit scale stopped growing (SCALE_STEPS) before every award unit was
    worth enough points for close scores to stay apart; None otherwise."""
    coarse = [o for o in terms.options if o.worth > 0 and o.coef < LEAST_UNIT_WORTH]
    if not coarse:
        return None
    worst = min(coarse, key=lambda o: o.worth)
    points = worst.worth * terms.scale / OBJECTIVE_SCALE[terms.round.policy.merit.value]
    return Diagnostic(
        "warning",
        f"award units are tiny against the requests: one unit of {worst.proposal_id} on "
        f"{terms.round.machine(worst.machine_id).name} is worth {float(points):.3g} points, rounded to "
        f"{worst.coef}, so close scores may be ranked wrongly; raise that machine's award_unit",
    )


def diagnostics(terms: Terms, objective: str = "merit") -> list[Diagnostic]:
    """Demand against capacity per stack and per share group; proposals nobody can serve.

    A soft share minimum can always be missed (at a cost), except under 'rank'.
    """
    rnd = terms.round
    out: list[Diagnostic] = []
    if rnd.policy.lottery is not None and objective != "rank":
        out.append(
            Diagnostic(
                "warning",
                "policy.lottery applies only under the rank objective: under 'merit' no lots are drawn "
                "(set policy.objective to 'rank', or solve with --objective rank)",
            )
        )
    coarse = coarse_units(terms) if objective != "rank" else None  # the rank walk does not use merit
    if coarse is not None:
        out.append(coarse)
    eligible = [a for a in terms.assessments.values() if a.eligible]
    for stack, label in STACK_NAMES.items():
        capacity = sum(
            (m.gpu_hours * Fraction(str(m.exchange_rate)) for m in rnd.machines if m.stack == stack),
            Fraction(0),
        )
        demand = sum(
            math.ceil(a.requested_ref)
            for a in eligible
            if any(rnd.machine(o.machine_id).stack == stack for o in a.options)
        )
        if capacity == 0 and demand == 0:
            continue
        ratio = f"{float(demand / capacity):.1f}x capacity" if capacity else "no capacity"
        out.append(
            Diagnostic(
                "info",
                f"{label}: eligible demand {demand:,} reference GPU-h, capacity "
                f"{float(capacity):,.0f} ({ratio})",
            )
        )
    for group in terms.groups.values():
        members = [a for a in eligible if a.group_id == group.group_id]
        most = _group_ceiling(terms, group.group_id)
        demand = sum(math.ceil(a.requested_ref) for a in members)
        line = (
            f"share group '{group.group_id}': {len(members)} eligible proposals asking "
            f"{demand:,} reference GPU-h ({_pct(demand, terms.total_ref)} of capacity); "
            f"minimum {_pct(group.min_ref, terms.total_ref)}"
        )
        if terms.share_basis == "awarded":
            if most == 0 and group.min_share > 0:
                out.append(
                    Diagnostic(
                        "warning",
                        line.replace("minimum", "minimum (of hours awarded)")
                        + ": no proposal of this group can be funded, so under share basis 'awarded' "
                        "nothing at all can be awarded; lower its min_share to 0 or admit its proposals",
                    )
                )
            else:
                out.append(Diagnostic("info", line))
        elif most < group.min_ref and (not group.soft or objective == "rank"):
            out.append(
                Diagnostic(
                    "error",
                    line + f" cannot be met: at most {float(most):,.0f} reference GPU-h "
                    f"({_pct(most, terms.total_ref)}) can go to this group; lower its min_share to "
                    f"{_floor_share(most, terms.total_ref)} or admit more of its proposals",
                )
            )
        else:
            out.append(Diagnostic("info", line))
    for a in terms.assessments.values():
        served = [r for r in a.ineligible if r.code in ("incompatible", "too_small", "cap")]
        for r in served:
            out.append(Diagnostic("warning", f"proposal '{a.proposal.id}' can never be funded: {r.detail}"))
    return out


def share_shortfalls(terms: Terms, options: SolveOptions, objective: str = "merit") -> list[str]:
    """For an infeasible round: each share minimum that cannot be met, and by how much.

    Each group's most reachable reference hours are found by re-solving with
    every share minimum dropped and that group's hours maximised.
    """
    found: list[str] = []
    if terms.share_basis == "awarded":
        return found  # a minimum share of the hours awarded can always be met by awarding less
    for group in terms.groups.values():
        if group.min_ref <= 0 or (group.soft and objective != "rank"):
            continue
        model = AllocationModel(terms, soft_shares=objective != "rank", share_minimums=False)
        to_hours = model.maximise_group_hours(group.group_id)
        raw = model.solve(options)
        if raw.status != "optimal" or raw.objective is None:
            continue
        best = raw.objective * to_hours
        if best < group.min_ref:
            found.append(
                f"the {group.name} minimum share ({_pct(group.min_ref, terms.total_ref)}, "
                f"{float(group.min_ref):,.0f} reference GPU-h) cannot be met: under the other rules at "
                f"most {float(best):,.0f} reference GPU-h ({_pct(best, terms.total_ref)}) can go to "
                f"{group.name}, {float(group.min_ref - best):,.0f} short; lower its min_share to "
                f"{_floor_share(best, terms.total_ref)}, or add capacity its proposals can use"
            )
    return found


def _group_ceiling(terms: Terms, group_id: str) -> Fraction:
    """An upper bound on a group's reference hours: every member's largest award, capped by its
    compatible machines' capacity."""
    rnd = terms.round
    members = [a for a in terms.assessments.values() if a.eligible and a.group_id == group_id]
    demand = sum((_most_ref(a) for a in members), Fraction(0))
    machines = {o.machine_id for a in members for o in a.options}
    capacity = sum(
        (rnd.machine(m).gpu_hours * Fraction(str(rnd.machine(m).exchange_rate)) for m in machines),
        Fraction(0),
    )
    return min(demand, capacity)


def _most_ref(a: Assessment) -> Fraction:
    """An upper bound on the reference hours one proposal can take (several machines if split)."""
    most = sorted((o.max_units * o.ref_per_unit for o in a.options), reverse=True)
    return sum(most[: a.proposal.max_machines], Fraction(0))


def _pct(x: Fraction | int, total: Fraction) -> str:
    return f"{float(x / total):.1%}" if total else "n/a"


def _floor_share(x: Fraction, total: Fraction) -> str:
    """A share, rounded down to 4 decimals, that is certain to be reachable."""
    return f"{math.floor(x / total * 10_000) / 10_000:.4f}" if total else "0"


@dataclass(frozen=True)
class Conflict:
    """Rules that cannot hold together, each in words with the knob to turn."""

    rules: list[str]
    minimal: bool  # False when a check ran out of work, so a listed rule may not be needed
    # For each rule, whether changing it alone resolves the round's conflicts (all but those of
    # the other conflicts found): dropping one rule of a minimal conflict resolves that conflict,
    # but another may overlap it (share the rest of its rules).
    enough: list[bool] = field(default_factory=list)


MAX_CONFLICTS = 5  # separate conflicts reported at most; beyond them, solve again after fixing


def conflicts(terms: Terms, options: SolveOptions, objective: str = "merit") -> list[Conflict]:
    """Every separate conflict among the round's named rules (up to MAX_CONFLICTS), each minimal.

    CP-SAT gives rules that suffice for a conflict (assumptions); a deletion filter then drops
    every rule it does not need, so dropping any one rule left resolves that conflict. The
    conflict's rules are then set aside and the rest checked again, until they hold: a round
    with two separate problems names both. Each rule's knob is measured with every other rule in
    force except those of the other conflicts.
    """
    model = AllocationModel(terms, soft_shares=objective != "rank", named_rules=True)
    every = sorted(model.rules)
    active = list(every)
    found: list[tuple[list[tuple[str, str]], bool]] = []
    complete = False  # every conflict found: the rules left over hold
    while len(found) < MAX_CONFLICTS:
        status, core = model.check_rules(options, active)
        if status != "infeasible":
            complete = status == "feasible"
            break
        core, minimal = _shrink(model, options, sorted(core))
        found.append((core, minimal))
        active = [r for r in active if r not in set(core)]
    out = []
    for core, minimal in found:
        elsewhere = {r for other, _ in found if other is not core for r in other}
        words = [
            _rule_in_words(
                terms, model, options, rule, [r for r in every if r != rule and r not in elsewhere]
            )
            for rule in core
        ]
        # Whether changing one rule alone resolves the round is said only when every conflict was
        # found and every such check finished; otherwise the plain advice stands.
        rest = [r for r in every if r not in elsewhere]
        checked = (
            [model.check_rules(options, [r for r in rest if r != rule])[0] for rule in core]
            if complete
            else []
        )
        enough = [status == "feasible" for status in checked] if "unknown" not in checked else []
        out.append(Conflict(words, minimal, enough))
    return out


def _shrink(
    model: AllocationModel, options: SolveOptions, core: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], bool]:
    """A deletion filter: the core without every rule it does not need, and whether each kept
    rule was proven needed (a trial that ran out of work keeps its rule, unproven)."""
    minimal = True
    i = 0
    while i < len(core):
        trial = core[:i] + core[i + 1 :]
        status, smaller = model.check_rules(options, trial)
        if status == "infeasible":
            core = sorted(set(smaller) & set(trial)) or trial
            i = 0
        else:
            minimal = minimal and status != "unknown"
            i += 1
    return core, minimal


def conflicting_rules(terms: Terms, options: SolveOptions, objective: str = "merit") -> list[str]:
    """The first conflict's rules in words (empty when the rules hold)."""
    found = conflicts(terms, options, objective)
    return found[0].rules if found else []


def _rule_in_words(
    terms: Terms,
    model: AllocationModel,
    options: SolveOptions,
    rule: tuple[str, str],
    others: list[tuple[str, str]],
) -> str:
    family, ident = rule
    rnd = terms.round
    total = terms.total_ref
    if family in ("share_min", "share_max"):
        g = terms.groups[ident]
        expr, to_hours = model.usage(family, ident)
        if family == "share_min":
            best = model.extreme(options, others, expr, maximise=True)
            what = (
                f"the {g.name} minimum share ({_pct(g.min_ref, total)}, "
                f"{float(g.min_ref):,.0f} reference GPU-h)"
            )
            if best is None:
                return f"{what}: relax it"
            most = best * to_hours
            return (
                f"{what}: with the other rules at most {float(most):,.0f} reference GPU-h "
                f"({_pct(most, total)}) can go to {g.name}; lower its min_share to "
                f"{_floor_share(most, total)}"
            )
        least = model.extreme(options, others, expr, maximise=False)
        what = (
            f"the {g.name} maximum share ({_pct(g.max_ref, total)}, {float(g.max_ref):,.0f} reference GPU-h)"
        )
        if least is None:
            return f"{what}: relax it"
        need = least * to_hours
        return (
            f"{what}: the other rules need at least {float(need):,.0f} reference GPU-h ({_pct(need, total)}) "
            f"for {g.name}; raise its max_share to {_ceil_share(need, total)}"
        )
    if family in ("capacity", "commercial_cap"):
        m = rnd.machine(ident)
        expr, to_hours = model.usage(family, ident)
        least = model.extreme(options, others, expr, maximise=False)
        if family == "capacity":
            what = f"{m.name}'s capacity ({m.gpu_hours:,} GPU-h)"
            if least is None:
                return f"{what}: add hours"
            need = least * to_hours
            short = float(need) - m.gpu_hours
            return f"{what}: the other rules need {float(need):,.0f} GPU-h there; add {short:,.0f}"
        cap = terms.commercial_cap_hours[m.id]
        what = f"{m.name}'s commercial cap ({m.commercial_cap:.0%}, {cap:,} GPU-h)"
        if least is None:
            return f"{what}: raise it"
        need = least * to_hours
        return (
            f"{what}: the other rules need {float(need):,.0f} commercial GPU-h there; raise its "
            f"commercial_cap to {_ceil_share(need, Fraction(m.gpu_hours))}"
        )
    if family == "pin":
        pin = terms.assessments[ident].pin
        assert pin is not None
        where = f" on {pin.machine}" if pin.machine else ""
        amount = f" with {pin.gpu_hours:,} GPU-h" if pin.gpu_hours else ""
        verb = "funding" if pin.action == "fund" else "excluding"
        return f"the pin {verb} {ident}{where}{amount} ({pin.reason}): remove or change the pin"
    if family == "exclusive":
        group = next(e for e in rnd.policy.exclusive if e.id == ident)
        members = ", ".join(group.proposals)
        return f"the exclusive group {ident} (at most one of {members}): allow more, or drop it"
    k = rnd.policy.max_awards_per_organisation
    return f"at most {k} award(s) for {ident}: raise max_awards_per_organisation"


def _ceil_share(x: Fraction, total: Fraction) -> str:
    """A share, rounded up to 4 decimals, that certainly allows x."""
    return f"{math.ceil(x / total * 10_000) / 10_000:.4f}" if total else "1"
