"""Accelerator faults: a stuck GPU utilisation metric and GPU error alerts, against hand-built
fleets (and what must not fire: an idle fleet, an idle GPU, a GPU on a host that served
nothing, alerts that are not about GPUs)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from tests.conftest import realdata
from tests.diagnose.conftest import make_case
from toolkit.diagnose.infra.accelerators import FLAT_RATIO, ID, accelerator_faults

T0 = pd.Timestamp("2026-03-01T00:00Z")
CUT = T0 + timedelta(hours=24)
END = CUT + timedelta(hours=12)
BASELINE, INCIDENT = (T0, CUT), (CUT, END)
FAULT = CUT + timedelta(hours=3, minutes=17)
HOSTS = [f"gpu-{k}" for k in range(6)]
BUCKET = timedelta(hours=1)


def _metrics(*, stuck=None, idle=None, fleet_idle=False, gpus=1, seed=0):
    """One sample a minute per host and GPU: utilisation around 0.5 (sd 0.15). ``stuck``:
    (host, gpu) reads 0.0 from FAULT on; ``idle``: that host reads 0.0 throughout;
    ``fleet_idle``: every GPU reads 0.0 from FAULT on."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(T0, END, freq="min", inclusive="left")
    frames = []
    for host in HOSTS:
        for gpu in range(gpus):
            util = np.clip(0.5 + 0.15 * rng.standard_normal(len(ts)), 0, 1)
            if stuck == (host, gpu) or fleet_idle:
                util[ts >= FAULT] = 0.0
            if idle == host:
                util[:] = 0.0
            frames.append(pd.DataFrame({"ts": ts, "host": host, "name": "gpu_utilization",
                                        "value": util,
                                        "labels": json.dumps({"gpu": str(gpu)})}))
    return pd.concat(frames, ignore_index=True)


def _requests(*, silent=None):
    ts = pd.date_range(T0, END, freq="20s", inclusive="left")
    host = np.array(HOSTS)[np.arange(len(ts)) % len(HOSTS)]
    keep = host != silent if silent is not None else np.ones(len(ts), bool)
    keep |= ts < CUT
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(keep.sum())], "ts": ts[keep],
                         "host": host[keep], "latency_ms": 50.0})


def _alert(ts, host, **detail):
    return {"ts": ts, "kind": "alert", "artifact": "infra", "host": host,
            "detail": json.dumps(detail)}


def _run(con):
    return accelerator_faults(con, BASELINE, INCIDENT, bucket=BUCKET)


def test_stuck_gpu_and_xid_alert_make_a_high_finding_with_the_exact_onset():
    events = pd.DataFrame([_alert(FAULT + timedelta(minutes=6), "gpu-2", alert="GPUXidError",
                                  xid=79, gpu="0"),
                           _alert(CUT + timedelta(hours=1), "gpu-4", alert="HighLatencyP99")])
    metrics = _metrics(stuck=("gpu-2", 0))
    con = make_case(metrics=metrics, requests=_requests(), events=events)
    result = _run(con)
    [finding] = result.findings()
    assert finding.id == "infrastructure.accelerator_fault"
    assert finding.severity == "high"
    assert finding.evidence["host"] == "gpu-2" and finding.evidence["gpu"] == "0"
    assert finding.evidence["alerts"] == 1  # the latency alert is not a GPU alert
    assert "Xid 79" in finding.evidence["alert_names"]
    # the step is dated to the sample (one a minute), not to its hour bucket
    assert abs(finding.onset - FAULT) <= timedelta(minutes=1)
    assert finding.onset != FAULT.floor("h")
    # the table's numbers, by hand with pandas: the baseline median of hourly standard
    # deviations, and the level and flatness of the stuck run
    row = result.table.set_index("host").loc["gpu-2"]
    own = metrics[(metrics.host == "gpu-2") & (metrics.ts < CUT)]
    hourly = own.groupby(own.ts.dt.floor("h"))["value"].std(ddof=0)
    assert row["baseline_std"] == pytest.approx(hourly.median(), rel=1e-9)
    assert row["level"] == pytest.approx(0.0, abs=1e-12)
    assert row["flatness"] == pytest.approx(0.0, abs=1e-12)
    assert row["longest_run"] == 8  # 04:00 to 12:00 on the incident day: whole flat hours
    assert result.table["stuck"].sum() == 1
    assert not result.not_assessed


def test_two_gpus_on_a_host_only_the_stuck_one_is_named():
    con = make_case(metrics=_metrics(stuck=("gpu-1", 1), gpus=2), requests=_requests())
    [finding] = _run(con).findings()
    assert finding.severity == "medium"  # stuck, no alert
    assert (finding.evidence["host"], finding.evidence["gpu"]) == ("gpu-1", "1")
    table = _run(con).table
    assert table[(table.host == "gpu-1") & (table.gpu == "0")]["stuck"].item() is False


@pytest.mark.parametrize("case", ["fleet idle", "idle all along", "host served nothing",
                                  "no fault"])
def test_what_is_not_a_stuck_gpu(case):
    metrics = {"fleet idle": _metrics(fleet_idle=True), "idle all along": _metrics(idle="gpu-3"),
               "host served nothing": _metrics(stuck=("gpu-3", 0)),
               "no fault": _metrics()}[case]
    requests = _requests(silent="gpu-3" if case == "host served nothing" else None)
    result = _run(make_case(metrics=metrics, requests=requests))
    assert not result.findings()
    assert not result.table["stuck"].any()
    if case == "host served nothing":  # flat, but for a reason: its host took no traffic
        row = result.table.set_index("host").loc["gpu-3"]
        assert row["longest_run"] == 8 and row["requests"] == 0


