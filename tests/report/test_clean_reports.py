"""What reaches a reader: no warning, stderr or traceback; no raw value; readable figures.

One small simulated memory-exhaustion case (GPU memory, 160 OOM kills in bursts) is rendered
once per report with papermill (module-scoped); partial copies of it (no events, no labels, no
metrics, requests only) run every postmortem section in-process with warnings as errors.
"""

from __future__ import annotations

import ast
import html as htmllib
import json
import re
import shutil
import warnings
from importlib import resources

import duckdb
import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from tests.report.conftest import ingested_case

pytestmark = pytest.mark.slow

#: Text that must never be visible in a report (outside the SQL appendix).
RAW = [r"\bnan%", r"\bnan\b", r"\bNaN\b", r"\bNone\b", r"\bNaT\b", r"(?<!=)\bTrue\b",
       r"(?<!=)\bFalse\b",
       r"-0\.00\b", r"(?<![\d.+-])\d+\.0(?![\d.])(?! ms| points|%)", r"Result\(", r"<NA>"]
WARNING_TEXT = ["Warning:", "Traceback", "warnings.warn", "site-packages", ".py:"]
PARTIAL = {"no_events": ["events"], "no_labels": ["labels"], "no_metrics": ["metrics"],
           "requests_only": ["events", "labels", "metrics", "lineage", "reference"],
           "metrics_only": ["requests", "labels", "lineage", "reference", "events"]}


@pytest.fixture(scope="module")
def full_case(tmp_path_factory):
    return ingested_case(tmp_path_factory.mktemp("memcase"), "memory_exhaustion", seed=4, rows=8_000)


@pytest.fixture(scope="module")
def postmortem(full_case, tmp_path_factory):
    db, _ = full_case
    return tk.render_postmortem(db, tmp_path_factory.mktemp("pm"), incident_id="INC-MEM")


@pytest.fixture(scope="module")
def weekly(full_case, tmp_path_factory):
    db, truth = full_case
    week = pd.Timestamp(truth["onset"]).strftime("%G-W%V")
    return tk.render_weekly(db, tmp_path_factory.mktemp("weekly"), week=week)


@pytest.fixture(scope="module")
def opened(full_case):
    db, _ = full_case
    return tk.report.Postmortem.open(db, incident_id="INC-MEM")


def _outputs(notebook_path):
    notebook = json.loads(notebook_path.read_text())
    return [o for c in notebook["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", [])]


def _visible_text(page: str) -> str:
    """The text a reader sees: tags, styles, scripts, images and the SQL appendix removed."""
    page = re.sub(r"<(style|script|pre)\b.*?</\1>", " ", page, flags=re.S | re.I)
    page = re.sub(r"<img [^>]*>", " ", page)
    page = re.sub(r"<[^>]+>", " ", page)
    return htmllib.unescape(page)


