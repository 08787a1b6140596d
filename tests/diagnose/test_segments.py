"""Affected slices: hand computations, always-failing slices, uniform failures, id-like columns,
multiple comparisons, partial cases and the Alibaba request log."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

import toolkit as tk
from tests.conftest import realdata
from tests.diagnose.conftest import make_case
from toolkit.diagnose import REGISTRY
from toolkit.diagnose.case.segments import ID, failure_concentration, holm, role_of

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=12))
INCIDENT = (T0 + timedelta(hours=12), T0 + timedelta(hours=24))


def _requests(n=2880, *, seed=0, values=("c1", "c2", "c3", "c4"), column="checkpoint",
              noise=0.01, bad=None, **extra):
    """One request every 30 s for 24 h; ``bad(k, value)`` marks extra failures."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    value = np.asarray(values, dtype=object)[k % len(values)]
    failed = rng.random(n) < noise
    if bad is not None:
        failed |= bad(k, value)
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in k],
                          "ts": T0 + pd.to_timedelta(k * 30, unit="s"),
                          "status": np.where(failed, "error", "ok"), column: value,
                          "latency_ms": 50 + rng.gamma(2.0, 10.0, n)})
    for name, column_values in extra.items():
        frame[name] = column_values(k, rng) if callable(column_values) else column_values
    return frame


def _fisher(k, n, big_k, big_n):
    table = [[k, n - k], [big_k - k, (big_n - n) - (big_k - k)]]
    return stats.fisher_exact(table, alternative="greater").pvalue


# ------------------------------------------------------------------------- numbers
def test_counts_shares_and_pvalues_match_pandas_and_scipy():
    requests = _requests(bad=lambda k, v: (v == "c3") & (k % 7 == 0))
    requests.loc[3, "status"] = "timeout"
    requests.loc[10:14, "status"] = None          # unknown outcome: out of the rates
    requests.loc[20:22, "checkpoint"] = None      # missing value: in the totals, not tested
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    table = result.table
    frame = requests.assign(failed=requests["status"].isin(["error", "timeout"]),
                            known=requests["status"].notna())
    for scope, part in (("case", frame), ("incident", frame[frame.ts >= INCIDENT[0]])):
        known = part[part["known"]]
        big_n, big_k = len(known), int(known["failed"].sum())
        mine = table[(table["scope"] == scope) & table["value"].notna()].set_index("value")
        expected = known.groupby("checkpoint").agg(n=("failed", "size"), k=("failed", "sum"))
        assert mine.loc[expected.index, "outcomes"].tolist() == expected["n"].tolist()
        assert mine.loc[expected.index, "failures"].tolist() == expected["k"].tolist()
        assert mine.loc[expected.index, "requests"].tolist() == \
            part.groupby("checkpoint").size().loc[expected.index].tolist()
        for value, row in expected.iterrows():
            got = mine.loc[value]
            assert got["failure_rate"] == pytest.approx(row.k / row.n)
            assert got["failure_share"] == pytest.approx(row.k / big_k)
            assert got["rest_rate"] == pytest.approx((big_k - row.k) / (big_n - row.n))
            assert got["pvalue"] == pytest.approx(_fisher(row.k, row.n, big_k, big_n),
                                                  rel=1e-9)
        # Holm over the values tested (the missing value is not one of them)
        tested = mine.loc[expected.index]
        assert result.tested[scope] == 4
        assert tested["p_adjusted"].to_numpy() == pytest.approx(
            multipletests(tested["pvalue"].to_numpy(), method="holm")[1], rel=1e-9)
    case = table[table["scope"] == "case"]
    assert case.loc[case["value"].isna(), "outcomes"].item() == 3
    assert case.loc[case["value"].isna(), "pvalue"].isna().all()
    assert case.loc[case["value"] == "c4", "timeouts"].item() == 1  # request 3 is c4's
    assert [f.evidence["values"] for f in result.findings()] == [["c3"]]
    assert any(gap.check == f"{ID}.status" or "status" in gap.reason
               for gap in result.not_assessed) is False  # NULL status is not an odd value


