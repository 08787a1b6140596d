"""Display formatting of `forensics sql --format table` (issue 21 item 10) and the terminal-safe
escaping of log content (issue 19 defect 8), against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toolkit.cli.app import safe
from toolkit.cli.display import column_cells, format_floats, json_safe


def test_floats_are_rounded_to_at_most_four_decimals_with_one_width_per_column():
    rng = np.random.default_rng(3)
    values = pd.Series(rng.normal(100, 30, 200))
    cells = format_floats(values)
    decimals = {len(c.split(".")[1]) for c in cells}
    assert decimals == {4}  # random doubles need all four
    for cell, value in zip(cells, values, strict=True):
        assert float(cell) == pytest.approx(round(value, 4), abs=1e-9)


@pytest.mark.parametrize("values, expected", [
    ([81.45349999999999, 20.0], ["81.4535", "20.0000"]),
    ([0.25, 0.5, 1.0], ["0.25", "0.50", "1.00"]),
    ([7800.0, 12.0, np.nan], ["7800", "12", ""]),
    ([1e-13, 3.0], ["1e-13", "3"]),
    ([2.5e20, 1.5], ["2.5e+20", "1.5"]),
    ([np.inf, -np.inf, 1.0], ["inf", "-inf", "1"]),
])
def test_float_cells(values, expected):
    assert format_floats(pd.Series(values, dtype=float)) == expected


def test_column_justification_and_missing_values():
    frame = pd.DataFrame({
        "n": pd.Series([1, None, 3], dtype="Int64"),
        "x": [1.5, None, 2.25],
        "s": ["a", None, "c\x1b[2J"],
        "mixed": [1, 2.5, None],
        "flag": [True, False, True],
    })
    assert column_cells(frame["n"]) == (["1", "", "3"], "right")
    assert column_cells(frame["x"]) == (["1.50", "", "2.25"], "right")
    assert column_cells(frame["s"]) == (["a", "", "c\\x1b[2J"], "left")
    assert column_cells(frame["mixed"])[1] == "right"
    assert column_cells(frame["flag"]) == (["true", "false", "true"], "left")


@pytest.mark.parametrize("text, shown", [
    ("plain text, tabs\tand\nlines", "plain text, tabs\tand\nlines"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
    ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    ("csi\x9b2J del\x7f nul\x00", "csi\\x9b2J del\\x7f nul\\x00"),
    ("bad byte \udcff", "bad byte \\udcff"),
    ("ünïcode ok — ✓", "ünïcode ok — ✓"),
])
def test_safe_escapes_every_control_character_and_keeps_text(text, shown):
    assert safe(text) == shown
    escaped = safe(text, newlines=False)
    assert "\n" not in escaped and "\t" not in escaped
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in escaped)


def test_json_safe_is_the_same_json_value():
    import json

    frame = pd.DataFrame({"v": ["a\x9bb\x7f\x1b[2J"]})
    text = json_safe(frame.to_json(orient="records", force_ascii=False))
    assert not any(0x7f <= ord(c) <= 0x9f or c == "\x1b" for c in text)
    assert json.loads(text) == [{"v": "a\x9bb\x7f\x1b[2J"}]


def test_table_cells_and_headers_are_text_not_rich_markup():
    import io

    from rich.console import Console

    from toolkit.cli.display import print_table

    buffer = io.StringIO()
    frame = pd.DataFrame({"[b]col[/b]": ["[error] boom", "name{labels} value [timestamp]"]})
    print_table(frame, Console(file=buffer, width=200, force_terminal=False))
    out = buffer.getvalue()
    # rich would have eaten "[error]", "[timestamp]" and the [b] tags as markup
    assert "[error] boom" in out
    assert "value [timestamp]" in out
    assert "[b]col[/b]" in out
