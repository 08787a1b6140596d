"""Small value types shared by every layer: time windows.

Time in the toolkit is always timezone-aware UTC, and windows are half-open ``[start, end)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from toolkit.errors import InvalidParameterError

__all__ = ["Window", "to_utc", "TIME_MIN", "TIME_MAX"]

#: The times the toolkit can analyse: pandas' nanosecond timestamps end in 1677 and 2262 (with a
#: margin, so that a bucket or a window edge around them still fits). A window outside is
#: refused with a clear error; rows outside are left out of a case's span and reported.
TIME_MIN = datetime(1678, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2262, 1, 1, tzinfo=UTC)

_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def to_utc(value: str | datetime | pd.Timestamp, *, name: str = "timestamp") -> datetime:
    """Return ``value`` as a timezone-aware UTC :class:`datetime.datetime`.

    Naive values are taken to be UTC, the convention of every export format we read.

    Parameters
    ----------
    value
        An ISO 8601 string (``Z`` or an offset allowed), a ``datetime`` or a pandas ``Timestamp``.
    name
        Parameter name used in the error message.

    Examples
    --------
    >>> to_utc("2026-03-02T16:05:00+02:00").isoformat()
    '2026-03-02T14:05:00+00:00'
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"The {name!r} value must be an ISO 8601 timestamp. Got {value!r} instead."
        ) from exc
    if ts is pd.NaT:
        raise InvalidParameterError(f"The {name!r} value must be a timestamp. Got {value!r}.")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


@dataclass(frozen=True)
class Window:
    """A half-open UTC time window ``[start, end)``.

    Parameters
    ----------
    start, end
        Anything :func:`to_utc` accepts; ``start`` must come before ``end``.

    Examples
    --------
    >>> w = Window("2026-03-02T14:00Z", "2026-03-02T20:00Z")
    >>> w.duration
    datetime.timedelta(seconds=21600)
    >>> str(w)
    '2026-03-02T14:00:00Z/2026-03-02T20:00:00Z'
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = to_utc(self.start, name="start")
        end = to_utc(self.end, name="end")
        if not start < end:
            raise InvalidParameterError(
                f"A window's start must come before its end. Got {start.isoformat()} / "
                f"{end.isoformat()}."
            )
        if start < TIME_MIN or end > TIME_MAX:
            raise InvalidParameterError(
                f"A window must lie between {TIME_MIN:%Y-%m-%d} and {TIME_MAX:%Y-%m-%d} (the "
                f"times pandas can hold). Got {start.isoformat()} / {end.isoformat()}."
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def duration(self) -> timedelta:
        """Length of the window."""
        return self.end - self.start

    def __str__(self) -> str:
        return f"{_iso(self.start)}/{_iso(self.end)}"

    def as_list(self) -> list[str]:
        """The window as ``[start, end]`` ISO strings with a ``Z`` suffix (JSON contract form)."""
        return [_iso(self.start), _iso(self.end)]

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse ``START/END`` (ISO 8601 interval) or an ISO week such as ``2026-W47``.

        Examples
        --------
        >>> Window.parse("2026-W47").as_list()
        ['2026-11-16T00:00:00Z', '2026-11-23T00:00:00Z']
        """
        text = text.strip()
        week = _ISO_WEEK.match(text)
        if week:
            year, number = int(week.group(1)), int(week.group(2))
            try:
                monday = datetime.fromisocalendar(year, number, 1).replace(tzinfo=UTC)
            except ValueError as exc:
                raise InvalidParameterError(f"{text!r} is not a valid ISO week.") from exc
            return cls(monday, monday + timedelta(days=7))
        if "/" not in text:
            raise InvalidParameterError(
                f"A window must be written START/END (ISO 8601) or YYYY-Www. Got {text!r}."
            )
        start, end = text.split("/", 1)
        return cls(start, end)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
