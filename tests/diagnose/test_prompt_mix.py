"""data.prompt_mix on small hand-built generative cases, checked against scipy / numpy."""

from __future__ import annotations

import importlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

import toolkit as tk
from toolkit.diagnose import run_diagnostics

pm = importlib.import_module("toolkit.diagnose.data.prompt_mix")

T0 = pd.Timestamp("2026-03-01", tz="UTC")
BASELINE = (T0, T0 + pd.Timedelta("5h"))
INCIDENT = (T0 + pd.Timedelta("5h"), T0 + pd.Timedelta("10h"))


def _case(tmp_path, frame: pd.DataFrame, **tables: pd.DataFrame):
    con = tk.connect(tmp_path / "case.duckdb")
    for name, table in {"requests": frame, **tables}.items():
        report = tk.load(con, table, table=name)
        assert report.rows_rejected == 0
    return con


def _requests(base_tokens, inc_tokens, *, base_adapters=None, inc_adapters=None,
              output=None) -> pd.DataFrame:
    n_b, n_i = len(base_tokens), len(inc_tokens)
    ts = list(T0 + pd.to_timedelta(np.linspace(0, 5 * 3600 - 1, n_b), unit="s")) + \
        list(T0 + pd.Timedelta("5h") + pd.to_timedelta(np.linspace(0, 5 * 3600 - 1, n_i),
                                                         unit="s"))
    frame = pd.DataFrame({"request_id": [f"r{k}" for k in range(n_b + n_i)], "ts": ts,
                          "input_tokens": np.concatenate([base_tokens, inc_tokens])})
    if base_adapters is not None:
        frame["adapter"] = list(base_adapters) + list(inc_adapters)
    if output is not None:
        frame["output_tokens"] = output
    return frame


def _hand_psi(b: np.ndarray, i: np.ndarray) -> tuple[float, float]:
    """PSI and JS on the baseline's decile bins, right-closed, computed here from scratch."""
    edges = np.unique(np.quantile(b, np.linspace(0.1, 0.9, 9)))

    def counts(x: np.ndarray) -> np.ndarray:
        inner = [((x > lo) & (x <= hi)).sum() for lo, hi in zip(edges[:-1], edges[1:],
                                                                 strict=True)]
        return np.array([(x <= edges[0]).sum(), *inner, (x > edges[-1]).sum()], dtype=float)

    cb, ci = counts(b), counts(i)
    pb, pi = np.maximum(cb / cb.sum(), 1e-4), np.maximum(ci / ci.sum(), 1e-4)
    return float(np.sum((pi - pb) * np.log(pi / pb))), float(
        distance.jensenshannon(cb / cb.sum(), ci / ci.sum(), base=2))


@pytest.fixture
def shifted(tmp_path):
    rng = np.random.default_rng(7)
    b = rng.lognormal(6.0, 0.5, 400).round().astype(int)
    i = rng.lognormal(6.6, 0.5, 400).round().astype(int)
    ab = rng.choice(["chat", "code"], 400, p=[0.7, 0.3])
    ai = rng.choice(["chat", "code", "summarise"], 400, p=[0.3, 0.6, 0.1])
    out = np.concatenate([rng.integers(100, 200, 400), rng.integers(100, 200, 400)])
    frame = _requests(b, i, base_adapters=ab, inc_adapters=ai, output=out)
    return _case(tmp_path, frame), b, i, ab, ai