def test_holm_matches_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.0001, 0.5])
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


# ------------------------------------------------------------------------- findings
def test_a_slice_failing_on_every_request_is_found_and_dated():
    # c4 fails on every request from 12:00 on: new in the incident
    requests = _requests(bad=lambda k, v: (v == "c4") & (k >= 1440))
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = result.findings()
    first = requests[(requests.checkpoint == "c4") & (requests.index >= 1440)].ts.min()
    assert finding.id == "model.failure_segment" and finding.pathway == "model"
    assert finding.severity == "high"
    assert finding.evidence["values"] == ["c4"] and finding.evidence["always_failing"] == ["c4"]
    assert finding.evidence["status"] == ["new"]
    assert pd.Timestamp(finding.onset) == first
    inc = requests[requests.ts >= INCIDENT[0]]
    failures = inc.status.eq("error")
    share = failures[inc.checkpoint == "c4"].sum() / failures.sum()
    assert finding.statistic == pytest.approx(share)
    assert "fails on every request" in finding.summary
    assert "new in the incident" in finding.summary
    signals = result.signals()
    assert set(signals["signal"]) == {"segments.flagged_failure_rate"}
    assert signals["value"].max() == pytest.approx(1.0)


def test_a_slice_already_failing_in_the_baseline_is_chronic():
    requests = _requests(bad=lambda k, v: v == "c2")
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["status"] == ["chronic"] and finding.severity == "medium"
    assert "already failing in the baseline" in finding.summary
    # dated by its first failure over the whole case
    assert pd.Timestamp(finding.evidence["first_failure"]) == \
        requests[requests.checkpoint == "c2"].ts.min()
    inc = result.table[(result.table["scope"] == "incident")
                       & (result.table["value"] == "c2")].iloc[0]
    assert inc["baseline_failure_rate"] == 1.0
    shown = result.affected_slices()
    assert shown[["scope", "attribute", "value", "status", "severity"]].values.tolist() == [
        ["incident", "checkpoint", "c2", "chronic", "medium"]]
    assert shown["failures"].item() == (requests[requests.ts >= INCIDENT[0]].checkpoint
                                        == "c2").sum()
    assert shown["always_fails"].item()
    assert shown["failing_since"].item() == requests[requests.checkpoint == "c2"].ts.min()
    assert shown["first_failure"].item() == requests[(requests.checkpoint == "c2")
                                                     & (requests.ts >= INCIDENT[0])].ts.min()


def test_new_and_chronic_slices_of_one_attribute_are_told_apart():
    # c2 fails throughout, c4 from the incident's start
    requests = _requests(bad=lambda k, v: (v == "c2") | ((v == "c4") & (k >= 1440)))
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["status"] == ["chronic", "new"] and finding.severity == "high"
    assert "c4 new in the incident, the others already failing" in finding.summary
    # dated by the new value's first failure, not by the chronic one's
    assert pd.Timestamp(finding.onset) == requests[(requests.checkpoint == "c4")
                                                   & (requests.ts >= INCIDENT[0])].ts.min()


def test_without_requests_in_the_windows_the_whole_case_is_assessed():
    requests = _requests(bad=lambda k, v: v == "c2")
    far = pd.Timestamp("2020-01-01T00:00Z")
    result = failure_concentration(make_case(requests=requests), (far, far + timedelta(days=1)),
                                   (far + timedelta(days=1), far + timedelta(days=2)))
    (finding,) = result.findings()
    assert finding.evidence["scope"] == "case" and finding.evidence["values"] == ["c2"]
    assert finding.severity == "medium"
    checks = {gap.check for gap in result.not_assessed}
    assert {f"{ID}.baseline", f"{ID}.incident"} <= checks


def test_a_uniform_failure_rate_gives_no_finding():
    requests = _requests(noise=0.08, seed=3)
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    assert result.findings() == []
    assert not result.table["flagged"].any() and result.affected_slices().empty
    assert result.table["failures"].sum() > 0


