"""Simulated cases written as serving platforms export them: loaded by content, they give the
generic form's rows for what the platform carries, and classify as the generic form does."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.classify import classify_incident
from toolkit.errors import InvalidParameterError
from toolkit.simulate import make_case, write_case
from toolkit.simulate.platforms import FORMATS, kubernetes, vertex, write_platform_case
from toolkit.store.schema import quote_ident

ROWS = 10_000
#: format -> (mode, seed): a failure mode whose evidence lives in that platform's export.
CASES = {
    "sagemaker": ("covariate_shift", 0),
    "kserve": ("bad_release", 1),
    "prometheus": ("memory_leak", 1),
    "kubernetes": ("cold_start", 1),
    "otlp": ("timeout_misconfiguration", 0),
    "vertex": ("covariate_shift", 2),
}
MIB = 1024.0 * 1024.0


def load(out: Path, platform: str | None = None):
    """A case connection with ``out`` loaded (no format given: recognised by content)."""
    con = tk.connect()
    report = tk.load(con, out)
    assert report.rows_rejected == 0
    assert [f.source for f in report.files if f.status == "skipped"] == [str(out / "truth.json")]
    if platform is not None:
        assert platform in {f.format for f in report.files}
    return con, report


def frame(con, sql: str) -> pd.DataFrame:
    return con.execute(sql).df()


def feature_names(con) -> list[str]:
    return [n for (n,) in con.execute("SELECT name FROM features ORDER BY position").fetchall()]


def same(a: pd.Series, b: pd.Series) -> None:
    """Exactly equal values, NULLs in the same rows."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert (a.isna() == b.isna()).all(), a.name
    assert (a[a.notna()] == b[a.notna()]).all(), a.name


def close(a: pd.Series, b: pd.Series, atol: float) -> None:
    a, b = a.reset_index(drop=True).astype(float), b.reset_index(drop=True).astype(float)
    assert np.allclose(a, b, atol=atol, rtol=0.0, equal_nan=True), a.name


def by_format(tmp_path_factory, fmt: str, mode: str | None = None, seed: int | None = None):
    """The case of ``fmt`` loaded in its generic form and in the platform's."""
    mode, seed = (mode, seed) if mode else CASES[fmt]
    case = make_case(mode, seed=seed, rows=ROWS)
    generic = write_case(case, tmp_path_factory.mktemp(f"{fmt}-generic") / "case")
    platform = write_case(case, tmp_path_factory.mktemp(fmt) / "case", format=fmt)
    return case, load(generic)[0], *load(platform, fmt)


def classifies_the_same(case, generic, platform) -> None:
    verdicts = [classify_incident(con, incident=case.incident, baseline=case.baseline)
                for con in (generic, platform)]
    truth = (case.pathway, case.failure_mode)
    assert [(v.pathway, v.failure_mode) for v in verdicts] == [truth, truth]


# ---------------------------------------------------------------------------- per format


def test_sagemaker_capture_and_ground_truth(tmp_path_factory):
    case, g, p, report = by_format(tmp_path_factory, "sagemaker")
    captured = [Path(f.source) for f in report.files if f.table == "requests"]
    assert {f.format for f in report.files if f.table in ("requests", "labels")} == \
        {"sagemaker"}
    layout = re.compile(rf"/datacapture/{case.plan.platform.service}/AllTraffic/(\d{{4}})/"
                        r"(\d\d)/(\d\d)/(\d\d)/(\d\d)-(\d\d)-(\d{3})-[0-9a-f-]{36}\.jsonl$")
    for path in captured[:50]:
        match = layout.search(path.as_posix())
        assert match, path
        first = json.loads(path.read_text().split("\n", 1)[0])
        when = first["eventMetadata"]["inferenceTime"]
        assert when[:13].replace("-", "/").replace("T", "/") == "/".join(match.groups()[:4])
        assert when[14:19].replace(":", "-") == f"{match[5]}-{match[6]}"

    features = feature_names(g)
    cols = ", ".join(quote_ident(f) for f in features)
    gen = frame(g, f"SELECT request_id, date_trunc('second', ts) AS ts, prediction, score, "
                   f"{cols} FROM requests ORDER BY request_id")
    got = frame(p, f"SELECT request_id, ts, prediction, score, {cols}, endpoint, model_name "
                   "FROM requests ORDER BY request_id")
    assert len(got) == len(gen) == ROWS
    for column in ["request_id", "ts", "prediction", *features]:
        same(gen[column], got[column])
    close(gen["score"], got["score"], 1e-9)  # 1 - (1 - score) for a "0"
    assert set(got["endpoint"]) == {case.plan.platform.service}
    assert set(got["model_name"]) == {"AllTraffic"}
    assert p.execute("SELECT count(latency_ms) + count(host) + count(model_version) + "
                     "count(status) FROM requests").fetchall() == [(0,)]

    gen = frame(g, "SELECT request_id, label, labeled_at FROM labels ORDER BY request_id")
    got = frame(p, "SELECT request_id, label, labeled_at FROM labels ORDER BY request_id")
    same(gen["request_id"], got["request_id"])
    same(gen["label"], got["label"])
    same(gen["labeled_at"].dt.floor("D") + pd.Timedelta(days=1), got["labeled_at"])
    classifies_the_same(case, g, p)


