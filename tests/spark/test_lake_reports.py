"""Postmortems on a lake case (issue 26): ``render_postmortem(engine="spark", tables=...)`` and
``forensics postmortem --engine spark --tables ...``.

The options are checked before any notebook or JVM starts (usage errors, exit code 2); the
provenance appendix of a lake case lists where its tables live (it has no ``loads`` table); one
slow end-to-end test renders the same simulated case from DuckDB and from Parquet on Spark and
compares what the two reports say.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

import toolkit as tk
from tests.spark.conftest import simulated_lake
from toolkit.cli import main
from toolkit.errors import InvalidParameterError
from toolkit.report import render_postmortem
from toolkit.store.lake import connect_lake

pytestmark = pytest.mark.spark

#: Log content with HTML in it: the report must show it as text, never as markup.
HOSTILE = "<script>alert('x')</script> & <b>bold</b>"


# --- options, checked before anything starts ---------------------------------------------


@pytest.fixture
def notebooks(monkeypatch):
    """The notebooks the report would run, each as its name and parameters: a stand-in for
    ``render_template`` records them and stops the rendering (``RuntimeError('stop')``)."""
    started = []

    def fake(name, parameters, out, **kwargs):
        started.append({"name": name, "parameters": parameters})
        raise RuntimeError("stop")

    monkeypatch.setattr("toolkit.report.render_template", fake)
    return started


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"engine": "spark", "tables": ""}, "needs tables"),
    ({"engine": "spark", "tables": "requests=/x", "db": "/tmp/case.duckdb"},
     "reads tables, not db"),
    ({"engine": "duckdb", "tables": "requests=/x", "db": "/tmp/case.duckdb"},
     "tables goes with engine='spark'"),
    ({"engine": "trino", "tables": "requests=/x"}, "engine must be duckdb or spark"),
    ({"engine": "spark", "tables": "requets=/x"}, "'requets' is not a table of a case"),
    ({"engine": "spark", "tables": "requests"}, "is not TABLE=LOCATION"),
    ({"engine": "spark", "tables": {"requests": "/x\nimport os"}}, "control character"),
    ({"engine": "spark", "tables": "requests=/x,requests=/y"}, "given twice"),
])
def test_render_refuses_bad_sources_before_the_notebook_runs(tmp_path, notebooks, kwargs,
                                                             message):
    db = kwargs.pop("db", None)
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        render_postmortem(db, tmp_path / "out", **kwargs)
    assert notebooks == []


def test_render_passes_the_parsed_spec_to_the_notebook(tmp_path, notebooks):
    """The notebook gets the spec rebuilt from its validated pairs (spaces stripped), no db."""
    with pytest.raises(RuntimeError, match="stop"):
        render_postmortem(None, tmp_path / "out", engine="spark",
                          tables=" requests = delta:/lake/r , labels=db.labels",
                          incident_id="INC-1")
    [seen] = notebooks
    assert seen["name"] == "postmortem"
    params = seen["parameters"]
    assert params["engine"] == "spark" and params["db"] == ""
    assert params["tables"] == "requests=delta:/lake/r,labels=db.labels"
    assert params["incident_id"] == "INC-1"


@pytest.mark.parametrize("argv", [
    ["--engine", "spark", "--db", "case.duckdb", "--tables", "requests=/x"],
    ["--engine", "spark"],
    ["--tables", "requests=/x"],
    ["--engine", "spark", "--tables", "nope=/x"],
])
def test_cli_postmortem_usage_errors_exit_2(tmp_path, capsys, monkeypatch, notebooks, argv):
    monkeypatch.setenv("CI", "true")
    capsys.readouterr()
    code = main(["postmortem", "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1
    assert notebooks == []


# --- the same case on both engines -------------------------------------------------------


@pytest.fixture(scope="module")
def lake_case(tmp_path_factory):
    """A small simulated version-skew case (2,000 requests) in DuckDB, with one alert whose
    text holds HTML, and its case tables written as Parquet."""

    def alert(con, truth):
        incident = tk.Window.parse("/".join(truth["incident"]))
        con.execute("INSERT INTO events (ts, kind, artifact, version, host, detail) "
                    "VALUES (?, 'alert', 'infra', NULL, ?, ?)",
                    [incident.start + timedelta(minutes=5), HOSTILE,
                     json.dumps({"message": HOSTILE})])

    lake = simulated_lake(tmp_path_factory.mktemp("lake_reports"), "version_skew", seed=3,
                          rows=2000, edit=alert)
    return lake.db, lake.tables, lake.incident, lake.baseline


def test_provenance_lists_the_lake_locations(spark_session, lake_case):
    """A lake case has no loads table: the appendix names each table, format and location
    (escaped), and the drift panels say why they are not shown instead of failing."""
    from toolkit.diagnose._case import case_view
    from toolkit.report.postmortem import Postmortem

    _, tables, _, _ = lake_case
    case = case_view(connect_lake(tables, session=spark_session))
    pm = Postmortem(None, case, tables={**tables, "labels": "parquet:/lake/<x>&y"})
    html = pm.appendix_provenance().fragment
    for table in tables:
        assert f"<td>{table}</td>" in html
    assert tables["requests"] in html
    assert "/lake/&lt;x&gt;&amp;y" in html and "<x>" not in html
    assert "on spark" in html


def _verdict_text(html: str) -> str:
    match = re.search(r'class="verdict">(.*?)</div>', html, re.S)
    assert match, "no verdict block"
    return match.group(1)


_P99 = re.compile(r"p99 (\d[\d,.]*) ms -&gt; (\d[\d,.]*) ms")


def _same_verdict(spark: str, duck: str) -> None:
    """Every line of the verdict block is the same, but for the p99 latencies: those come
    from approximate quantiles (DuckDB's t-digest ``approx_quantile``, Spark's own), which
    differ by a few per cent between engines (README, Running on Spark); within 10% here."""
    assert _P99.sub("p99", spark) == _P99.sub("p99", duck)
    got, expected = _P99.search(spark), _P99.search(duck)
    assert (got is None) == (expected is None)
    if got is not None:
        for a, b in zip(got.groups(), expected.groups(), strict=True):
            assert float(a.replace(",", "")) == pytest.approx(float(b.replace(",", "")),
                                                              rel=0.10)


@pytest.mark.slow
def test_postmortem_on_spark_says_what_the_duckdb_postmortem_says(spark_session, lake_case,
                                                                    tmp_path, monkeypatch):
    """The papermill notebook on the Parquet tables (its kernel starts its own Spark) names
    the DuckDB report's verdict, failure mode and onset, lists the lake's tables as
    provenance, and shows the alert's HTML as text."""
    db, tables, incident, baseline = lake_case
    duck = render_postmortem(db, tmp_path / "duckdb", incident=incident, baseline=baseline,
                             incident_id="INC-7")
    spec = ",".join(f"{table}={path}" for table, path in tables.items())
    monkeypatch.setenv("CI", "true")
    code = main(["postmortem", "--engine", "spark", "--tables", spec, "--incident", incident,
                 "--baseline", baseline, "--id", "INC-7", "--out", str(tmp_path / "spark")])
    assert code == 0
    spark_html = (tmp_path / "spark" / "postmortem.html").read_text()
    duck_html = duck.html.read_text()
    expected = json.loads(duck.results.read_text())["classification"]
    got = json.loads((tmp_path / "spark" / "results.json").read_text())["classification"]
    assert (got["pathway"], got["failure_mode"]) == ("integration", "version_skew")
    for key in ("pathway", "failure_mode", "onset", "incident", "baseline"):
        assert got[key] == expected[key], key
    _same_verdict(_verdict_text(spark_html), _verdict_text(duck_html))
    assert "integration / version_skew" in _verdict_text(spark_html)
    assert expected["onset"][:16].replace("T", " ") in spark_html
    assert "Tables read in place on spark" in spark_html
    assert tables["requests"] in spark_html
    assert "<script>alert" not in spark_html
    assert "&lt;script&gt;alert" in spark_html


