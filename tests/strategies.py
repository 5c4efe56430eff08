"""Hypothesis strategies for tiny, valid rounds that brute force can enumerate in milliseconds.

Sizes are kept small on purpose: at most 3 machines of at most 6 award units
each (plus, sometimes, a stray part-unit), at most 5 proposals asking at most
3,000 reference GPU-hours. Ids are generated in sorted order, so a generated
round is already canonical.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from allocopt.round import Round

KINDS = ["academic", "start-up", "industry", "public-sector"]


@st.composite
def machines(draw: st.DrawFn, index: int) -> dict[str, Any]:
    unit = draw(st.sampled_from([500, 1000]))
    data: dict[str, Any] = {
        "id": f"m{index}",
        "name": f"Machine {index}",
        "site": "Somewhere",
        "accelerator": "GPU",
        "stack": draw(st.sampled_from(["cuda", "rocm"])),
        "cpu_arch": draw(st.sampled_from(["x86_64", "aarch64"])),
        "gpu_memory_gb": draw(st.sampled_from([40.0, 64.0, 80.0, 96.0])),
        # Mostly whole units; sometimes a stray part-unit that no award can use.
        "gpu_hours": unit * draw(st.sampled_from([2, 3, 4, 5, 6, 0]))
        + draw(st.sampled_from([0, 0, 0, unit // 2])),
        "exchange_rate": draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 1.25, 0.333333])),
        "award_unit": unit,
        "commercial_cap": draw(st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5])),
    }
    if draw(st.booleans()):
        data["max_award_gpu_hours"] = draw(st.sampled_from([500, 1000, 1500, 2000, 3000]))
    if draw(st.booleans()):
        data["max_award_fraction"] = draw(st.sampled_from([0.25, 0.5, 0.75, 1.0]))
    return data


@st.composite
def requirements(draw: st.DrawFn, machine_list: list[dict[str, Any]]) -> dict[str, Any]:
    """Mostly what one of the machines offers (plus maybe more); sometimes anything at all."""
    target = draw(st.sampled_from([*machine_list, None]))
    if target is None:
        stacks = draw(st.sampled_from([["cuda"], ["rocm"]]))
        archs = draw(st.sampled_from([["x86_64"], ["aarch64"]]))
    else:
        stacks = [target["stack"]]
        archs = [target["cpu_arch"]]
    if draw(st.booleans()):
        stacks = ["cuda", "rocm"]
    if draw(st.booleans()):
        archs = ["aarch64", "x86_64"]
    return {
        "stacks": stacks,
        "cpu_archs": archs,
        "min_gpu_memory_gb": draw(st.sampled_from([0.0, 0.0, 64.0, 80.0])),
    }


@st.composite
def proposals(draw: st.DrawFn, index: int, machine_list: list[dict[str, Any]]) -> dict[str, Any]:
    commitment = draw(st.sampled_from(["open", "open", "embargo", "open", "confidential"]))
    publication: dict[str, Any] = {"commitment": commitment}
    if commitment == "embargo":
        publication["embargo_months"] = draw(st.sampled_from([1, 6, 12, 13, 24]))
    request = 250 * draw(st.integers(4, 12))
    minimum = 250 * draw(st.integers(1, max(1, request // 500)))
    return {
        "id": f"P{index}",
        "title": f"Proposal {index}",
        "applicant": {"name": f"Applicant {index}", "kind": draw(st.sampled_from(KINDS)), "country": "DE"},
        "score": draw(st.sampled_from([4.5, 3.0, 4.0, 5.0, 3.5, 2.5, 4.5, 0.0])),
        "publication": publication,
        "requirements": draw(requirements(machine_list)),
        "request": {"reference_gpu_hours": request, "minimum_reference_gpu_hours": minimum},
    }


@st.composite
def share_groups(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 2))
    # Each kind belongs to one of the groups or to none.
    owner = {kind: draw(st.sampled_from([None, *range(count)])) for kind in KINDS}
    groups: list[dict[str, Any]] = []
    for i in range(count):
        members = [kind for kind in KINDS if owner[kind] == i]
        if not members:
            continue
        min_share = draw(st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.15, 0.2, 0.3]))
        max_share = draw(st.sampled_from([s for s in [0.2, 0.3, 0.35, 0.5, 0.75, 1.0] if s >= min_share]))
        groups.append(
            {
                "id": f"g{len(groups)}",
                "name": f"Group {len(groups)}",
                "kinds": members,
                "min_share": min_share,
                "max_share": max_share,
            }
        )
    return groups


@st.composite
def tiny_rounds(draw: st.DrawFn) -> Round:
    """A valid round small enough to enumerate every allocation."""
    n_machines = draw(st.integers(1, 3))
    n_proposals = draw(st.integers(1, 5))
    machine_list = [draw(machines(i)) for i in range(n_machines)]
    data = {
        "id": "tiny",
        "name": "Generated tiny round",
        "machines": machine_list,
        "policy": {
            "score_threshold": draw(st.sampled_from([2.5, 0.0, 3.0])),
            "share_groups": draw(share_groups()),
            "free_access": {"max_embargo_months": draw(st.sampled_from([None, 0, 6, 12]))},
            "commercial": draw(st.sampled_from(["within_cap", "exclude"])),
            "merit": {
                "value": draw(st.sampled_from(["fraction", "hours"])),
                "exponent": draw(st.integers(1, 2)),
            },
        },
        "proposals": [draw(proposals(i, machine_list)) for i in range(1, n_proposals + 1)],
    }
    return Round.model_validate(data)


# --- the full policy language ("Foundation II") -----------------------------------------------

ORGANISATIONS = ["Org A", "Org B"]
SIZES = [2000, 3000, 1500, 2500, 1000, 4000, 750]  # requests, in (reference or machine) GPU-hours
PENALTIES = [0.00001, 0.0005, 0.002, 0.5, 2.0]


def _compatible(m: dict[str, Any], req: dict[str, Any]) -> bool:
    return (
        m["stack"] in req["stacks"]
        and m["cpu_arch"] in req["cpu_archs"]
        and m["gpu_memory_gb"] >= req["min_gpu_memory_gb"]
    )


@st.composite
def small_machines(draw: st.DrawFn, index: int, capped: bool = False) -> dict[str, Any]:
    """A machine of at most 4 award units (plus, sometimes, a stray part-unit); with ``capped``,
    mostly with a per-proposal cap."""
    unit = draw(st.sampled_from([1000, 500]))
    data: dict[str, Any] = {
        "id": f"m{index}",
        "name": f"Machine {index}",
        "site": "Somewhere",
        "accelerator": "GPU",
        "stack": draw(st.sampled_from(["cuda", "rocm"])),
        "cpu_arch": draw(st.sampled_from(["x86_64", "aarch64"])),
        "gpu_memory_gb": draw(st.sampled_from([64.0, 80.0])),
        "gpu_hours": unit * draw(st.sampled_from([3, 2, 4, 1, 3, 2, 0]))
        + draw(st.sampled_from([0, 0, 0, unit // 2])),
        "exchange_rate": draw(st.sampled_from([1.0, 2.0, 0.5, 1.5, 1.25, 0.333333])),
        "award_unit": unit,
        "commercial_cap": draw(st.sampled_from([0.2, 0.5, 0.0, 0.1, 0.25])),
    }
    if draw(st.sampled_from([True, True, False] if capped else [False, False, False, True])):
        data["max_award_gpu_hours"] = draw(st.sampled_from([1000, 1500, 2000, 500]))
    if draw(st.sampled_from([False, False, False, True])):
        data["max_award_fraction"] = draw(st.sampled_from([0.5, 0.75, 1.0]))
    return data


@st.composite
def request_forms(draw: st.DrawFn, machine_list: list[dict[str, Any]], req: dict[str, Any]) -> dict[str, Any]:
    """A total request (maybe with an efficiency), or options on the compatible machines."""
    usable = [m for m in machine_list if _compatible(m, req)]
    fields: dict[str, Any] = {}
    if usable and bool(draw(st.booleans())):
        chosen = draw(st.lists(st.sampled_from(usable), min_size=1, max_size=2, unique_by=lambda m: m["id"]))
        options = []
        for m in chosen:
            hours = draw(st.sampled_from(SIZES))
            options.append(
                {
                    "machine": m["id"],
                    "gpu_hours": hours,
                    "minimum_gpu_hours": 250 * draw(st.integers(1, hours // 250)),
                    "preference": draw(st.sampled_from([1.0, 1.0, 0.8, 0.5])),
                }
            )
        fields["request"] = {"machine_options": options}
    else:
        request = draw(st.sampled_from(SIZES))
        minimum = 250 * draw(st.integers(1, request // 250))
        fields["request"] = {"reference_gpu_hours": request, "minimum_reference_gpu_hours": minimum}
        if draw(st.booleans()):
            fields["efficiency"] = {
                draw(st.sampled_from(["cuda", "rocm"])): draw(st.sampled_from([0.5, 0.7, 0.8]))
            }
    return fields


@st.composite
def policy_proposals(
    draw: st.DrawFn, index: int, machine_list: list[dict[str, Any]], split: bool = False
) -> dict[str, Any]:
    """A proposal that can mostly use some machine, with a committee rank now and then; with
    ``split``, it may always use more than one machine."""
    commitment = draw(st.sampled_from(["open", "open", "open", "embargo", "confidential"]))
    publication: dict[str, Any] = {"commitment": commitment}
    if commitment == "embargo":
        publication["embargo_months"] = draw(st.sampled_from([6, 12, 13]))
    target = draw(st.sampled_from([*machine_list, *machine_list, None]))
    if target is None:
        req = {"stacks": ["cuda", "rocm"], "cpu_archs": ["aarch64", "x86_64"], "min_gpu_memory_gb": 0.0}
    else:
        req = {
            "stacks": draw(st.sampled_from([[target["stack"]], ["cuda", "rocm"]])),
            "cpu_archs": draw(st.sampled_from([[target["cpu_arch"]], ["aarch64", "x86_64"]])),
            "min_gpu_memory_gb": draw(st.sampled_from([0.0, 0.0, target["gpu_memory_gb"]])),
        }
    data: dict[str, Any] = {
        "id": f"P{index}",
        "title": f"Proposal {index}",
        "applicant": {
            "name": draw(st.sampled_from([*ORGANISATIONS, f"Applicant {index}"])),
            "kind": draw(st.sampled_from(KINDS)),
            "country": "DE",
        },
        "score": draw(st.sampled_from([4.5, 3.0, 4.0, 5.0, 3.5, 2.5, 4.5, 4.0])),
        "publication": publication,
        "requirements": req,
        "max_machines": draw(st.sampled_from([2, 3] if split else [1, 1, 2, 3])),
    }
    data.update(draw(request_forms(machine_list, req)))
    rank = draw(st.sampled_from([None, None, 1, 2, 3]))
    if rank is not None:
        data["committee_rank"] = rank
    return data


@st.composite
def soft_share_groups(draw: st.DrawFn) -> list[dict[str, Any]]:
    groups = draw(share_groups())
    for g in groups:
        if draw(st.booleans()):
            g["soft"] = True
            g["penalty"] = draw(st.sampled_from(PENALTIES))
    return groups


@st.composite
def pins(
    draw: st.DrawFn, machine_list: list[dict[str, Any]], props: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Up to two pins on distinct proposals; now and then one the proposal cannot take (an error)."""
    likely = [p for p in props if p["score"] >= 3.0 and p["publication"]["commitment"] == "open"]
    pool = likely if likely and draw(st.sampled_from([True, True, True, False])) else props
    targets = draw(st.lists(st.sampled_from(pool), max_size=2, unique_by=lambda p: p["id"]))
    out = []
    for p in targets:
        action = draw(st.sampled_from(["exclude", "fund", "fund", "fund_machine", "fund_hours"]))
        pin: dict[str, Any] = {"proposal": p["id"], "action": "exclude" if action == "exclude" else "fund"}
        if action in ("fund_machine", "fund_hours") and p["max_machines"] == 1:
            usable = [m for m in machine_list if _compatible(m, p["requirements"])]
            m = draw(st.sampled_from(usable or machine_list))
            pin["machine"] = m["id"]
            if action == "fund_hours":
                pin["gpu_hours"] = m["award_unit"] * draw(st.integers(1, 3))
        pin["reason"] = f"committee decision on {p['id']}"
        out.append(pin)
    return out