def test_kserve_event_display(tmp_path_factory):
    case, g, p, report = by_format(tmp_path_factory, "kserve")
    assert {f.format for f in report.files if f.table == "requests"} == {"kserve"}
    features = feature_names(g)
    cols = ", ".join(quote_ident(f) for f in features)
    common = f"request_id, ts, latency_ms, prediction, score, {cols}"
    # a client-side timeout is an answer to the server; an error response names no model
    gen = frame(g, f"SELECT {common}, CASE WHEN status = 'error' THEN 'error' ELSE 'ok' END "
                   f"AS status, CASE WHEN status = 'error' THEN '{case.plan.platform.service}' "
                   "ELSE model_name END AS model_name, CASE WHEN status <> 'error' THEN "
                   "model_version END AS model_version FROM requests ORDER BY request_id")
    got = frame(p, f"SELECT {common}, status, model_name, model_version, endpoint FROM requests "
                   "ORDER BY request_id")
    assert len(got) == len(gen) == ROWS
    for column in ["request_id", "ts", "latency_ms", "model_name", "model_version",
                   "prediction", "score", "status", *features]:
        same(gen[column], got[column])
    assert set(got["endpoint"]) == {case.plan.platform.service}
    classifies_the_same(case, g, p)


def test_prometheus_query_range(tmp_path_factory):
    case, g, p, report = by_format(tmp_path_factory, "prometheus")
    assert {f.format for f in report.files if f.table == "metrics"} == {"prometheus"}
    names = [n for (n,) in g.execute("SELECT DISTINCT name FROM metrics ORDER BY 1").fetchall()]
    listed = ", ".join(f"'{n}'" for n in names)
    sql = (f"SELECT name, host, ts, value FROM metrics WHERE name IN ({listed}) "
           "ORDER BY name, host NULLS FIRST, ts")
    gen, got = frame(g, sql), frame(p, sql)
    assert len(got) == len(gen)
    for column in ("name", "host", "ts"):
        same(gen[column], got[column])
    exact = ~gen["name"].isin(["gpu_memory_used_bytes", "gpu_utilization"])
    same(gen["value"][exact], got["value"][exact])
    mib = gen["name"] == "gpu_memory_used_bytes"  # DCGM reports whole MiB (half rounds up)
    close(np.floor(gen["value"][mib] / MIB + 0.5) * MIB, got["value"][mib], 0.0)
    util = gen["name"] == "gpu_utilization"  # and whole percent
    close(np.floor(gen["value"][util] * 100 + 0.5) / 100, got["value"][util], 1e-9)
    host = p.execute("SELECT count(*) FROM metrics WHERE name = 'memory_used_bytes' AND "
                     "labels->>'pod' = host").fetchall()[0][0]
    assert host == (gen["name"] == "memory_used_bytes").sum()
    classifies_the_same(case, g, p)


def _k8s_rows(con, kinds: str) -> pd.DataFrame:
    return frame(con, "SELECT date_trunc('second', ts) AS ts, kind, host, "
                      "detail->>'direction' AS direction FROM events "
                      f"WHERE kind IN ({kinds}) ORDER BY ts, kind, host")


@pytest.mark.parametrize("mode,seed,classify", [("memory_exhaustion", 1, False),
                                                 (*CASES["kubernetes"], True)])
def test_kubernetes_events_and_pods(tmp_path_factory, mode, seed, classify):
    """OOM kills (pods) in one case, replicas scaled up and down (events) in the other; the
    second is classified (replica starts come from the pods the events name)."""
    case, g, p, report = by_format(tmp_path_factory, "kubernetes", mode, seed)
    assert {f.format for f in report.files if f.table == "events"} == {"kubernetes", "jsonl"}
    kinds = "'oom_kill', 'restart', 'scale'"
    gen, got = _k8s_rows(g, kinds), _k8s_rows(p, kinds)
    assert len(got) == len(gen) > 0
    expected = {"oom_kill", "restart"} if mode == "memory_exhaustion" else {"scale"}
    assert expected <= set(got["kind"])
    for column in ("ts", "kind", "host", "direction"):
        same(gen[column], got[column])
    deploys = "SELECT date_trunc('second', ts), version FROM events WHERE kind = 'deploy' " \
              "AND artifact = 'service' ORDER BY ts"
    got = p.execute(deploys).fetchall()
    first = got.pop(0)  # the image the pods ran when the logs begin
    assert first[0] < case.start and first[1] == case.plan.platform.service_version
    assert got == g.execute(deploys).fetchall()
    rest = "SELECT ts, kind, artifact, version, host, detail FROM events WHERE NOT (kind IN " \
           f"({kinds}) OR (kind = 'deploy' AND artifact = 'service')) ORDER BY ALL"
    assert p.execute(rest).fetchall() == g.execute(rest).fetchall()
    k8s, generic = kubernetes.split_events(case.events())
    assert len(k8s) + len(generic) == len(case.events())
    if classify:
        classifies_the_same(case, g, p)


