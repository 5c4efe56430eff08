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