@st.composite
def policy_rounds(draw: st.DrawFn, split: bool = False) -> Round:
    """A valid tiny round using the full policy language: machine options, efficiency, split
    awards, soft shares, the share basis, pins, exclusivity, organisation caps, committee ranks.

    At most 3 machines of at most 4 award units and 4 proposals, so that brute force enumerates
    every allocation in milliseconds. With ``split``: 2 or 3 machines, mostly with per-proposal
    caps, and every proposal may split its award.
    """
    n_machines = draw(st.integers(2, 3) if split else st.integers(1, 3))
    n_proposals = draw(st.integers(1, 4))
    machine_list = [draw(small_machines(i, capped=split)) for i in range(n_machines)]
    props = [draw(policy_proposals(i, machine_list, split)) for i in range(1, n_proposals + 1)]
    policy: dict[str, Any] = {
        "score_threshold": draw(st.sampled_from([2.5, 0.0, 3.0])),
        "share_groups": draw(soft_share_groups()),
        "free_access": {"max_embargo_months": draw(st.sampled_from([None, 0, 6, 12]))},
        "commercial": draw(st.sampled_from(["within_cap", "exclude"])),
        "merit": {
            "value": draw(st.sampled_from(["fraction", "hours"])),
            "exponent": draw(st.integers(1, 2)),
        },
        "share_basis": draw(st.sampled_from(["capacity", "awarded"])),
        "pins": draw(pins(machine_list, props)),
        "max_awards_per_organisation": draw(st.sampled_from([None, None, 1, 2])),
    }
    if n_proposals >= 2 and draw(st.booleans()):
        members = draw(
            st.lists(st.sampled_from([p["id"] for p in props]), min_size=2, max_size=3, unique=True)
        )
        policy["exclusive"] = [{"id": "x1", "proposals": sorted(members), "reason": "same work twice"}]
    data = {
        "id": "tiny2",
        "name": "Generated tiny round, full policy language",
        "machines": machine_list,
        "policy": policy,
        "proposals": props,
    }
    return Round.model_validate(data)
