"""Postmortem and weekly report rendered for real: papermill execution, nbconvert HTML."""

from __future__ import annotations

import json
import os
import re
import shutil

import pandas as pd
import pytest

import toolkit as tk
from tests.report.conftest import ingested_case
from toolkit.classify import classify_incident

pytestmark = pytest.mark.slow
PAYLOAD = '<script>alert("xss-planted")</script>'

POSTMORTEM_SECTIONS = ["Summary", "Impact", "Timeline (UTC)", "Detection", "Classification",
                       "Root cause and trigger", "ML diagnostics", "Action items",
                       "Lessons learned", "Appendix: the SQL that was run"]


@pytest.fixture(scope="module")
def clean_case(tmp_path_factory):
    return ingested_case(tmp_path_factory.mktemp("case"), "version_skew", seed=21, rows=12_000)


@pytest.fixture(scope="module")
def case(clean_case, tmp_path_factory):
    source, truth = clean_case
    db = tmp_path_factory.mktemp("planted") / "case.duckdb"
    shutil.copy(source, db)
    con = tk.connect(db)
    # log content is untrusted: plant markup in an error type and in a categorical feature
    onset = pd.Timestamp(truth["onset"])
    planted = pd.DataFrame({
        "request_id": [f"planted-{i}" for i in range(40)],
        "ts": [onset + pd.Timedelta(minutes=5 + i) for i in range(40)],
        "status": "error", "error_type": PAYLOAD, "latency_ms": 50.0,
        "country": PAYLOAD, "model_version": "x", "host": "pod-0",
    })
    report = tk.load(con, planted, table="requests")
    assert report.rows_rejected == 0
    con.close()
    return db, truth


def test_postmortem_renders_every_section_and_results(case, tmp_path):
    db, truth = case
    window = "/".join(truth["incident"])
    baseline = "/".join(truth["baseline"])
    rendered = tk.render_postmortem(db, tmp_path / "pm", incident=window, baseline=baseline,
                                    incident_id="INC-TEST")
    html = rendered.html.read_text()
    notebook = json.loads(rendered.notebook.read_text())
    errors = [o for c in notebook["cells"] if c["cell_type"] == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    for section in POSTMORTEM_SECTIONS:
        assert f">{section}<" in html or f">{section}<a" in html or section in html, section
    figures = re.findall(r"<img [^>]*forensics-figure", html)
    assert len(figures) >= 10
    # code is hidden by default
    assert "Postmortem.open" not in html
    results = json.loads(rendered.results.read_text())
    con = tk.connect(db, read_only=True)
    expected = classify_incident(con, incident=window, baseline=baseline).to_dict()
    con.close()
    assert results["classification"] == json.loads(json.dumps(expected, default=str))
    assert results["classification"]["failure_mode"] == "version_skew"


def test_log_content_stays_inert_text(case, tmp_path):
    db, truth = case
    rendered = tk.render_postmortem(db, tmp_path / "pm", incident="/".join(truth["incident"]),
                                    baseline="/".join(truth["baseline"]))
    html = rendered.html.read_text()
    assert PAYLOAD not in html
    assert 'alert("xss-planted")</script>' not in html
    assert "<script>alert(" not in html
    # it was rendered, as text (pandas leaves quotes as they are; our helpers escape them too)
    assert re.search(r"&lt;script&gt;alert\((&quot;|\")xss-planted", html)


def test_weekly_report(clean_case, tmp_path):
    db, truth = clean_case
    week = pd.Timestamp(truth["onset"]).strftime("%G-W%V")
    rendered = tk.render_weekly(db, tmp_path / "weekly", week=week)
    html = rendered.html.read_text()
    for section in ("Infrastructure SLOs", "Model-quality SLOs", "Drift per feature",
                    "Incidents detected", "Week over week"):
        assert section in html
    # the infrastructure panel comes first, the model-quality one after it, apart
    assert html.index("Infrastructure SLOs") < html.index("Model-quality SLOs")
    results = json.loads(rendered.results.read_text())
    assert results["week"] == week
    assert {s["SLO"] for s in results["slo"]} >= {"latency p99", "accuracy"}
    panels = {s["SLO"]: s["panel"] for s in results["slo"]}
    assert panels["latency p99"] == "infrastructure" and panels["accuracy"] == "model quality"
    estimate = results["estimation"]  # the label-free estimate, or why there is none
    assert estimate["status"] in ("estimated", "not assessed")
    assert (estimate["reason"] is None) == (estimate["status"] == "estimated")
    assert (estimate["band"] is None) == (estimate["status"] != "estimated")
    accuracy = next(s for s in results["slo"] if s["SLO"] == "accuracy")
    assert accuracy["met"] is False  # the rollback ruined accuracy this week
    assert results["incidents"] and results["incidents"][0]["pathway"] == "integration"


def test_bad_parameters_fail_before_papermill(case, tmp_path):
    db, _ = case
    with pytest.raises(tk.errors.InvalidParameterError, match="No case database"):
        tk.render_postmortem(tmp_path / "missing.duckdb", tmp_path / "x")
    with pytest.raises(tk.errors.InvalidParameterError):
        tk.render_postmortem(db, tmp_path / "x", incident="yesterday")
    with pytest.raises(tk.errors.InvalidParameterError):
        tk.render_weekly(db, tmp_path / "x", week="last week")


@pytest.mark.skipif(os.name != "posix", reason="ZeroMQ has no ipc transport on Windows")
def test_kernel_talks_over_private_unix_sockets(tmp_path):
    import nbformat

    from toolkit.report.notebook import KERNEL_NAME, execute

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "import json, os, stat\n"
        "from ipykernel.connect import get_connection_info\n"
        "info = get_connection_info(unpack=True)\n"
        "folder = os.path.dirname(os.path.abspath(info['ip']))\n"
        "print(json.dumps({'transport': info['transport'], 'folder': folder,\n"
        "                  'mode': stat.S_IMODE(os.stat(folder).st_mode)}))")]
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)
    execute(source, executed, {}, timeout=120, cwd=tmp_path)
    output = nbformat.read(executed, as_version=4).cells[0].outputs[0]["text"]
    seen = json.loads(output)
    assert seen["transport"] == "ipc"
    assert seen["mode"] & 0o077 == 0  # the sockets' folder is the user's alone
    assert not any(p.name.startswith("kernel") for p in tmp_path.iterdir())


def test_kernel_falls_back_to_tcp_where_sockets_cannot_live(monkeypatch, tmp_path):
    from toolkit.report import notebook

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / ("r" * 80)))
    assert not notebook._ipc_possible()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/tmp/jupyter-runtime")
    assert notebook._ipc_possible() == (os.name == "posix")


@pytest.mark.parametrize("week", ["2026-W47/../../x", "2026-W47\n", "../2026-W47", "2026-W4",
                                  "2026-W47/2026-W48"])
def test_render_weekly_accepts_only_a_whole_iso_week(tmp_path, week):
    """The week names output files: anything but YYYY-Www is refused before a path is built."""
    import toolkit as tk
    from toolkit.errors import InvalidParameterError

    db = tmp_path / "case.duckdb"
    tk.connect(db).close()
    with pytest.raises(InvalidParameterError, match="ISO week"):
        tk.render_weekly(db, tmp_path / "out", week=week)
    assert not (tmp_path / "out").exists()