def test_length_statistics_equal_scipy_and_hand_computation(shifted):
    con, b, i, _, _ = shifted
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    row = r.row("input_tokens")
    psi, js = _hand_psi(b, i)
    assert row["psi"] == pytest.approx(psi, rel=1e-12)
    assert row["js"] == pytest.approx(js, rel=1e-12)
    ks = stats.ks_2samp(b, i, method="asymp")
    assert row["ks"] == pytest.approx(ks.statistic, abs=1e-12)
    assert row["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-6)
    assert row["mean_baseline"] == pytest.approx(b.mean())
    assert row["p90_incident"] == pytest.approx(np.quantile(i, 0.9))
    assert row["p50_baseline"] == pytest.approx(np.median(b))


def test_mix_statistics_equal_scipy(shifted):
    con, _, _, ab, ai = shifted
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    row = r.row("adapter")
    table = pd.crosstab(np.r_[["b"] * len(ab), ["i"] * len(ai)], np.r_[ab, ai])
    chi = stats.chi2_contingency(table.to_numpy(), correction=False)
    assert row["chi2"] == pytest.approx(chi.statistic, rel=1e-12)
    assert row["pvalue"] == pytest.approx(chi.pvalue, rel=1e-9)
    assert row["dof"] == chi.dof == 2
    p, q = table.loc["b"].to_numpy(float), table.loc["i"].to_numpy(float)
    assert row["js"] == pytest.approx(distance.jensenshannon(p / p.sum(), q / q.sum(), base=2))
    assert row["unseen_share"] == pytest.approx(np.mean(ai == "summarise"))


def test_findings_fire_on_a_prompt_shift_with_no_artifact_change(shifted):
    con = shifted[0]
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    found = {f.id: f for f in r.findings()}
    assert set(found) == {"data.prompt_length_shift", "data.mix_shift"}
    length = found["data.prompt_length_shift"]
    assert length.severity == "high" and length.evidence["artifact_changed"] is False
    assert length.evidence["length_ratio"] > 1.5
    # output lengths come from the same distribution in both windows: they do not follow
    assert length.evidence["output_follows"] is False
    assert abs(length.evidence["output_ratio"] - 1) < 0.1
    mix = found["data.mix_shift"]
    assert mix.evidence["attribute"] == "adapter"
    assert {m["value"] for m in mix.evidence["movers"][:2]} == {"chat", "code"}
    # the shift is dated inside the incident, not in the baseline
    assert length.onset is not None and length.onset >= BASELINE[1] - timedelta(hours=1)


def test_timeline_bucket_psi_and_means_match_pandas(shifted):
    con, b, i, _, _ = shifted
    r = pm.prompt_mix(con, BASELINE, INCIDENT, bucket=timedelta(hours=1))
    frame = con.execute("SELECT ts, input_tokens, output_tokens FROM requests").df()
    frame["bucket"] = frame["ts"].dt.floor("1h")
    means = frame.groupby("bucket")["input_tokens"].mean()
    t = r.timeline.set_index("bucket_start")
    assert np.allclose(t["input_mean"].to_numpy(), means.to_numpy())
    assert t["requests"].sum() == 800
    seventh = frame[frame["bucket"] == T0 + pd.Timedelta("7h")]["input_tokens"].to_numpy()
    assert t.loc[T0 + pd.Timedelta("7h"), "input_psi"] == pytest.approx(
        _hand_psi(b, seventh)[0], rel=1e-9)
    assert t.loc[T0 + pd.Timedelta("7h"), "js_adapter"] > 0.1
    # the bucket's adapter mix against the baseline's, as scipy computes it
    adapters = con.execute("SELECT ts, adapter FROM requests").df()
    in_bucket = adapters[adapters["ts"].dt.floor("1h") == T0 + pd.Timedelta("7h")]
    base = adapters[adapters["ts"] < BASELINE[1]]["adapter"].value_counts()
    now = in_bucket["adapter"].value_counts().reindex(base.index.union(
        in_bucket["adapter"].unique()), fill_value=0)
    base = base.reindex(now.index, fill_value=0)
    assert t.loc[T0 + pd.Timedelta("7h"), "js_adapter"] == pytest.approx(
        distance.jensenshannon(base / base.sum(), now / now.sum(), base=2), rel=1e-12)
    assert t.loc[T0 + pd.Timedelta("1h"), "input_psi"] < 0.25


def test_healthy_case_has_no_finding(tmp_path):
    rng = np.random.default_rng(3)
    b = rng.lognormal(6.0, 0.5, 400).round().astype(int)
    i = rng.lognormal(6.0, 0.5, 400).round().astype(int)
    ab = rng.choice(["chat", "code"], 400, p=[0.7, 0.3])
    ai = rng.choice(["chat", "code"], 400, p=[0.7, 0.3])
    con = _case(tmp_path, _requests(b, i, base_adapters=ab, inc_adapters=ai))
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    assert r.findings() == []
    assert r.row("input_tokens")["psi"] < 0.1 and r.row("adapter")["js"] < 0.1


def test_release_is_reported_as_artifact_change(tmp_path):
    rng = np.random.default_rng(5)
    b = rng.integers(100, 200, 300)
    i = rng.integers(600, 900, 300)
    frame = _requests(b, i)
    frame["model_version"] = ["v1"] * 300 + ["v1"] * 150 + ["v2"] * 150
    events = pd.DataFrame({"ts": [T0 + pd.Timedelta("5h30min"), T0 + pd.Timedelta("1h")],
                           "kind": ["deploy", "deploy"], "artifact": ["model", "model"],
                           "version": ["v2", "v1"]})
    con = _case(tmp_path, frame, events=events)
    f = next(f for f in pm.prompt_mix(con, BASELINE, INCIDENT).findings()
             if f.id == "data.prompt_length_shift")
    assert f.evidence["artifact_changed"] is True
    assert f.evidence["new_versions"] == {"model_version": ["v2"]}
    # the deploy inside the baseline is not a change between the windows
    assert [e["version"] for e in f.evidence["events"]] == ["v2"]


def test_missing_columns_are_not_assessed(tmp_path):
    ts = T0 + pd.to_timedelta(np.arange(100) * 360, unit="s")
    con = _case(tmp_path, pd.DataFrame({"request_id": range(100), "ts": ts,
                                        "latency_ms": 1.0, "client_version": "c1"}))
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    assert r.table.empty and r.findings() == []
    assert "no generative request" in r.not_assessed[0].reason


def test_classifier_requests_are_not_read(tmp_path):
    """A case serving a classifier and a generative endpoint: only the token-carrying rows
    count (the classifier's client mix moved; the generative one did not)."""
    rng = np.random.default_rng(2)
    gen = _requests(rng.integers(100, 200, 300), rng.integers(100, 200, 300),
                    base_adapters=["a"] * 300, inc_adapters=["a"] * 300)
    gen["client_version"] = "g1"
    cls = gen[["ts"]].copy()
    cls["request_id"] = [f"c{k}" for k in range(600)]
    cls["client_version"] = ["c1"] * 300 + ["c2"] * 300
    con = _case(tmp_path, pd.concat([gen, cls], ignore_index=True))
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    assert r.findings() == [] and r.row("client_version")["n_incident"] == 300


def test_mix_only_case_says_length_not_assessed(tmp_path):
    ts = T0 + pd.to_timedelta(np.arange(200) * 180, unit="s")
    adapters = ["a"] * 100 + ["b"] * 100
    con = _case(tmp_path, pd.DataFrame({"request_id": range(200), "ts": ts,
                                        "output_tokens": 50, "adapter": adapters}))
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    assert [g.check for g in r.not_assessed] == ["data.prompt_mix:length"]
    assert [f.id for f in r.findings()] == ["data.mix_shift"]
    assert r.findings()[0].evidence["unseen_share"] == 1.0


def test_id_like_attribute_is_not_a_mix(tmp_path):
    rng = np.random.default_rng(1)
    frame = _requests(rng.integers(100, 200, 300), rng.integers(100, 200, 300))
    frame["endpoint"] = [f"e{k}" for k in range(600)]
    r = pm.prompt_mix(_case(tmp_path, frame), BASELINE, INCIDENT)
    assert r.row("endpoint") is None
    assert any("endpoint has 600 distinct" in g.reason for g in r.not_assessed)


def test_registered_and_run_with_the_others(shifted):
    con = shifted[0]
    d = run_diagnostics(con, BASELINE, INCIDENT, ids=["data.prompt_mix"])
    assert {f.id for f in d["data.prompt_mix"].findings()} == {"data.prompt_length_shift",
                                                               "data.mix_shift"}


def test_quantiles_from_counts_match_numpy():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 40, 997)
    values, counts = np.unique(x, return_counts=True)
    levels = np.linspace(0, 1, 21)
    assert np.allclose(pm.quantiles_from_counts(values, counts, levels), np.quantile(x, levels))


