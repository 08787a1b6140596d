"""One formatter for every value a report shows.

Reports never print a raw Python value: a missing number is an em dash (or ``n/a (reason)``
when the reason is known), a count is an integer with thousands separators, a p-value below
``1e-12`` is ``< 1e-12``, a share is a percentage, a boolean is ``yes`` / ``no``, a time is
``YYYY-MM-DD HH:MM UTC``, and a rounded value never shows as ``-0.00``. Objects without a
display form (e.g. a diagnostic result) are shown by their title, never by their ``repr``.

Examples
--------
>>> fmt_value(7800.0)
'7,800'
>>> fmt_pvalue(2.259e-13)
'< 1e-12'
>>> fmt_points(-0.00001)
'+0.00 points'
>>> fmt_value(float("nan"))
'—'
"""

from __future__ import annotations

import math
import numbers
import re
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MISSING", "P_FLOOR", "is_missing", "missing", "fmt_value", "fmt_number",
           "fmt_count", "fmt_percent", "fmt_points", "fmt_pvalue", "fmt_ms", "fmt_time",
           "fmt_change", "fmt_pvalues_in_text", "format_frame"]

#: How a missing value is shown.
MISSING = "—"
#: p-values below this are shown as ``< 1e-12`` (float noise below it is meaningless).
P_FLOOR = 1e-12

#: Columns whose values are counts (shown as integers).
_COUNT_WORDS = ("requests", "count", "rows", "labelled", "scored", "errors", "timeouts",
                "events", "hits", "n", "hosts", "features", "unseen", "windows", "failed",
                "loaded", "rejected", "read", "queries", "kills", "restarts", "support")
#: Columns whose values are p-values.
_PVALUE_WORDS = ("pvalue", "p_value", "p-value", "pvalue_adjusted", "p")
#: Columns whose values are shares in 0..1 (shown as percentages).
_SHARE_WORDS = ("share", "rate", "coverage", "compliance", "accuracy", "precision", "recall",
                "goodput")


