"""The postmortem's affected slices (``case.segments``), the label-free estimate in the
postmortem and the weekly report (model-quality SLOs apart from infrastructure SLOs), and the
ROC AUC impact row.

One hand-built case (module-scoped): 14 days of requests over two ISO weeks; the baseline is
the first week, the incident the second. Host ``h4`` fails on 60% of its requests in the
incident only (new); client ``c-old`` fails on 30% of its requests throughout (chronic); the
rest fail on 1%. A ``session`` column is unique per request (id-like: not tested) and 33
requests have the status ``PENDING``. Scores are calibrated confidences; every baseline
request is labelled, a fifth of the incident's are (labels missing), so the estimate runs.
"""

from __future__ import annotations

import copy
import html as htmllib
import re
import warnings
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import toolkit as tk
from toolkit.classify.remediation import remediation_for_slice
from toolkit.diagnose.case.segments import failure_concentration
from toolkit.report.format import fmt_number, fmt_percent, fmt_pvalues_in_text
from toolkit.report.postmortem import Postmortem
from toolkit.report.slices import slices_frame, slices_section
from toolkit.types import Window

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday: 2026-W10
BASELINE = Window(START, datetime(2026, 3, 9, tzinfo=UTC))
INCIDENT = Window(datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))
N = 6_000


def _frames(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(START) + pd.to_timedelta(np.sort(rng.uniform(0, 14 * 86400, N)), "s")
    host = rng.choice(["h1", "h2", "h3", "h4"], N)
    client = rng.choice(["c-new", "c-mid", "c-old"], N, p=[0.5, 0.4, 0.1])
    incident = ts >= pd.Timestamp(INCIDENT.start)
    p_fail = np.where(client == "c-old", 0.30, 0.01)
    p_fail = np.where(incident & (host == "h4"), 0.60, p_fail)
    status = np.where(rng.uniform(size=N) < p_fail, "error", "ok").astype(object)
    status[rng.choice(np.flatnonzero(status == "ok"), 33, replace=False)] = "PENDING"
    confidence = rng.uniform(0.55, 1.0, N)
    correct = rng.uniform(size=N) < confidence  # calibrated: P(right) = confidence
    prediction = rng.choice(["fraud", "legit"], N, p=[0.3, 0.7])
    label = np.where(correct, prediction, np.where(prediction == "fraud", "legit", "fraud"))
    requests = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(N)], "ts": ts, "status": status,
        "latency_ms": rng.gamma(4, 10, N), "host": host, "client_version": client,
        "model_version": "m1", "session": [f"s-{i:05d}" for i in range(N)],
        "prediction": prediction, "score": confidence})
    shown = ~incident | (rng.uniform(size=N) < 0.2)  # a fifth of the incident is labelled
    labels = pd.DataFrame({"request_id": requests["request_id"][shown],
                           "label": label[shown],
                           "labeled_at": ts[shown] + pd.Timedelta(hours=3)})
    truth = pd.DataFrame({"ts": ts, "correct": correct, "status": status, "host": host,
                          "client_version": client, "latency_ms": requests["latency_ms"]})
    return requests, labels, truth


@pytest.fixture(scope="module")
def hand_case(tmp_path_factory):
    requests, labels, truth = _frames()
    db = tmp_path_factory.mktemp("slices") / "case.duckdb"
    con = tk.connect(db)
    tk.load(con, requests, table="requests")
    tk.load(con, labels, table="labels")
    con.close()
    return db, requests, labels, truth


@pytest.fixture(scope="module")
def segments(hand_case):
    db, *_ = hand_case
    con = tk.connect(db, read_only=True)
    yield failure_concentration(con, BASELINE, INCIDENT)
    con.close()


@pytest.fixture(scope="module")
def pm(hand_case):
    db, *_ = hand_case
    con = tk.connect(db, read_only=True)
    out = Postmortem.from_connection(con, incident=str(INCIDENT), baseline=str(BASELINE),
                                     incident_id="INC-SLICE")
    yield out
    con.close()


