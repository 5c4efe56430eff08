"""errors: a search that found nothing says why, and what to do only when there is something to do."""

from __future__ import annotations

import pytest

from allocopt import solve as solve_module
from allocopt.errors import AllocoptError
from allocopt.model import RawResult
from allocopt.round import Round


@pytest.mark.parametrize(
    ("stop_reason", "expected", "unexpected"),
    [
        (
            "interrupted",
            "stopped by Ctrl-C before the solve found any allocation",
            "raise",
        ),
        ("work_limit", "before the solve stopped (work limit); raise --work-limit or --time-limit", "Ctrl-C"),
    ],
)
def test_a_solve_that_found_nothing_says_why(
    tiny: Round, monkeypatch: pytest.MonkeyPatch, stop_reason: str, expected: str, unexpected: str
) -> None:
    """After Ctrl-C, advice to raise a limit does not fit: the user stopped it."""

    def found_nothing(*_args: object) -> RawResult:
        return RawResult(status="unknown", stop_reason=stop_reason)

    monkeypatch.setattr(solve_module, "_search", found_nothing)
    with pytest.raises(AllocoptError) as err:
        solve_module.solve(tiny)
    assert expected in str(err.value)
    assert unexpected not in str(err.value)