def test_gpu_alerts_alone_new_or_chronic():
    reasons = [_alert(CUT + timedelta(hours=2), "gpu-5", reason="GPU has fallen off the bus"),
               _alert(CUT + timedelta(hours=2), "gpu-0", alert="DCGM ECC double-bit error")]
    chronic = [_alert(T0 + timedelta(hours=5), "gpu-0", alert="DCGM ECC double-bit error")]
    con = make_case(metrics=_metrics(), events=pd.DataFrame(reasons + chronic))
    result = _run(con)
    suspects = result.suspects().set_index("host")
    assert suspects.loc["gpu-5", "severity"] == "medium"  # new on that host
    assert suspects.loc["gpu-0", "severity"] == "low"     # it had them in the baseline too
    assert suspects.loc["gpu-0", "baseline_alerts"] == 1
    [finding] = result.findings()
    assert finding.evidence["host"] == "gpu-5" and finding.onset == CUT + timedelta(hours=2)


def test_without_metrics_or_events_it_says_what_it_could_not_assess():
    result = _run(make_case(requests=_requests()))
    assert not result.findings()
    checks = {gap.check for gap in result.not_assessed}
    assert checks == {f"{ID}.alerts", f"{ID}.utilization"}
    assert result.plot() is not None


def test_flat_ratio_is_the_threshold_reported():
    con = make_case(metrics=_metrics(stuck=("gpu-0", 0)), requests=_requests())
    [finding] = _run(con).findings()
    assert finding.threshold == FLAT_RATIO and finding.statistic < FLAT_RATIO
    assert _run(con).plot() is not None


def test_without_hosts_in_requests_a_flat_gpu_is_reported_but_not_called_stuck():
    # real fleets idle GPUs (in Alibaba's duty-cycle trace, split at half time, 21 of 143
    # GPUs sit flat at 0 for 45 minutes or more); without traffic per host, flat and idle
    # look the same
    result = _run(make_case(metrics=_metrics(stuck=("gpu-3", 0))))
    assert not result.findings()
    assert f"{ID}.stuck" in {gap.check for gap in result.not_assessed}
    row = result.table.set_index("host").loc["gpu-3"]
    assert row["longest_run"] == 8 and not row["stuck"] and np.isnan(row["requests"])


def test_traffic_moved_off_the_host_when_its_gpu_went_flat():
    # the host served the first hours of the incident, then none: its GPU idles, not stuck
    requests = _requests()
    moved = (requests.host == "gpu-3") & (requests.ts >= FAULT - timedelta(minutes=20))
    result = _run(make_case(metrics=_metrics(stuck=("gpu-3", 0)), requests=requests[~moved]))
    assert not result.findings()
    assert result.table.set_index("host").loc["gpu-3", "requests"] == 0


@pytest.mark.realdata
def test_real_gpu_duty_cycles_idle_without_a_fault():
    # Alibaba's GPU duty-cycle export (143 GPUs, one day): many GPUs idle flat at 0 for a
    # while; with no requests to say whether they were serving, none is called stuck
    path = realdata("alibaba_genai_2026", "pod_gpu_duty_cycle_anon.csv.gz")
    con = tk.connect()
    tk.load(con, path, mapping={"table": "metrics", "columns": {
        "ts": {"source": "timestamp_anon", "unit": "s"}, "host": "container_ip",
        "name": {"value": "gpu_utilization"}}})
    start, end = con.execute("SELECT min(ts), max(ts) FROM metrics").fetchone()
    result = accelerator_faults(con, (start, start + (end - start) / 2),
                                (start + (end - start) / 2, end))
    assert len(result.table) == 143
    assert (result.table["longest_run"] >= 3).sum() == 21
    assert not result.table["stuck"].any() and not result.findings()


def test_utilisation_in_percent_is_detected_and_read_as_fractions():
    # the same fleet exported in percent (DCGM, Alibaba duty cycles): levels and the finding are
    # those of the fractions, and the result says the samples were divided by 100
    metrics = _metrics(stuck=("gpu-2", 0))
    fraction = _run(make_case(metrics=metrics, requests=_requests()))
    percent = _run(make_case(metrics=metrics.assign(value=metrics["value"] * 100),
                             requests=_requests()))
    assert (fraction.utilization_scale, percent.utilization_scale) == (1.0, 100.0)
    assert percent.headline()["gpu_utilization unit"] == "percent (divided by 100)"
    pd.testing.assert_frame_equal(percent.table, fraction.table, rtol=1e-9)
    [f_frac], [f_pct] = fraction.findings(), percent.findings()
    assert f_pct.summary == f_frac.summary and "stuck at 0%" in f_pct.summary
    assert f_pct.onset == f_frac.onset
    assert f_pct.evidence["utilization_scale"] == 100.0


@pytest.mark.realdata
def test_real_duty_cycles_are_percent():
    path = realdata("alibaba_genai_2026", "pod_gpu_duty_cycle_anon.csv.gz")
    con = tk.connect()
    tk.load(con, path, mapping=str(Path(__file__).parents[1] / "classify" / "mappings" /
                                   "alibaba_gpu_utilization.toml"))
    start, end = con.execute("SELECT min(ts), max(ts) FROM metrics").fetchone()
    result = accelerator_faults(con, (start, start + (end - start) / 2),
                                (start + (end - start) / 2, end))
    assert result.utilization_scale == 100.0
    assert result.timeline["mean"].max() <= 1.0  # bucket means as fractions