def test_a_client_rollout_is_a_release_not_a_mix_shift(tmp_path):
    """Clients moving to a new version (new values in the incident) are a rollout, listed in
    new_versions; the same clients' shares moving among known versions are a mix shift. (A
    healthy simulated period with a client rollout was read as a mix shift.)"""
    rng = np.random.default_rng(4)
    frame = _requests(rng.integers(100, 200, 300), rng.integers(100, 200, 300))
    # the rollout starts in the baseline's last minutes: 1 of its 300 requests
    frame["client_version"] = ["web/1.0"] * 299 + ["web/1.1"] * 201 + ["web/1.0"] * 100
    r = pm.prompt_mix(_case(tmp_path, frame), BASELINE, INCIDENT)
    row = r.row("client_version")
    assert row["js"] > 0.5 and r.findings() == []
    assert row["unseen_share"] == 0 and row["emerging_share"] == pytest.approx(200 / 300)
    frame["client_version"] = ["web/1.0"] * 250 + ["mobile/2.0"] * 50 + \
        ["web/1.0"] * 100 + ["mobile/2.0"] * 200
    (tmp_path / "b").mkdir()
    r = pm.prompt_mix(_case(tmp_path / "b", frame), BASELINE, INCIDENT)
    [f] = r.findings()
    assert f.id == "data.mix_shift" and f.evidence["attribute"] == "client_version"


