"""Numbers as finding summaries print them: one shared form, so no summary shows ``12.0x``."""

from __future__ import annotations

import math

__all__ = ["times"]


def times(ratio: float, digits: int = 1) -> str:
    """A ratio as people write it: ``12x``, ``2.5x``; at most ``digits`` decimals, trailing
    zeros dropped.

    A ratio that would round to zero keeps two significant digits (``0.04x``, not ``0x``). A
    ratio that could not be measured (NaN, from an empty or zero base) reads ``n/a`` and an
    infinite one ``unbounded``: a summary guards such values where it can, and never prints
    ``nanx``.

    Parameters
    ----------
    ratio
        The ratio (incident over baseline, one group over another, ...).
    digits
        Decimals kept at most (one by default).

    Examples
    --------
    >>> times(12.0), times(2.54), times(0.999), times(1.25, 2), times(1.2, 2)
    ('12x', '2.5x', '1x', '1.25x', '1.2x')
    >>> times(0.04), times(1234.5), times(float("nan"))
    ('0.04x', '1,234.5x', 'n/a')
    """
    value = float(ratio)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "unbounded"
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if value != 0 and text in ("0", "-0"):
        text = f"{value:.2g}"
    return f"{text}x"
