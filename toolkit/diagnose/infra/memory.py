"""Memory against its limit per host, OOM kills and restarts, and the leak slope between restarts.

Recipe
------
* **Series.** ``metrics`` rows named ``memory_used_bytes`` / ``memory_limit_bytes`` (kind
  ``memory``) and ``gpu_memory_used_bytes`` / ``gpu_memory_total_bytes`` (kind ``gpu``), per
  host. Host memory published as a share of its limit (``memory_utilization`` and the other
  :data:`SHARE_NAMES`; Alibaba's ``pod_memory_util`` through the shipped mapping) is the kind
  ``memory_share``: the share as a fraction (divided by 100 when its largest value says percent,
  ``percent_scale``) against a limit of 1. One engine query takes the maximum of each series
  per time bucket, window and host.
* **Utilisation** of a host = max used / max limit, per time bucket (the timeline) and per
  window (its maximum over the window's samples). A host without a limit series gets none.
* **OOM kills and restarts** come from ``events`` (``kind = 'oom_kill'``, ``'restart'``) and,
  when ``requests.error_type`` exists, from requests whose error type names an OOM
  (``(^|[^a-z])oom`` or ``out of memory``, case-insensitive). A restart within 10 minutes of a
  ``deploy``, ``rollback``, ``scale`` or ``config_change`` event is *planned*; the rest are
  *unplanned*.
* **Leak slope.** Each host's used-memory series is cut into segments at its restarts: its own
  ``restart`` / ``oom_kill`` events, events of those kinds without a host (they restart every
  host), ``deploy`` / ``rollback`` events of the ``service`` artifact (a release of the serving
  process restarts it; without a host, every host), and resets seen in the data (a sample at
  least ``reset_drop`` (30%) below the previous one). Per segment the engine computes the
  least-squares slope of bytes on hours (``covar_samp / var_samp``), the correlation ``r``,
  first / last / peak bytes and the sample count (one query, window functions plus one
  aggregate). A segment *qualifies* with at least
  ``min_samples`` (10) samples over at least ``min_minutes`` (120: a leak shows over hours,
  while memory that follows a load surge rises within minutes); it *climbs* when it qualifies,
  ``r >= 0.8`` and it grew by at least 10% of the limit (20% of its first value without a limit).

Findings
--------
``infrastructure.memory_pressure`` (statistic: highest incident utilisation over hosts and
kinds; threshold 0.9): fires at >= 0.9; its onset (first incident bucket at >= 0.9) is refined
on the raw samples of the hosts at pressure (``_onset.refine_onset``). The *time at pressure* of a window is the share of its
(host, time bucket) cells at >= 0.9. The pressure is *sustained* when some host is at pressure
in at least 3 consecutive incident time buckets, or in >= 25% of the incident's buckets or of
its (host, bucket) cells (a short window). Otherwise it is a few *spikes* that fall back below
the limit within a bucket or two: the noise of bursty traffic, which healthy periods show too
(varied tuning none seed 3: three one-bucket spikes in ten days; in 17 scans of the tuning
cases, every memory_exhaustion and memory_leak case had a run of 4 buckets or more, every
other case at most 2). **high** when >= 0.95, sustained, and either the baseline stayed below
0.9 or the incident spent >= 10% of its time at pressure and >= 5x the baseline's share;
**medium** when sustained and the baseline stayed below 0.9 or had no samples of that kind
(metrics that start later: the pressure may be chronic), or the incident peak is >= 0.05
higher, or the incident spent >= 5% of its time at pressure and >= 3x the baseline's share;
else **low** (spikes; chronic pressure, e.g. GPU memory preallocated by the serving framework,
or daily peaks that touch the limit in both windows).

``infrastructure.oom_kills`` (statistic: incident count; threshold: count expected from the
baseline rate per hour, with half an event added to the baseline so an empty baseline is not a
zero rate). Evidence ``median_minutes_between_kills``: the median time between consecutive
incident OOM kills of the same host (a leak refills memory for hours after each restart;
kills that return within the hour are a load or input that does not fit: exhaustion).
OOM-kill events: **high** with >= 3 and a
Poisson tail p < 1e-3, **medium** with
>= 2 and p < 0.01, **low** with >= 1 and p < 0.05. OOM request errors (when no kill events
fire): >= 10, >= 3x the baseline share and a two-proportion p < 1e-3: **high** when >= 1% of
incident requests, else **medium**. Unplanned restarts alone: **medium** with >= 3 and
p < 1e-3, **low** with >= 1 and p < 0.05.

``infrastructure.memory_leak`` (statistic: share of qualifying segments overlapping the
incident that climb, per memory kind, the worst kind reported; threshold 0.5): fires when that
share is >= 0.5. **high** when at least two climbing segments end in a restart or reset (a
saw-tooth) and at least one climbed to >= 0.9 of its limit; **medium** with one of those two;
else **low**. A benign deploy restarts each host once (no completed climbs); noise and daily
seasonality give a low ``r`` or little growth; a load surge fills memory within minutes, not
over ``min_minutes``: they stay at low severity at most. Its onset is where the climb became
visible (the first climbing segment's start, or utilisation past the baseline maximum + 0.05);
evidence ``climb_began`` is where the first climb began, when earlier: per leaking host, a
broken line (flat, then rising) fitted to the segment before its first climbing one, when that
ended in an OOM kill or a reset, dated by the host's kill-to-kill cycle when the two agree
within two buckets; without samples there, its logged OOM kills one cycle apart lead back to
the first kill, one cycle after the climb began. The median over hosts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
from scipy import stats

from toolkit._validation import check_windows
from toolkit.diagnose import _stats as st
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view, choose_bucket, percent_scale, within
from toolkit.diagnose._engine import Recorder, window_label
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose._onset import broken_line, refine_onset
from toolkit.diagnose.infra.capacity import bucket_index, bucket_starts, epoch_us
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["memory_pressure", "MemoryResult", "ID"]

ID = "infra.memory"
PRESSURE = 0.9
CRITICAL = 0.95
#: Pressure is *sustained* over at least this many consecutive incident time buckets ...
MIN_SUSTAINED_BUCKETS = 3
#: ... or in this share of the incident's time buckets or of its (host, bucket) cells (a short
#: incident window).
SUSTAINED_SHARE = 0.25
#: Used and limit series of each memory kind.
SERIES = {"memory": ("memory_used_bytes", "memory_limit_bytes"),
          "gpu": ("gpu_memory_used_bytes", "gpu_memory_total_bytes"),
          "memory_share": ("memory_share_used", "memory_share_limit")}
#: Host memory published as a share of the limit (a fraction, or percent: see
#: :func:`~toolkit.diagnose._case.percent_scale`), e.g. Alibaba's ``pod_memory_util`` which the
#: shipped mapping loads as ``memory_utilization``. They become the ``memory_share`` kind: used
#: = the share as a fraction, limit = 1 (the synthetic names of :data:`SERIES`).
SHARE_NAMES = ("memory_utilization", "memory_utilisation", "memory_util",
               "memory_usage_percent", "mem_util")
OOM_PATTERN = r"(^|[^a-z])oom|out.?of.?memory"
PLANNED_KINDS = ("deploy", "rollback", "scale", "config_change")
PLANNED_WITHIN = timedelta(minutes=10)
MIN_R = 0.8
MIN_GROWTH = 0.10
#: Requests waiting per host (canonical name; vLLM, Triton, Knative and the Alibaba mapping
#: load theirs under it): evidence of the load that memory pressure comes with.
QUEUE = "queue_depth"
_LABELS = {"memory": "memory", "gpu": "GPU memory", "memory_share": "host memory"}


@dataclass(frozen=True, kw_only=True, repr=False)
class MemoryResult(DiagnosticResult):
    """Memory utilisation per host, OOM kills and restarts per window, leak slopes.

    Attributes
    ----------
    table
        One row per host, kind (``memory``, ``gpu``, ``memory_share``) and window:
        ``max_used_bytes``, ``limit_bytes``, ``max_utilisation``, ``samples`` (for
        ``memory_share`` used and limit are fractions: the share, and 1).
    timeline
        Per time bucket, host and kind: ``used_bytes`` (max), ``limit_bytes``, ``utilisation``.
    segments
        One row per host, kind and segment between restarts: ``start``, ``end``, ``hours``,
        ``samples``, ``first_bytes``, ``last_bytes``, ``max_bytes``, ``slope_bytes_per_hour``,
        ``r``, ``limit_bytes``, ``growth_share`` (growth / limit), ``peak_utilisation``,
        ``started_by``, ``ended_by`` (``restart``, ``oom_kill``, ``reset`` or ``open``),
        ``qualifies``, ``climbs``, ``in_baseline``, ``in_incident``.
    events
        One row per window: ``hours``, ``oom_kills``, ``restarts``, ``unplanned_restarts``,
        ``requests``, ``oom_errors``.
    event_times
        The ``oom_kill`` and ``restart`` events: ``ts``, ``kind``, ``host``, ``planned``.
    """

    id = ID
    title = "Memory pressure, OOM kills and leaks"

    timeline: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    segments: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    events: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    event_times: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: What the host memory shares (:data:`SHARE_NAMES`) were divided by: 100 when they were
    #: published in percent, else 1.
    share_scale: float = 1.0
    #: Per window: ``samples``, ``mean_queue_depth`` and ``max_queue_depth`` of the per-host
    #: ``queue_depth`` series (empty without one).
    queue: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def queue_depth(self, window: str, column: str = "mean_queue_depth") -> float:
        """The mean (or ``column``) queue depth over the hosts' samples in ``window``."""
        if self.queue.empty:
            return float("nan")
        rows = self.queue[self.queue["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    @property
    def assessed(self) -> bool:
        return super().assessed or not self.events.empty

    def max_utilisation(self, window: str, kind: str | None = None) -> float:
        """Highest utilisation over hosts (and kinds unless ``kind`` is given) in ``window``."""
        if self.table.empty:
            return float("nan")
        rows = self.table[self.table["window"] == window]
        if kind is not None:
            rows = rows[rows["kind"] == kind]
        values = rows["max_utilisation"].dropna()
        return float(values.max()) if len(values) else float("nan")

    def time_at_pressure(self, window: str, kind: str) -> float:
        """Share of the window's (host, time bucket) cells of ``kind`` at >= 0.9 of the limit
        (buckets that start inside the window)."""
        tl = self.timeline
        if tl.empty:
            return float("nan")
        span = self.baseline if window == "baseline" else self.incident
        cells = tl[(tl["kind"] == kind) & tl["utilisation"].notna() & (
            tl["bucket_start"] >= pd.Timestamp(span.start)) & (
            tl["bucket_start"] < pd.Timestamp(span.end))]
        return float((cells["utilisation"] >= PRESSURE).mean()) if len(cells) else float("nan")

    def count(self, window: str, column: str) -> float:
        if self.events.empty:
            return float("nan")
        rows = self.events[self.events["window"] == window]
        return float(rows[column].iloc[0]) if len(rows) else float("nan")

    def leak_share(self, window: str = "incident", kind: str | None = None) -> float:
        """Share of qualifying segments overlapping ``window`` that climb steadily, for one
        memory ``kind`` or (``None``) the highest over kinds."""
        if self.segments.empty:
            return float("nan")
        seg = self.segments[self.segments[f"in_{window}"] & self.segments["qualifies"]]
        if kind is not None:
            seg = seg[seg["kind"] == kind]
            return float(seg["climbs"].mean()) if len(seg) else float("nan")
        shares = seg.groupby("kind")["climbs"].mean()
        return float(shares.max()) if len(shares) else float("nan")

    def headline(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self.table.empty:
            out["max utilisation baseline"] = self.max_utilisation("baseline")
            out["max utilisation incident"] = self.max_utilisation("incident")
        if not self.events.empty:
            out["OOM kills baseline"] = self.count("baseline", "oom_kills")
            out["OOM kills incident"] = self.count("incident", "oom_kills")
            out["restarts incident"] = self.count("incident", "restarts")
        if not self.segments.empty:
            out["leak share incident"] = self.leak_share("incident")
        if not self.queue.empty:
            out["mean queue depth baseline"] = self.queue_depth("baseline")
            out["mean queue depth incident"] = self.queue_depth("incident")
        return out

    def findings(self) -> list[Finding]:
        out = [self._pressure(), self._oom(), self._leak()]
        return [f for f in out if f is not None]

    def _pressure(self) -> Finding | None:
        if self.table.empty:
            return None
        worst, kind_hit = float("nan"), ""
        for kind in SERIES:
            value = self.max_utilisation("incident", kind)
            if not math.isnan(value) and (math.isnan(worst) or value > worst):
                worst, kind_hit = value, kind
        if math.isnan(worst) or worst < PRESSURE:
            return None
        before = self.max_utilisation("baseline", kind_hit)
        # a baseline without samples of this kind (metrics that start later) tells nothing:
        # the pressure may be chronic, so it is no evidence of a change on its own
        unknown = math.isnan(before)
        before_ok = not unknown and before < PRESSURE
        t_b, t_i = (self.time_at_pressure(w, kind_hit) for w in ("baseline", "incident"))
        t_b = 0.0 if math.isnan(t_b) else t_b
        longer = not math.isnan(t_i)
        run, share = self._pressure_run(kind_hit)
        # spikes that fall back below the limit within a bucket or two, a few in a long
        # incident window, are the noise of bursty traffic (healthy periods show them too), not
        # a change that persists: low, whatever the baseline
        sustained = run >= MIN_SUSTAINED_BUCKETS or share >= SUSTAINED_SHARE or (
            longer and t_i >= SUSTAINED_SHARE)
        if worst >= CRITICAL and sustained and not unknown and (
                before_ok or (longer and t_i >= 0.10 and t_i >= 5 * t_b)):
            severity = "high"
        elif sustained and (unknown or before_ok or worst >= before + 0.05 or (
                longer and t_i >= 0.05 and t_i >= 3 * t_b)):
            severity = "medium"
        else:
            severity = "low"
        rows = self.table[(self.table["window"] == "incident") & (self.table["kind"] == kind_hit)]
        hosts = rows[rows["max_utilisation"] >= PRESSURE].sort_values("max_utilisation",
                                                                     ascending=False)
        onset = self.refined_onsets.get("infrastructure.memory_pressure")
        if onset is None and not self.timeline.empty:
            tl = self.timeline[(self.timeline["kind"] == kind_hit) & (
                self.timeline["bucket_start"] >= pd.Timestamp(self.baseline.end)) & (
                self.timeline["utilisation"] >= PRESSURE)]
            onset = None if tl.empty else tl["bucket_start"].min().to_pydatetime()
        busy = pd.DataFrame()
        if not self.timeline.empty:
            tl = self.timeline
            busy = tl[(tl["kind"] == kind_hit) & (tl["utilisation"] >= PRESSURE) & (
                tl["bucket_start"] >= pd.Timestamp(self.incident.start)) & (
                tl["bucket_start"] < pd.Timestamp(self.incident.end))]
        label = _LABELS[kind_hit]
        return Finding(
            id="infrastructure.memory_pressure", pathway="infrastructure", severity=severity,
            statistic=worst, threshold=PRESSURE,
            summary=(f"{label} reached {worst:.0%} of its limit on {len(hosts)} host(s) in the "
                     "incident (" + ("no baseline samples" if pd.isna(before)
                                     else f"baseline max {before:.0%}") + ")."),
            evidence={"kind": kind_hit, "baseline_max_utilisation": before,
                      "time_at_pressure_baseline": t_b, "time_at_pressure_incident": t_i,
                      "queue_depth_mean_baseline": self.queue_depth("baseline"),
                      "queue_depth_mean_incident": self.queue_depth("incident"),
                      "queue_depth_max_incident": self.queue_depth("incident",
                                                                   "max_queue_depth"),
                      "host_buckets_at_pressure": len(busy),
                      "longest_run_at_pressure": run, "sustained": bool(sustained),
                      "incident_buckets_at_pressure": int(busy["bucket_start"].nunique())
                      if len(busy) else 0,
                      "hosts": dict(zip(hosts["host"].astype(str),
                                        hosts["max_utilisation"].astype(float), strict=True))},
            onset=onset, diagnostic=self.id,
        )

    def _pressure_run(self, kind: str) -> tuple[int, float]:
        """The longest run of consecutive incident time buckets in which some host of ``kind``
        was at pressure, and the share of the incident's buckets (with samples) at pressure.

        Consecutive means adjacent among the incident's buckets that have samples of ``kind``
        (a gap in the metrics neither breaks nor extends a run).
        """
        tl = self.timeline
        if tl.empty:
            return 0, 0.0
        tl = tl[(tl["kind"] == kind) & tl["utilisation"].notna() & (
            tl["bucket_start"] >= pd.Timestamp(self.incident.start)) & (
            tl["bucket_start"] < pd.Timestamp(self.incident.end))]
        hot = (tl["utilisation"] >= PRESSURE).groupby(tl["bucket_start"]).any().sort_index()
        if hot.empty:
            return 0, 0.0
        flags = hot.to_numpy(dtype=bool)
        # run lengths: a new run starts where a hot bucket follows a cold one
        ids = np.cumsum(~flags)
        run = int(pd.Series(ids[flags]).value_counts().max()) if flags.any() else 0
        return run, float(flags.mean())

    def _oom(self) -> Finding | None:
        if self.events.empty:
            return None
        h_b, h_i = self.count("baseline", "hours"), self.count("incident", "hours")
        candidates = []
        kills = _poisson(self.count("baseline", "oom_kills"), self.count("incident", "oom_kills"),
                         h_b, h_i)
        if kills is not None:
            k, expected, p = kills
            sev = ("high" if k >= 3 and p < 1e-3 else "medium" if k >= 2 and p < 0.01
                   else "low" if k >= 1 and p < 0.05 else None)
            if sev:
                candidates.append((sev, k, expected, f"{k:.0f} OOM kills in the incident "
                                   f"({expected:.2g} expected from the baseline rate)", p))
        n_b, n_i = self.count("baseline", "requests"), self.count("incident", "requests")
        e_b, e_i = self.count("baseline", "oom_errors"), self.count("incident", "oom_errors")
        if not candidates and not any(math.isnan(v) for v in (n_b, n_i, e_b, e_i)) and n_i > 0:
            r_b = e_b / n_b if n_b > 0 else 0.0
            r_i = e_i / n_i
            _, p = st.two_proportion_z(e_b, n_b, e_i, n_i) if n_b > 0 else (0.0, 0.0)
            if e_i >= 10 and r_i >= 3 * r_b and p < 1e-3:
                candidates.append(("high" if r_i >= 0.01 else "medium", e_i, r_b * n_i,
                                   f"{r_i:.2%} of incident requests failed with an OOM error "
                                   f"(baseline {r_b:.2%})", p))
        restarts = _poisson(self.count("baseline", "unplanned_restarts"),
                            self.count("incident", "unplanned_restarts"), h_b, h_i)
        if not candidates and restarts is not None:
            k, expected, p = restarts
            sev = ("medium" if k >= 3 and p < 1e-3 else "low" if k >= 1 and p < 0.05 else None)
            if sev:
                candidates.append((sev, k, expected, f"{k:.0f} unplanned restarts in the "
                                   f"incident ({expected:.2g} expected from the baseline rate)", p))
        if not candidates:
            return None
        severity, statistic, expected, summary, p = max(
            candidates, key=lambda c: ("low", "medium", "high").index(c[0]))
        onset = None
        times = self.event_times
        if not times.empty:
            inc = times[(times["ts"] >= pd.Timestamp(self.incident.start)) & (
                times["ts"] < pd.Timestamp(self.incident.end)) & ~times["planned"]]
            onset = None if inc.empty else inc["ts"].min().to_pydatetime()
        hosts = []
        gap = float("nan")
        if not times.empty:
            inc = times[(times["ts"] >= pd.Timestamp(self.incident.start)) & (
                times["ts"] < pd.Timestamp(self.incident.end))]
            hosts = sorted(inc["host"].dropna().astype(str).unique().tolist())
            kills = inc[(inc["kind"] == "oom_kill") & inc["host"].notna()].sort_values("ts")
            gaps = kills.groupby("host")["ts"].diff().dropna()
            if len(gaps):
                gap = float(gaps.median() / pd.Timedelta(minutes=1))
        return Finding(
            id="infrastructure.oom_kills", pathway="infrastructure", severity=severity,
            statistic=float(statistic), threshold=float(expected), summary=summary + ".",
            evidence={"pvalue": p, "oom_kills_baseline": self.count("baseline", "oom_kills"),
                      "oom_kills_incident": self.count("incident", "oom_kills"),
                      "restarts_baseline": self.count("baseline", "restarts"),
                      "restarts_incident": self.count("incident", "restarts"),
                      "unplanned_restarts_incident": self.count("incident",
                                                                "unplanned_restarts"),
                      "oom_errors_baseline": e_b, "oom_errors_incident": e_i,
                      "hours_baseline": h_b, "hours_incident": h_i, "hosts": hosts,
                      "median_minutes_between_kills": gap},
            onset=onset, diagnostic=self.id,
        )

    def _leak(self) -> Finding | None:
        if self.segments.empty:
            return None
        candidates = []
        for kind in SERIES:
            share = self.leak_share("incident", kind)
            if math.isnan(share) or share < 0.5:
                continue
            seg = self.segments[self.segments["in_incident"] & self.segments["qualifies"] & (
                self.segments["kind"] == kind)]
            climbing = seg[seg["climbs"]]
            teeth = climbing[climbing["ended_by"] != "open"]
            reached = climbing[climbing["peak_utilisation"] >= PRESSURE]
            if len(teeth) >= 2 and len(reached) >= 1:
                severity = "high"
            elif len(teeth) >= 2 or len(reached) >= 1:
                severity = "medium"
            else:
                severity = "low"
            candidates.append((("low", "medium", "high").index(severity), share, kind, severity,
                               seg, climbing, teeth, reached))
        if not candidates:
            return None
        _, share, kind, severity, seg, climbing, teeth, reached = max(
            candidates, key=lambda c: (c[0], c[1]))
        per_host = climbing.groupby("host").agg(
            segments=("segment", "count"),
            slope_bytes_per_hour=("slope_bytes_per_hour", "median"),
            growth_share_per_hour=("growth_per_hour_share", "median"),
            peak_utilisation=("peak_utilisation", "max"))
        label = _LABELS[kind]
        onset = self._leak_onset(climbing)
        return Finding(
            id="infrastructure.memory_leak", pathway="infrastructure", severity=severity,
            statistic=share, threshold=0.5,
            summary=(f"{label} climbs steadily on {len(climbing)} of {len(seg)} segments "
                     f"between restarts ({climbing['host'].nunique()} host(s), median "
                     f"{_fmt_rate(climbing)}); {len(teeth)} ended in a restart."),
            evidence={"kind": kind, "climbing_segments": len(climbing),
                      "qualifying_segments": len(seg), "completed_climbs": len(teeth),
                      "reached_limit": len(reached),
                      "median_growth_share_per_hour": _median(climbing["growth_per_hour_share"]),
                      "leak_share_baseline": self.leak_share("baseline", kind),
                      "hosts": {str(h): {k: _num(v) for k, v in row.items()}
                                for h, row in per_host.iterrows()},
                      **self._climb_evidence(climbing, onset)},
            onset=onset, diagnostic=self.id,
        )

    def _climb_evidence(self, climbing: pd.DataFrame, onset) -> dict[str, Any]:
        """``climb_began``: where the leak's first climb began (:meth:`_climb_began`), when
        that is before the onset where the climb became visible; else nothing."""
        began = self._climb_began(climbing)
        if began is None or began >= pd.Timestamp(onset):
            return {}
        return {"climb_began": began.floor("us").to_pydatetime()}

    def _climb_began(self, climbing: pd.DataFrame) -> pd.Timestamp | None:
        """Where the leak's first climb began: the median over the leaking hosts of the start
        of each host's first climb (:func:`_first_climb`), ``None`` when no host dates one.

        The leak's onset (:meth:`_leak_onset`) is where the climb becomes *visible*: the first
        segment between restarts that climbs steadily, or utilisation past the baseline's
        maximum. Both are late. Before a host's first OOM kill (or reset) memory was flat and
        then rose, so that segment does not climb steadily as a whole (r < 0.8) and the first
        segment that does starts at that kill, a whole fill period after the leak began (varied
        tuning memory_leak seeds 5, 6, 8, 9, 10: 5 to 22 hours late, no release to date them).
        """
        if self.segments.empty or self.timeline.empty:
            return None
        width = self.timeline["bucket_start"].drop_duplicates().sort_values().diff().min()
        if pd.isna(width) or width <= pd.Timedelta(0):
            return None
        starts = []
        for (host, kind), mine in self.segments.groupby(["host", "kind"], sort=False):
            first = climbing[(climbing["host"] == host) & (climbing["kind"] == kind)]
            if first.empty:
                continue
            tl = self.timeline[(self.timeline["host"] == host) & (self.timeline["kind"] == kind)]
            kills = self.event_times
            if not kills.empty:
                kills = kills[(kills["host"] == host) & (kills["kind"] == "oom_kill")]["ts"]
            began = _first_climb(mine.sort_values("start"), first, tl, width,
                                 pd.Series(kills, dtype="datetime64[ns, UTC]")
                                 if len(kills) else pd.Series([], dtype="datetime64[ns, UTC]"))
            if began is not None:
                starts.append(began)
        if not starts:
            return None
        return pd.Series(starts).median()

    def _leak_onset(self, climbing: pd.DataFrame):
        """The first climbing segment's start, or earlier the first bucket after the baseline
        where a leaking host's utilisation passes its baseline maximum by 0.05."""
        onset = climbing["start"].min()
        tl = self.timeline
        if not tl.empty:
            before = self.table[self.table["window"] == "baseline"].set_index(
                ["host", "kind"])["max_utilisation"]
            keys = set(zip(climbing["host"], climbing["kind"], strict=True))
            tl = tl[(tl["bucket_start"] >= pd.Timestamp(self.baseline.end)) & pd.Series(
                [k in keys for k in zip(tl["host"], tl["kind"], strict=True)], index=tl.index)]
            limit = tl.join(before, on=["host", "kind"])["max_utilisation"] + 0.05
            over = tl[tl["utilisation"] > limit]
            if len(over):
                onset = min(onset, over["bucket_start"].min())
        return pd.Timestamp(onset).to_pydatetime()

    def signals(self) -> pd.DataFrame:
        frames = []
        if not self.timeline.empty:
            tl = self.timeline.dropna(subset=["utilisation"])
            for kind, name in (("memory", "memory.max_utilisation"),
                               ("gpu", "memory.gpu_max_utilisation"),
                               ("memory_share", "memory.host_max_utilisation")):
                part = tl[tl["kind"] == kind].groupby("bucket_start", as_index=False)[
                    "utilisation"].max()
                if len(part):
                    frames.append(part.rename(columns={"utilisation": "value"}).assign(
                        signal=name))
            buckets = self.timeline["bucket_start"].drop_duplicates().sort_values()
            if not self.event_times.empty and len(buckets) > 1:
                width = buckets.diff().min()
                for kind in ("oom_kill", "restart"):
                    ev = self.event_times[self.event_times["kind"] == kind]
                    starts = ev["ts"].dt.floor(width) if len(ev) else ev["ts"]
                    counts = starts.value_counts().reindex(buckets, fill_value=0)
                    frames.append(pd.DataFrame({"bucket_start": buckets.to_numpy(),
                                                "value": counts.to_numpy(dtype=float),
                                                "signal": f"memory.{kind}s"}))
        if not frames:
            return super().signals()
        return pd.concat(frames, ignore_index=True)[["bucket_start", "signal", "value"]]

    def plot(self, ax: Axes | None = None, *, kind: str | None = None, **kwargs: Any) -> Axes:
        """Utilisation per host over time, the 0.9 line, OOM kills and restarts marked."""
        from toolkit.plotting import WINDOW_COLORS, axes

        ax = axes(ax, figsize=(10, 4))
        tl = self.timeline
        if tl.empty:
            return super().plot(ax)
        import seaborn as sns

        kind = kind or next(k for k in SERIES if (tl["kind"] == k).any())
        data = tl[tl["kind"] == kind]
        ratio = data["utilisation"].notna().any()
        y = "utilisation" if ratio else "used_gib"
        data = data.assign(used_gib=data["used_bytes"] / 2**30)
        top = 1.02 if ratio else float(data["used_gib"].max()) * 1.02
        sns.lineplot(data=data, x="bucket_start", y=y, hue="host", ax=ax, lw=1,
                     legend=data["host"].nunique() <= 12)
        if ratio:
            ax.axhline(PRESSURE, ls="--", color="#C44E52", lw=1,
                       label=f"{PRESSURE:.0%} of limit")
        times = self.event_times
        if not times.empty:
            for ev_kind, marker in (("oom_kill", "x"), ("restart", "|")):
                ev = times[times["kind"] == ev_kind]
                if len(ev):
                    ax.scatter(ev["ts"], np.full(len(ev), top), marker=marker, color="#C44E52",
                               s=30, label=ev_kind.replace("_", " "), zorder=3)
        ax.axvspan(self.incident.start, self.incident.end, color=WINDOW_COLORS["incident"],
                   alpha=0.08, label="incident")
        ax.set_ylim(0, top * 1.06)
        ax.set_xlabel("time (UTC)")
        what = _LABELS.get(kind, kind)
        ax.set_ylabel(f"{what} used / limit" if ratio else f"{what} used (GiB, no limit known)")
        ax.set_title("Memory against its limit")
        ax.legend(loc="upper left", fontsize=8, ncol=2)
        return ax


def memory_pressure(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    bucket: timedelta | None = None,
    min_samples: int = 10,
    min_minutes: float = 120.0,
    reset_drop: float = 0.3,
    case: CaseView | None = None,
) -> MemoryResult:
    """Memory against its limit per host, OOM kills and restarts, and leak slopes.

    Parameters
    ----------
    con
        Case connection.
    baseline, incident
        The windows to compare.
    bucket
        Timeline bucket width.
    min_samples, min_minutes
        What a segment between restarts needs for its slope to count.
    reset_drop
        A sample this fraction below the previous one starts a new segment (an unlogged
        restart).
    case
        Shared case view.

    Returns
    -------
    MemoryResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, toolkit as tk
    >>> con = tk.connect()
    >>> ts = pd.date_range("2026-03-01", periods=480, freq="min", tz="UTC")
    >>> used = 2e9 + (np.arange(480) % 160) * 3.75e7     # climbs 6 GB in 160 min, restarts
    >>> metrics = pd.concat([
    ...     pd.DataFrame({"ts": ts, "host": "pod-a", "name": "memory_used_bytes", "value": used}),
    ...     pd.DataFrame({"ts": ts, "host": "pod-a", "name": "memory_limit_bytes",
    ...                   "value": 8.2e9})])
    >>> _ = tk.load(con, metrics, table="metrics")
    >>> result = memory_pressure(con, (ts[0], ts[100]), (ts[100], ts[-1] + pd.Timedelta("1min")))
    >>> [(f.id, f.severity) for f in result.findings()]
    [('infrastructure.memory_pressure', 'high'), ('infrastructure.memory_leak', 'high')]
    >>> round(float(result.segments["slope_bytes_per_hour"].iloc[0]) / 1e9, 2)
    2.25
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    base = dict(baseline=baseline, incident=incident)
    record = Recorder()
    span = Window(min(baseline.start, incident.start), max(baseline.end, incident.end))
    width = bucket or choose_bucket(span.duration)
    gaps: list[NotAssessed] = []

    table = timeline = segments = pd.DataFrame()
    share_scale = 1.0
    if case.has("metrics", "host", "name", "value"):
        m, share_scale = _memory_rows(case, record, span)
        per = record(m.group_by(bucket=bucket_index(m.ts, width),
                                window=window_label(m.ts, baseline, incident),
                                host=m.host, name=m.name)
                     .aggregate(value=m.value.max(), samples=m.count()))
        per.insert(0, "bucket_start", bucket_starts(per.pop("bucket"), width))
        table, timeline = _utilisation(per)
        if table.empty:
            gaps.append(NotAssessed(ID, "no memory_used_bytes / gpu_memory_used_bytes / "
                                        "memory_utilization series per host in the windows"))
        else:
            if table["limit_bytes"].isna().all():
                gaps.append(NotAssessed(f"{ID}.pressure", "no memory_limit_bytes / "
                                        "gpu_memory_total_bytes series: utilisation unknown"))
            segments = _segments(case, m, span, baseline, incident, table, record,
                                 min_samples=min_samples, min_minutes=min_minutes,
                                 reset_drop=reset_drop)
    else:
        gaps.append(NotAssessed(ID, "no metrics per host: memory utilisation and leak slopes "
                                    "not assessed"))

    queue = _queue_depth(case, record, baseline, incident)
    events, event_times = _event_counts(case, baseline, incident, record)
    if events.empty:
        gaps.append(NotAssessed(f"{ID}.oom", "no events and no requests.error_type: OOM kills "
                                             "and restarts not assessed"))
    elif not case.counts.get("events"):
        gaps.append(NotAssessed(f"{ID}.events", "no events: OOM kills and restarts not "
                                                "counted, only OOM errors of requests"))
    result = MemoryResult(**base, table=table, timeline=timeline, segments=segments,
                          events=events, event_times=event_times, sql=record.sql,
                          not_assessed=tuple(gaps), share_scale=share_scale, queue=queue)
    for finding in result.findings():
        if finding.id == "infrastructure.memory_pressure" and finding.onset is not None:
            onset = _refine_pressure(case, record, finding, table, span, width, share_scale)
            result = replace(result, refined_onsets={finding.id: onset}, sql=record.sql)
    return result


def _queue_depth(case: CaseView, record: Recorder, baseline: Window, incident: Window
                 ) -> pd.DataFrame:
    """Samples, mean and maximum of the per-host ``queue_depth`` series per window (one
    query); empty without such a series."""
    if not case.has("metrics", "host", "name", "value"):
        return pd.DataFrame()
    m = case.table("metrics")
    m = m.filter((m.name == QUEUE) & m.host.notnull() & m.value.notnull() & ~m.value.isnan()
                 & (within(m.ts, baseline) | within(m.ts, incident)))
    frame = record(m.group_by(window=window_label(m.ts, baseline, incident)).aggregate(
        samples=m.count(), mean_queue_depth=m.value.mean(), max_queue_depth=m.value.max()))
    return frame.sort_values("window", ignore_index=True)


def _memory_rows(case: CaseView, record: Recorder, span: Window) -> tuple[ibis.Table, float]:
    """The metrics rows of :data:`SERIES` in ``span``, with host memory shares
    (:data:`SHARE_NAMES`) turned into the ``memory_share`` used (fraction) and limit (1) series,
    and the scale the shares were divided by (100 for percent, else 1; one engine query)."""
    m = case.table("metrics")
    m = m.filter(m.host.notnull() & m.value.notnull() & ~m.value.isnan() & within(m.ts, span))
    names = [n for kind, pair in SERIES.items() if kind != "memory_share" for n in pair]
    plain = m.filter(m.name.isin(names)).select("ts", "host", "name", "value")
    shares = m.filter(m.name.isin(list(SHARE_NAMES)))
    largest = record(shares.aggregate(largest=shares.value.max()))["largest"].iloc[0]
    if pd.isna(largest):
        return plain, 1.0
    scale = percent_scale(float(largest))
    used_name, limit_name = SERIES["memory_share"]
    used = shares.select("ts", "host", name=ibis.literal(used_name),
                         value=(shares.value / scale).cast("float64"))
    limit = shares.select("ts", "host", name=ibis.literal(limit_name),
                          value=ibis.literal(1.0, "float64"))
    return plain.union(used).union(limit), scale


def _refine_pressure(case: CaseView, record: Recorder, finding: Finding, table: pd.DataFrame,
                     span: Window, width: timedelta, share_scale: float = 1.0):
    """The pressure onset on the raw samples of the hosts at pressure (used >= 0.9 x limit)."""
    kind = finding.evidence["kind"]
    limits = table[table["kind"] == kind].groupby("host")["limit_bytes"].max()
    limits = limits[limits.index.isin(list(finding.evidence["hosts"]))].dropna()
    if limits.empty or len(limits) > 200:
        return finding.onset
    m = case.table("metrics")
    if kind == "memory_share":
        m = m.filter(m.name.isin(list(SHARE_NAMES)) & m.host.isin(limits.index.tolist()))
        m = m.mutate(value=m.value / share_scale)
    else:
        m = m.filter((m.name == SERIES[kind][0]) & m.host.isin(limits.index.tolist()))
    limit = ibis.cases(*[(m.host == h, float(v)) for h, v in limits.items()],
                       else_=ibis.null("float64"))
    return refine_onset(record, m, (m.value >= PRESSURE * limit).fill_null(False),
                        finding.onset, around=3 * width, limits=span)


def _utilisation(per: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per host / kind / window maxima and the per-bucket timeline from the bucket maxima."""
    if per.empty:
        return pd.DataFrame(), pd.DataFrame()
    role = {}
    for kind, (used, limit) in SERIES.items():
        role[used] = (kind, "used")
        role[limit] = (kind, "limit")
    per = per.assign(kind=per["name"].map(lambda n: role[n][0]),
                     role=per["name"].map(lambda n: role[n][1]))
    limits = per[per["role"] == "limit"].groupby(["host", "kind"])["value"].max().rename(
        "limit_bytes")
    used = per[per["role"] == "used"]
    if used.empty:
        return pd.DataFrame(), pd.DataFrame()
    windowed = used[used["window"].notna()]
    table = windowed.groupby(["host", "kind", "window"], as_index=False).agg(
        max_used_bytes=("value", "max"), samples=("samples", "sum"))
    table = table.join(limits, on=["host", "kind"])
    table["max_utilisation"] = table["max_used_bytes"] / table["limit_bytes"]
    timeline = used.groupby(["bucket_start", "host", "kind"], as_index=False).agg(
        used_bytes=("value", "max"))
    bucket_limits = per[per["role"] == "limit"].groupby(["bucket_start", "host", "kind"])[
        "value"].max().rename("bucket_limit")
    timeline = timeline.join(bucket_limits, on=["bucket_start", "host", "kind"]).join(
        limits, on=["host", "kind"])
    timeline["limit_bytes"] = timeline.pop("bucket_limit").fillna(timeline["limit_bytes"])
    timeline["utilisation"] = timeline["used_bytes"] / timeline["limit_bytes"]
    timeline = timeline.sort_values(["bucket_start", "host", "kind"], ignore_index=True)
    table = table[["host", "kind", "window", "max_used_bytes", "limit_bytes",
                   "max_utilisation", "samples"]].sort_values(["kind", "host", "window"],
                                                              ignore_index=True)
    return table, timeline


def _segments(case: CaseView, m: ibis.Table, span: Window, baseline: Window, incident: Window,
              table: pd.DataFrame, record: Recorder, *, min_samples: int, min_minutes: float,
              reset_drop: float) -> pd.DataFrame:
    """Slope of used bytes on hours per host and segment between restarts (one query)."""
    kind_of = ibis.cases(*[(m.name == used, kind) for kind, (used, _) in SERIES.items()],
                         else_=ibis.null("string"))
    samples = m.filter(m.name.isin([used for used, _ in SERIES.values()])).select(
        host=m.host, kind=kind_of, ts=m.ts, value=m.value, _mark=ibis.literal(0),
        _reason=ibis.null("string"))
    rows = samples
    if case.counts.get("events"):
        hk = samples.select("host", "kind").distinct()
        ev = case.table("events")
        # a release or rollback of the serving process restarts it too (a leak often comes
        # with one: the climb starts at the release, not at the last restart before it)
        restarts = ev.kind.isin(["restart", "oom_kill"]) | (
            ev.kind.isin(["deploy", "rollback"]) & (ev.artifact == "service"))
        ev = ev.filter(restarts & within(ev.ts, span)).select(
            e_host=ev.host, e_ts=ev.ts, e_kind=ev.kind)
        # Own events of the host, and host-less events for every host.
        own = ev.join(hk, ev.e_host == hk.host)
        fleet = ev.filter(ev.e_host.isnull()).cross_join(hk)
        for part in (own, fleet):
            rows = rows.union(part.select(
                host=part.host, kind=part.kind, ts=part.e_ts, value=ibis.null("float64"),
                _mark=ibis.literal(1), _reason=part.e_kind))
    order = ibis.window(group_by=[rows.host, rows.kind], order_by=[rows.ts, rows._mark.desc()])
    prev = rows.value.lag().over(order)
    reset = (rows._mark == 0) & prev.notnull() & (rows.value < prev * (1.0 - reset_drop))
    rows = rows.mutate(_reason=ibis.cases((rows._mark == 1, rows._reason),
                                          (reset.fill_null(False), "reset"),
                                          else_=ibis.null("string")))
    boundary = rows._reason.notnull().cast("int64")
    rows = rows.mutate(segment=boundary.cumsum().over(
        ibis.window(group_by=[rows.host, rows.kind], order_by=[rows.ts, rows._mark.desc()])))
    origin = epoch_us(ibis.literal(span.start))
    rows = rows.mutate(_x=(epoch_us(rows.ts) - origin) / 3.6e9)
    sample = rows._mark == 0
    result = record(rows.group_by("host", "kind", "segment").aggregate(
        start=rows.ts.min(), end=rows.ts.max(),
        samples=rows.value.count(),
        first_bytes=rows.value.argmin(rows.ts, where=sample),
        last_bytes=rows.value.argmax(rows.ts, where=sample),
        max_bytes=rows.value.max(),
        cov=rows._x.cov(rows.value, where=sample),
        var=rows._x.var(where=sample),
        r=rows._x.corr(rows.value, how="pop", where=sample),
        started_by=rows._reason.max(),
    ))
    if result.empty:
        return result
    result = result.sort_values(["host", "kind", "segment"], ignore_index=True)
    result["started_by"] = result["started_by"].fillna("open")
    nxt = result.groupby(["host", "kind"])["started_by"].shift(-1)
    result["ended_by"] = nxt.fillna("open")
    result = result[result["samples"] > 0].reset_index(drop=True)
    limits = table.groupby(["host", "kind"])["limit_bytes"].max()
    result = result.join(limits, on=["host", "kind"])
    with np.errstate(divide="ignore", invalid="ignore"):
        result["slope_bytes_per_hour"] = np.where(result["var"] > 0,
                                                  result["cov"] / result["var"], np.nan)
    result["hours"] = (result["end"] - result["start"]).dt.total_seconds() / 3600.0
    growth = result["slope_bytes_per_hour"] * result["hours"]
    result["growth_share"] = growth / result["limit_bytes"]
    result["growth_per_hour_share"] = result["slope_bytes_per_hour"] / result["limit_bytes"]
    result["peak_utilisation"] = result["max_bytes"] / result["limit_bytes"]
    result["qualifies"] = (result["samples"] >= min_samples) & (
        result["hours"] >= min_minutes / 60.0)
    enough = np.where(result["limit_bytes"].notna(), growth >= MIN_GROWTH * result["limit_bytes"],
                      growth >= 2 * MIN_GROWTH * result["first_bytes"])
    result["climbs"] = result["qualifies"] & (result["slope_bytes_per_hour"] > 0) & (
        result["r"].fillna(0) >= MIN_R) & enough
    start, end = result["start"], result["end"]
    result["in_baseline"] = (start < pd.Timestamp(baseline.end)) & (
        end >= pd.Timestamp(baseline.start))
    result["in_incident"] = (start < pd.Timestamp(incident.end)) & (
        end >= pd.Timestamp(incident.start))
    return result[["host", "kind", "segment", "start", "end", "hours", "samples", "first_bytes",
                   "last_bytes", "max_bytes", "slope_bytes_per_hour", "r", "limit_bytes",
                   "growth_share", "growth_per_hour_share", "peak_utilisation", "started_by",
                   "ended_by", "qualifies", "climbs", "in_baseline", "in_incident"]]


#: The broken line must explain the host's memory before its first kill better than one line
#: by an F-test at this level (one parameter more: the breakpoint).
BREAK_P = 1e-3
#: A host's complete climbs (from a restart to the next kill or reset) must agree this closely
#: (longest / shortest) for their length to date a climb that no sample shows.
CYCLE_SPREAD = 1.3


def _first_climb(segments: pd.DataFrame, climbing: pd.DataFrame, timeline: pd.DataFrame,
                 width: pd.Timedelta, kills: pd.Series) -> pd.Timestamp | None:
    """Where one host's first climb began (``segments``: the host's segments of one memory
    kind, by start; ``climbing``: those that climb; ``timeline``: its buckets; ``kills``: its
    OOM kill times), or ``None``.

    * The segment before the first climbing one, when it ended in an OOM kill or a reset
      (memory reached the limit), holds the first climb: flat, then rising until the kill. A
      continuous broken line (:func:`~toolkit.diagnose._onset.broken_line`) fitted to its
      bucket maxima (each placed at its bucket's end: the maximum of a rising bucket is its
      last value) finds the climb when
      it beats one straight line by an F-test (p < :data:`BREAK_P`) and rises. Its breakpoint
      is placed to within a bucket or so (the flat part follows the daily load: varied tuning
      memory_leak seeds 5, 6, 8, 9, 10 were dated 15 to 50 minutes late by it on hourly and
      three-hourly buckets); when the host's climbs repeat at a regular cycle
      (:func:`_cycle`), the segment's end less one cycle dates the climb, if it lies within
      two buckets of the breakpoint.
    * Without samples before the first climbing segment (metrics that start later), the host's
      OOM kills before it, one cycle apart, lead back to its first kill; the climb began one
      cycle before it (varied tuning memory_leak seed 3: metrics from the fifth day, OOM kills
      from the second).
    """
    first = climbing.sort_values("start").iloc[0]
    cycle = _cycle(segments)
    earlier = segments[segments["start"] < first["start"]]
    if len(earlier):
        prior = earlier.iloc[-1]
        if prior["ended_by"] not in ("oom_kill", "reset"):
            return None
        lo, hi = pd.Timestamp(prior["start"]), pd.Timestamp(prior["end"])
        fit = _breakpoint(timeline, lo, hi, width)
        if fit is None:
            return None
        if cycle is not None and abs(hi - cycle - fit) <= 2 * width:
            return max(lo, hi - cycle)
        return fit
    if cycle is None or kills.empty:
        return None
    kills = kills.sort_values()
    at = pd.Timestamp(first["start"])
    while True:  # walk back over the kills one cycle apart
        prev = kills[(kills < at - 0.8 * cycle) & (kills >= at - 1.2 * cycle)]
        if prev.empty:
            break
        at = pd.Timestamp(prev.max())
    if at >= pd.Timestamp(first["start"]) - 0.5 * cycle:
        return None  # no kill before the first climbing segment
    return at - cycle


def _breakpoint(timeline: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp,
                width: pd.Timedelta) -> pd.Timestamp | None:
    """The breakpoint of a broken line (flat, then rising) fitted to one host's bucket maxima
    from ``lo`` to ``hi``, when it beats one straight line (F-test, p < :data:`BREAK_P`)."""
    tl = timeline[(timeline["bucket_start"] >= lo) & (timeline["bucket_start"] + width <= hi)]
    tl = tl.dropna(subset=["used_bytes"])
    if len(tl) < 6:
        return None
    bucket = width.total_seconds() / 3600.0
    hours = ((tl["bucket_start"] + width - lo).dt.total_seconds() / 3600.0).to_numpy()
    y = tl["used_bytes"].to_numpy(dtype=float)
    grid = np.arange(hours[0] - bucket, hours[-3], bucket / 60.0)
    if len(grid) == 0:
        return None
    t0, slope, rss, line = broken_line(hours, y, grid)
    dof = len(y) - 3
    if slope <= 0 or dof <= 0:
        return None
    f = (line - rss) / (rss / dof) if rss > 0 else math.inf
    if not stats.f.sf(f, 1, dof) < BREAK_P:
        return None
    # the flat part follows the daily load: refit around the breakpoint (as long before it as
    # the climb lasted) with a slope of its own before the break
    near = hours >= t0 - (hours[-1] - t0)
    if near.sum() >= 6:
        local = grid[(grid >= hours[near][0]) & (grid < hours[-3])]
        if len(local):
            t1, rise, _, _ = broken_line(hours[near], y[near], local, free=True)
            if rise > 0:
                t0 = t1
    return max(lo, lo + pd.Timedelta(hours=t0))


def _cycle(segments: pd.DataFrame) -> pd.Timedelta | None:
    """The time from one OOM kill (or reset) to the next of a host's climbs (``segments``: the
    host's segments of one memory kind): the median over consecutive climbing segments that
    start where the one before ended, ``None`` with fewer than two such climbs or when their
    lengths differ by more than :data:`CYCLE_SPREAD`."""
    seg = segments.sort_values("start")
    done = seg["climbs"] & (seg["started_by"] != "open") & seg["ended_by"].isin(
        ["oom_kill", "reset"])
    spans = (seg["end"] - seg["start"])[done]
    if len(spans) < 2 or spans.max() > CYCLE_SPREAD * spans.min():
        return None
    ends = seg["end"].diff()
    # a climb that follows another climb's kill: its last sample less the one before it's
    after = done & (done.shift(1, fill_value=False) | (seg["ended_by"].shift(1).isin(
        ["oom_kill", "reset"]) & (seg["start"] - seg["end"].shift(1) < 0.2 * spans.min())))
    gaps = ends[after].dropna()
    if gaps.empty:
        return None
    return pd.Timedelta(gaps.median())


def _event_counts(case: CaseView, baseline: Window, incident: Window, record: Recorder
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """OOM kills, restarts (planned or not) and OOM request errors per window."""
    have_events = bool(case.counts.get("events"))
    have_errors = case.has("requests", "error_type")
    if not have_events and not have_errors:
        return pd.DataFrame(), pd.DataFrame(columns=["ts", "kind", "host", "planned"])
    events = case.events
    times = events[events["kind"].isin(["oom_kill", "restart"])][["ts", "kind", "host"]].copy()
    planned_ts = events[events["kind"].isin(PLANNED_KINDS)]["ts"]
    times["ts"] = pd.to_datetime(times["ts"], utc=True)
    if len(times) and len(planned_ts):
        planned = pd.to_datetime(planned_ts, utc=True).to_numpy()
        gap = np.abs(times["ts"].to_numpy()[:, None] - planned[None, :]).min(axis=1)
        times["planned"] = (times["kind"] == "restart") & (gap <= np.timedelta64(PLANNED_WITHIN))
    else:
        times["planned"] = False
    times = times.reset_index(drop=True)
    requests = pd.DataFrame(columns=["window", "requests", "oom_errors"])
    if have_errors:
        t = case.table("requests")
        t = t.filter(within(t.ts, baseline) | within(t.ts, incident))
        oom = t.error_type.lower().re_search(OOM_PATTERN).fill_null(False).cast("int64")
        requests = record(t.group_by(window=window_label(t.ts, baseline, incident)).aggregate(
            requests=t.count(), oom_errors=oom.sum()))
    rows = []
    for window, span in (("baseline", baseline), ("incident", incident)):
        inside = times[(times["ts"] >= pd.Timestamp(span.start)) & (
            times["ts"] < pd.Timestamp(span.end))]
        req = requests[requests["window"] == window]
        rows.append({
            "window": window, "hours": span.duration.total_seconds() / 3600.0,
            "oom_kills": int((inside["kind"] == "oom_kill").sum()) if have_events else np.nan,
            "restarts": int((inside["kind"] == "restart").sum()) if have_events else np.nan,
            "unplanned_restarts": int(((inside["kind"] == "restart") & ~inside["planned"]).sum())
            if have_events else np.nan,
            "requests": float(req["requests"].iloc[0]) if len(req) else
            (0.0 if have_errors else np.nan),
            "oom_errors": float(req["oom_errors"].iloc[0]) if len(req) else
            (0.0 if have_errors else np.nan),
        })
    return pd.DataFrame(rows), times


def _poisson(k_b: float, k_i: float, h_b: float, h_i: float):
    """(count, expected, P(X >= count)) of the incident count under the baseline rate."""
    if any(math.isnan(v) for v in (k_b, k_i)) or h_b <= 0:
        return None
    expected = (k_b + 0.5) / h_b * h_i
    p = float(stats.poisson.sf(k_i - 1, expected)) if k_i > 0 else 1.0
    return k_i, expected, p


def _fmt_rate(climbing: pd.DataFrame) -> str:
    share = _median(climbing["growth_per_hour_share"])
    if not math.isnan(share):
        return f"+{share:.1%} of the limit per hour"
    return f"+{climbing['slope_bytes_per_hour'].median() / 2**20:.0f} MiB per hour"


def _median(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.median()) if len(values) else float("nan")


def _num(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float, np.integer, np.floating)) else value
