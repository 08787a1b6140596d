"""Accelerator faults: a GPU whose utilisation flatlines while its peers vary, and GPU error
alerts (Xid, ECC) per host.

A GPU that fails (an Xid error, a GPU fallen off the bus) often leaves its host up: the
serving process keeps taking requests that fail or crawl, and the GPU's utilisation metric
*sticks* (at 0, or at 100%) instead of following the load. When only a few of the host's
requests suffer, this metric and the driver's alert are the clearest trace of the fault.

Recipe
------
* **Flat utilisation.** ``metrics`` rows named ``gpu_utilization`` (0-1; the loaders map
  DCGM's ``DCGM_FI_DEV_GPU_UTIL``, Triton's ``nv_gpu_utilization`` and CloudWatch's
  ``GPUUtilization`` to it), per host and GPU (``labels.gpu``; one series per host without
  it). One engine query: per time bucket, host and GPU, the sample count, mean and population
  standard deviation. A bucket with at least :data:`MIN_SAMPLES` samples is *flat* for a GPU
  when its standard deviation is at most :data:`FLAT_RATIO` (0.2) x the GPU's own median
  over the baseline's buckets (it varied before) **and** at most 0.2 x the median over all
  GPUs in that bucket (at least three: a fleet-wide idle spell is not a fault).
* A GPU is **stuck** when at least :data:`MIN_RUN` (3) consecutive buckets starting in the
  incident window are flat, no more than :data:`MAX_BASELINE_FLAT` (10%) of its baseline
  buckets were, and its host served at least ``min_requests`` requests during those buckets:
  an idle GPU reads flat (at 0) for a good reason, and real fleets idle GPUs for hours. Without
  hosts in ``requests`` a flat GPU cannot be told from an idle one: the flat buckets are
  reported, no GPU is called stuck, and only the alerts are assessed. Its level is the mean
  over the run; its onset the start of the run, refined on the raw samples
  (:func:`~._onset.refine_onset` on "within four run standard deviations, and 0.01, of the
  level").
* **GPU error alerts.** ``events`` of kind ``alert`` on a host whose detail has an ``xid`` key
  or whose alert name or reason matches :data:`GPU_ALERT` (Xid, ECC, NVLink, DCGM health,
  "GPU ... error / fault / lost / fell off"), counted per host and window.

Finding ``infrastructure.accelerator_fault`` (one, for the worst host; every suspect host in
its evidence): **high** when a stuck GPU and a GPU alert in the incident meet on one host;
**medium** for a stuck GPU alone, or for GPU alerts alone on a host that had none in the
baseline; **low** for alerts on a host that had them in the baseline too. Statistic: the
stuck GPU's flatness (its standard deviation over the run against its baseline median, so
0.01 means 100 times flatter), else the host's alert count; threshold :data:`FLAT_RATIO`, or 1
alert. Onset: the earlier of the refined stuck onset and the host's first incident alert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, percent_scale, within
from toolkit.diagnose._engine import Recorder
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import refine_onset
from toolkit.diagnose.infra.capacity import bucket_index, bucket_starts
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["accelerator_faults", "AcceleratorResult", "ID", "GPU_ALERT"]

ID = "infra.accelerators"
METRIC = "gpu_utilization"
#: A bucket's standard deviation against the GPU's baseline median (and its peers') below
#: which the bucket is flat.
FLAT_RATIO = 0.2
#: Samples a bucket needs to judge its flatness.
MIN_SAMPLES = 5
#: Consecutive flat buckets that make a GPU stuck.
MIN_RUN = 3
#: Share of baseline buckets a GPU may have had flat and still be called stuck now.
MAX_BASELINE_FLAT = 0.1
#: Alert names or reasons that mean a GPU error (matched case-insensitively).
GPU_ALERT = re.compile(r"xid|ecc|nvlink|dcgm|gpu.{0,40}(error|fault|lost|fell|fallen|"
                       r"unhealthy|hang|reset)", re.IGNORECASE)
_SEVERITY = ("low", "medium", "high")


@dataclass(frozen=True, kw_only=True, repr=False)
class AcceleratorResult(DiagnosticResult):
    """Flat GPU utilisation and GPU error alerts per host.

    Attributes
    ----------
    table
        One row per host and GPU with utilisation samples: ``host``, ``gpu``,
        ``baseline_std`` (median bucket standard deviation in the baseline),
        ``baseline_flat_share``, ``incident_flat_buckets``, ``longest_run`` (flat buckets in
        a row in the incident), ``level`` and ``run_std`` (mean and standard deviation over that
        run), ``flatness`` (``run_std / baseline_std``), ``stuck``, ``requests`` (the host's
        during that run; NaN without hosts in requests), ``onset``.
    alerts
        GPU error alerts per host: ``host``, ``baseline``, ``incident`` (counts), ``first``
        (first incident alert), ``names``.
    timeline
        Per time bucket, host and GPU: ``samples``, ``mean``, ``std``, ``flat``.
    """

    id = ID
    title = "Accelerator faults"

    alerts: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: What the utilisation samples were divided by: 100 when they were given in percent (see
    #: :func:`~toolkit.diagnose._case.percent_scale`), else 1; levels are fractions either way.
    utilization_scale: float = 1.0

    @property
    def assessed(self) -> bool:
        return super().assessed or not self.alerts.empty

    def headline(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self.table.empty:
            out["GPUs"] = int(len(self.table))
            out["stuck GPUs"] = int(self.table["stuck"].sum())
            out[f"{METRIC} unit"] = ("percent (divided by 100)" if self.utilization_scale == 100
                                     else "fraction")
        if not self.alerts.empty:
            out["GPU alerts in the incident"] = int(self.alerts["incident"].sum())
        return out

    def suspects(self) -> pd.DataFrame:
        """One row per host with a stuck GPU or an incident GPU alert, worst first."""
        stuck = self.table[self.table["stuck"]] if not self.table.empty else self.table
        alerted = (self.alerts[self.alerts["incident"] > 0] if not self.alerts.empty
                   else self.alerts)
        hosts = sorted(set(stuck.get("host", [])) | set(alerted.get("host", [])))
        rows = []
        for host in hosts:
            gpus = stuck[stuck["host"] == host] if not stuck.empty else stuck
            gpu = gpus.sort_values("flatness").iloc[0] if len(gpus) else None
            alert = alerted[alerted["host"] == host] if not alerted.empty else alerted
            alert = alert.iloc[0] if len(alert) else None
            if gpu is not None and alert is not None:
                severity = "high"
            elif gpu is not None or alert["baseline"] == 0:
                severity = "medium"
            else:
                severity = "low"
            onsets = [t for t in (None if gpu is None else gpu["onset"],
                                  None if alert is None else alert["first"]) if t is not None
                      and not pd.isna(t)]
            rows.append({
                "host": host, "severity": severity,
                "gpu": None if gpu is None else gpu["gpu"],
                "level": np.nan if gpu is None else float(gpu["level"]),
                "flatness": np.nan if gpu is None else float(gpu["flatness"]),
                "alerts": 0 if alert is None else int(alert["incident"]),
                "baseline_alerts": 0 if alert is None else int(alert["baseline"]),
                "alert_names": "" if alert is None else alert["names"],
                "onset": min(pd.Timestamp(t) for t in onsets) if onsets else pd.NaT,
            })
        frame = pd.DataFrame(rows, columns=["host", "severity", "gpu", "level", "flatness",
                                            "alerts", "baseline_alerts", "alert_names",
                                            "onset"])
        if frame.empty:
            return frame
        frame["_rank"] = frame["severity"].map(_SEVERITY.index)
        frame = frame.sort_values(["_rank", "flatness", "alerts"],
                                  ascending=[False, True, False], na_position="last")
        return frame.drop(columns="_rank").reset_index(drop=True)

    def findings(self) -> list[Finding]:
        suspects = self.suspects()
        if suspects.empty:
            return []
        worst = suspects.iloc[0]
        stuck = not pd.isna(worst["flatness"])
        parts = []
        if stuck:
            row = self.table[(self.table["host"] == worst["host"]) &
                             (self.table["gpu"] == worst["gpu"])].iloc[0]
            gpu = f"GPU {worst['gpu']}" if worst["gpu"] else "its GPU"
            parts.append(f"{gpu} utilisation is stuck at {worst['level']:.0%} for "
                         f"{row['longest_run']} buckets while serving {row['requests']:.0f} "
                         f"requests (standard deviation {row['run_std']:.3g}, against "
                         f"{row['baseline_std']:.3g} in the baseline; the other GPUs vary)")
        if worst["alerts"]:
            parts.append(f"{worst['alerts']} GPU error alert(s): {worst['alert_names']}")
        onset = worst["onset"]
        return [Finding(
            id="infrastructure.accelerator_fault", pathway="infrastructure",
            severity=str(worst["severity"]),
            statistic=float(worst["flatness"]) if stuck else float(worst["alerts"]),
            threshold=FLAT_RATIO if stuck else 1.0,
            summary=f"host {worst['host']}: " + "; ".join(parts) + ".",
            evidence={"host": str(worst["host"]), "gpu": worst["gpu"],
                      "stuck": stuck, "level": _num(worst["level"]),
                      "flatness": _num(worst["flatness"]), "alerts": int(worst["alerts"]),
                      "baseline_alerts": int(worst["baseline_alerts"]),
                      "alert_names": str(worst["alert_names"]),
                      "utilization_scale": self.utilization_scale,
                      "hosts": [{k: _num(v) for k, v in r.items()}
                                for r in suspects.to_dict("records")]},
            onset=None if pd.isna(onset) else pd.Timestamp(onset).to_pydatetime(),
            diagnostic=self.id,
        )]

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """GPU utilisation per bucket: the stuck GPUs against the others' median."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        if self.timeline.empty:
            return super().plot(ax)
        tl = self.timeline
        key = tl["host"] + " / " + tl["gpu"].astype(str)
        stuck = self.table[self.table["stuck"]]
        marked = set(stuck["host"] + " / " + stuck["gpu"].astype(str))
        others = tl[~key.isin(marked)].groupby("bucket_start")["mean"].median()
        ax.plot(others.index, others.to_numpy(), color="#8C8C8C", label="other GPUs (median)")
        for name in sorted(marked):
            part = tl[key == name]
            ax.plot(part["bucket_start"], part["mean"], color="#C44E52", label=name)
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.12)
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel("GPU utilisation (bucket mean)")
        ax.set_title("Accelerator faults")
        ax.legend(loc="best", fontsize=8)
        return ax


