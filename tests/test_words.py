"""words: a percentage never shows a reduced award as 100 % or a small one as 0 %."""

from __future__ import annotations

import pytest

from allocopt.words import pct


@pytest.mark.parametrize(
    ("x", "sentence", "cell"),
    [
        (1.0, "100%", "100%"),
        (0.9994, "over 99%", ">99%"),
        (0.995, "over 99%", ">99%"),
        (0.994, "99%", "99%"),
        (0.5, "50%", "50%"),
        (0.004, "under 1%", "<1%"),
        (0.0, "0%", "0%"),
    ],
)
def test_pct(x: float, sentence: str, cell: str) -> None:
    assert pct(x) == sentence
    assert pct(x, short=True) == cell