def _assert_clean(rendered):
    outputs = _outputs(rendered.notebook)
    stderr = [o for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert stderr == [], "".join(o["text"] if isinstance(o["text"], str) else "".join(o["text"])
                                 for o in stderr)[:2000]
    assert [o for o in outputs if o.get("output_type") == "error"] == []
    page = rendered.html.read_text()
    text = _visible_text(page)
    for marker in WARNING_TEXT:
        assert marker not in text, marker
    for pattern in RAW:
        found = re.findall(rf".{{0,60}}{pattern}.{{0,60}}", text)
        assert not found, (pattern, found[:3])


def test_postmortem_has_no_warning_stderr_or_raw_value(postmortem):
    _assert_clean(postmortem)


def test_weekly_report_has_no_warning_stderr_or_raw_value(weekly):
    _assert_clean(weekly)


def test_stderr_never_reaches_the_html(tmp_path):
    """Even if a library prints to stderr, the reader's HTML does not show it (it goes to a
    log next to the notebook)."""
    import nbformat

    from toolkit.report.notebook import _divert_stderr, export_html

    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="FutureWarning: x\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="kept\n")]
    notebook.cells = [cell]
    log = tmp_path / "report.stderr.txt"
    _divert_stderr(notebook, log)
    page = export_html(notebook)
    assert "FutureWarning" not in page and "kept" in page
    assert log.read_text() == "FutureWarning: x\n"


# ---------------------------------------------------------------- partial cases (issue 20.3)
def _run_template_in_process(name, parameters, cwd, monkeypatch):
    """Execute a template's cells here, with every warning an error; return the HTML parts."""
    import jupytext

    monkeypatch.chdir(cwd)
    text = (resources.files("toolkit.report.templates") / f"{name}.py").read_text()
    notebook = jupytext.reads(text, fmt="py:percent")
    namespace: dict = {}
    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            if "parameters" in cell.metadata.get("tags", []):
                exec(cell.source, namespace)  # noqa: S102 - the packaged template
                namespace.update(parameters)
                continue
            tree = ast.parse(cell.source)
            body, last = tree.body[:-1], tree.body[-1] if tree.body else None
            if isinstance(last, ast.Expr):
                exec(compile(ast.Module(body, []), name, "exec"), namespace)  # noqa: S102
                value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)  # noqa: S307
                if hasattr(value, "_repr_html_"):
                    parts.append(value._repr_html_())
            else:
                exec(cell.source, namespace)  # noqa: S102
    return "".join(parts)


@pytest.fixture(scope="module")
def partial_cases(full_case, tmp_path_factory):
    db, _ = full_case
    folder = tmp_path_factory.mktemp("partial")
    out = {}
    for name, emptied in PARTIAL.items():
        copy = folder / f"{name}.duckdb"
        shutil.copy(db, copy)
        con = duckdb.connect(str(copy))
        for table in emptied:
            con.execute(f'DELETE FROM "{table}"')
        con.close()
        out[name] = copy
    return out


@pytest.mark.parametrize("variant", list(PARTIAL))
def test_postmortem_renders_on_partial_cases(variant, partial_cases, tmp_path, monkeypatch):
    page = _run_template_in_process("postmortem", {
        "db": str(partial_cases[variant]), "incident": "", "baseline": "",
        "incident_id": variant, "title": ""}, tmp_path, monkeypatch)
    assert "Impact" in page or "impact" in page
    assert page.count("<img") >= 3
    assert (tmp_path / "results.json").exists()
    text = _visible_text(page)
    for pattern in RAW:
        assert not re.findall(pattern, text), (
            variant, re.findall(rf".{{0,80}}{pattern}.{{0,40}}", text)[:3])


@pytest.mark.parametrize("variant", ["no_events", "requests_only", "metrics_only"])
def test_weekly_renders_on_partial_cases(variant, partial_cases, full_case, tmp_path,
                                         monkeypatch):
    _, truth = full_case
    week = pd.Timestamp(truth["onset"]).strftime("%G-W%V")
    page = _run_template_in_process("weekly_report", {
        "db": str(partial_cases[variant]), "week": week}, tmp_path, monkeypatch)
    assert "SLO" in page
    assert json.loads((tmp_path / "results.json").read_text())["week"] == week


def test_no_events_case_renders_through_papermill(partial_cases, tmp_path):
    """Regression (issue 20.3): the timeline's event lane called set_yticks with no events
    and matplotlib raised, so `forensics postmortem` failed on every case without events."""
    rendered = tk.render_postmortem(partial_cases["no_events"], tmp_path / "pm")
    assert json.loads(rendered.results.read_text())["classification"]["failure_mode"]
    _assert_clean(rendered)


