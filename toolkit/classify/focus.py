"""A focused second scan for a late or short incident the first scan did not find.

The detector's first scan (``classify.api._detect``) compares the span after its first quarter
with that quarter. An incident that covers the last day of a three-week span, or a burst of a
few hours, is a small part of that window: every whole-window comparison dilutes it, no
finding fires, and the verdict read the fallback window (the span after its first quarter
against that quarter) as healthy. When the first scan finds no change, :func:`focused_scan`
compares later slices of the span with the days just before them (:data:`FOCUS_SLICES`), with
the same diagnostics, findings and noise tests, and dates the incident with the same
``locate_incident``; its window is kept only when a finding of that slice (medium or high,
dated inside it, or up to a bucket before it, on raw rows) supports it and another signal or
finding agrees (:func:`held_by_finding`): a slice's timelines measured against a few days of
baseline depart more easily than against a quarter of the span, and several slices are
several tests. When no slice holds one, the verdict reads the first scan's fallback window,
as before.

When no slice holds one either, :func:`anchored_scan` starts at the changes the case records
(a model release or rollback, a client rollout, a scale-out, a release the version-share
timeline shows): the day after each against the day before it, the same holding rule, and the
onset within two buckets after the change. An incident of hours early in the span sits in the
first scan's baseline, and every slice dilutes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import pandas as pd

from toolkit.classify.windows import DetectedWindows, locate_incident, on_grid, supporting_pathways
from toolkit.diagnose import REGISTRY, run_diagnostics
from toolkit.diagnose._case import CaseView, within
from toolkit.diagnose._engines import CaseSource
from toolkit.diagnose.registry import Progress
from toolkit.types import Window

__all__ = ["ANCHOR_EVENTS", "ANCHOR_LEAD", "ANCHOR_REACH", "ANCHOR_SIDE", "FOCUS_SLICES",
           "Focused", "MODEL_CHANGES", "NEW_CLIENT_ROWS", "NEW_CLIENT_SILENCE",
           "anchored_scan", "change_anchors", "client_arrivals", "first_window_stands",
           "focused_scan", "held_by_finding"]

#: The focused scans, in order, as shares of the span: (start of the slice's baseline, start of
#: the slice = end of its baseline, end of the slice). Each quarter after the first against the
#: quarter before it, earliest first, then the last eighth against the eighth before it, then
#: the last sixteenth against the sixteenth before it. The earliest slice that holds an
#: incident wins: a later slice measured against a baseline that holds the incident reads its
#: recovery as a change (varied tuning null_injection seed 2: the third quarter dates the nulls
#: to 2 min, the last quarter against it finds a 'drift' 4 days later). The last sixteenth
#: dates an incident of the span's last half day, which the last eighth dilutes: varied tuning
#: covariate_shift seed 2 (onset 12 h before the end of a 21-day span: no finding in the last
#: eighth, a medium drift 30 min after the onset in the last sixteenth).
FOCUS_SLICES = ((0, 1 / 4, 1 / 2), (1 / 4, 1 / 2, 3 / 4), (1 / 2, 3 / 4, 1), (3 / 4, 7 / 8, 1),
                (7 / 8, 15 / 16, 1))
#: Logged changes an anchored scan starts at (:func:`change_anchors`): a model release or
#: rollback, a client rollout, a scale-out, as ``(kind, artifact)``; ``None`` for any artifact.
#: Pipeline deploys and configuration changes are not anchors: a day after a pipeline deploy,
#: a benign drift or cache episode dated 1 h and 19 h after it held a window on healthy cases
#: (varied tuning none seeds 15 and 3, 30,000 rows), as did a configuration change 1 h before
#: the same drift (none seed 15).
ANCHOR_EVENTS = (("deploy", "model"), ("deploy", "client"), ("rollback", None), ("scale", None))
#: How long an anchored scan reads before the change (its baseline) and after it (its incident):
#: the short incidents the first scan dilutes last hours to a day (varied tuning cold_start s4,
#: a day of cold starts after a scale-out 1.4 days into a 14-day span).
ANCHOR_SIDE = timedelta(days=1)
#: An anchored window stands only when its onset lies within this many buckets after its
#: change: the change is what it dates. A finding a day after a release is another test of a
#: one-day slice, not the release's effect.
ANCHOR_REACH = 2
#: An anchored window of a client version's arrival (:func:`client_arrivals`) may begin up to
#: this many buckets before its first logged request: in a log that keeps 1 in 2 to 1 in 50
#: requests the first one logged comes after the change, and the findings refined on raw rows
#: date the change between the last clean row and the first changed one (varied tuning
#: adversarial_inputs s20: first request 03:19, the drift dated 03:04, the onset 02:50).
ANCHOR_LEAD = 1
#: Logged changes of the model served, as ``(kind, artifact)``: an anchored window a model
#: change holds lasts until the next change, not a day (:func:`anchored_scan`).
MODEL_CHANGES = (("deploy", "model"), ("rollback", "model"))
#: A client version is new in the span when, at its own rate of logged requests, the time
#: before its first one would have held at least this many: for a version present from the
#: start, the chance of such a silence is exp(-5) < 0.007 (Poisson arrivals).
NEW_CLIENT_SILENCE = 5.0
#: The fewest logged requests of a client version whose rate :func:`client_arrivals` trusts.
NEW_CLIENT_ROWS = 3
#: Finding severities that may date a focused window (with another signal agreeing).
_DATING = ("high", "medium")
_INFRASTRUCTURE = "infrastructure"


@dataclass(frozen=True)
class Focused:
    """What a focused scan found (:func:`focused_scan`).

    Attributes
    ----------
    window : DetectedWindows
        The incident window the slice holds, with ``locate_incident``'s baseline.
    how : str
        The slice and its baseline, for ``window_source``.
    findings : tuple
        The findings of the slice that holds the window (for :func:`first_window_stands`).
    """

    window: DetectedWindows
    how: str
    findings: tuple = ()


def focused_scan(con: CaseSource, case: CaseView, search: Window, bucket: timedelta,
                 progress: Progress | None = None) -> Focused | None:
    """The incident in a later slice of ``search`` against the days just before it, how the
    slice was scanned (for ``window_source``) and the slice's findings, as a :class:`Focused`;
    ``None`` when no slice holds one.

    ``bucket`` is the first scan's timeline bucket, so the slices' timelines are the first
    scan's. The window found keeps ``locate_incident``'s baseline: the period before the onset
    (a bucket before it), from the slice's baseline start, next to the incident rather than
    three weeks before it.
    """
    length = search.end - search.start
    for base_share, slice_share, end_share in FOCUS_SLICES:
        base = Window(search.start + length * base_share, search.start + length * slice_share)
        incident = Window(base.end, search.start + length * end_share)
        found = _held_window(con, case, base, incident, bucket, progress)
        if found is not None:
            return found
    return None


def _held_window(con: CaseSource, case: CaseView, base: Window, incident: Window,
                 bucket: timedelta, progress: Progress | None = None) -> Focused | None:
    """Scan ``incident`` against ``base`` on ``bucket``-wide timelines: the window located
    there, with its findings, when a finding holds it (:func:`held_by_finding`), else ``None``.
    The one scan of a focused slice or of an anchored change."""
    scan = run_diagnostics(con, base, incident, case=case,
                           options={i: {"bucket": bucket} for i in REGISTRY}, progress=progress)
    findings = scan.findings()
    located = locate_incident(findings, scan.signals(), Window(base.start, incident.end),
                              bucket, base.end)
    if located is None or not held_by_finding(located, findings, incident, bucket):
        return None
    return Focused(located, _describe(base, incident), tuple(findings))


def change_anchors(events: pd.DataFrame, releases: Sequence, search: Window,
                   bucket: timedelta) -> list[pd.Timestamp]:
    """The times of the changes an anchored scan starts at, earliest first: the logged events
    of :data:`ANCHOR_EVENTS` and the ``releases`` the timelines show (where a new model
    version's share of the traffic began to rise, :func:`~windows.release_starts`), inside
    ``search`` with at least a bucket before them; of changes less than a bucket apart, the
    first (a rollout logs a scale event per replica).

    >>> from datetime import UTC, datetime
    >>> t = pd.Timestamp("2026-03-01", tz="UTC")
    >>> events = pd.DataFrame({"ts": [t + pd.Timedelta(hours=h) for h in (5, 6, 9, 30)],
    ...                        "kind": ["scale", "scale", "deploy", "deploy"],
    ...                        "artifact": ["infra", "infra", "pipeline", "model"]})
    >>> search = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))
    >>> [str(a) for a in change_anchors(events, [t + pd.Timedelta(hours=40)], search,
    ...                                 timedelta(hours=3))]
    ['2026-03-01 05:00:00+00:00', '2026-03-02 06:00:00+00:00', '2026-03-02 16:00:00+00:00']
    """
    start, end = pd.Timestamp(search.start) + bucket, pd.Timestamp(search.end) - 2 * bucket
    times = [pd.Timestamp(t) for t in releases] + _logged(events, ANCHOR_EVENTS)
    anchors: list[pd.Timestamp] = []
    for at in sorted(t for t in times if start <= t < end):
        if not anchors or at - anchors[-1] >= bucket:
            anchors.append(at)
    return anchors


def client_arrivals(case: CaseView, search: Window) -> list[pd.Timestamp]:
    """The first logged request of each client version that arrives during ``search``,
    earliest first: a client rollout, or a burst from a source nobody used before, that the
    events table does not record.

    A version is new when, at its own rate of logged requests (its rows over its lifetime in
    ``search``), the time from ``search``'s start to its first request would have held at
    least :data:`NEW_CLIENT_SILENCE` of them: a version present from the start but rare in a
    sampled log is not new. One aggregate per client version, in the engine.

    Varied tuning adversarial_inputs s20 (30,000 rows, no events): a client version first
    logged 29 min after the onset sends 25 logged requests over 6.3 h, 19 days into the span.

    Examples
    --------
    >>> import toolkit as tk
    >>> from datetime import UTC, datetime
    >>> from toolkit.diagnose._case import case_view
    >>> t0 = pd.Timestamp("2026-03-01", tz="UTC")
    >>> ts = list(pd.date_range(t0, periods=480, freq="30min"))
    >>> burst = list(pd.date_range(t0 + pd.Timedelta(days=6), periods=30, freq="10min"))
    >>> requests = pd.DataFrame({"request_id": [f"r{k}" for k in range(510)],
    ...                          "ts": ts + burst,
    ...                          "client_version": ["ios-1"] * 480 + ["web-9"] * 30})
    >>> con = tk.connect()
    >>> _ = tk.load(con, requests, table="requests")
    >>> search = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))
    >>> [str(t) for t in client_arrivals(case_view(con), search)]
    ['2026-03-07 00:00:00+00:00']
    """
    if not case.has("requests", "client_version"):
        return []
    t = case.table("requests")
    t = t.filter(within(t.ts, search) & t.client_version.notnull())
    per = t.group_by("client_version").aggregate(first=t.ts.min(), last=t.ts.max(),
                                                  rows=t.count()).execute()
    if per.empty:
        return []
    first = pd.to_datetime(per["first"], utc=True)
    lifetime = (pd.to_datetime(per["last"], utc=True) - first).dt.total_seconds().to_numpy()
    silence = (first - pd.Timestamp(search.start)).dt.total_seconds().to_numpy()
    rows = per["rows"].to_numpy(dtype=float)
    rated = (rows >= NEW_CLIENT_ROWS) & (lifetime > 0)
    rate = np.divide(rows - 1, lifetime, out=np.zeros(len(per)), where=rated)
    return sorted(first[rated & (rate * silence >= NEW_CLIENT_SILENCE)])


def anchored_scan(con: CaseSource, case: CaseView, search: Window, bucket: timedelta,
                  releases: Sequence = (), arrivals: Sequence = ()) -> Focused | None:
    """The incident a logged change, a release or a client version's arrival started: each
    change of :func:`change_anchors`, and each arrival (:func:`client_arrivals`) more than a
    bucket after them, earliest first, is scanned a day after it against the day before it
    (:data:`ANCHOR_SIDE`), and the first whose window a finding holds
    (:func:`held_by_finding`) with its onset within :data:`ANCHOR_REACH` buckets after the
    change (from :data:`ANCHOR_LEAD` buckets before an arrival) wins; ``None`` when none does.

    For a case where neither the first scan nor the focused slices found a change: an
    incident of hours to a day early in the span lies in the first scan's baseline, or is
    diluted over a quarter. Varied tuning cold_start s4 (a day of cold starts 1.4 days into a
    14-day span): a scale-out at 09:12 dates the cold-start finding 09:12, against a truth of
    08:59. Varied tuning adversarial_inputs s20 (6.8 h of crafted inputs from a client version
    nobody used before, 19 days into a 20-day span, no events): its first logged request
    anchors the scan that dates the burst 03:04, against a truth of 02:50.
    """
    changes = change_anchors(case.events, releases, search, bucket)
    anchors = [(at, timedelta(0)) for at in changes]
    # an arrival within a bucket after a logged change is that change's rollout, scanned once
    anchors += [(at, ANCHOR_LEAD * bucket)
                for at in change_anchors(None, arrivals, search, bucket)
                if not any(timedelta(0) <= at - change < bucket for change in changes)]
    model = _model_changes(case.events, releases)
    for at, lead in sorted(anchors):
        base = Window(max(pd.Timestamp(search.start), at - ANCHOR_SIDE), at)
        incident = Window(at, min(pd.Timestamp(search.end), at + ANCHOR_SIDE))
        found = _held_window(con, case, base, incident, bucket)
        if found is None or not \
                at - lead <= pd.Timestamp(found.window.onset) <= at + ANCHOR_REACH * bucket:
            continue
        if any(timedelta(0) <= change - at < bucket for change in model):
            found = _until_next_change(found, at, [a for a, _ in anchors], search, bucket)
        return found
    return None


def _model_changes(events: pd.DataFrame | None, releases: Sequence) -> list[pd.Timestamp]:
    """The times the model served changed: logged :data:`MODEL_CHANGES` and ``releases``."""
    return [pd.Timestamp(t) for t in releases] + _logged(events, MODEL_CHANGES)


def _logged(events: pd.DataFrame | None, kinds: Sequence) -> list[pd.Timestamp]:
    """The times of the logged events of ``kinds``, ``(kind, artifact)`` pairs (``None``:
    any artifact)."""
    if events is None or not len(events):
        return []
    wanted = pd.Series(False, index=events.index)
    for kind, artifact in kinds:
        wanted |= (events["kind"] == kind) & \
            (True if artifact is None else events["artifact"] == artifact)
    return [pd.Timestamp(t) for t in events.loc[wanted, "ts"]]


def _until_next_change(found: Focused, at: pd.Timestamp, anchors: Sequence[pd.Timestamp],
                       search: Window, bucket: timedelta) -> Focused:
    """A model change's window, held by the day after it, extended to the next change (or the
    span's end): a worse model serves until it is replaced, and the labels that show its
    accuracy arrive late and sparse, so a day holds too few. Varied tuning bad_release s21
    (30,000 rows): the day after the release shows only its score shift (undetermined); the
    release to its rollback 34 h later shows a 13-point accuracy drop (bad_release, onset 0
    min off, found by helper C29)."""
    later = [a for a in anchors if a >= at + bucket]
    end = min(later) if later else pd.Timestamp(search.end)
    window = found.window
    if end <= pd.Timestamp(window.incident.end):
        return found
    return replace(found, window=replace(window, incident=Window(window.incident.start, end)))


def held_by_finding(located: DetectedWindows, findings: list, incident: Window,
                     bucket: timedelta) -> bool:
    """Whether a medium or high finding of the slice, dated inside it (or up to a bucket before
    it) on raw rows, supports the window, with another signal or finding agreeing.

    Timeline change points alone do not open a focused window: against a baseline of a few
    days a weekly cycle or a benign deploy departs from it (varied tuning none seeds 8 and 11:
    the null-rate and OOD-share timelines of the last quarter against the third). Nor does a
    finding dated by its timeline (its onset a bucket start, :func:`~windows.on_grid`): a
    latency regression of medium severity, dated 21:00 on a three-hour grid, opened a window
    on the last quarter of a healthy case (varied tuning none seed 13). A finding refined on
    raw rows has found where its own change began. And something else must agree with it (a
    second finding or timeline change among the window's supporting signals): the four slices
    are four more tests, and a lone medium capacity-saturation finding, dated on raw rows,
    opened a window on the third quarter of a healthy case (varied tuning none seed 2, a
    traffic peak), where the nulls of varied tuning null_injection seed 2 are dated by their
    finding and the drift timeline together.

    A slow change that began just before the slice opens is dated there by its finding (its
    refinement on raw rows reads back into the slice's baseline): a finding dated up to a
    bucket before the slice holds it too. And a medium or high finding of the same pathway
    that has no onset (it compares the whole slice with its baseline: an out-of-range share)
    is a second finding that agrees with it. Varied tuning covariate_shift seed 3 (30,000
    rows): a drift 4 h before the end of the third quarter, which the last quarter dates 1.5 h
    before it opens (high drift, and a medium out-of-range share with no onset), read none on
    a first window of a contract-error blip 6 days before the drift; its window now replaces
    that one (covariate_shift, onset 153 min after the truth, window IoU 0.97).
    """
    opens = pd.Timestamp(incident.start) - pd.Timedelta(bucket)
    dated = [f for f in findings if f.severity in _DATING and f.onset is not None
             and opens <= pd.Timestamp(f.onset) < pd.Timestamp(incident.end)
             and not on_grid(pd.Timestamp(f.onset), bucket)]
    supporting = set(located.supporting)
    holding = {f.id for f in dated} & supporting
    paths = {f.pathway for f in dated if f.id in holding}
    undated = {f.id for f in findings if f.severity in _DATING and f.onset is None
               and f.pathway in paths}
    return bool(holding) and len(supporting | undated) >= 2


def first_window_stands(first: DetectedWindows, first_findings: Sequence,
                        found: DetectedWindows, slice_findings: Sequence) -> bool:
    """Whether a first-scan window of an infrastructure fault that no finding holds stands
    against the window of a focused slice (``found``, with its slice's findings).

    An infrastructure fault is often dated by its metrics (memory, capacity, host timelines, or
    a finding its diagnostic dates on a bucket start), which no finding dated on raw rows
    holds: such a window is unheld whether it is right or not, and a slice's window may
    replace it. It stands when the slice dates its onset inside it, both windows resting on
    infrastructure signals (generic symptoms, latency or errors, may sit beside them): the
    slice, measured against days that already hold the fault's build-up, dates a later symptom
    of the same fault. Varied tuning memory_leak s9: the first window, dated by the leak
    finding and the memory timeline 34 min after the onset (IoU 0.94), gave way to the second
    quarter's, dated by memory pressure 4.4 h later (IoU 0.36).

    A slice that dates another pathway's symptoms inside a first window of infrastructure
    still replaces it (varied tuning memory_exhaustion s5: a memory-pressure finding dated on a
    bucket start 3 days before the onset, its window open to the end of the span, replaced by
    the third quarter's failure segment, 16 min off).
    """
    if _INFRASTRUCTURE not in supporting_pathways(first, first_findings):
        return False
    inside = pd.Timestamp(first.incident.start) <= pd.Timestamp(found.onset) \
        < pd.Timestamp(first.incident.end)
    return inside and _INFRASTRUCTURE in supporting_pathways(found, slice_findings)


def _describe(base: Window, incident: Window) -> str:
    def iso(t) -> str:
        return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M")

    return (f"{iso(incident.start)} to {iso(incident.end)} against "
            f"{iso(base.start)} to {iso(base.end)}")
