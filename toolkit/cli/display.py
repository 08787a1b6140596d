"""Query results for a reader at a terminal: aligned, rounded for display, control-safe.

Only the ``table`` output of ``forensics sql`` goes through here; ``--format csv`` and
``--format json`` print the exact values.
"""

from __future__ import annotations

import math
import re
import sys
from typing import TextIO

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from toolkit.cli.app import safe

__all__ = ["column_cells", "format_floats", "print_table", "json_safe", "csv_for"]

#: Most decimals a float shows in a table (the exact value is in --format csv / json).
DECIMALS = 4
_C1_AND_DEL = re.compile(r"[\x7f-\x9f]")


def format_floats(values: pd.Series) -> list[str]:
    """Floats rounded for display, with one number of decimals per column so points align.

    At most four decimals, fewer when every value needs fewer (``81.45349999999999`` ->
    ``81.4535``, ``7800.0`` -> ``7800``); scientific notation for magnitudes a fixed format
    would show as zero or as a wall of digits. Missing values are empty (SQL NULL).

    Examples
    --------
    >>> format_floats(pd.Series([81.45349999999999, 2.5, None]))
    ['81.4535', '2.5000', '']
    >>> format_floats(pd.Series([7800.0, 12.0]))
    ['7800', '12']
    >>> format_floats(pd.Series([2.259e-13, 0.5]))
    ['2.259e-13', '0.5']
    """
    numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
    finite = numbers[np.isfinite(numbers)]
    decimals = 0
    for value in finite:
        rounded = round(float(value), DECIMALS)
        text = f"{rounded:.{DECIMALS}f}".rstrip("0")
        decimals = max(decimals, len(text.split(".")[1]) if "." in text else 0)
    out = []
    for raw, value in zip(values, numbers, strict=True):
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or pd.isna(raw):
            out.append("")
        elif not math.isfinite(value):
            out.append("inf" if value > 0 else "-inf")
        elif value != 0 and (abs(value) < 10**-DECIMALS or abs(value) >= 1e15):
            out.append(f"{value:.4g}")
        else:
            out.append(f"{value:.{decimals}f}")
    return _shortest_when_mixed(out, finite)


def _shortest_when_mixed(cells: list[str], finite: np.ndarray) -> list[str]:
    # A column with scientific values keeps its fixed ones short too (no '0.5000' beside
    # '2.259e-13'): strip trailing zeros of the fixed-format cells.
    if not any("e" in c for c in cells):
        return cells
    return [c if "e" in c or "." not in c else c.rstrip("0").rstrip(".") for c in cells]


def column_cells(series: pd.Series) -> tuple[list[str], str]:
    """Display texts of one result column and its justification (numbers right-aligned)."""
    if pd.api.types.is_bool_dtype(series):
        return ["" if pd.isna(v) else str(bool(v)).lower() for v in series], "left"
    if pd.api.types.is_integer_dtype(series):
        return ["" if pd.isna(v) else str(int(v)) for v in series], "right"
    if pd.api.types.is_float_dtype(series):
        return format_floats(series), "right"
    if pd.api.types.is_datetime64_any_dtype(series):
        return ["" if pd.isna(v) else str(v) for v in series], "left"
    present = [v for v in series if v is not None and not _is_nan(v)]
    if present and all(isinstance(v, (int, float, np.integer, np.floating))
                       and not isinstance(v, bool) for v in present):
        if all(isinstance(v, (int, np.integer)) for v in present):
            return ["" if v is None or _is_nan(v) else str(int(v)) for v in series], "right"
        return format_floats(pd.Series(list(series), dtype=object)), "right"
    return ["" if v is None or _is_nan(v) else safe(v) for v in series], "left"


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def print_table(frame: pd.DataFrame, console: Console, *, notice: Console | None = None) -> None:
    """Print ``frame`` as a table that is never squeezed below its content's width.

    A table wider than the terminal is printed at its natural width (the terminal wraps the
    lines) instead of cutting headers and values to ``bucket…``; ``notice`` gets a hint.
    """
    table = Table(show_edge=False)
    columns = []
    for name in frame.columns:
        cells, justify = column_cells(frame[name])
        # Text, not str: a cell is data, never rich markup ("[error] ..." in a log line would
        # otherwise be read as a style tag and vanish)
        table.add_column(Text(safe(name, newlines=False)), justify=justify, no_wrap=True)
        columns.append(cells)
    for row in zip(*columns, strict=True) if columns else ():
        table.add_row(*(Text(cell) for cell in row))
    natural = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    width = max(natural, console.width)
    out = Console(width=width, file=console.file, highlight=False,
                  force_terminal=console.is_terminal, color_system=console.color_system)
    out.print(table)
    if notice is not None and natural > console.width and console.is_terminal:
        notice.print(f"(the table is {natural} columns wide, the terminal {console.width}; "
                     "--format csv suits a pager or a spreadsheet)", markup=False)


def json_safe(text: str) -> str:
    r"""JSON text with DEL and the C1 controls written as ``\u`` escapes.

    JSON requires escaping only characters below 0x20 (pandas does); U+007F-U+009F pass raw and
    some terminals act on U+009B as an escape sequence. The escaped form is the same JSON value.

    Examples
    --------
    >>> json_safe('["a\x9b2J"]')
    '["a\\u009b2J"]'
    """
    return _C1_AND_DEL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def csv_for(text: str, stream: TextIO | None = None) -> tuple[str, bool]:
    """CSV text as printed: exact bytes when redirected, control characters escaped on a
    terminal (where they would act as commands). Returns the text and whether it changed."""
    if not (stream or sys.stdout).isatty():
        return text, False
    shown = safe(text)
    return shown, shown != text