# ---------------------------------------------------------------- events, timeline (21.2)
def test_timeline_table_lists_bursts_near_the_onset_and_counts_the_rest(opened):
    events = opened.case.events
    kills = int((events["kind"] == "oom_kill").sum())
    assert kills >= 100
    page = opened.timeline().fragment
    text = _visible_text(page)
    listed = re.findall(r"oom_kill infra(?: x([\d,]+))?", text)
    shown = sum(int(n.replace(",", "")) if n else 1 for n in listed)
    more = re.search(r"([\d,]+) more events in ([\d,]+) bursts not listed", text)
    rest = int(more.group(1).replace(",", "")) if more else 0
    assert 0 < len(listed) < 30  # bursts, not one row per kill
    kinds = events[events["ts"] >= pd.Timestamp(opened.result.baseline.end) -
                   pd.Timedelta(hours=24)]
    in_view = int(((kinds["kind"] == "oom_kill") & (kinds["ts"] <= pd.Timestamp(
        opened.result.incident.end))).sum())
    other = int((~kinds["kind"].isin(["oom_kill"]) & (kinds["ts"] <= pd.Timestamp(
        opened.result.incident.end))).sum())
    assert shown + rest >= in_view and shown + rest <= in_view + other
    assert "more rows not shown" not in text
    # the largest burst is listed
    from toolkit.report.events import bursts
    from toolkit.report.figures import burst_gap

    window = kinds[kinds["ts"] <= pd.Timestamp(opened.result.incident.end)]
    marks = bursts(window, burst_gap(pd.Timestamp(opened.result.incident.end) -
                                     pd.Timestamp(opened.result.baseline.end) +
                                     pd.Timedelta(hours=24)))
    biggest = int(marks["count"].max())
    assert f"x{biggest:,}" in text


def test_bursts_merge_runs_of_one_kind_by_hand():
    from toolkit.report.events import bursts, select_bursts

    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    ev = pd.DataFrame({
        "ts": [t0, t0 + pd.Timedelta("30s"), t0 + pd.Timedelta("50s"), t0 + pd.Timedelta("1h"),
               t0 + pd.Timedelta("1h"), t0 + pd.Timedelta("5h")],
        "kind": ["oom_kill", "oom_kill", "oom_kill", "oom_kill", "deploy", "oom_kill"],
        "artifact": ["infra", "infra", "infra", "infra", "model", "infra"],
        "version": [None, None, None, None, "2.0", None],
        "host": ["a", "b", "a", "a", None, "c"], "detail": None})
    out = bursts(ev, pd.Timedelta("1min"))
    assert out[["kind", "count", "hosts"]].values.tolist() == [
        ["oom_kill", 3, 2], ["oom_kill", 1, 1], ["deploy", 1, 0], ["oom_kill", 1, 1]]
    assert out["last"].iloc[0] == t0 + pd.Timedelta("50s")
    kept, rest = select_bursts(out, t0 + pd.Timedelta("1h"), near=pd.Timedelta("10min"),
                               largest=1)
    # the deploy (a change), the burst at the onset and the largest burst; the 5 h one is rest
    assert kept["count"].tolist() == [3, 1, 1] and rest["first"].tolist() == [
        t0 + pd.Timedelta("5h")]


def test_memory_chart_shows_the_findings_series(opened):
    """The finding said "GPU memory reached 100%" under a chart of host memory: the report
    now asks the diagnostic for the series its finding is about."""
    from types import SimpleNamespace

    from toolkit.diagnose._base import Finding

    calls = []

    class Memory(SimpleNamespace):
        title = "Memory"

        def findings(self):
            return [Finding(id="infrastructure.memory_exhaustion", pathway="infrastructure",
                            severity="high", statistic=1.0, threshold=0.9, summary="GPU",
                            evidence={"kind": "gpu"})]

        def plot(self, **kwargs):
            import matplotlib.pyplot as plt

            calls.append(kwargs)
            return plt.subplots()[1]

    results = dict(opened.result.diagnosis.results)
    results["infra.memory"] = Memory()
    pm = tk.report.Postmortem(SimpleNamespace(diagnosis=SimpleNamespace(results=results)),
                              opened.case)
    pm.diagnostic_figure("infra.memory")
    assert calls == [{"kind": "gpu"}]


