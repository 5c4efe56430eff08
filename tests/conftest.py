"""Shared fixtures: the shipped tiny round and its solution."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocopt.files import read_round
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def tiny() -> Round:
    """instances/tiny.json: 8 proposals on JUPITER and LUMI-G, optimum worked out in the README."""
    return read_round(ROOT / "instances" / "tiny.json")


@pytest.fixture(scope="session")
def tiny_solution(tiny: Round) -> Solution:
    """The tiny round solved with default options."""
    return solve(tiny)
