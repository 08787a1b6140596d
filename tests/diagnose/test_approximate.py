"""Results say which of their statistics come from an approximate engine primitive (issue 26).

The Recorder finds the approximate reductions (``approx_quantile``, ``approx_median``,
``approx_nunique``) in each expression it compiles and declares the output columns they feed;
a result built from the recorded SQL lists them in ``approximate``. Exact queries list none.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import re
from datetime import datetime

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest

from toolkit.diagnose._base import DiagnosticResult, approximate_in
from toolkit.diagnose._engine import Recorder, approximate_outputs, float_array, quantiles_at
from toolkit.types import Window

WINDOW = Window(datetime(2026, 1, 1), datetime(2026, 1, 2))


def _backend():
    con = duckdb.connect()
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], 500), "x": rng.exponential(10, 500)})
    con.register("_f", frame)
    con.execute("CREATE TABLE t AS SELECT * FROM _f")
    return ibis.duckdb.from_connection(con), frame


def test_outputs_follow_the_approximate_reduction_through_projections():
    t = ibis.table({"g": "string", "x": "float64", "y": "float64"}, name="t")
    inner = t.group_by("g").aggregate(q=t.x.approx_quantile(0.99), m=t.x.mean(),
                                      d=t.g.approx_nunique())
    outer = inner.filter(inner.m > 0).select("g", p99=inner.q * 1000, mean=inner.m,
                                             both=inner.m + inner.d)
    assert approximate_outputs(outer, "duckdb") == (
        "p99: approx_quantile", "both: approx_count_distinct")
    assert approximate_outputs(outer, "spark") == (
        "p99: approx_percentile", "both: approx_count_distinct")
    # exact quantiles (DuckDB quantile_cont, Spark percentile) are not approximate
    exact = t.group_by("g").aggregate(q=quantiles_at(t.x, float_array([0.5])), n=t.count())
    assert approximate_outputs(exact) == ()
    assert approximate_outputs(t.y.approx_median()) == ("value (median of y): approx_quantile",)


def test_a_result_lists_the_approximate_outputs_of_its_recorded_sql():
    backend, frame = _backend()
    t = backend.table("t")
    record = Recorder()
    exact = record(t.group_by("g").aggregate(mean=t.x.mean()).order_by("g"))
    assert record.approximate == ()
    approx = record(t.group_by("g").aggregate(p50=t.x.approx_median(),
                                              n=t.count()).order_by("g"))
    result = DiagnosticResult(baseline=WINDOW, incident=WINDOW, sql=record.sql)
    assert result.approximate == ("p50 (median of x): approx_quantile",)
    assert record.approximate == result.approximate
    # the numbers: the exact mean is pandas', the t-digest median only near the true one
    expected = frame.groupby("g")["x"].mean().to_numpy()
    np.testing.assert_allclose(exact["mean"].to_numpy(), expected, rtol=1e-12)
    medians = frame.groupby("g")["x"].median().to_numpy()
    np.testing.assert_allclose(approx["p50"].to_numpy(), medians, rtol=0.1)
    # shown where a reader looks: the HTML fragment and the frame's attrs
    assert "approximate (engine primitive): p50 (median of x): approx_quantile" in result.to_html(
        figure=False)
    assert result.to_frame().attrs["approximate"] == ("p50 (median of x): approx_quantile",)


def test_a_result_of_exact_queries_lists_nothing_and_an_explicit_list_is_kept():
    backend, _ = _backend()
    t = backend.table("t")
    record = Recorder()
    record(t.aggregate(n=t.count()))
    assert DiagnosticResult(baseline=WINDOW, incident=WINDOW,
                            sql=record.sql).approximate == ()
    kept = DiagnosticResult(baseline=WINDOW, incident=WINDOW, sql=record.sql,
                            approximate=("x: by hand",))
    assert kept.approximate == ("x: by hand",)
    # rebuilt with more statements (dataclasses.replace), it lists their outputs too
    approx = Recorder()
    approx(t.aggregate(p=t.x.approx_quantile(0.9)))
    grown = dataclasses.replace(kept, sql=(*kept.sql, *approx.sql))
    assert grown.approximate == ("x: by hand", "p (p90 of x): approx_quantile")
    assert approximate_in(("SELECT 1",)) == ()


def test_internal_column_names_give_way_to_what_the_statistic_measures():
    """A reader of the postmortem's appendix never sees the queries' internal names
    (segments' ``_nd_0``, the feature profile's ``cd_country``): the record says what the
    column measures, and marks an internal column it cannot describe."""
    t = ibis.table({"country": "string", "latency_ms": "float64", "ts": "int64"}, name="t")
    renamed = t.select(_lat=t.latency_ms.cast("float64"), delay=t.ts * 2, country=t.country)
    expr = renamed.aggregate(
        _nd_0=renamed.country.approx_nunique(),                  # segments' form
        cd_country=renamed.country.cast("string").approx_nunique(),  # the profile's form
        q=renamed._lat.approx_quantile([0.5, 0.999]),           # timeouts' form: _lat followed
        delay_q=renamed.delay.approx_quantile(0.9),
        _twice=renamed._lat.approx_median() * 2,
        p99_ms=renamed._lat.approx_quantile(0.99).cast("float64"),
    ).order_by("q")
    assert approximate_outputs(expr) == (
        "distinct values of country: approx_count_distinct",
        "distinct values of country: approx_count_distinct",
        "q (p50, p99.9 of latency_ms): approx_quantile",
        "delay_q (p90 of delay): approx_quantile",
        "_twice (internal): approx_quantile",
        "p99_ms (p99 of latency_ms): approx_quantile",
    )
    # a computed argument is said to be one; the engine's function name stays after ': '
    computed = t.aggregate(d=(t.ts - 1).approx_quantile(0.5))
    assert approximate_outputs(computed, "spark") == (
        "d (p50 of a computed value): approx_percentile",)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from toolkit.simulate import ingest_case, make_case

    case = make_case("covariate_shift", seed=3, rows=2_000)
    con = ingest_case(case, tmp_path_factory.mktemp("approximate"))
    truth = case.truth()
    yield con, "/".join(truth["baseline"]), "/".join(truth["incident"])
    con.close()


def test_latency_declares_its_t_digest_percentiles(simulated):
    """infra.latency's percentiles are DuckDB approx_quantile: its result says so."""
    con, baseline, incident = simulated
    latency = importlib.import_module("toolkit.diagnose.infra.latency")
    result = latency.latency_profile(con, baseline, incident)
    assert result.approximate
    assert all(x.endswith(": approx_quantile") for x in result.approximate)


def test_postmortem_sql_appendix_names_the_approximate_statistics(simulated):
    from toolkit.report.postmortem import Postmortem

    con, baseline, incident = simulated
    pm = Postmortem.from_connection(con, incident=incident, baseline=baseline,
                                    incident_id="INC-APPROX")
    latency = pm.result.diagnosis.results["infra.latency"]
    appendix = html.unescape(pm.appendix_sql().fragment)
    assert latency.approximate
    line = f"approximate on duckdb: {', '.join(latency.approximate)})"
    assert f"infra.latency ({len(latency.sql)} queries; {line}" in appendix
    # no internal column name reaches the reader (segments' _nd_<i>, the profile's cd_<feature>)
    summaries = re.findall(r"<summary>(.*?)</summary>", pm.appendix_sql().fragment)
    assert any("distinct values of " in line for line in summaries)
    assert not [line for line in summaries if re.search(r"\b_nd_\d|\bcd_\w", line)]
    exact = [k for k, r in pm.result.diagnosis.results.items() if r.sql and not r.approximate]
    assert exact  # and those say nothing
    assert f"{exact[0]} ({len(pm.result.diagnosis.results[exact[0]].sql)} queries)" in appendix