# ---------------------------------------------------------------- figures (21.3, 21.5)
def test_score_distribution_plots_every_bin_without_error_bars(opened):
    from toolkit.report.figures import score_distribution

    result = opened.result.diagnosis.results["model.prediction_shift"]
    fig = score_distribution(result)
    ax = fig.axes[0]
    heights = {w: [p.get_height() for p in ax.patches if p.get_gid() == w]
               for w in ("baseline", "incident")}
    bins = result.score_bins
    assert len(heights["baseline"]) == int((bins["window"] == "baseline").sum())
    assert sum(heights["baseline"]) == pytest.approx(1.0)
    assert sum(heights["incident"]) == pytest.approx(1.0)
    assert ax.get_lines() == []  # no error bars
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(set(labels)) == len(labels)


def test_score_distribution_with_saturated_scores_keeps_bins_apart():
    """Three decile edges that round to the same three decimals were one bar (seaborn averaged
    them and drew an error bar): each bin is now its own bar with its own label."""
    from types import SimpleNamespace

    from toolkit.report.figures import score_distribution

    shares = [0.1, 0.2, 0.3, 0.4]
    bins = pd.DataFrame({"window": ["baseline"] * 4 + ["incident"] * 4,
                         "bin": ["0.999", "1.000", "1.000", "inf"] * 2,
                         "share": shares + shares[::-1]})
    fig = score_distribution(SimpleNamespace(score_bins=bins, score_psi=0.5))
    ax = fig.axes[0]
    base = [p.get_height() for p in ax.patches if p.get_gid() == "baseline"]
    assert base == shares
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(set(labels)) == 4 and labels[-1] == "> 1.000"


def test_axes_are_readable_after_polish():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolkit.plotting import polish

    ts = pd.date_range("2026-02-01", periods=200, freq="h", tz="UTC")
    fig, (rate, latency) = plt.subplots(2, 1)
    rate.plot(ts, np.zeros(len(ts)))  # an all-zero timeout rate
    latency.plot(ts, np.linspace(90, 260, len(ts)))
    latency.set_yscale("log")
    for _ in range(5):  # five events at one time
        latency.annotate("oom_kill", (ts[100], 1.0), xycoords=("data", "axes fraction"))
    latency.annotate("deploy model 2", (ts[10], 1.0), xycoords=("data", "axes fraction"))
    polish(fig)
    fig.canvas.draw()
    assert rate.get_ylim() == (0, 1)
    labels = [t.get_text() for t in [*latency.get_yticklabels(),
                                     *latency.yaxis.get_minorticklabels()] if t.get_text()]
    assert labels and not any("10^" in s or "times" in s or "\\" in s for s in labels)
    assert "200" in labels or "100" in labels
    texts = sorted(t.get_text() for t in latency.texts)
    assert texts == ["deploy model 2", "oom_kill x5"]
    dates = [t for t in latency.get_xticklabels() if t.get_text()]
    assert len(dates) >= 4 and all(t.get_rotation() == 30 for t in dates)
    # no two date labels overlap
    boxes = [t.get_window_extent() for t in dates]
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:], strict=False))
    plt.close(fig)


