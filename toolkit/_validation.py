"""Checks at the public boundary, with one error message template."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from toolkit.errors import InvalidParameterError
from toolkit.types import Window

__all__ = ["check_window", "check_windows", "check_option", "check_interval"]


def check_window(name: str, value: Any) -> Window:
    """Return ``value`` as a :class:`Window` (it may be a Window, a ``START/END`` string, or a
    ``(start, end)`` pair)."""
    if isinstance(value, Window):
        return value
    if isinstance(value, str):
        return Window.parse(value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return Window(value[0], value[1])
    raise InvalidParameterError(
        f"The {name!r} parameter must be a Window, 'START/END' or (start, end). Got {value!r}."
    )


def check_windows(baseline: Any, incident: Any) -> tuple[Window, Window]:
    """Both windows, validated; they must not overlap."""
    b = check_window("baseline", baseline)
    i = check_window("incident", incident)
    if b.start < i.end and i.start < b.end:
        raise InvalidParameterError(
            f"The baseline {b} and incident {i} windows overlap; a baseline must be a period "
            "of normal operation outside the incident."
        )
    return b, i


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = tuple(allowed)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise InvalidParameterError(
            f"The {name!r} parameter must be one of {{{choices}}}. Got {value!r} instead."
        )
    return value


def check_interval(name: str, value: float, low: float, high: float) -> float:
    if not (low <= value <= high):
        raise InvalidParameterError(
            f"The {name!r} parameter must be in [{low}, {high}]. Got {value!r} instead."
        )
    return value
