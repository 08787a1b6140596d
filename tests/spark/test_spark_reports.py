"""The report panels built from raw SQL give DuckDB's numbers on Spark (issue 26).

The postmortem's drift-distribution panels (:mod:`toolkit.report.distributions`: the
reference's deciles by DuckDB's list ``quantile_cont``, then counts per bin) and the weekly
trend (:mod:`toolkit.report.trend`: ``quantile_cont(latency_ms, 0.99)`` and ``epoch`` week
numbers) send SQL written for DuckDB through ``case.con``; on Spark it is transpiled to the
exact ``percentile`` and ``unix_micros``. The same simulated case, as a DuckDB file and as
Parquet on Spark, must give the same frames (counts exactly, shares and measures to 1e-9).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from tests.spark.conftest import export_case, register_case
from toolkit.diagnose import run_diagnostics
from toolkit.diagnose._case import case_view
from toolkit.report.distributions import feature_distributions
from toolkit.report.trend import weekly_measures
from toolkit.simulate import ingest_case, make_case
from toolkit.types import Window

RTOL = 1e-9


@pytest.fixture(scope="module")
def both(spark_session, tmp_path_factory):
    """A covariate-shift case (a numeric feature drifts; a categorical confounder moves) on
    DuckDB and on Spark, with data.drift run on each."""
    folder = tmp_path_factory.mktemp("reports")
    case = make_case("covariate_shift", seed=11, rows=3_000)
    con = ingest_case(case, folder)
    truth = case.truth()
    baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])
    backend = register_case(spark_session, export_case(con, folder / "lake"))
    out = {}
    for name, source in (("duckdb", con), ("spark", backend)):
        view = case_view(source)
        drift = run_diagnostics(source, baseline, incident, case=view,
                                ids=["data.drift"]).results["data.drift"]
        out[name] = (view, drift)
    return out


def test_distribution_panels_equal_duckdbs(both):
    (duck_case, duck_drift), (spark_case, spark_drift) = both["duckdb"], both["spark"]
    assert spark_case.engine.name == "spark"
    assert list(spark_drift.drifted) == list(duck_drift.drifted) and duck_drift.drifted
    duck = feature_distributions(duck_case.con, duck_case, duck_drift)
    spark = feature_distributions(spark_case.con, spark_case, spark_drift)
    assert {"numeric"} <= set(duck["kind"])  # the deciles' path is exercised
    keys = ["feature", "window", "order", "bin"]
    duck, spark = (f.sort_values(keys).reset_index(drop=True) for f in (duck, spark))
    # the bin labels carry the reference's deciles: same labels, same edges
    pd.testing.assert_frame_equal(spark[keys + ["kind"]], duck[keys + ["kind"]],
                                  check_dtype=False)
    assert spark["count"].astype(int).tolist() == duck["count"].astype(int).tolist()
    np.testing.assert_allclose(spark["share"].to_numpy(float), duck["share"].to_numpy(float),
                               rtol=RTOL)
    # every numeric feature's reference window splits in ten bins of about a tenth each
    numeric = duck[(duck["kind"] == "numeric") & (duck["window"] == "reference")
                   & (duck["bin"] != "missing")]
    assert numeric.groupby("feature")["share"].max().max() < 0.2


def test_reference_deciles_are_the_exact_percentiles(both):
    """The transpiled list quantile on Spark equals numpy's linear-interpolation quantiles
    of the same rows (and so DuckDB's ``quantile_cont``)."""
    duck_case, _ = both["duckdb"]
    spark_case, _ = both["spark"]
    levels = [0.1, 0.25, 0.5, 0.9, 0.99]
    sql = ("SELECT quantile_cont(TRY_CAST(amount_usd AS DOUBLE), "
           "[0.1, 0.25, 0.5, 0.9, 0.99]), quantile_cont(latency_ms, 0.99) FROM requests "
           "WHERE ts >= $start")
    params = {"start": datetime(2026, 2, 5)}
    spark_row = spark_case.con.execute(sql, params).fetchall()[0]
    duck_row = duck_case.con.execute(sql, params).fetchall()[0]
    values = duck_case.con.execute(
        "SELECT amount_usd, latency_ms FROM requests WHERE ts >= $start", params).df()
    expected = np.quantile(values["amount_usd"].dropna().to_numpy(float), levels)
    np.testing.assert_allclose(list(spark_row[0]), expected, rtol=RTOL)
    np.testing.assert_allclose(list(spark_row[0]), list(duck_row[0]), rtol=RTOL)
    p99 = np.quantile(values["latency_ms"].dropna().to_numpy(float), 0.99)
    assert spark_row[1] == pytest.approx(p99, rel=RTOL)
    assert spark_row[1] == pytest.approx(duck_row[1], rel=RTOL)


def test_weekly_trend_equals_duckdbs(both):
    """Requests, p99, failure rate, labelled, accuracy, ECE and the previous weeks' drift
    share per ISO week (the incident's week 2026-W07 and the one before)."""
    duck_case, _ = both["duckdb"]
    spark_case, _ = both["spark"]
    last = Window(datetime(2026, 2, 9), datetime(2026, 2, 16))
    duck = weekly_measures(duck_case.con, duck_case, last, weeks=3)
    spark = weekly_measures(spark_case.con, spark_case, last, weeks=3)
    assert duck["week"].tolist() == ["2026-W06", "2026-W07"]
    assert spark["week"].tolist() == duck["week"].tolist()
    assert spark["requests"].tolist() == duck["requests"].tolist()
    assert duck["requests"].sum() == 3_000
    for column in ("p99_ms", "failure_rate", "labelled", "accuracy", "ece", "drift_share"):
        a, b = duck[column].to_numpy(float), spark[column].to_numpy(float)
        assert np.isfinite(a[-1]), column  # measured in the incident's week
        np.testing.assert_allclose(b, a, rtol=RTOL, err_msg=column)