def test_id_like_columns_are_skipped_with_a_note():
    requests = _requests(bad=lambda k, v: v == "c2",
                         session=lambda k, rng: [f"s{i}" for i in k])
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    assert "session" not in set(result.table["attribute"])
    assert result.skipped.set_index("attribute").loc["session", "reason"].startswith("id-like")
    assert any(g.check == f"{ID}.session" and "id-like" in g.reason
               for g in result.not_assessed)
    assert [f.evidence["attribute"] for f in result.findings()] == ["checkpoint"]


def test_multiple_comparisons_over_many_values_flag_only_the_bad_one():
    values = [f"t{i:03d}" for i in range(150)]
    requests = _requests(n=30000, values=values, noise=0.02, seed=7, column="tenant",
                         bad=lambda k, v: (v == "t042") & (k % 3 == 0))
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    case = result.table[(result.table["scope"] == "case") & result.table["value"].notna()]
    assert result.tested["case"] == 150
    assert case.loc[case["flagged"], "value"].tolist() == ["t042"]
    # unadjusted, chance alone passes alpha for some of the 149 healthy tenants
    healthy = case[case["value"] != "t042"]
    assert (healthy["pvalue"] < 0.05).sum() >= 1
    assert (healthy["p_adjusted"] >= 0.01).all()
    (finding,) = result.findings()
    assert finding.id == "data.failure_segment" and finding.evidence["values"] == ["t042"]


def test_a_value_nested_in_a_failing_one_is_explained_by_it():
    # every request of host h2 runs model v1 (v1 also runs on h1): h2 fails, v1 looks bad
    def hosts(k, rng):
        return np.array(["h1", "h2", "h3", "h4"])[k % 4]

    def versions(k, rng):
        return np.where(k % 4 < 2, "v1", "v2")

    requests = _requests(column="tenant", values=("a", "b", "c"),
                         host=hosts, model_version=versions)
    requests.loc[(requests.index % 4 == 1) & (requests.index >= 1440), "status"] = "error"
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    rows = result.table[result.table["scope"] == "incident"].set_index(["attribute", "value"])
    assert rows.loc[("model_version", "v1"), "explained_by"] == "host=h2"
    assert not rows.loc[("model_version", "v1"), "flagged"]
    assert rows.loc[("model_version", "v1"), "p_adjusted"] < 1e-6  # significant on its own
    assert rows.loc[("host", "h2"), "flagged"] and rows.loc[("host", "h2"), "explained_by"] is None
    assert [f.id for f in result.findings()] == ["infrastructure.failure_segment"]


@pytest.mark.parametrize(("column", "finding_id", "role"), [
    ("host", "infrastructure.failure_segment", "host"),
    ("client_version", "integration.failure_segment", "client"),
    ("model_version", "model.failure_segment", "model"),
    ("region", "infrastructure.failure_segment", "site"),
])
def test_the_pathway_follows_the_attribute(column, finding_id, role):
    requests = _requests(column=column, values=("a", "b", "c"),
                         bad=lambda k, v: (v == "b") & (k >= 1440) & (k % 2 == 0))
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert (finding.id, finding.evidence["role"], finding.evidence["values"]) == \
        (finding_id, role, ["b"])


def test_roles_from_column_names():
    assert role_of("checkpoint_model_version_id") == ("model", "model")
    assert role_of("container_ip") == ("host", "infrastructure")
    assert role_of("gpu_id") == ("host", "infrastructure")
    assert role_of("pipeline_version") == ("pipeline", "integration")
    assert role_of("client_version") == ("client", "integration")
    assert role_of("tenant") == ("segment", "data")
    assert role_of("predict_type") == ("segment", "data")


