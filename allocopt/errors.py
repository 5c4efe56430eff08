"""What allocopt raises, so the CLI can turn it into one clear line per problem.

AllocoptError
├── InputError       a round or solution file the user must fix (exit 2)
└── InfeasibleError  the rules cannot all hold (exit 1)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem in one file, at one JSON path, with what to do about it."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class AllocoptError(Exception):
    """Base of every error allocopt reports to the user."""


class InputError(AllocoptError):
    """An input file cannot be used; every problem found is listed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class InfeasibleError(AllocoptError):
    """The round's rules cannot all hold at once."""


def nothing_found(stop_reason: str, what: str) -> AllocoptError:
    """A search stopped before its first allocation: after Ctrl-C that is the user's choice, not a
    limit to raise."""
    if stop_reason == "interrupted":
        return AllocoptError(f"stopped by Ctrl-C before {what} found any allocation; nothing was written")
    return AllocoptError(
        f"no allocation was found before {what} stopped ({stop_reason.replace('_', ' ')}); "
        "raise --work-limit or --time-limit"
    )