def test_otlp_traces(tmp_path_factory):
    case, g, p, report = by_format(tmp_path_factory, "otlp")
    assert {f.format for f in report.files if f.table == "requests"} == {"otlp"}
    # every canonical column but endpoint, features and in_flight (NULL in both when the
    # platform of the case has no such column)
    columns = ["request_id", "ts", "latency_ms", "status", "http_status", "error_type", "host",
               "model_name", "model_version", "pipeline_version", "client_version", "cache_hit",
               "cache_model_version", "prediction", "score"]
    sql = f"SELECT {', '.join(columns)} FROM requests ORDER BY request_id"
    gen, got = frame(g, sql), frame(p, sql)
    assert len(got) == len(gen) == ROWS
    for column in columns:
        same(gen[column], got[column])
    optional = case.truth()["platform"]["optional_columns"]
    assert {"cache", "client_version"} <= set(optional)  # the case exercises them
    assert got["cache_model_version"].notna().any() and got["client_version"].notna().all()
    assert p.execute("SELECT DISTINCT endpoint FROM requests").fetchall() == \
        [(case.plan.platform.service,)]
    classifies_the_same(case, g, p)


def test_vertex_request_response_logging(tmp_path_factory):
    case, g, p, report = by_format(tmp_path_factory, "vertex")
    assert {f.format for f in report.files if f.table == "requests"} == {"vertex"}
    features = feature_names(g)
    cols = ", ".join(quote_ident(f) for f in features)
    gen = frame(g, f"SELECT request_id, ts, endpoint, model_version, prediction, score, {cols} "
                   "FROM requests WHERE status <> 'error' ORDER BY request_id")
    got = frame(p, f"SELECT request_id, ts, endpoint, model_version, prediction, score, {cols} "
                   "FROM requests ORDER BY request_id")
    assert len(got) == len(gen) > ROWS * 0.99  # the unanswered requests are not logged
    gen["request_id"] = vertex.request_ids(case, gen["request_id"].tolist()).to_pylist()
    gen["model_version"] = [vertex.deployed_model_id(case, v) for v in gen["model_version"]]
    gen["endpoint"] = [vertex.endpoint_resource(case, e) for e in gen["endpoint"]]
    for column in ["request_id", "ts", "endpoint", "model_version", "prediction", "score",
                   *features]:
        same(gen[column], got[column])
    labels = "SELECT request_id, label, labeled_at FROM labels ORDER BY request_id"
    gen, got = frame(g, labels), frame(p, labels)
    gen["request_id"] = vertex.request_ids(case, gen["request_id"].tolist()).to_pylist()
    for column in ("request_id", "label", "labeled_at"):
        same(gen[column], got[column])
    classifies_the_same(case, g, p)


# ---------------------------------------------------------------------------- the writer


def _digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_case_same_files(tmp_path, fmt):
    case = make_case("memory_leak", seed=3, rows=2_000)
    first = write_platform_case(case, tmp_path / "a", fmt)
    second = write_case(case, tmp_path / "b", format=fmt)
    assert _digest(first) == _digest(second)
    assert json.loads((first / "truth.json").read_text()) == case.truth()


def test_refusals(tmp_path):
    case = make_case("none", seed=1, rows=1_000)
    with pytest.raises(InvalidParameterError, match="Unknown format 'mlflow'"):
        write_case(case, tmp_path / "x", format="mlflow")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(InvalidParameterError, match="not an empty folder"):
        write_platform_case(case, tmp_path / "full", "otlp")
    out = write_platform_case(case, tmp_path / "generic", "generic")
    assert (out / "requests" / "part-00000.parquet").exists()


def test_cli_format(tmp_path):
    from typer.testing import CliRunner

    from toolkit.cli import (
        app,
        commands,  # noqa: F401
    )

    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--mode", "timeout_misconfiguration", "--rows",
                                 "1000", "--format", "otlp", "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "as otlp" in result.output
    assert sorted(p.name for p in (tmp_path / "c" / "otlp").iterdir()) == ["traces-00000.jsonl"]
    con, report = load(tmp_path / "c", "otlp")
    assert con.execute("SELECT count(*) FROM requests").fetchall() == [(1000,)]
    bad = runner.invoke(app, ["simulate", "--mode", "none", "--format", "csv", "--out",
                              str(tmp_path / "d")])
    assert bad.exit_code == 2 and "Unknown format 'csv'" in bad.output