def accelerator_faults(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    min_requests: int = 20,
    bucket: timedelta | None = None,
    case: CaseView | None = None,
) -> AcceleratorResult:
    """GPUs whose utilisation metric sticks while their host serves, and GPU error alerts.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    min_requests
        Requests a host must serve during its GPU's flat run for the GPU to count as stuck.
    bucket
        Timeline bucket width.
    case
        Shared case view.

    Returns
    -------
    AcceleratorResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> rng = np.random.default_rng(0)
    >>> ts = pd.date_range("2026-03-01", periods=2880, freq="min", tz="UTC")
    >>> frames = []
    >>> for host in ["gpu-a", "gpu-b", "gpu-c", "gpu-d"]:
    ...     util = np.clip(0.5 + 0.2 * rng.standard_normal(len(ts)), 0, 1)
    ...     if host == "gpu-c":
    ...         util[2000:] = 0.0          # its GPU went bad at minute 2000
    ...     frames.append(pd.DataFrame({"ts": ts, "host": host, "name": "gpu_utilization",
    ...                                 "value": util}))
    >>> con = tk.connect()
    >>> _ = tk.load(con, pd.concat(frames), table="metrics")
    >>> every = pd.date_range(ts[0], ts[-1], freq="30s")   # the four hosts keep serving
    >>> _ = tk.load(con, pd.DataFrame({"request_id": range(len(every)), "ts": every,
    ...     "host": np.resize(["gpu-a", "gpu-b", "gpu-c", "gpu-d"], len(every))}),
    ...     table="requests")
    >>> result = accelerator_faults(con, (ts[0], ts[1440]), (ts[1440], ts[-1]))
    >>> f = result.findings()[0]
    >>> f.evidence["host"], f.severity, f.onset == ts[2000]
    ('gpu-c', 'medium', True)
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    record = Recorder()
    gaps: list[NotAssessed] = []
    alerts = _gpu_alerts(case, baseline, incident)
    if not case.counts.get("events"):
        gaps.append(NotAssessed(f"{ID}.alerts", "no events: GPU error alerts not assessed"))
    timeline = pd.DataFrame()
    table = pd.DataFrame()
    scale = 1.0
    if not case.has("metrics", "host", "value"):
        gaps.append(NotAssessed(f"{ID}.utilization", "no per-host metrics"))
    else:
        timeline, scale = _utilization(case, record, span, width)
        if timeline.empty:
            gaps.append(NotAssessed(f"{ID}.utilization",
                                    f"no {METRIC} samples per host in the windows"))
    if not timeline.empty:
        requests = _requests_per_host(case, record, incident, width)
        if requests is None:
            gaps.append(NotAssessed(f"{ID}.stuck", "requests have no host: a flat GPU cannot "
                                    "be told from an idle one, so none is called stuck"))
        timeline, table = _stuck(timeline, baseline, incident, requests, min_requests)
        table = _refine(case, record, table, span, width, scale)
        if len(table) < 3:
            gaps.append(NotAssessed(f"{ID}.utilization", f"{len(table)} GPU(s) with "
                                    f"{METRIC} samples: at least 3 are needed to tell a stuck "
                                    "GPU from an idle fleet"))
    return AcceleratorResult(**base, table=table, alerts=alerts, timeline=timeline,
                             sql=record.sql, not_assessed=tuple(gaps), utilization_scale=scale)


def _utilization(case: CaseView, record: Recorder, span: Window, width: timedelta
                 ) -> tuple[pd.DataFrame, float]:
    """Per bucket, host and GPU: samples, mean and population standard deviation (as
    fractions), and the scale the samples were divided by (100 for percent, else 1)."""
    m = case.table("metrics")
    m = m.filter((m.name == METRIC) & within(m.ts, span) & m.host.notnull() & m.value.notnull()
                 & ~m.value.isnan())
    m = m.mutate(_gpu=_gpu_label(m) if "labels" in case.columns["metrics"]
                 else ibis.literal(None, "string"))
    grouped = m.group_by(bucket=bucket_index(m.ts, width), host=m.host, gpu=m._gpu).aggregate(
        samples=m.count(), mean=m.value.mean(), std=m.value.std(how="pop"))
    frame = record(grouped)
    if frame.empty:
        return frame, 1.0
    scale = percent_scale(float(frame["mean"].max()))
    frame[["mean", "std"]] = frame[["mean", "std"]] / scale
    frame.insert(0, "bucket_start", bucket_starts(frame.pop("bucket"), width))
    frame["gpu"] = frame["gpu"].fillna("").astype(str)
    return frame.sort_values(["host", "gpu", "bucket_start"], ignore_index=True), scale


def _requests_per_host(case: CaseView, record: Recorder, incident: Window, width: timedelta
                       ) -> pd.Series | None:
    """Requests per (bucket start, host) in the incident (None when requests have no host)."""
    if not case.has("requests", "host"):
        return None
    r = case.table("requests")
    r = r.filter(within(r.ts, incident) & r.host.notnull())
    counts = record(r.group_by(bucket=bucket_index(r.ts, width), host=r.host).aggregate(
        n=r.count()))
    counts.insert(0, "bucket_start", bucket_starts(counts.pop("bucket"), width))
    return counts.set_index(["bucket_start", "host"])["n"]


def _stuck(timeline: pd.DataFrame, baseline: Window, incident: Window,
           requests: pd.Series | None, min_requests: int
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Flag flat buckets and stuck GPUs (see the module documentation)."""
    tl = timeline.copy()
    starts = tl["bucket_start"]
    in_baseline = (starts >= pd.Timestamp(baseline.start)) & (starts < pd.Timestamp(baseline.end))
    in_incident = (starts >= pd.Timestamp(incident.start)) & (starts < pd.Timestamp(incident.end))
    judged = tl["samples"] >= MIN_SAMPLES
    own = tl[in_baseline & judged].groupby(["host", "gpu"])["std"].median().rename("own")
    tl = tl.join(own, on=["host", "gpu"])
    # the fleet's median standard deviation in the same bucket (at least three GPUs): one
    # flat GPU among them moves it by at most one rank; a fleet that is half flat has a
    # median near 0, and nothing is flat against it
    fleet = tl["std"].where(judged).groupby(tl["bucket_start"])
    tl["peers"] = fleet.transform("median").where(fleet.transform("count") >= 3)
    tl["flat"] = judged & (tl["own"] > 0) & (tl["std"] <= FLAT_RATIO * tl["own"]) & (
        tl["peers"] > 0) & (tl["std"] <= FLAT_RATIO * tl["peers"])
    rows = []
    for (host, gpu), part in tl.groupby(["host", "gpu"], sort=True):
        base = part[in_baseline.loc[part.index] & judged.loc[part.index]]
        inc = part[in_incident.loc[part.index]]
        run, best = [], []
        for index, flat in zip(inc.index, inc["flat"], strict=True):
            run = [*run, index] if flat else []
            if len(run) > len(best):
                best = run
        longest = part.loc[best] if best else part.iloc[:0]
        served = np.nan if requests is None else float(sum(
            requests.get((start, host), 0) for start in longest["bucket_start"]))
        weights = longest["samples"].to_numpy(float)
        level = float(np.average(longest["mean"], weights=weights)) if best else np.nan
        run_std = float(np.sqrt(np.average(
            longest["std"] ** 2 + (longest["mean"] - level) ** 2, weights=weights))) \
            if best else np.nan
        own_std = float(part["own"].iloc[0]) if part["own"].notna().any() else np.nan
        flat_share = float(base["flat"].mean()) if len(base) else np.nan
        stuck = bool(len(best) >= MIN_RUN and len(base) >= MIN_RUN
                     and flat_share <= MAX_BASELINE_FLAT
                     and served >= min_requests)
        rows.append({"host": host, "gpu": gpu, "baseline_std": own_std,
                     "baseline_flat_share": flat_share,
                     "incident_flat_buckets": int(inc["flat"].sum()), "longest_run": len(best),
                     "level": level, "run_std": run_std,
                     "flatness": run_std / own_std if own_std and best else np.nan,
                     "stuck": stuck, "requests": served,
                     "onset": longest["bucket_start"].iloc[0] if best else pd.NaT})
    out = tl.drop(columns=["own", "peers"])
    return out, pd.DataFrame(rows)


