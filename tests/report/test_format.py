"""The report's one formatter: no raw Python value ever reaches a reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toolkit.report import html
from toolkit.report.format import (
    fmt_change,
    fmt_count,
    fmt_ms,
    fmt_number,
    fmt_percent,
    fmt_points,
    fmt_pvalue,
    fmt_time,
    fmt_value,
    format_frame,
    missing,
)

RAW = ("nan", "None", "NaT", "NaN", "True", "False", "<NA>", "-0.00", "7800.0", "2.259e-13",
       "Result(")


@pytest.mark.parametrize("value", [None, float("nan"), np.nan, pd.NaT, pd.NA,
                                   np.float32("nan"), pd.Timestamp("NaT")])
def test_missing_values_are_an_em_dash_or_na_with_the_reason(value):
    assert fmt_value(value) == "—"
    assert fmt_value(value, reason="no labels") == "n/a (no labels)"
    assert fmt_percent(value) == "—"
    assert fmt_ms(value, reason="no requests") == "n/a (no requests)"
    assert fmt_pvalue(value) == "—"
    assert missing("x") == "n/a (x)"


def test_counts_are_integers_with_separators():
    assert fmt_value(7800.0, "requests") == "7,800"
    assert fmt_value(7800.0) == "7,800"  # integral floats never show their .0
    assert fmt_value(np.int64(12), "labelled") == "12"
    assert fmt_count(1234567.4) == "1,234,567"
    assert fmt_value(3.0, "rows_rejected") == "3"


def test_pvalues_are_floored_and_rounded():
    assert fmt_pvalue(2.259e-13) == "< 1e-12"
    assert fmt_pvalue(0.0) == "< 1e-12"
    assert fmt_pvalue(1e-12) == "1.0e-12"
    assert fmt_pvalue(0.00034) == "3.4e-04"
    assert fmt_pvalue(0.04123) == "0.041"
    assert fmt_value(2.259e-13, "pvalue_adjusted") == "< 1e-12"
    assert fmt_value(2.259e-13, "p-value") == "< 1e-12"


def test_no_negative_zero_anywhere():
    assert fmt_points(-0.000001) == "+0.00 points"
    assert fmt_points(-0.0) == "+0.00 points"
    assert fmt_percent(-0.000001) == "0.00%"
    assert fmt_ms(-0.2) == "-0.2 ms"
    assert fmt_ms(-0.01) == "0.0 ms"
    assert fmt_number(-0.0) == "0"
    assert fmt_change(0.5, 0.5 - 1e-9, "share") == "+0.00 points"


def test_shares_rates_and_changes():
    assert fmt_value(0.01234, "error_rate") == "1.23%"
    assert fmt_value(0.9998, "skew share incident") == "99.98%"
    assert fmt_value(-0.6663, "accuracy change") == "-66.63 points"
    assert fmt_change(0.98, 0.315, "share") == "-66.50 points"
    assert fmt_change(97.0, 100.4, "ms") == "+3.4 ms (x1)"  # no raw "1.0" in a report
    assert fmt_change(100.0, 40.0, "ms") == "-60 ms (x0.4)"
    assert fmt_change(10, 4, "count") == "-6"
    assert fmt_change(float("nan"), 4, "count") == "—"


def test_booleans_times_and_objects():
    assert fmt_value(True) == "yes" and fmt_value(np.bool_(False)) == "no"
    assert fmt_time(pd.Timestamp("2026-02-11 12:00:05", tz="UTC")) == "2026-02-11 12:00 UTC"
    assert fmt_time(pd.Timestamp("2026-02-11 13:00", tz="Europe/Paris")) == \
        "2026-02-11 12:00 UTC"
    assert fmt_value(pd.Timedelta(hours=3)) == "3 h"
    assert fmt_value(pd.Timedelta(hours=3.5)) == "3.5 h"
    assert fmt_value(pd.Timedelta(days=6)) == "6 days"
    assert fmt_value(pd.Timedelta(days=4.5)) == "4.5 days"

    class CalibrationResult:
        title = "Calibration"

        def __repr__(self):
            return "CalibrationResult(, not_assessed=1)"

    assert fmt_value(CalibrationResult()) == "Calibration"
    assert fmt_value(["a", None, 2.0]) == "a, —, 2"
    assert fmt_value({"model_version": float("nan"), "client_version": None}) == \
        "model_version=—, client_version=—"


def test_significant_digits_and_large_numbers():
    assert fmt_number(0.123456) == "0.1235"
    assert fmt_number(4.2173) == "4.217"
    assert fmt_number(81.45349999999999) == "81.45"
    assert fmt_number(123456.7) == "123,457"
    assert fmt_number(float("inf")) == "∞"


def test_format_frame_and_html_table_show_no_raw_values():
    frame = pd.DataFrame({
        "requests": [7800.0, np.nan], "error_rate": [np.nan, 0.5], "pvalue": [2.259e-13, 0.2],
        "drifted": [True, False], "host": [None, "pod-1"], "onset": [pd.NaT, pd.Timestamp(
            "2026-01-01", tz="UTC")], "change": [-0.0, 1.5]})
    shown = format_frame(frame, reasons={"error_rate": "no requests"})
    assert shown.to_dict("list") == {
        "requests": ["7,800", "—"], "error_rate": ["n/a (no requests)", "50.00%"],
        "pvalue": ["< 1e-12", "0.2"], "drifted": ["yes", "no"], "host": ["—", "pod-1"],
        "onset": ["—", "2026-01-01 00:00 UTC"], "change": ["0", "1.5"]}
    rendered = html.table(frame).fragment
    for raw in RAW:
        assert raw not in rendered, raw


def test_html_table_raises_no_warning():
    """The old table() called DataFrame.replace on object columns: pandas' FutureWarning
    ("Downcasting behavior in replace") was printed into every report."""
    import warnings

    frame = pd.DataFrame({"a": [None, 1.0], "b": ["x", None], "c": [True, None]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = html.table(frame).fragment
    assert "None" not in out and "nan" not in out.lower()


def test_key_values_uses_the_key_as_unit():
    out = html.key_values({"error rate baseline": 0.001266, "SLO ms": 193.2,
                           "requests": 6387.0, "p-value": 1e-20, "drifted": False}).fragment
    assert "0.13%" in out and "193 ms" in out and "6,387" in out and "&lt; 1e-12" in out
    assert ">no<" in out