def test_host_outliers_are_not_in_the_incident_red():
    """The hosts chart marked outliers in the incident's red; the report recolours them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import same_color

    from toolkit.plotting import OUTLIER_COLOR, WINDOW_COLORS
    from toolkit.report.figures import recolor_outliers

    fig, ax = plt.subplots()
    ax.bar(["pod-a", "pod-b"], [1, 2])
    ax.set_xlabel("host (outliers in red)")
    ax.get_xticklabels()[1].set_color(WINDOW_COLORS["incident"])
    recolor_outliers(ax)
    colours = [t.get_color() for t in ax.get_xticklabels()]
    assert not any(same_color(c, WINDOW_COLORS["incident"]) for c in colours)
    assert same_color(colours[1], OUTLIER_COLOR) and not same_color(colours[0], OUTLIER_COLOR)
    assert "red" not in ax.get_xlabel()
    plt.close(fig)


# ---------------------------------------------------------------- weekly report (21.8)
def _requests_frame(db):
    con = duckdb.connect(str(db), read_only=True)
    frame = con.execute("SELECT r.ts, r.latency_ms, r.status, r.prediction, r.score, l.label "
                        "FROM requests r LEFT JOIN labels l USING (request_id)").df()
    con.close()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def test_first_week_reports_its_own_numbers(full_case):
    """The first week of a case has no week before it: it used to render every section
    "not assessed"; it now shows its own p99, failure rate, accuracy and ECE."""
    db, _ = full_case
    frame = _requests_frame(db)
    first = frame["ts"].min().strftime("%G-W%V")
    report = tk.report.WeeklyReport.open(db, first)
    assert report.diagnosis is None  # nothing to compare with
    slo = report.slo_frame().set_index("SLO")
    window = tk.types.Window.parse(first)
    week = frame[(frame["ts"] >= pd.Timestamp(window.start)) &
                 (frame["ts"] < pd.Timestamp(window.end))]
    assert slo.loc["latency p99", "this week"] == pytest.approx(
        week["latency_ms"].quantile(0.99), rel=1e-9)
    assert slo.loc["error + timeout rate", "this week"] == pytest.approx(
        week["status"].isin(["error", "timeout"]).mean())
    labelled = week.dropna(subset=["label", "prediction"])
    assert slo.loc["accuracy", "this week"] == pytest.approx(
        (labelled["prediction"].astype(str) == labelled["label"].astype(str)).mean())
    # ECE on 10 equal-width bins, by hand
    b = np.minimum(np.floor(labelled["score"] * 10), 9)
    correct = (labelled["prediction"].astype(str) == labelled["label"].astype(str)).astype(float)
    grouped = pd.DataFrame({"b": b, "c": correct, "s": labelled["score"]}).groupby("b")
    ece = (grouped.size() * (grouped["c"].mean() - grouped["s"].mean()).abs()).sum() / len(b)
    assert slo.loc["ECE (10 bins)", "this week"] == pytest.approx(ece)
    assert pd.isna(slo.loc["latency p99", "target"])  # no previous week to derive it from
    page = report.slo().fragment
    assert "n/a (no previous week to derive it from)" in page
    assert "not assessed" not in report.trend().fragment


def test_trend_has_the_last_weeks(full_case):
    db, _ = full_case
    frame = _requests_frame(db)
    last = frame["ts"].max().strftime("%G-W%V")
    report = tk.report.WeeklyReport.open(db, last, weeks=4)
    trend = report.trend_frame
    assert trend["week"].tolist()[-1] == last and len(trend) <= 4
    first = frame["ts"].min().strftime("%G-W%V")
    assert trend["week"].iloc[0] == max(first, (pd.Timestamp(tk.types.Window.parse(
        last).start) - pd.Timedelta(days=21)).strftime("%G-W%V"))  # no empty weeks before
    counts = frame.groupby(frame["ts"].dt.strftime("%G-W%V")).size()
    assert trend.set_index("week")["requests"].to_dict() == {
        w: int(counts.get(w, 0)) for w in trend["week"]}
    from toolkit.report.trend import trend_figure

    fig = trend_figure(trend)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"accuracy", "p99 latency (ms)", "errors + timeouts"} <= set(titles)


def test_empty_week_is_an_error_not_an_empty_page(full_case, tmp_path):
    db, _ = full_case
    with pytest.raises(tk.errors.EmptyWindowError, match="No requests or metrics in week "
                                                          "2031-W02"):
        tk.render_weekly(db, tmp_path / "w", week="2031-W02")
    assert not (tmp_path / "w").exists()


def test_weekly_drift_title_names_the_weeks(full_case):
    db, truth = full_case
    week = pd.Timestamp(truth["onset"]).strftime("%G-W%V")
    report = tk.report.WeeklyReport.open(db, week, weeks=2)
    title = report.drift_figure().axes[0].get_title()
    assert title == f"Drift per feature: {week} vs the week before"


# ---------------------------------------------------------------- Evidently-style figures (21.9)
@pytest.fixture(scope="module")
def drifted_case():
    rng = np.random.default_rng(9)
    n = 4000
    ts = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    x = np.r_[rng.normal(10, 2, n // 2), rng.normal(14, 2, n // 2)]
    c = np.r_[rng.choice(["a", "b", "c"], n // 2, p=[0.6, 0.3, 0.1]),
              rng.choice(["a", "b", "c", "d"], n // 2, p=[0.2, 0.2, 0.2, 0.4])]
    x[::97] = np.nan
    con = tk.connect()
    tk.load(con, pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts, "x": x,
                               "c": c}), table="requests")
    frame = pd.DataFrame({"ts": ts, "x": x, "c": c})
    return con, frame, (ts[0], ts[n // 2]), (ts[n // 2], ts[-1] + pd.Timedelta("1min"))


def test_drifted_feature_distributions_match_pandas(drifted_case):
    from toolkit.diagnose import case_view, feature_drift
    from toolkit.report.distributions import distributions_figure, feature_distributions

    con, frame, baseline, incident = drifted_case
    drift = feature_drift(con, baseline, incident)
    assert set(drift.drifted) == {"x", "c"}
    out = feature_distributions(con, case_view(con), drift)
    base = frame[(frame["ts"] >= baseline[0]) & (frame["ts"] < baseline[1])]
    inc = frame[(frame["ts"] >= incident[0]) & (frame["ts"] < incident[1])]
    # numeric: the reference's deciles (linear interpolation, as quantile_cont)
    edges = np.unique(np.quantile(base["x"].dropna(), np.arange(1, 10) / 10))
    for window, part in (("reference", base), ("current", inc)):
        values = part["x"].dropna().to_numpy()
        expected = np.bincount(np.searchsorted(edges, values, side="left"),
                               minlength=len(edges) + 1)
        got = out[(out["feature"] == "x") & (out["window"] == window) &
                  (out["bin"] != "missing")].sort_values("order")["count"].to_numpy()
        assert got.tolist() == expected.tolist()
        missing = out[(out["feature"] == "x") & (out["window"] == window) &
                      (out["bin"] == "missing")]["count"].sum()
        assert missing == part["x"].isna().sum()
    ref = out[(out["feature"] == "x") & (out["window"] == "reference")]
    assert ref["share"].sum() == pytest.approx(1.0)
    # categorical: counts per category, a category new in the incident included
    cats = out[out["feature"] == "c"].pivot(index="bin", columns="window", values="count")
    assert cats["current"].to_dict() == inc["c"].value_counts().to_dict()
    assert cats["reference"].get("d", 0) == 0
    fig = distributions_figure(out)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == [
        f for f in dict.fromkeys(out["feature"])]


def test_reliability_diagram_shows_bin_counts(opened):
    from toolkit.report.distributions import reliability_with_counts

    calibration = opened.result.diagnosis.results["model.calibration"]
    if calibration.reliability_bins.empty:
        pytest.skip("no labelled scores in this case")
    fig = reliability_with_counts(calibration)
    counts = fig.axes[1]
    for window in ("baseline", "incident"):
        heights = [p.get_height() for p in counts.patches if p.get_gid() == f"counts:{window}"]
        bins = calibration.reliability_bins
        expected = bins[(bins["window"] == window) & (bins["n"] > 0)]["n"].tolist()
        assert heights == expected


def test_polish_replaces_missing_values_in_categorical_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolkit.plotting import polish

    fig, ax = plt.subplots()
    ax.barh(["client_version=None", "endpoint=/v1", "host=nan"], [3, 2, 1], label="x")
    ax.plot([0, 1], [0, 1], label="True")
    ax.legend(title="drifted")
    polish(fig)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["x", "yes"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "client_version=(missing)", "endpoint=/v1", "host=(missing)"]
    plt.close(fig)