def test_a_host_that_became_slow_is_a_latency_segment():
    requests = _requests(column="host", values=("h1", "h2", "h3", "h4"), noise=0.0)
    slow = (requests.host == "h2") & (requests.ts >= INCIDENT[0])
    requests.loc[slow, "latency_ms"] *= 4
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    found = {f.id: f for f in result.findings()}
    assert set(found) == {"infrastructure.latency_segment"}
    f = found["infrastructure.latency_segment"]
    assert f.evidence["value"] == "h2" and f.severity == "medium"
    base = requests[requests.ts < BASELINE[1]]
    assert result.slow_ms == pytest.approx(base.latency_ms.quantile(0.95))
    inc = requests[requests.ts >= INCIDENT[0]]
    mine = inc[inc.host == "h2"]
    assert f.evidence["slow_share"] == pytest.approx((mine.latency_ms > result.slow_ms).mean())
    # exact quantiles of the flagged value, per scope (numpy's default = quantile_cont)
    rows = result.table[(result.table["value"] == "h2")].set_index("scope")
    assert f.evidence["p99_ms"] == pytest.approx(np.quantile(mine.latency_ms, 0.99))
    assert rows.loc["case", "p50_ms"] == pytest.approx(
        np.quantile(requests[requests.host == "h2"].latency_ms, 0.5))
    assert rows.loc["baseline", "p99_ms"] == pytest.approx(
        np.quantile(base[base.host == "h2"].latency_ms, 0.99))
    assert result.table.loc[result.table["value"] == "h1", "p99_ms"].isna().all()


def test_plot_draws_the_slices():
    requests = _requests(bad=lambda k, v: v == "c2")
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    ax = result.plot()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "checkpoint=c2"
    assert ax.get_title() == "Failures by slice"
    frame = result.to_frame()
    assert (frame["diagnostic"] == ID).all() and len(frame) == len(result.table)


def test_registered():
    assert REGISTRY[ID] is failure_concentration


# ------------------------------------------------------------------------- partial cases
def test_http_status_alone_counts_failures():
    requests = _requests(bad=lambda k, v: v == "c2")
    requests["http_status"] = np.where(requests.status == "error", 503, 200)
    requests = requests.drop(columns="status")
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    assert [f.evidence["values"] for f in result.findings()] == [["c2"]]


def test_status_values_outside_the_schema_are_reported():
    requests = _requests(bad=lambda k, v: v == "c2")
    requests["status"] = requests["status"].map({"ok": "SUCCEED", "error": "FAILED"})
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    assert result.findings() == []
    gap = next(g for g in result.not_assessed if g.check == f"{ID}.status")
    assert "2880 requests" in gap.reason and "failed" in gap.reason.lower()


def test_latency_only_case_says_failures_are_not_assessed():
    requests = _requests().drop(columns="status")
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    assert any(g.check == f"{ID}.failures" for g in result.not_assessed)
    assert result.findings() == []
    assert not result.table.empty and result.table["failures"].sum() == 0
    # without a baseline, the slow threshold is the whole case's p95
    far = pd.Timestamp("2020-01-01T00:00Z")
    result = failure_concentration(make_case(requests=requests), (far, far + timedelta(days=1)),
                                   INCIDENT)
    assert result.slow_ms == pytest.approx(requests["latency_ms"].quantile(0.95))


@pytest.mark.parametrize("drop", [["checkpoint"], ["checkpoint", "latency_ms", "status"]])
def test_nothing_to_assess(drop):
    requests = _requests().drop(columns=drop)
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    assert result.table.empty and result.findings() == []
    assert [g.check for g in result.not_assessed][0] == ID
    result.plot()


def test_no_requests_and_tiny_cases_do_not_crash():
    con = make_case(metrics=pd.DataFrame({"ts": [T0], "name": ["x"], "value": [1.0]}))
    result = failure_concentration(con, BASELINE, INCIDENT)
    assert result.not_assessed[0].reason == "no requests"
    tiny = _requests(n=3)
    result = failure_concentration(make_case(requests=tiny), BASELINE, INCIDENT)
    assert result.findings() == [] and result.not_assessed
    result.plot()


OPTIONAL = ("status", "http_status", "error_type", "latency_ms", "checkpoint", "host",
            "client_version", "session")


@given(n=st.sampled_from([1, 3, 40, 400]),
       keep=st.sets(st.sampled_from(OPTIONAL)),
       windows=st.sampled_from(["normal", "empty_baseline", "empty_both", "edges", "tiny"]),
       statuses=st.sampled_from([("ok", "error"), ("ok",), ("SUCCEED", "FAILED"), (None,)]))
