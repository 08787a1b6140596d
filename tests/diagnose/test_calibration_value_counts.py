"""The equal-mass ECE from counts per distinct forecast (scores logged at a fixed precision)
against the sort-based path and a numpy hand computation; the sampled scores read inside the
requests scan."""

from __future__ import annotations

import importlib
import json

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._engine import Recorder

calibration = importlib.import_module("toolkit.diagnose.model.calibration")
tasks = importlib.import_module("toolkit.diagnose._tasks")


def _numpy_equal_mass(f: np.ndarray, o: np.ndarray, bins: int) -> float:
    """Edges at numpy's linear quantiles, right-closed bins (the edges below a forecast)."""
    edges = np.quantile(f, np.arange(1, bins) / bins)
    k = np.searchsorted(edges, f, side="left")
    return sum(abs(o[k == b].sum() - f[k == b].sum()) for b in range(bins)) / len(f)


@pytest.mark.parametrize("seed", range(6))
def test_value_counts_equal_the_sorted_quantile_bins(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(200, 4000))
    f = np.round(rng.uniform(0.3, 1.0, n), int(rng.integers(1, 5)))  # ties on a grid
    o = (rng.uniform(size=n) < f).astype(float)
    window = rng.choice(["baseline", "incident"], n)
    con = duckdb.connect()
    con.register("rows", pd.DataFrame({"_f": f, "_o": o, "_window": window}))
    rows = ibis.duckdb.from_connection(con).table("rows")
    bins = int(rng.integers(2, 20))
    record = Recorder()
    counted = calibration._equal_mass_ece(record, rows, bins, distinct=10)
    assert len(record.sql) == 1 and "QUANTILE" not in record.sql[0].upper()
    sorted_ = calibration._equal_mass_ece(Recorder(), rows, bins)
    for w in ("baseline", "incident"):
        part = window == w
        assert counted[w] == pytest.approx(sorted_[w], abs=1e-12)
        assert counted[w] == pytest.approx(_numpy_equal_mass(f[part], o[part], bins), abs=1e-12)


def test_many_distinct_forecasts_keep_the_sort():
    rng = np.random.default_rng(3)
    con = duckdb.connect()
    con.register("rows", pd.DataFrame({"_f": rng.uniform(size=500), "_o": 1.0,
                                       "_window": "baseline"}))
    record = Recorder()
    calibration._equal_mass_ece(record, ibis.duckdb.from_connection(con).table("rows"), 10,
                                distinct=calibration.EXACT_VALUES + 1)
    assert "QUANTILE_CONT" in record.sql[0].upper()


def test_calibration_reports_the_equal_mass_ece_of_a_gridded_score():
    rng = np.random.default_rng(8)
    n = 4000
    ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    conf = np.round(rng.uniform(0.5, 1.0, n), 3)
    right = rng.uniform(size=n) < np.where(np.arange(n) < n // 2, conf, 0.8)
    con = make_case(
        requests=pd.DataFrame({"request_id": range(n), "ts": ts, "prediction": "1",
                               "score": conf}),
        labels=pd.DataFrame({"request_id": range(n), "label": np.where(right, "1", "0")}))
    result = calibration.calibration(con, (ts[0], ts[n // 2]), (ts[n // 2], ts[-1]
                                                                 + pd.Timedelta("1min")))
    assert result.score_check["distinct"] == pytest.approx(501, rel=0.05)
    assert not any("QUANTILE_CONT" in s.upper() for s in result.sql)
    for w, part in (("baseline", slice(0, n // 2)), ("incident", slice(n // 2, n))):
        assert result.value(w, "ece_equal_mass") == pytest.approx(
            _numpy_equal_mass(conf[part], right[part].astype(float), result.bins), abs=1e-12)


def test_the_scores_sample_is_read_inside_the_requests_scan(monkeypatch):
    """The sampled requests' JSON objects are read, not every request's: DuckDB applies the
    hashed-time sample in the scan (it stayed a filter above a full scan under the other
    filters)."""
    classes = ["a", "b", "c"]
    n = 600
    ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(3), n)
    pred = np.array(classes)[p.argmax(axis=1)]
    con = make_case(
        requests=pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts,
                               "prediction": pred, "score": p.max(axis=1),
                               "scores": [json.dumps(dict(zip(classes, map(float, r),
                                                              strict=True))) for r in p]}),
        labels=pd.DataFrame({"request_id": [f"r{i}" for i in range(n)],
                             "label": rng.choice(classes, n)}))
    monkeypatch.setattr(tasks, "SCORES_SAMPLE_ROWS", n // 4)
    from toolkit.diagnose._case import case_view
    from toolkit.types import Window

    case = case_view(con)
    record = Recorder(joins_as_written=True)
    scored = tasks.scored_rows(case, record, Window(ts[0], ts[n // 2]),
                               Window(ts[n // 2], ts[-1] + pd.Timedelta("1min")), case.task)
    assert scored.fraction == pytest.approx(0.25)
    select = record.sql[-1].split(" AS\n", 1)[1]
    plan = con.execute("EXPLAIN " + select).fetchall()[0][1]
    # the sample is one of the requests scan's filters, not a filter operator above the scan
    assert "epoch_us(ts)" in plan and "─ Filter ─" not in plan