def test_batch_transform_rows_are_not_interactive_traffic(tmp_path):
    """A nightly batch-transform job (``endpoint = 'batch-transform:<job>'``) in the incident
    with long documents is not a prompt or mix shift of the served traffic: its rows are not
    read (the old code read them: a prompt-length shift and an endpoint mix shift)."""
    rng = np.random.default_rng(4)
    chat = _requests(rng.integers(100, 200, 300), rng.integers(100, 200, 300))
    chat["endpoint"] = "chat"
    batch = pd.DataFrame({"request_id": [f"b{k}" for k in range(300)],
                          "ts": T0 + pd.Timedelta("7h") + pd.to_timedelta(np.arange(300),
                                                                         unit="s"),
                          "input_tokens": rng.integers(3000, 6000, 300),
                          "endpoint": "batch-transform:nightly-2026-03-01"})
    con = _case(tmp_path, pd.concat([chat, batch], ignore_index=True))
    r = pm.prompt_mix(con, BASELINE, INCIDENT)
    assert r.findings() == []
    row = r.row("input_tokens")
    assert (row["n_baseline"], row["n_incident"]) == (300, 300)
    expected = np.asarray(chat["input_tokens"][300:], dtype=float)
    assert row["mean_incident"] == pytest.approx(expected.mean(), rel=1e-12)
    assert r.row("endpoint")["n_incident"] == 300
    assert int(r.timeline["requests"].sum()) == 600


def test_a_case_of_batch_transform_rows_only_is_not_assessed(tmp_path):
    rng = np.random.default_rng(6)
    frame = _requests(rng.integers(100, 200, 300), rng.integers(100, 200, 300))
    frame["endpoint"] = "batch-transform:nightly"
    r = pm.prompt_mix(_case(tmp_path, frame), BASELINE, INCIDENT)
    assert r.findings() == [] and r.table.empty
    reasons = " ".join(g.reason for g in r.not_assessed)
    assert "batch-transform rows are not read" in reasons