def is_missing(value: Any) -> bool:
    """Whether ``value`` is None, NaN, NaT or pandas' NA."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return bool(pd.isna(value))
    return False


def missing(reason: str | None = None) -> str:
    """The text for a missing value: an em dash, or ``n/a (reason)``."""
    return f"n/a ({reason})" if reason else MISSING


def _no_negative_zero(text: str) -> str:
    """``-0``, ``-0.00``, ``-0.0%`` become their unsigned form."""
    stripped = text.lstrip("-+")
    if text.startswith("-") and not any(c in "123456789" for c in stripped.split("e")[0]):
        return stripped
    return text


def fmt_number(value: Any, digits: int = 4, *, reason: str | None = None) -> str:
    """A real number with ``digits`` significant digits; integers keep all their digits.

    Examples
    --------
    >>> fmt_number(0.123456)
    '0.1235'
    >>> fmt_number(-0.00001, 2)
    '-1e-05'
    >>> fmt_number(12345.6)
    '12,346'
    """
    if is_missing(value):
        return missing(reason)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    number = float(value)
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if number == 0:
        return "0"
    if float(number).is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 10 ** digits:
        return f"{number:,.0f}"
    return _no_negative_zero(f"{number:,.{digits}g}")


def fmt_count(value: Any, *, reason: str | None = None) -> str:
    """A count as an integer with thousands separators (``7800.0`` -> ``7,800``)."""
    if is_missing(value):
        return missing(reason)
    return f"{round(float(value)):,}"


def fmt_percent(value: Any, digits: int = 2, *, reason: str | None = None) -> str:
    """A share in 0..1 as a percentage (never ``nan%`` nor ``-0.00%``)."""
    if is_missing(value):
        return missing(reason)
    return _no_negative_zero(f"{float(value) * 100:.{digits}f}%")


def fmt_points(delta: Any, digits: int = 2, *, reason: str | None = None) -> str:
    """A change of a share, in percentage points, signed (``+1.25 points``)."""
    if is_missing(delta):
        return missing(reason)
    text = f"{float(delta) * 100:+.{digits}f}"
    if float(text) == 0:
        text = f"+{0:.{digits}f}"
    return f"{text} points"


def fmt_pvalue(value: Any, *, reason: str | None = None) -> str:
    """A p-value: ``< 1e-12`` below the floor, 2 significant digits otherwise.

    Examples
    --------
    >>> fmt_pvalue(0.0), fmt_pvalue(3.2e-7), fmt_pvalue(0.0412), fmt_pvalue(0.5)
    ('< 1e-12', '3.2e-07', '0.041', '0.5')
    """
    if is_missing(value):
        return missing(reason)
    number = float(value)
    if number < P_FLOOR:
        return "< 1e-12"
    if number < 1e-3:
        return f"{number:.1e}"
    return f"{number:.2g}"


_P_IN_TEXT = re.compile(r"\b(p(?:-value)?)(\s*(?:<=|<|=)\s*|\s+)"
                        r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?!\d|\.\d)", re.I)


def fmt_pvalues_in_text(text: str) -> str:
    """A sentence with its p-values through :func:`fmt_pvalue` (``p <= 0.0e+00`` and
    ``p 1.9e-23`` become ``p < 1e-12``).

    Examples
    --------
    >>> fmt_pvalues_in_text("Holm-adjusted p <= 0.0e+00 over 35 values")
    'Holm-adjusted p < 1e-12 over 35 values'
    >>> fmt_pvalues_in_text("adjusted p 3.2e-07; p = 0.0412; p99 350 ms")
    'adjusted p 3.2e-07; p = 0.041; p99 350 ms'
    >>> fmt_pvalues_in_text("adjusted p < 1e-12.")
    'adjusted p < 1e-12.'
    """
    def one(match: re.Match[str]) -> str:
        if "<" in match.group(2) and float(match.group(3)) <= P_FLOOR:
            return f"{match.group(1)} < 1e-12"        # already a bound at the floor
        shown = fmt_pvalue(float(match.group(3)))
        if shown.startswith("<"):
            return f"{match.group(1)} {shown}"
        return f"{match.group(1)}{match.group(2)}{shown}"

    return _P_IN_TEXT.sub(one, text)


def fmt_ms(value: Any, *, reason: str | None = None) -> str:
    """A latency in milliseconds (``1,234 ms``; below 10 ms with one decimal)."""
    if is_missing(value):
        return missing(reason)
    number = float(value)
    text = f"{number:,.1f}" if abs(number) < 10 else f"{number:,.0f}"
    return f"{_no_negative_zero(text)} ms"


def fmt_time(value: Any, *, seconds: bool = False, reason: str | None = None) -> str:
    """A time in UTC (``2026-02-11 12:00 UTC``)."""
    if is_missing(value):
        return missing(reason)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def fmt_change(before: Any, after: Any, kind: str = "number") -> str:
    """``after - before`` in the unit of ``kind`` (``share``, ``ms``, ``count``, ``number``)."""
    if is_missing(before) or is_missing(after):
        return MISSING
    delta = float(after) - float(before)
    if kind == "share":
        return fmt_points(delta)
    if kind == "ms":
        ratio = f" (x{_one_decimal(float(after) / float(before))})" if float(before) else ""
        return f"{'+' if delta >= 0 else ''}{fmt_ms(delta)}{ratio}".replace("+-", "-")
    if kind == "count":
        return f"{round(delta):+,}"
    text = fmt_number(delta)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def fmt_value(value: Any, column: str = "", *, reason: str | None = None) -> str:
    """Any value for display; ``column`` (its column or key name) selects the unit.

    Examples
    --------
    >>> fmt_value(True), fmt_value(None), fmt_value(2.259e-13, "pvalue")
    ('yes', '—', '< 1e-12')
    >>> fmt_value(0.01234, "error_rate"), fmt_value(7800.0, "requests")
    ('1.23%', '7,800')
    >>> fmt_value(0.01004, "goodput incident")
    '1.00%'

    """
    if isinstance(value, (list, tuple, set, frozenset)) and not isinstance(value, str):
        shown = [fmt_value(v) for v in value]
        return ", ".join(shown) if shown else MISSING
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_value(v, str(k))}" for k, v in value.items()) or MISSING
    if is_missing(value):
        return missing(reason)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (pd.Timestamp, datetime, np.datetime64)):
        return fmt_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (pd.Timedelta, timedelta)):
        return _fmt_duration(pd.Timedelta(value))
    if isinstance(value, numbers.Number):
        kind = _column_kind(column)
        if kind == "pvalue":
            return fmt_pvalue(value)
        if kind == "count" and float(value).is_integer():
            return fmt_count(value)
        if kind == "ms":
            return fmt_ms(value)
        if kind == "share" and -1 <= float(value) <= 1:
            return fmt_percent(value)
        if kind == "points" and -1 <= float(value) <= 1:
            return fmt_points(value)
        return fmt_number(value)
    if isinstance(value, str):
        return value
    title = getattr(type(value), "title", None)
    if isinstance(title, str) and title:
        return title  # a diagnostic result: its title, never its repr
    return str(value)


def format_frame(frame: pd.DataFrame, *, reasons: dict[str, str] | None = None
                 ) -> pd.DataFrame:
    """Every cell of ``frame`` as display text (see :func:`fmt_value`), column by column.

    ``reasons`` maps a column to the reason its missing values are missing.
    """
    reasons = reasons or {}
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        reason = reasons.get(str(column))
        out[column] = [fmt_value(v, str(column), reason=reason) for v in frame[column]]
    return out


def _column_kind(column: str) -> str:
    name = column.lower().strip()
    words = name.replace("-", "_").replace(" ", "_").split("_")
    if name in _PVALUE_WORDS or "pvalue" in name or "p_value" in name or "p-value" in name:
        return "pvalue"
    if name.endswith("_ms") or name.endswith(" ms") or words[-1] == "ms":
        return "ms"
    if name in _COUNT_WORDS or words[-1] in _COUNT_WORDS or words[0] in ("n", "count"):
        return "count"
    if any(w in _SHARE_WORDS for w in words):
        return "points" if words[-1] in ("change", "drop", "delta") else "share"
    return "number"


def _fmt_duration(delta: pd.Timedelta) -> str:
    seconds = delta.total_seconds()
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.0f} min"
    if abs(seconds) < 172800:
        return f"{_one_decimal(seconds / 3600)} h"
    return f"{_one_decimal(seconds / 86400)} days"


def _one_decimal(number: float) -> str:
    """One decimal, none when it is zero (``6 days``, ``4.5 days``; never ``6.0``)."""
    text = f"{number:.1f}"
    return text[:-2] if text.endswith(".0") else text