def test_any_subset_of_columns_and_windows_assesses_or_says_why(n, keep, windows, statuses):
    rng = np.random.default_rng(n)
    k = np.arange(n)
    full = pd.DataFrame({
        "request_id": [f"r{i}" for i in k], "ts": T0 + pd.to_timedelta(k * 86400 // n, unit="s"),
        "status": np.asarray(statuses, dtype=object)[k % len(statuses)],
        "http_status": np.where(k % 5 == 0, 500, 200), "error_type": np.where(
            k % 5 == 0, "internal", None), "latency_ms": rng.gamma(2.0, 10.0, n),
        "checkpoint": np.array(["a", "b"])[k % 2], "host": np.array(["h1", "h2", "h3"])[k % 3],
        "client_version": "c1", "session": [f"s{i}" for i in k]})
    frame = full[["request_id", "ts", *[c for c in OPTIONAL if c in keep]]]
    day = timedelta(days=1)
    base, inc = {
        "normal": ((T0, T0 + day / 2), (T0 + day / 2, T0 + day)),
        "empty_baseline": ((T0 - 2 * day, T0 - day), (T0, T0 + day)),
        "empty_both": ((T0 - 3 * day, T0 - 2 * day), (T0 - 2 * day, T0 - day)),
        "edges": ((T0 - day, T0), (T0 + day - timedelta(seconds=1), T0 + 2 * day)),
        "tiny": ((T0, T0 + timedelta(seconds=1)), (T0 + timedelta(seconds=1),
                                                   T0 + timedelta(seconds=2))),
    }[windows]
    result = failure_concentration(make_case(requests=frame), base, inc)
    if result.table.empty:
        assert result.not_assessed and result.not_assessed[0].check == ID
    outcome = {"http_status", "error_type"} & keep or (
        "status" in keep and statuses in (("ok", "error"), ("ok",)))
    if not outcome:  # nothing says whether a request failed: no failure is invented
        assert not any(f.id.endswith("failure_segment") for f in result.findings())
        assert result.table.empty or not result.table["failures"].sum()
    if "status" in keep and statuses == ("SUCCEED", "FAILED"):
        assert any(g.check == f"{ID}.status" for g in result.not_assessed)
    for finding in result.findings():
        assert finding.evidence.get("failures", 5) >= 5
    assert "session" not in set(result.table.get("attribute", []))
    import matplotlib.pyplot as plt

    plt.close(result.plot().figure)
    assert len(result.affected_slices()) == len(result._slices())
    assert set(result.signals().columns) == {"bucket_start", "signal", "value"}


# ------------------------------------------------------------------------- real data
ALWAYS_FAILING = {"M0013": 114, "M0061": 38, "M0055": 30, "M0017": 15}


def _alibaba(column: str):
    path = realdata("alibaba_genai_2026", "lora_request_trace.csv.gz")
    raw = pd.read_csv(path)
    frame = pd.DataFrame({
        "ts": pd.to_datetime(raw["gmt_create"], utc=True),
        # SUCCEED / FAILED are the outcomes; PENDING / PROCESSING have none yet
        "status": raw["predict_status"].map({"SUCCEED": "ok", "FAILED": "error"}),
        "latency_ms": raw["exec_time_seconds"] * 1000.0,
        column: raw["checkpoint_model_version_id"],
        "predict_type": raw["predict_type"], "group_id": raw["groupId"],
        "num_lora": raw["num_lora"], "prompt_length": raw["prompt_length"]})
    con = tk.connect()
    report = tk.load(con, frame, table="requests")
    assert report.rows_loaded == 26823
    return con, raw


@pytest.mark.parametrize("column", ["checkpoint_model_version_id", "model_version"])
def test_alibaba_request_log_always_failing_checkpoints(column):
    con, raw = _alibaba(column)
    assert raw["predict_status"].value_counts().to_dict() == {
        "SUCCEED": 26392, "FAILED": 398, "PENDING": 30, "PROCESSING": 3}
    baseline = ("2024-11-15T00:00Z", "2024-11-25T00:00Z")
    incident = ("2024-11-25T00:00Z", "2024-12-09T00:00Z")
    result = failure_concentration(con, baseline, incident)
    findings = {f.id: f for f in result.findings()}
    finding = findings["model.failure_segment"]
    assert finding.evidence["attribute"] == column
    assert set(ALWAYS_FAILING) <= set(finding.evidence["always_failing"])
    case = result.table[(result.table["scope"] == "case") & (result.table["attribute"] == column)]
    rows = case.set_index("value").loc[list(ALWAYS_FAILING)]
    assert rows["failures"].to_dict() == ALWAYS_FAILING
    assert (rows["outcomes"] == rows["failures"]).all() and rows["flagged"].all()
    assert rows["failure_share"].sum() == pytest.approx(197 / 398)
    assert pd.Timestamp(rows.loc["M0013", "first_failure"]) == \
        pd.Timestamp("2024-11-17 04:44:00", tz="UTC")
    assert finding.severity in ("medium", "high") and finding.statistic >= 197 / 398 * 0.5
    # also failing before the incident: chronic, dated by the first failure
    assert finding.evidence["status"] == ["chronic"]
    assert pd.Timestamp(finding.evidence["first_failure"]).year == 2024
    # groupId (4,247 tenants) is too many values to test; it is noted, not silently dropped
    assert "group_id" in set(result.skipped["attribute"])
    # the 33 PENDING / PROCESSING requests have no outcome and stay out of the rates
    assert case["outcomes"].sum() == 26790 and case["failures"].sum() == 398
    # with the windows outside the data, the whole case still shows them
    far = result_far = failure_concentration(con, ("2020-01-01T00:00Z", "2020-01-02T00:00Z"),
                                             ("2020-01-02T00:00Z", "2020-01-03T00:00Z"))
    assert set(ALWAYS_FAILING) <= set(
        {f.id: f for f in far.findings()}["model.failure_segment"].evidence["always_failing"])
    assert result_far.findings()[0].evidence["scope"] == "case"


def test_alibaba_latency_metric_file_has_no_status():
    path = realdata("alibaba_genai_2026", "model_predict_data_anon.csv.gz")
    raw = pd.read_csv(path)
    frame = pd.DataFrame({"ts": pd.to_datetime(raw["timestamp_anon"], unit="s", utc=True),
                          "latency_ms": raw["value"], "host": raw["container_ip"]})
    con = tk.connect()
    tk.load(con, frame, table="requests")
    span = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    middle = span[0] + (span[1] - span[0]) / 2
    result = failure_concentration(con, (span[0], middle),
                                   (middle, span[1] + timedelta(seconds=1)))
    assert any(g.check == f"{ID}.failures" for g in result.not_assessed)
    assert not any(f.id.endswith("failure_segment") for f in result.findings())
    assert "host" in set(result.table["attribute"])
    # 130 containers, each a latency test; no failure test without an outcome
    assert result.tested["case latency"] == raw["container_ip"].nunique() == 130
    assert result.tested["case"] == 0


def test_alibaba_request_log_through_the_shipped_mapping():
    path = realdata("alibaba_genai_2026", "lora_request_trace.csv.gz")
    con = tk.connect()
    report = tk.load(con, path, mapping="alibaba-genai")
    assert report.files[0].rows_loaded == 26823
    result = failure_concentration(con, ("2024-11-15T00:00Z", "2024-11-25T00:00Z"),
                                   ("2024-11-25T00:00Z", "2024-12-09T00:00Z"))
    finding = {f.id: f for f in result.findings()}["model.failure_segment"]
    assert finding.evidence["attribute"] == "checkpoint_model_version_id"
    assert finding.evidence["always_failing"] == list(ALWAYS_FAILING)
    # PENDING / PROCESSING (33 requests) are reported, not counted as outcomes
    gap = next(g for g in result.not_assessed if g.check == f"{ID}.status")
    assert gap.reason.startswith("33 requests")