def _refine(case: CaseView, record: Recorder, table: pd.DataFrame, span: Window,
            width: timedelta, scale: float = 1.0) -> pd.DataFrame:
    """Date each stuck GPU's onset on its raw samples."""
    table = table.copy()
    metrics = case.table("metrics")
    for k, row in table[table["stuck"]].iterrows():
        m = metrics.filter((metrics.name == METRIC) & (metrics.host == row["host"]))
        if row["gpu"]:
            m = m.filter(_gpu_label(m) == row["gpu"])
        band = max(4 * float(row["run_std"]), 0.01)
        indicator = ((m.value / scale - float(row["level"])).abs() <= band).fill_null(False)
        coarse: datetime = pd.Timestamp(row["onset"]).to_pydatetime()
        table.loc[k, "onset"] = pd.Timestamp(refine_onset(
            record, m, indicator, coarse, around=3 * width, limits=span))
    return table


def _gpu_label(metrics: ibis.Table) -> ibis.StringValue:
    """The ``gpu`` label of a metrics row (NULL without one): DCGM's and our simulator's
    ``{"gpu": "0"}``, as a string whether the exporter wrote it quoted or not."""
    return metrics.labels.cast("string").re_extract(r'"gpu"\s*:\s*"?([^",}]*)', 1).nullif("")