def _plain(text: str) -> str:
    """Non-breaking spaces and hyphens (cells kept on one line) as plain ones."""
    return text.replace("\u00a0", " ").replace("\u2011", "-")


def _text(fragment: str) -> str:
    text = re.sub(r"<img [^>]*>", " [figure] ", fragment)
    return re.sub(r"\s+", " ", _plain(htmllib.unescape(re.sub(r"<[^>]+>", " ", text))))


# ---------------------------------------------------------------- affected slices
def test_slice_rows_match_a_pandas_count_and_fisher(segments, hand_case):
    *_, truth = hand_case
    frame = slices_frame(segments).set_index("slice")
    assert "\u00a0" in frame.loc["host=h4", "last failure (UTC)"]  # kept on one line
    frame = frame.map(_plain)
    assert {"host=h4", "client_version=c-old"} <= set(frame.index)
    inc = truth[truth["ts"] >= pd.Timestamp(INCIDENT.start)]
    known = inc[inc["status"].isin(["ok", "error"])]  # PENDING has no known outcome
    mine = known[known["host"] == "h4"]
    rest = known[known["host"] != "h4"]
    k, n = int((mine["status"] == "error").sum()), len(mine)
    big_k = int((known["status"] == "error").sum())
    row = frame.loc["host=h4"]
    assert row["scope"] == "incident" and row["status"] == "new"
    assert row["failures / requests"] == f"{k:,} / {n:,}"
    rest_rate = (rest["status"] == "error").mean()
    assert row["failure rate vs rest"] == (f"{fmt_percent(k / n, 1)} vs "
                                           f"{fmt_percent(rest_rate, 2)}")
    assert row["share of failures"] == fmt_percent(k / big_k, 1)
    # one-sided Fisher (scipy), then at most x (values tested) by Holm: far below the floor
    p = stats.fisher_exact([[k, n - k], [big_k - k, len(known) - n - (big_k - k)]],
                           alternative="greater").pvalue
    assert p * 20 < 1e-12 and row["adjusted p"] == "< 1e-12"
    # new in the incident: failing since its first failure there, not a stray baseline one
    first = mine[mine["status"] == "error"]["ts"].min()
    assert row["failing since (UTC)"] == first.strftime("%Y-%m-%d %H:%M")
    stray = truth[(truth["host"] == "h4") & (truth["status"] == "error")]["ts"].min()
    assert stray < pd.Timestamp(INCIDENT.start)  # the case has one, a week earlier
    last = mine[mine["status"] == "error"]["ts"].max()
    assert row["last failure (UTC)"] == last.strftime("%Y-%m-%d %H:%M")
    # the chronic client fails in both windows: failing since its first failure in the case
    assert frame.loc["client_version=c-old", "status"] == "chronic"
    chronic = truth[(truth["client_version"] == "c-old") & (truth["status"] == "error")]
    assert frame.loc["client_version=c-old", "failing since (UTC)"] == \
        chronic["ts"].min().strftime("%Y-%m-%d %H:%M")


def test_slices_section_shows_caption_figure_actions_and_what_was_not_assessed(segments):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = slices_section(segments, "batch").fragment
    text = _text(page)
    failure = [f for f in segments.findings() if f.id.endswith(".failure_segment")]
    assert failure and all(fmt_pvalues_in_text(f.summary) in text for f in failure)
    assert "[figure]" in text
    roles = {f.evidence["role"] for f in segments.findings()}
    assert "host" in roles
    for action in remediation_for_slice("host", "batch"):
        assert action in text  # batch-specific first, then the always-actions
    assert "session (id-like" in text  # a unique-per-request column is not tested
    assert "33 requests have a status other than ok/error/timeout" in text
    assert "p <= 0.0e+00" not in text and "nan" not in text.lower().split()


def test_postmortem_section_and_sql_appendix(pm):
    section = _text(pm.affected_slices().fragment)
    assert "host=h4" in section and "new" in section
    appendix = pm.appendix_sql().fragment
    assert "-- case.segments [1]" in htmllib.unescape(appendix)
    pm.estimated_accuracy()  # the estimate ran: its SQL is in the appendix too
    assert "-- model.estimation [1]" in htmllib.unescape(pm.appendix_sql().fragment)


