"""The diagnostics' timelines as signals (toolkit.diagnose._base.timeline_signals)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toolkit.diagnose._base import SIGNAL_COLUMNS, DiagnosticResult, timeline_signals

BUCKETS = pd.date_range("2026-01-01", periods=3, freq="h", tz="UTC")
TIMELINE = pd.DataFrame({"bucket_start": BUCKETS, "a": [0.5, np.nan, 0.25],
                         "b": [3.0, 4.0, np.nan], "n": [10, 0, 7]})


def test_columns_become_rows_per_bucket_in_column_order():
    out = timeline_signals(TIMELINE, ["a", "b"], "x.")
    expected = pd.DataFrame({
        "bucket_start": list(BUCKETS) * 2,
        "signal": ["x.a"] * 3 + ["x.b"] * 3,
        "value": [0.5, np.nan, 0.25, 3.0, 4.0, np.nan]})
    pd.testing.assert_frame_equal(out, expected)


def test_dropna_leaves_out_empty_buckets_and_keeps_the_positions():
    out = timeline_signals(TIMELINE, ["a", "b"], "x.", dropna=True)
    assert list(out.index) == [0, 2, 3, 4]
    assert list(out["signal"]) == ["x.a", "x.a", "x.b", "x.b"]
    assert list(out["value"]) == [0.5, 0.25, 3.0, 4.0]


def test_a_mapping_names_each_signal_and_keeps_the_dtype():
    out = timeline_signals(TIMELINE, {"n": "traffic.requests"})
    pd.testing.assert_frame_equal(out, pd.DataFrame({
        "bucket_start": BUCKETS, "signal": "traffic.requests", "value": [10, 0, 7]}))


@pytest.mark.parametrize("columns", [["a"], {"a": "x.a"}, []])
def test_an_empty_timeline_gives_the_base_results_empty_signals(columns):
    empty = TIMELINE.iloc[:0]
    out = timeline_signals(empty, columns, "x.")
    base = DiagnosticResult.signals(None)  # the base class's empty frame
    assert tuple(out.columns) == SIGNAL_COLUMNS
    pd.testing.assert_frame_equal(out, base)


def test_same_frame_as_the_melt_it_replaces():
    """The diagnostics' former bodies, to the byte: melt, prefix, optional dropna."""
    old = TIMELINE.melt(id_vars="bucket_start", value_vars=["b", "a"], var_name="signal",
                        value_name="value")
    old["signal"] = "kv." + old["signal"]
    pd.testing.assert_frame_equal(timeline_signals(TIMELINE, ["b", "a"], "kv."), old,
                                  check_exact=True)
    pd.testing.assert_frame_equal(timeline_signals(TIMELINE, ["b", "a"], "kv.", dropna=True),
                                  old.dropna(subset=["value"]), check_exact=True)
