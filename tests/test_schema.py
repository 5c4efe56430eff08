"""The printed JSON Schemas document every field, with its unit where it has one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from allocopt.cli import cli

KINDS = ("round", "proposal", "solution")


def schema(kind: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["schema", kind], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.output)
    return parsed


def objects(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The top-level object and every definition, each with its name."""
    return [(doc.get("title", "<top>"), doc), *doc.get("$defs", {}).items()]


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_has_a_description(kind: str) -> None:
    """Every property of the top-level object and of each $defs entry carries a description."""
    doc = schema(kind)
    undocumented = [
        f"{name}.{field}"
        for name, obj in objects(doc)
        for field, prop in obj.get("properties", {}).items()
        if not str(prop.get("description", "")).strip()
    ]
    assert undocumented == [], f"fields without a description in the {kind} schema: {undocumented}"
    assert sum(len(obj.get("properties", {})) for _, obj in objects(doc)) > 5


@pytest.mark.parametrize(
    ("kind", "model", "field", "unit"),
    [
        ("round", "Machine", "gpu_hours", "GPU-hours"),
        ("round", "Machine", "gpu_memory_gb", "GB"),
        ("round", "Machine", "commercial_cap", "fraction"),
        ("round", "MachineOption", "gpu_hours", "GPU-hours"),
        ("proposal", "Request", "reference_gpu_hours", "reference GPU-hours"),
        ("proposal", "Request", "minimum_reference_gpu_hours", "reference GPU-hours"),
        ("proposal", "Publication", "embargo_months", "Months"),
        ("round", "ShareGroup", "penalty", "merit points"),
        ("solution", "Allocation", "gpu_hours", "GPU-hours"),
        ("solution", "Allocation", "reference_gpu_hours", "reference GPU-hours"),
        ("solution", "MachineMetrics", "utilisation", "fraction"),
        ("solution", "Timing", "solve_seconds", "seconds"),
        ("solution", "SolverOut", "deterministic_seconds", "deterministic seconds"),
    ],
)
def test_descriptions_name_their_units(kind: str, model: str, field: str, unit: str) -> None:
    """Hour, memory, fraction and time fields say which unit they count in."""
    description = schema(kind)["$defs"][model]["properties"][field]["description"]
    assert unit.lower() in description.lower(), f"{model}.{field}: {description!r} does not mention {unit!r}"


def test_machine_hours_are_not_described_as_reference_hours() -> None:
    """A machine's own GPU-hours and reference GPU-hours are different units; the text keeps them apart."""
    machine = schema("round")["$defs"]["Machine"]["properties"]
    assert "reference" not in machine["gpu_hours"]["description"].lower()
    assert "reference gpu-hours" in machine["exchange_rate"]["description"].lower()