def test_pvalues_in_finding_text_go_through_the_formatter():
    assert fmt_pvalues_in_text("Holm-adjusted p <= 0.0e+00 over 35 values") == \
        "Holm-adjusted p < 1e-12 over 35 values"
    assert fmt_pvalues_in_text("Holm-adjusted p 1.9e-23.") == "Holm-adjusted p < 1e-12."
    assert fmt_pvalues_in_text("p = 0.0412 and p99 350 ms") == "p = 0.041 and p99 350 ms"


# ---------------------------------------------------------------- label-free estimate
def test_postmortem_estimate_stands_in_for_missing_labels(pm, hand_case):
    *_, truth = hand_case
    est = pm.estimate
    assert est.estimated, est.reason
    inc = truth[truth["ts"] >= pd.Timestamp(INCIDENT.start)]
    true_accuracy = inc["correct"].mean()  # every label, including the hidden four fifths
    lo, hi = est.result.overall["accuracy_lo"], est.result.overall["accuracy_hi"]
    assert lo - 0.01 <= true_accuracy <= hi + 0.01
    text = _text(pm.estimated_accuracy().fragment)
    assert "Labels are missing or delayed" in text and "labels cover" in text
    assert "[figure]" in text
    assert fmt_percent(est.result.overall["accuracy"], 1) in text
    saved = pm.results()["estimation"]
    assert saved["status"] == "estimated" and saved["reason"] is None
    assert saved["estimated_accuracy"] == pytest.approx(est.result.overall["accuracy"])
    assert saved["band"] == pytest.approx([lo, hi])


def test_estimate_failure_and_abstention_show_as_not_assessed(pm, monkeypatch):
    import sys

    estimation_module = sys.modules["toolkit.diagnose.model.estimation"]  # the package's
    # attribute of that name is the function

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(estimation_module, "estimation", boom)
    # a diagnosis without the registry's estimate: the report calls it itself
    diagnosis = copy.copy(pm.result.diagnosis)
    object.__setattr__(diagnosis, "results", {k: v for k, v in diagnosis.results.items()
                                              if k != "model.estimation"})
    result = copy.copy(pm.result)
    object.__setattr__(result, "diagnosis", diagnosis)
    fresh = Postmortem(result, pm.case)
    text = _text(fresh.estimated_accuracy().fragment)
    assert "not assessed: the estimate failed (RuntimeError: boom)" in text
    assert fresh.results()["estimation"]["estimated_accuracy"] is None


def test_estimate_abstains_without_labels(tmp_path):
    requests, _, _ = _frames(seed=3)
    con = tk.connect(tmp_path / "nolabels.duckdb")
    tk.load(con, requests, table="requests")
    from toolkit.report.estimate import estimate

    est = estimate(con, BASELINE, INCIDENT)
    con.close()
    assert not est.estimated
    assert est.rows()[-1]["value"] == ("not assessed: the case has no labels to calibrate the "
                                       "scores on")
    assert est.to_dict()["band"] is None


# ---------------------------------------------------------------- weekly SLO panels
@pytest.fixture(scope="module")
def weekly(hand_case):
    db, *_ = hand_case
    return tk.report.WeeklyReport.open(db, "2026-W11")


def test_weekly_keeps_model_quality_apart_from_infrastructure(weekly, hand_case):
    *_, truth = hand_case
    week = truth[truth["ts"] >= pd.Timestamp(INCIDENT.start)]
    slo = weekly.slo_frame().set_index("SLO")
    assert set(slo.loc[["latency p99", "error + timeout rate",
                        "throughput (requests per hour)"], "panel"]) == {"infrastructure"}
    assert set(slo.loc[["accuracy", "ECE"], "panel"]) == {"model quality"}
    assert slo.loc["throughput (requests per hour)", "this week"] == pytest.approx(
        len(week) / 168)
    infra = _text(weekly.slo_infrastructure().fragment)
    model = _text(weekly.slo_model().fragment)
    assert "throughput" in infra and "accuracy" not in infra and "ECE" not in infra
    assert "latency" not in model and "throughput" not in model
    assert "estimated accuracy (CBPE" in model