# --- the weekly report -------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"engine": "spark", "tables": "requests=/x", "db": "/tmp/case.duckdb"},
     "reads tables, not db"),
    ({"engine": "spark", "tables": ""}, "needs tables"),
    ({"engine": "spark", "tables": "requests=/x", "week": "2026-47"}, "ISO week"),
])
def test_render_weekly_refuses_bad_sources_before_the_notebook_runs(tmp_path, notebooks,
                                                                    kwargs, message):
    db = kwargs.pop("db", None)
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        tk.render_weekly(db, tmp_path / "out", week=kwargs.pop("week", "2026-W07"), **kwargs)
    assert notebooks == []


def test_render_weekly_passes_the_lake_to_the_notebook(tmp_path, notebooks):
    with pytest.raises(RuntimeError, match="stop"):
        tk.render_weekly(None, tmp_path / "out", week="2026-W07", engine="spark",
                         tables="requests=/lake/r")
    assert notebooks == [{"name": "weekly_report",
                          "parameters": {"db": "", "engine": "spark",
                                         "tables": "requests=/lake/r", "week": "2026-W07"}}]


def test_cli_weekly_usage_errors_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")
    capsys.readouterr()
    code = main(["report", "weekly", "--week", "2026-W07", "--out", str(tmp_path / "o"),
                 "--engine", "spark", "--db", str(tmp_path / "case.duckdb")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--engine spark reads --tables, not --db" in err[0]


def test_week_check_runs_on_the_lake_engine(spark_session, lake_case):
    """check_week_has_data lists the tables through the engine (no duckdb_tables() on
    Spark): the incident's week has rows on both engines, a week of 2020 has none."""
    from toolkit.errors import EmptyWindowError
    from toolkit.report.weekly import check_week_has_data

    db, tables, incident, _ = lake_case
    start = tk.Window.parse(incident).start
    year, number, _ = start.isocalendar()
    week = f"{year}-W{number:02d}"
    lake = connect_lake(tables, session=spark_session)
    with tk.connect(db, read_only=True) as con:
        for source in (con, lake):
            check_week_has_data(source, tk.Window.parse(week), week, "case")
            with pytest.raises(EmptyWindowError, match="2020-W02"):
                check_week_has_data(source, tk.Window.parse("2020-W02"), "2020-W02", "case")
    only_metrics = connect_lake({"metrics": tables["metrics"]}, session=spark_session)
    check_week_has_data(only_metrics, tk.Window.parse(week), week, "case")


@pytest.mark.slow
def test_weekly_on_spark_reports_what_the_duckdb_weekly_reports(spark_session, lake_case,
                                                                 tmp_path):
    """The weekly notebook on the Parquet tables finds the DuckDB report's incident and
    drifted features, SLO verdict and trend over the last weeks."""
    db, tables, incident, _ = lake_case
    year, number, _ = tk.Window.parse(incident).start.isocalendar()
    week = f"{year}-W{number:02d}"
    duck = tk.render_weekly(db, tmp_path / "duckdb", week=week)
    spark = tk.render_weekly(None, tmp_path / "spark", week=week, engine="spark",
                             tables=",".join(f"{t}={p}" for t, p in tables.items()))
    expected = json.loads(duck.results.read_text())
    got = json.loads(spark.results.read_text())
    assert got["incidents"] and got["incidents"] == expected["incidents"]
    assert got["incidents"][0]["failure_mode"] == "version_skew"
    assert got["drifted_features"] == expected["drifted_features"]
    assert got["slo_met"] == expected["slo_met"]
    html = spark.html.read_text()
    assert "trend over the last weeks" in html and "No trend" not in html
    assert "<script>alert" not in html
