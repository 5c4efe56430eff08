"""Numbers in words for people: percentages that never round a reduced award up to 100 %."""

from __future__ import annotations


def pct(x: float, *, short: bool = False) -> str:
    """A whole percentage that never shows a reduced award as 100 % or a small one as 0 %:
    'over 99%' and 'under 1%' in sentences, '>99%' and '<1%' in table cells (``short``)."""
    if 0.995 <= x < 1:
        return ">99%" if short else "over 99%"
    if 0 < x < 0.005:
        return "<1%" if short else "under 1%"
    return f"{x:.0%}"