def test_weekly_accuracy_band_is_wilson(weekly, hand_case):
    _, requests, labels, _ = hand_case
    joined = requests.merge(labels, on="request_id")
    week = joined[joined["ts"] >= pd.Timestamp(INCIDENT.start)]
    k, n = int((week["prediction"] == week["label"]).sum()), len(week)
    z = stats.norm.ppf(0.975)
    centre = (k + z * z / 2) / (n + z * z)
    half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    slo = weekly.slo_frame().set_index("SLO")
    assert slo.loc["accuracy", "this week"] == pytest.approx(k / n)
    assert slo.loc["accuracy", "band_lo"] == pytest.approx(centre - half, abs=1e-6)
    assert slo.loc["accuracy", "band_hi"] == pytest.approx(centre + half, abs=1e-6)
    model = _text(weekly.slo_model().fragment)
    assert f"{fmt_percent(centre - half, 1)} – {fmt_percent(centre + half, 1)}" in model


def test_weekly_results_carry_the_estimate(weekly, hand_case):
    *_, truth = hand_case
    results = weekly.results()
    est = results["estimation"]
    assert est["status"] == "estimated" and est["reason"] is None
    lo, hi = est["band"]
    true_accuracy = truth[truth["ts"] >= pd.Timestamp(INCIDENT.start)]["correct"].mean()
    assert lo - 0.01 <= true_accuracy <= hi + 0.01
    assert lo < est["estimated_accuracy"] < hi
    assert results["slo_met"] is not None  # the throughput row has no target: not judged


# ---------------------------------------------------------------- ROC AUC in the impact table
def test_impact_table_has_roc_auc_per_window(pm, hand_case):
    _, requests, labels, _ = hand_case
    performance = pm.result.diagnosis.results["model.performance"]
    text = _text(pm.impact().fragment)
    before = performance.value("baseline", "roc_auc")
    after = performance.value("incident", "roc_auc")
    # independent: sklearn on the baseline's labelled requests, P(fraud) from the confidence
    from sklearn.metrics import roc_auc_score

    joined = requests.merge(labels, on="request_id")
    base = joined[joined["ts"] < pd.Timestamp(BASELINE.end)]
    p_fraud = np.where(base["prediction"] == "fraud", base["score"], 1 - base["score"])
    assert before == pytest.approx(roc_auc_score(base["label"] == "fraud", p_fraud), abs=1e-3)
    row = re.search(r"ROC AUC (\S+) (\S+) (\S+)", text)
    assert row is not None
    assert row.groups()[:2] == (fmt_number(before, 3), fmt_number(after, 3))


# ---------------------------------------------------------------- polish: no date-locator gap
@pytest.mark.parametrize("days", [4.2, 4.5])  # x limits 4.6 and 4.95 days (5% margins)
def test_polish_picks_date_ticks_between_half_days_and_days(days):
    """Time axes of 4.5 to 5 days fitted no interval of the old locator (minticks 5): every
    estimate chart of the demo's incident printed an AutoDateLocator warning."""
    import matplotlib.pyplot as plt

    from toolkit.plotting import polish

    x = pd.date_range("2026-02-18", periods=20, freq=pd.Timedelta(days=days) / 19, tz="UTC")
    fig, ax = plt.subplots()
    ax.plot(x, np.linspace(0, 1, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        polish(fig)
        ticks = ax.xaxis.get_major_locator()()
    plt.close(fig)
    assert 4 <= len(ticks) <= 11


def test_weekly_drift_draws_no_empty_chart(weekly):
    """The hand case's only feature (an id-like ``session``) has no PSI: the chart was an
    empty frame with two threshold lines (seen in the weekly screenshot)."""
    drift = weekly.diagnosis.results["data.drift"]
    assert drift.table["psi"].isna().all()
    page = weekly.drift().fragment
    assert "<img" not in page and "Drift per feature vs the previous week" in page