def _gpu_alerts(case: CaseView, baseline: Window, incident: Window) -> pd.DataFrame:
    """GPU error alerts per host and window (see :data:`GPU_ALERT`)."""
    columns = ["host", "baseline", "incident", "first", "names"]
    events = case.events
    if events.empty:
        return pd.DataFrame(columns=columns)
    alerts = events[(events["kind"] == "alert") & events["host"].notna()]
    names = alerts["detail"].map(_gpu_alert_name)
    alerts = alerts.assign(name=names)[names.notna()]
    if alerts.empty:
        return pd.DataFrame(columns=columns)
    ts = pd.to_datetime(alerts["ts"], utc=True)
    window = np.select([(ts >= pd.Timestamp(baseline.start)) & (ts < pd.Timestamp(baseline.end)),
                        (ts >= pd.Timestamp(incident.start)) & (ts < pd.Timestamp(incident.end))],
                       ["baseline", "incident"], default="")
    alerts = alerts.assign(ts=ts, window=window)
    rows = []
    for host, part in alerts.groupby("host"):
        inc = part[part["window"] == "incident"]
        rows.append({"host": host, "baseline": int((part["window"] == "baseline").sum()),
                     "incident": len(inc), "first": inc["ts"].min() if len(inc) else pd.NaT,
                     "names": ", ".join(sorted(set(inc["name"]))) if len(inc) else ""})
    return pd.DataFrame(rows, columns=columns)


def _gpu_alert_name(detail: Any) -> str | None:
    """The alert's name when its detail describes a GPU error, else None."""
    if not isinstance(detail, dict):
        return None
    name = str(detail.get("alert") or detail.get("reason") or detail.get("message") or "")
    if "xid" in {str(k).lower() for k in detail}:
        xid = detail.get("xid", detail.get("Xid"))
        return f"{name or 'GPU error'} (Xid {xid})" if xid is not None else name or "Xid"
    return name if name and GPU_ALERT.search(name) else None


def _num(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    return value
