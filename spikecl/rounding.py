"""Rounding for printed tables, shared by every experiment kind: a tie is rounded away from zero whatever the last
bit of its float, so that one number prints alike in every table and line that shows it."""

from __future__ import annotations

import math


def settled(value: float) -> float:
    """``value`` without the noise a float sum leaves in its last bits (rounded to 9 decimals): two means that are
    equal (as means of k/N accuracies often are) compare equal whatever order their terms were summed in."""
    return round(float(value), 9)


def half_up(value: float, digits: int = 1) -> float:
    """``value`` rounded to ``digits`` decimals, a tie away from zero: a mean of k/N accuracies is often a tie
    (72.75) that a float holds as 72.7499… or 72.7500…1, which Python's formatting prints as 72.7 or 72.8 by the
    order of a sum. The value is :func:`settled` first; NaN and infinity stay as they are; -0.0 becomes 0.0.

    >>> half_up(72.74999999999999), half_up(72.75000000000001), half_up(-2.25), half_up(0.1235, 3), half_up(-0.0)
    (72.8, 72.8, -2.3, 0.124, 0.0)
    """
    from decimal import ROUND_HALF_UP, Decimal

    value = settled(value)
    if not math.isfinite(value):
        return value
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)) + 0.0
