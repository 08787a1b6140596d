"""Memory pressure, OOM kills and leak slopes: numbers, injected modes, healthy periods, gaps."""

from __future__ import annotations

import json
from datetime import timedelta

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.memory import ID, memory_pressure

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=24)
END = CUT + timedelta(hours=24)
BASELINE = (T0, CUT)
INCIDENT = (CUT, END)
LIMIT = 16 * 2**30
GPU_TOTAL = 24 * 2**30


def _metrics(*, seed=0, hosts=4, leak=0.0, exhaustion=False, gpu=False, deploy=False,
             restart_events=True, limit=True):
    """Per-minute memory of ``hosts`` pods over 48 h: 40-46% of the limit, a daily swing of
    +-3% and 0.5% noise. ``leak``: in the incident memory climbs by ``leak`` of the limit per
    hour from 40% until 96%, then the pod is OOM-killed and restarts (saw-tooth; pods
    staggered by 40 min). ``exhaustion``: 97-99% from hour 1 to 4 of the incident with OOM
    kills on three pods. ``deploy``: a deploy at the incident start restarts every pod
    (memory warms up again in 10 minutes). ``gpu``: GPU memory preallocated at 92%."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(T0, END, freq="1min", inclusive="left")
    hours = ((ts - T0) / pd.Timedelta(hours=1)).to_numpy()
    frames, events = [], []
    for k in range(hosts):
        host = f"pod-{k}"
        share = 0.40 + 0.02 * k + 0.03 * np.cos(2 * np.pi * (hours % 24 - 18) / 24)
        share = share + rng.normal(0, 0.005, len(ts))
        if leak:
            t_since = None
            start = CUT + timedelta(minutes=40 * k)
            for i, t in enumerate(ts):
                if t < start:
                    continue
                if t_since is None:
                    t_since = t
                grown = 0.40 + leak * (t - t_since) / pd.Timedelta(hours=1)
                if grown >= 0.96:
                    events += [(t, "oom_kill", host), (t, "restart", host)]
                    t_since, grown = t, 0.40
                share[i] = grown + rng.normal(0, 0.003)
        if exhaustion:
            hot = (ts >= CUT + timedelta(hours=1)) & (ts < CUT + timedelta(hours=4))
            share = np.where(hot, 0.97 + rng.uniform(0, 0.02, len(ts)), share)
            if k < 3:
                for m in (70, 130, 190):
                    events.append((CUT + timedelta(minutes=m + 7 * k), "oom_kill", host))
        if deploy:
            events.append((CUT + timedelta(minutes=2 + k), "restart", host))
            since = (ts - (CUT + timedelta(minutes=2 + k))) / pd.Timedelta(minutes=1)
            warm = (since >= 0) & (since < 10)
            share = np.where(warm, share * (0.7 + 0.03 * since), share)
        frames.append(pd.DataFrame({"ts": ts, "host": host, "name": "memory_used_bytes",
                                    "value": share * LIMIT}))
        if limit:
            frames.append(pd.DataFrame({"ts": ts[::5], "host": host,
                                        "name": "memory_limit_bytes", "value": float(LIMIT)}))
        if gpu:
            frames.append(pd.DataFrame({"ts": ts, "host": host, "name": "gpu_memory_used_bytes",
                                        "value": (0.92 + rng.normal(0, 0.004, len(ts)))
                                        * GPU_TOTAL}))
            frames.append(pd.DataFrame({"ts": ts[::5], "host": host,
                                        "name": "gpu_memory_total_bytes",
                                        "value": float(GPU_TOTAL)}))
    if deploy:
        events.append((CUT, "deploy", None))
    events.append((T0 + timedelta(hours=7), "restart", "pod-1"))  # one restart in the baseline
    metrics = pd.concat(frames, ignore_index=True)
    events = pd.DataFrame(events, columns=["ts", "kind", "host"])
    if not restart_events:
        events = events[events["kind"] != "restart"]
    return metrics, events


@pytest.fixture(scope="module")
def leak_case():
    metrics, events = _metrics(leak=0.08)
    return metrics, events, memory_pressure(make_case(metrics=metrics, events=events),
                                            BASELINE, INCIDENT)


@pytest.fixture(scope="module")
def exhaustion_case():
    metrics, events = _metrics(exhaustion=True, gpu=True)
    n = 20_000
    ts = T0 + pd.to_timedelta(np.arange(n) * 48 * 3600 / n, unit="s")
    hot = (ts >= CUT + timedelta(hours=1)) & (ts < CUT + timedelta(hours=4))
    kinds = np.array(["CUDA_OOM", "OutOfMemoryError", "oom", "room_full", "validation_error"])
    error_type = np.where(np.arange(n) % 97 == 0, kinds[np.arange(n) % 5], None)
    error_type = np.where(hot & (np.arange(n) % 4 == 0), "CUDA_OOM", error_type)
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts,
                             "latency_ms": 50.0, "error_type": error_type,
                             "status": np.where(pd.isna(error_type), "ok", "error")})
    con = make_case(metrics=metrics, events=events, requests=requests)
    return metrics, events, requests, memory_pressure(con, BASELINE, INCIDENT)


def test_utilisation_matches_pandas(exhaustion_case):
    metrics, _, _, result = exhaustion_case
    window = np.where(metrics["ts"] < CUT, "baseline", "incident")
    used = metrics[metrics["name"].str.endswith("used_bytes")]
    limits = metrics[~metrics["name"].str.endswith("used_bytes")].groupby(
        ["host", "name"])["value"].max()
    expected = used.assign(window=window[used.index]).groupby(["host", "name", "window"])[
        "value"].max()
    table = result.table.set_index(["host", "kind", "window"])
    for (host, name, win), value in expected.items():
        kind = "gpu" if name.startswith("gpu") else "memory"
        limit_name = "gpu_memory_total_bytes" if kind == "gpu" else "memory_limit_bytes"
        row = table.loc[(host, kind, win)]
        assert row["max_used_bytes"] == pytest.approx(value)
        assert row["max_utilisation"] == pytest.approx(value / limits[(host, limit_name)])
    assert result.max_utilisation("incident", "memory") == pytest.approx(
        used[(window[used.index] == "incident") & (used["name"] == "memory_used_bytes")][
            "value"].max() / LIMIT)


def test_oom_and_restart_counts_by_hand(exhaustion_case):
    _, events, requests, result = exhaustion_case
    for name, (lo, hi) in (("baseline", BASELINE), ("incident", INCIDENT)):
        inside = events[(events["ts"] >= lo) & (events["ts"] < hi)]
        assert result.count(name, "oom_kills") == (inside["kind"] == "oom_kill").sum()
        assert result.count(name, "restarts") == (inside["kind"] == "restart").sum()
        req = requests[(requests["ts"] >= lo) & (requests["ts"] < hi)]
        oom = req["error_type"].isin(["CUDA_OOM", "OutOfMemoryError", "oom"]).sum()
        assert result.count(name, "oom_errors") == oom  # not room_full, not validation_error
        assert result.count(name, "requests") == len(req)


def test_exhaustion_fires_pressure_and_oom(exhaustion_case):
    *_, result = exhaustion_case
    found = {f.id: f for f in result.findings()}
    pressure = found["infrastructure.memory_pressure"]
    assert pressure.severity == "high" and pressure.statistic >= 0.97
    assert pressure.evidence["kind"] == "memory"  # GPU memory is high in both windows
    hot = CUT + timedelta(hours=1)
    assert abs(pd.Timestamp(pressure.onset) - hot) <= timedelta(minutes=5)
    assert result.refined_onsets == {"infrastructure.memory_pressure": pressure.onset}
    oom = found["infrastructure.oom_kills"]
    assert oom.severity == "high" and oom.statistic == 9
    assert oom.threshold == pytest.approx(0.5 / 24 * 24)
    assert oom.evidence["hosts"] == ["pod-0", "pod-1", "pod-2"]
    assert "infrastructure.memory_leak" not in found
    assert oom.to_dict()["evidence"]["oom_kills_incident"] == 9
    assert pressure.evidence["incident_buckets_at_pressure"] >= 10
    json.dumps([f.to_dict() for f in result.findings()])


def test_segment_slopes_match_polyfit(leak_case):
    metrics, events, result = leak_case
    used = metrics[metrics["name"] == "memory_used_bytes"]
    seg = result.segments
    checked = 0
    for host, samples in used.groupby("host"):
        cuts = sorted(events[(events["host"] == host) & events["kind"].isin(
            ["restart", "oom_kill"])]["ts"].unique())
        edges = [pd.Timestamp(T0), *cuts, pd.Timestamp(END)]
        mine = seg[seg["host"] == host].reset_index(drop=True)
        assert len(mine) == len(edges) - 1
        for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            part = samples[(samples["ts"] >= lo) & (samples["ts"] < hi)]
            x = ((part["ts"] - T0) / pd.Timedelta(hours=1)).to_numpy()
            y = part["value"].to_numpy()
            row = mine.iloc[k]
            assert row["samples"] == len(part)
            assert row["slope_bytes_per_hour"] == pytest.approx(np.polyfit(x, y, 1)[0],
                                                                rel=1e-6)
            assert row["r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
            assert row["first_bytes"] == y[0] and row["last_bytes"] == y[-1]
            assert row["max_bytes"] == y.max()
            checked += 1
    assert checked >= 4 * 4


def test_leak_fires_high(leak_case):
    _, _, result = leak_case
    found = {f.id: f for f in result.findings()}
    leak = found["infrastructure.memory_leak"]
    assert leak.severity == "high" and leak.statistic >= 0.5
    assert leak.evidence["completed_climbs"] >= 8
    assert leak.evidence["median_growth_share_per_hour"] == pytest.approx(0.08, rel=0.05)
    assert leak.evidence["leak_share_baseline"] == 0.0
    assert set(leak.evidence["hosts"]) == {"pod-0", "pod-1", "pod-2", "pod-3"}
    assert CUT <= pd.Timestamp(leak.onset) < CUT + timedelta(hours=3)
    climbing = result.segments[result.segments["climbs"]]
    assert set(climbing["ended_by"]) <= {"oom_kill", "restart", "open"}
    assert found["infrastructure.oom_kills"].severity == "high"
    json.dumps([f.to_dict() for f in result.findings()])


def test_leak_found_from_resets_without_restart_events():
    metrics, events = _metrics(leak=0.08, restart_events=False)
    events = events[events["kind"] == "deploy"]  # no oom_kill / restart events at all
    result = memory_pressure(make_case(metrics=metrics, events=events), BASELINE, INCIDENT)
    leak = next(f for f in result.findings() if f.id == "infrastructure.memory_leak")
    assert leak.severity == "high"
    assert "reset" in set(result.segments["ended_by"])


@pytest.mark.parametrize("kwargs", [
    dict(),                          # noise and a daily swing
    dict(gpu=True, seed=4),          # GPU memory preallocated at 92% in both windows
    dict(deploy=True, seed=2),       # a deploy restarts every pod at the incident start
])
def test_healthy_memory_gives_no_high_finding(kwargs):
    metrics, events = _metrics(**kwargs)
    result = memory_pressure(make_case(metrics=metrics, events=events), BASELINE, INCIDENT)
    assert [f.severity for f in result.findings() if f.severity in ("high", "medium")] == []
    if kwargs.get("deploy"):
        assert result.count("incident", "restarts") == 4
        assert result.count("incident", "unplanned_restarts") == 0


def test_signals_plot_and_frame(leak_case):
    _, _, result = leak_case
    signals = result.signals()
    assert list(signals.columns) == ["bucket_start", "signal", "value"]
    assert {"memory.max_utilisation", "memory.oom_kills", "memory.restarts"} <= set(
        signals["signal"])
    kills = signals[signals["signal"] == "memory.oom_kills"]["value"].sum()
    assert kills == result.count("baseline", "oom_kills") + result.count("incident", "oom_kills")
    ax = result.plot()
    assert ax.get_title() == "Memory against its limit"
    frame = result.to_frame()
    assert (frame["diagnostic"] == ID).all() and "max_utilisation" in frame
    assert len(result.sql) >= 2 and "covar_samp" in " ".join(result.sql).lower()
    assert "leak" in result._repr_html_()


def test_missing_inputs_are_not_assessed():
    result = memory_pressure(make_case(), BASELINE, INCIDENT)
    assert not result.findings() and len(result.not_assessed) == 2
    assert {g.check for g in result.not_assessed} == {ID, f"{ID}.oom"}
    assert result.plot() is not None and result.signals().empty
    # Events only: OOM kills are still measured.
    _, events = _metrics(exhaustion=True)
    result = memory_pressure(make_case(events=events), BASELINE, INCIDENT)
    assert [f.id for f in result.findings()] == ["infrastructure.oom_kills"]
    assert [g.check for g in result.not_assessed] == [ID]
    # No limit series: no utilisation, but slopes (judged on their first value) still run.
    metrics, events = _metrics(leak=0.08, limit=False)
    result = memory_pressure(make_case(metrics=metrics, events=events), BASELINE, INCIDENT)
    assert f"{ID}.pressure" in {g.check for g in result.not_assessed}
    ids = {f.id: f.severity for f in result.findings()}
    assert "infrastructure.memory_pressure" not in ids
    assert ids["infrastructure.memory_leak"] in ("medium", "high")
    assert "GiB" in result.plot().get_ylabel()
    # Metrics without any memory series.
    other = pd.DataFrame({"ts": [T0, CUT], "host": "pod-0", "name": "cpu_utilization",
                          "value": [0.3, 0.4]})
    result = memory_pressure(make_case(metrics=other), BASELINE, INCIDENT)
    assert result.table.empty and any("memory_used_bytes" in g.reason
                                      for g in result.not_assessed)


def test_a_release_that_brings_a_leak_starts_its_first_climb():
    # a service release at CUT brings a leak (memory does not drop at the restart: it was
    # low); two OOM saw-teeth, then a rollback stops it. The incident window opens late (at
    # the first pressure), so without the release as a restart the first climb is glued to a
    # day of flat memory and the leak's climbing share falls below one half.
    rng = np.random.default_rng(3)
    ts = pd.date_range(T0, END, freq="1min", inclusive="left")
    frames, events = [], [(CUT, "deploy", "service", None)]
    rollback = CUT + timedelta(hours=15)
    events.append((rollback, "rollback", "service", None))
    for k in range(4):
        host = f"pod-{k}"
        share = 0.40 + rng.normal(0, 0.003, len(ts))
        since = CUT
        for i, t in enumerate(ts):
            if t < CUT or t >= rollback:
                continue
            grown = 0.40 + 0.08 * (t - since) / pd.Timedelta(hours=1)
            if grown >= 0.96 + 0.005 * k:
                events += [(t, "oom_kill", "infra", host), (t, "restart", "infra", host)]
                since, grown = t, 0.40
            share[i] += grown - 0.40
        frames.append(pd.DataFrame({"ts": ts, "host": host, "name": "memory_used_bytes",
                                    "value": share * LIMIT}))
        frames.append(pd.DataFrame({"ts": ts[::5], "host": host,
                                    "name": "memory_limit_bytes", "value": float(LIMIT)}))
    events = pd.DataFrame(events, columns=["ts", "kind", "artifact", "host"])
    con = make_case(metrics=pd.concat(frames, ignore_index=True), events=events)
    result = memory_pressure(con, BASELINE, (CUT + timedelta(hours=6), END))
    leak = next(f for f in result.findings() if f.id == "infrastructure.memory_leak")
    assert leak.severity == "high" and leak.statistic >= 0.5
    assert CUT <= pd.Timestamp(leak.onset) < CUT + timedelta(minutes=5)


def _as_share(metrics, *, percent=False):
    """The bytes series of ``metrics`` published as a share of the limit instead (what
    Alibaba's pod_memory_util gives), in percent or as a fraction; no limit series."""
    used = metrics[metrics["name"] == "memory_used_bytes"]
    factor = 100.0 if percent else 1.0
    return used.assign(name="memory_utilization", value=used["value"] / LIMIT * factor)


@pytest.fixture(scope="module")
def share_cases():
    metrics, events = _metrics(exhaustion=True, hosts=3)
    out = {"bytes": (metrics, memory_pressure(make_case(metrics=metrics, events=events),
                                              BASELINE, INCIDENT))}
    for name, percent in (("fraction", False), ("percent", True)):
        shares = _as_share(metrics, percent=percent)
        out[name] = (shares, memory_pressure(make_case(metrics=shares, events=events),
                                             BASELINE, INCIDENT))
    return out


def test_a_memory_share_metric_is_read_as_host_utilisation(share_cases):
    metrics, result = share_cases["fraction"]
    assert result.share_scale == 1.0
    rows = result.table[result.table["kind"] == "memory_share"]
    # independent: the maximum share per host and window, with pandas
    frame = metrics.copy()
    frame["window"] = np.where(frame["ts"] < CUT, "baseline", "incident")
    expected = frame.groupby(["host", "window"])["value"].max()
    got = rows.set_index(["host", "window"])["max_utilisation"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert (rows["limit_bytes"] == 1.0).all()
    pressure = next(f for f in result.findings() if f.id == "infrastructure.memory_pressure")
    assert pressure.evidence["kind"] == "memory_share" and pressure.severity == "high"
    assert pressure.summary.startswith(f"host memory reached {expected.max():.0%}")
    assert pressure.statistic == pytest.approx(expected.xs("incident", level="window").max())
    # the onset refined on the raw shares: the first sample at >= 0.9 in the incident
    hot = metrics[(metrics["ts"] >= CUT) & (metrics["value"] >= 0.9)]["ts"].min()
    assert pressure.onset == hot
    assert not [g for g in result.not_assessed if g.check == ID]
    assert "memory.host_max_utilisation" in set(result.signals()["signal"])


def test_percent_and_fraction_shares_and_bytes_agree(share_cases):
    _, bytes_result = share_cases["bytes"]
    _, fraction = share_cases["fraction"]
    _, percent = share_cases["percent"]
    assert percent.share_scale == 100.0
    pd.testing.assert_frame_equal(fraction.table, percent.table)
    findings = {name: {f.id: (f.severity, round(f.statistic, 9), f.onset)
                       for f in r.findings()}
                for name, r in (("fraction", fraction), ("percent", percent))}
    assert findings["fraction"] == findings["percent"]
    by_bytes = {f.id: (f.severity, round(f.statistic, 9), f.onset)
                for f in bytes_result.findings()}
    assert by_bytes["infrastructure.memory_pressure"] == \
        findings["fraction"]["infrastructure.memory_pressure"]


def test_the_alibaba_mapping_name_for_pod_memory_util_is_read():
    import tomllib
    from pathlib import Path

    import toolkit
    from toolkit.diagnose.infra.memory import SHARE_NAMES

    folder = Path(toolkit.__file__).parent / "load" / "mappings"
    spec = tomllib.loads((folder / "alibaba-genai.toml").read_text())
    name = spec["files"]["pod_memory_util*"]["columns"]["name"]["value"]
    assert name in SHARE_NAMES


def test_queue_depth_is_evidence_of_the_pressure():
    metrics, events = _metrics(exhaustion=True, hosts=2)
    shares = _as_share(metrics)
    ts = shares["ts"].drop_duplicates()
    hot = (ts >= CUT + timedelta(hours=1)) & (ts < CUT + timedelta(hours=4))
    rng = np.random.default_rng(3)
    queue = pd.concat([pd.DataFrame({"ts": ts, "host": f"pod-{k}", "name": "queue_depth",
                                     "value": np.where(hot, 40.0, 2.0)
                                     + rng.integers(0, 3, len(ts))}) for k in range(2)])
    queue = pd.concat([queue, pd.DataFrame({"ts": [CUT], "host": [None],  # no host: left out
                                            "name": ["queue_depth"], "value": [1e6]})])
    result = memory_pressure(make_case(metrics=pd.concat([shares, queue]), events=events),
                             BASELINE, INCIDENT)
    kept = queue[queue["host"].notna()].assign(
        window=lambda f: np.where(f["ts"] < CUT, "baseline", "incident"))
    expected = kept.groupby("window")["value"].agg(["count", "mean", "max"])
    got = result.queue.set_index("window")
    assert got["samples"].tolist() == expected["count"].tolist()
    np.testing.assert_allclose(got["mean_queue_depth"], expected["mean"])
    np.testing.assert_allclose(got["max_queue_depth"], expected["max"])
    pressure = next(f for f in result.findings() if f.id == "infrastructure.memory_pressure")
    assert pressure.evidence["queue_depth_mean_incident"] == pytest.approx(
        expected.loc["incident", "mean"])
    assert pressure.evidence["queue_depth_max_incident"] == expected.loc["incident", "max"] \
        == 42.0  # the 1e6 sample without a host is not counted
    assert result.headline()["mean queue depth baseline"] == pytest.approx(
        expected.loc["baseline", "mean"])
    json.dumps(pressure.to_dict())  # evidence stays JSON-friendly
    # without a queue series the evidence says so with missing values, not zeros
    plain = memory_pressure(make_case(metrics=shares, events=events), BASELINE, INCIDENT)
    assert plain.queue.empty and "mean queue depth incident" not in plain.headline()
    bare = next(f for f in plain.findings() if f.id == "infrastructure.memory_pressure")
    assert bare.to_dict()["evidence"]["queue_depth_mean_incident"] is None


def test_time_between_kills_tells_exhaustion_from_a_leak(exhaustion_case, leak_case):
    # exhaustion: three kills per pod an hour apart; the leak at 8% of the limit per hour
    # refills from 40% to 96% in 7 h before each kill (issue 22: memory exhaustion read as a
    # leak from its OOM restarts)
    *_, result = exhaustion_case
    oom = {f.id: f for f in result.findings()}["infrastructure.oom_kills"]
    assert oom.evidence["median_minutes_between_kills"] == pytest.approx(60.0)
    _, events, result = leak_case
    oom = {f.id: f for f in result.findings()}["infrastructure.oom_kills"]
    kills = events[(events["kind"] == "oom_kill") & (events["ts"] >= CUT)].sort_values("ts")
    expected = kills.groupby("host")["ts"].diff().dropna().median() / pd.Timedelta(minutes=1)
    assert oom.evidence["median_minutes_between_kills"] == pytest.approx(expected)
    assert expected >= (0.96 - 0.40) / 0.08 * 60 - 2
