"""Finding the incident window in the data when the user does not give one.

Recipe (:func:`locate_incident`): every diagnostic runs once against a provisional baseline (the
first quarter of the span); the onsets of its medium and high findings are candidates, and the
onset is the candidate supported by the most severe findings within two buckets of it (high
counts 2, medium 1, half that for a candidate nothing else comes within two buckets of; ties go
to the earliest, unless only the later of two separate clusters holds a finding refined on raw
rows), dated by the findings' own onsets (refined on raw rows) rather
than by the start of a timeline bucket; a change point is dated inside its bucket by the share of
the change's level the bucket holds (a change two hours into a three-hour bucket is dated there,
not at the bucket's start). Where the symptoms of a slow mode pile up
is later than where it starts (a leak's memory climbs for a day before the OOM kills): a
finding of the cluster's pathway refined on raw rows up to a day and a half before it is the
incident's lead-in and dates it. Its end comes from the change points of the timelines below
(when every supporting signal, including those of the pile-up, recovered), else the end of
the data.

Change points on the timelines alone (:func:`detect_windows`, used when no finding fires):

1. The case's span is cut into buckets; a provisional baseline is its first quarter.
2. The diagnostics' timelines over the whole span give one series per signal (latency p50/p99,
   error and timeout rates, accuracy, ECE, worst feature PSI, worst null rate, request volume,
   and the integration and infrastructure signals the diagnostics expose).
3. Each series is put on a robust z scale against the provisional baseline (median, MAD) and
   segmented with ruptures' PELT (l2 cost, penalty ``3 * log(n)``, minimum segment 2 buckets).
   A change point counts when the level after it differs from the baseline by at least 4 robust
   standard deviations and the change is *sustained*: at least 3 buckets, through the end, or
   2 buckets when it is three times that strong. A lone change dates an incident only when
   so many of its buckets departing is improbable at the rate the baseline's buckets depart
   (a sparse share's spikes: :func:`_chance`).
4. The onset is the change point with the most support: the sum of the strengths of all the
   signals that change within two buckets of it; ties go to the earliest.
5. The incident runs from the onset until every supporting symptom is back within 4 robust
   standard deviations of its baseline (or the end of the data; a change of the version mix
   is a release, not a symptom, and does not keep the incident open); the baseline is the
   period before the onset, at most 14 days, ending one bucket before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from toolkit.types import Window

__all__ = ["DetectedWindows", "detect_windows", "locate_incident", "on_grid", "release_starts",
           "SignalChange", "supporting_pathways"]

MIN_EFFECT = 4.0
#: A timeline change must be this strong (robust z) to date an incident on its own.
CANDIDATE_EFFECT = 6.0
#: Signals that mark a change made to the service (a release, the version mix, replica starts,
#: traffic), not a symptom: they corroborate an onset but do not date one on their own.
_RELEASE_SIGNALS = ("versions.", "model.new_version_share", "model.score_psi", "traffic.",
                    "cold_start.starts")
#: Signals that repeat another one (the latency tail and the timeout rate measured twice).
_DUPLICATE_SIGNALS = {"timeouts.p99_ms", "timeouts.timeout_rate"}
#: A new model version's share of the traffic, and the shift of the scores' distribution: a
#: release and its effect on the outputs (:func:`_shifted_release`).
_NEW_VERSION, _SCORE_SHIFT = "model.new_version_share", "model.score_psi"
#: The finding of a shift of the scores over the whole scan window (its own onset may be
#: missing: too few scores a bucket to date it).
_SCORE_SHIFT_FINDING = "model.prediction_shift"
SUSTAIN = 3
#: A lone change dates an incident only when so many of its buckets departing by chance, at
#: the baseline's own rate of departures, has a probability below this (:func:`_chance`).
RUN_ALPHA = 1e-3
#: How long before its symptoms pile up a slow mode may show in its own signals (a memory leak
#: takes a day or more to exhaust memory). Longer, and a stray finding of the same pathway (one
#: OOM kill a day before a leak starts) opens the window early.
LEAD_IN = pd.Timedelta(hours=36)
#: The pathway each family of timeline signals points to; latency, traffic and failure-segment
#: signals are symptoms of every pathway and point to none.
_SIGNAL_PATHWAYS = (("memory.", "infrastructure"), ("capacity.", "infrastructure"),
                    ("hosts.", "infrastructure"), ("cold_start.", "infrastructure"),
                    ("drift.", "data"), ("data.", "data"), ("model.", "model"),
                    ("cache.", "integration"), ("client_errors.", "integration"),
                    ("versions.", "integration"), ("timeouts.", "integration"))
MAX_BASELINE = timedelta(days=14)
#: Diagnostics whose finding is dated by one row, not by a change: a failure segment's onset is
#: the segment's first failure (a new client version's first failure at its background rate,
#: hours before its rate rises). Such a finding may sit in the cluster, but does not lead in
#: (:func:`_lead_in`).
_FIRST_ROW_DIAGNOSTICS = ("case.segments",)
#: Per-host excesses of a generic symptom (one host's failure or slow share above the fleet's):
#: a short lone one is a blip like the fleet-wide symptom (:func:`_drop_blips`).
_HOST_SIGNALS = ("hosts.failure_rate_excess", "hosts.slow_share_excess")
#: The share of its weight a candidate keeps when nothing else agrees with it
#: (:func:`_weigh_by_agreement`).
LONE_WEIGHT = 0.5
#: A bucket within this many robust standard deviations of the baseline has not departed from
#: it (the baseline's own buckets reach it about 3 times in a thousand): a change point whose
#: first bucket departs less than this begins in the next bucket (:func:`_within_bucket`).
NOISE_Z = 3.0
#: A change point dated within this share of a bucket of the bucket's start is at the start (the
#: noise of a step that fills its bucket).
WITHIN_NOISE = 0.03


@dataclass(frozen=True)
class SignalChange:
    """A sustained change of one signal."""

    signal: str
    at: datetime
    strength: float
    recovered: datetime | None
    #: When the change began within its buckets (:func:`_within_bucket`); ``at`` is the start
    #: of the first bucket that departs, up to a bucket earlier than the change itself.
    began: datetime | None = None
    #: The probability that as many of the change's buckets depart by chance, at the rate the
    #: baseline's buckets depart (:func:`_chance`): a sparse count's spikes reach a median
    #: beyond the baseline in a run of three buckets holding two of them.
    chance: float = 0.0


@dataclass(frozen=True)
class DetectedWindows:
    """Windows found in the data, with the change points that placed them."""

    baseline: Window
    incident: Window
    onset: datetime
    changes: tuple[SignalChange, ...]
    supporting: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.changes])


def detect_windows(signals: pd.DataFrame, span: Window, bucket: timedelta) -> DetectedWindows | None:
    """Locate the incident in ``signals`` (``bucket_start``, ``signal``, ``value``).

    Returns ``None`` when no signal changes in a sustained way (nothing to investigate).
    """
    provisional_end = span.start + (span.end - span.start) / 4
    changes = []
    for name, part in signals.groupby("signal"):
        series = part.groupby("bucket_start")["value"].mean().sort_index()
        series = series[series.index >= pd.Timestamp(span.start)]
        change = _signal_change(str(name), series, provisional_end, bucket)
        if change is not None:
            changes.append(change)
    if not changes:
        return None
    best, support = None, -1.0
    for candidate in changes:
        near = [c for c in changes if abs(c.at - candidate.at) <= 2 * bucket]
        total = sum(c.strength for c in near)
        earliest = min(c.at for c in near)
        if total > support + 1e-9 or (abs(total - support) <= 1e-9 and best is not None and
                                      earliest < best[0]):
            best, support = (earliest, near), total
    onset, near = best
    recovered = [c.recovered for c in near]
    end = span.end if any(r is None for r in recovered) else max(recovered)
    end = max(end, onset + bucket)
    base_start = max(span.start, onset - MAX_BASELINE)
    base_end = onset - bucket
    if base_end <= base_start:
        base_end = onset
    return DetectedWindows(
        baseline=Window(base_start, base_end), incident=Window(onset, end), onset=onset,
        changes=tuple(sorted(changes, key=lambda c: c.at)),
        supporting=tuple(sorted({c.signal for c in near})),
    )


def _signal_change(name: str, series: pd.Series, provisional_end: datetime,
                   bucket: timedelta) -> SignalChange | None:
    values = series.to_numpy(dtype=float)
    times = series.index
    if len(values) < 8 or np.isnan(values).all():
        return None
    base = values[times < pd.Timestamp(provisional_end)]
    base = base[~np.isnan(base)]
    if len(base) < 4:
        return None
    centre = float(np.median(base))
    spread = 1.4826 * float(np.median(np.abs(base - centre)))
    spread = max(spread, float(np.std(base)) * 0.5, 1e-9 + abs(centre) * 0.02)
    z = (values - centre) / spread
    observed = z  # the chance of a run is read on the buckets measured, not interpolated
    base_z = observed[:int(np.sum(times < pd.Timestamp(provisional_end)))]
    z = pd.Series(z).interpolate(limit_direction="both").to_numpy()
    breaks = _pelt(z)
    segments = list(zip([0, *breaks[:-1]], breaks, strict=True))
    levels = [float(np.median(z[a:b])) for a, b in segments]
    runs = []  # (start index, stop index, strength) of sustained departures from the baseline
    k = 0
    while k < len(segments):
        start, stop = segments[k]
        if start == 0 or abs(levels[k]) < MIN_EFFECT:
            k += 1
            continue
        # a change may decay through several segments (a stale cache draining): the run of
        # adjacent segments on the same side counts as one change
        j = k
        while j + 1 < len(segments) and abs(levels[j + 1]) >= MIN_EFFECT and \
                np.sign(levels[j + 1]) == np.sign(levels[k]):
            j += 1
        run_stop = segments[j][1]
        strong = run_stop - start >= 2 and float(np.min(np.abs(z[start:run_stop]))) >= \
            3 * MIN_EFFECT
        at_end = run_stop == len(z) and run_stop - start >= 2
        if run_stop - start >= SUSTAIN or at_end or strong:
            runs.append((start, run_stop, min(abs(levels[k]), 50.0),
                         _chance(observed[start:run_stop], base_z, float(np.sign(levels[k])))))
        k = j + 1
    if not runs:
        return None
    # Symptoms that come back within a day (a leak's saw-tooth) belong to one incident.
    first = runs[0]
    last_stop = first[1]
    for start, stop, *_ in runs[1:]:
        if times[min(start, len(times) - 1)] - times[min(last_stop, len(times) - 1)] <= \
                pd.Timedelta(hours=24):
            last_stop = stop
        else:
            break
    recovered = times[last_stop].to_pydatetime() if last_stop < len(z) else None
    at = times[first[0]]
    began = _within_bucket(z, first[0], first[1], at, bucket)
    return SignalChange(name, at.to_pydatetime(), first[2], recovered, began.to_pydatetime(),
                        first[3])


def _chance(run: np.ndarray, base_z: np.ndarray, sign: float) -> float:
    """The probability that as many buckets of ``run`` depart from the baseline by chance.

    A sparse count (a few out-of-range requests or errors in a sampled log) is zero in most
    buckets and jumps in a few, in the baseline as later: a run of three buckets, two of them
    spikes, has a median beyond the baseline and looks sustained. The baseline's share of
    buckets that depart as far on the same side (:data:`MIN_EFFECT`, Laplace-smoothed) is the
    chance of a spike, and the binomial tail of the run's departing buckets at that rate is the
    chance of the run. A dense timeline's baseline never departs: a step of three buckets has a
    chance of (1/62)^3, about 1 in 240,000, on a baseline of 60. Spikes flicker: a run that
    departs in every bucket measured is a step, however few its buckets (its chance is 0). In
    the tuning cases every spiky run that opened a wrong window came back to the baseline
    inside it (7.5, 0, 8.3), and the two real steps of two measured buckets did not (a
    six-hour OOD burst, varied adversarial_inputs seed 5; a drift at the end of a sparse PSI
    timeline, covariate_shift seed 1).
    """
    from scipy.stats import binom

    base, run = base_z[~np.isnan(base_z)], run[~np.isnan(run)]
    rate = (float(np.sum(base * sign >= MIN_EFFECT)) + 1.0) / (len(base) + 2.0)
    departed = int(np.sum(run * sign >= MIN_EFFECT))
    if departed == len(run) > 0:
        return 0.0
    return float(binom.sf(departed - 1, len(run), rate))


def _within_bucket(z: np.ndarray, start: int, stop: int, at: pd.Timestamp,
                   bucket: timedelta) -> pd.Timestamp:
    """When a step change began inside the bucket where the segmentation placed it.

    A bucket's value is the mean over its rows, so the first bucket that departs holds the
    change for part of its length only: its share of the level the change reaches (the median
    of the next two buckets) is the part of the bucket after the change, and so is a share of
    the bucket before (a change early in a bucket puts the break there, the bucket before
    slightly off). ``at + bucket`` minus both shares of a bucket dates the change, between the
    start of the bucket before and the end of the first one (a rate on a busy bucket dates a
    stale cache to minutes instead of the start of a three-hour bucket). A change of one
    bucket (nothing after it to measure the level on) keeps its bucket start. A first bucket
    within the baseline's noise (:data:`NOISE_Z`) holds none of the change: the segmentation
    (segments of two buckets at least) put the break a bucket early, and the change is dated in
    the next one. At a robust z of 1, label noise on a few labels a bucket dated an accuracy
    drop 1.7 hours before its five findings refined on raw rows (classic tuning version_skew
    seed 1; unit_change seed 1, 1.9 hours, on the drift timeline).
    """
    after = z[start + 1:min(start + 3, stop)]
    if len(after) == 0 or np.isnan(after).all():
        return at
    level = float(np.nanmedian(after))
    if abs(level) < MIN_EFFECT:
        return at
    sign = np.sign(level)
    if z[start] * sign < NOISE_Z and start + 2 < stop:
        # the segmentation (segments of two buckets at least) put the break a bucket early
        start += 1
        at = at + pd.Timedelta(bucket)
        after = z[start + 1:min(start + 3, stop)]
        level = float(np.nanmedian(after)) if not np.isnan(after).all() else level
        if abs(level) < MIN_EFFECT:
            return at
    share = float(np.clip(z[start] / level, 0.0, 1.0))
    step = pd.Timedelta(bucket)
    return at + step - share * step


def _pelt(z: np.ndarray) -> list[int]:
    import ruptures

    penalty = 3.0 * math.log(max(len(z), 2))
    algo = ruptures.Pelt(model="l2", min_size=2, jump=1).fit(z.reshape(-1, 1))
    return algo.predict(pen=penalty)


def release_starts(signals: pd.DataFrame, span: Window, bucket: timedelta) -> list[datetime]:
    """Where a new model version's share of the traffic (:data:`_NEW_VERSION`) began a
    sustained rise over ``span``, measured against the span's first quarter as the first scan
    measures every timeline: the releases the requests show, logged or not (varied tuning
    bad_release s22 logs no events; its new version's share begins 9 min after the onset).
    At most one: the timeline's first sustained change.
    """
    part = signals[signals["signal"] == _NEW_VERSION] if len(signals) else signals
    if not len(part):
        return []
    series = part.groupby("bucket_start")["value"].mean().sort_index()
    series = series[series.index >= pd.Timestamp(span.start)]
    provisional_end = span.start + (span.end - span.start) / 4
    change = _signal_change(_NEW_VERSION, series, provisional_end, bucket)
    return [] if change is None else [change.began or change.at]


def locate_incident(findings: list, signals: pd.DataFrame, span: Window,
                    bucket: timedelta, provisional_end: datetime | None = None
                    ) -> DetectedWindows | None:
    """The incident window from a scan's findings, its end from the timelines' change points.

    ``provisional_end`` ends the scan's baseline, which the timelines' change points are
    measured against (by default the end of the span's first quarter).

    Returns ``None`` when no medium or high finding has an onset (nothing to investigate), or
    when the incident would begin at or after the span's end.
    """
    if provisional_end is None:
        provisional_end = span.start + (span.end - span.start) / 4
    weight = {"high": 2.0, "medium": 1.0}
    candidates = [(pd.Timestamp(f.onset), weight[f.severity], f.id) for f in findings
                  if f.onset is not None and f.severity in weight
                  and pd.Timestamp(span.start) < pd.Timestamp(f.onset) < pd.Timestamp(span.end)]
    changes = []
    for name, part in signals.groupby("signal"):
        series = part.groupby("bucket_start")["value"].mean().sort_index()
        series = series[series.index >= pd.Timestamp(span.start)]
        change = _signal_change(str(name), series, provisional_end, bucket)
        if change is not None:
            changes.append(change)
    # Strong sustained changes of the timelines are candidates too (a diluted finding may not
    # fire against a long provisional window); their weight grows with their strength, up to 1.5
    # (a high finding counts 2).
    candidates += [(pd.Timestamp(c.at), min(c.strength / 20.0, 1.5), c.signal) for c in changes
                   if c.strength >= CANDIDATE_EFFECT and c.signal not in _DUPLICATE_SIGNALS
                   and not c.signal.startswith(_RELEASE_SIGNALS)]
    # A new model version that shifts the scores is an incident sign; the version dates it.
    shifted = _shifted_release(changes, bucket, findings)
    candidates += [(pd.Timestamp(c.at), min(c.strength / 20.0, 1.5), c.signal) for c in shifted]
    # A release alone is not an incident, but one at the same time corroborates it.
    releases = [(pd.Timestamp(c.at), min(c.strength / 20.0, 1.5)) for c in changes
                if c.signal.startswith(_RELEASE_SIGNALS) and c not in shifted]
    if not candidates:
        return None
    agreed = _agreement(candidates, changes, bucket)
    candidates = _drop_blips(_weigh_by_agreement(candidates, agreed), agreed, changes, bucket)
    if not candidates:
        return None  # a lone blip of a generic symptom: no incident window found
    # Equal support: the earliest cluster wins, unless the two are separate stories and only
    # the later one holds a finding dated on raw rows (a finding its diagnostic left at a
    # bucket start is placed no better than a change point, and may be days off).
    ids = {f.id for f in findings}
    best, support, rank = None, -1.0, None
    for at, _, _ in candidates:
        near = [c for c in candidates if at - bucket <= c[0] <= at + 2 * bucket]
        total = sum(c[1] for c in near) + max(
            (w for t, w in releases if at - bucket <= t <= at + bucket), default=0.0)
        earliest = min(c[0] for c in near)
        key = (not any(c[2] in ids and not on_grid(c[0], bucket) for c in near), earliest)
        if abs(total - support) <= 1e-9 and not set(near) & set(best[1]):
            better = key < rank
        else:
            better = total > support + 1e-9 or (abs(total - support) <= 1e-9 and
                                                earliest < best[0])
        if better:
            best, support, rank = (earliest, near), total, key
    onset, near = best
    pile_up = onset
    lead = _lead_in(near, candidates, changes, {f.id: f.pathway for f in findings}, onset,
                    bucket, {f.id for f in findings if f.diagnostic in _FIRST_ROW_DIAGNOSTICS})
    if lead:
        near = near + lead
        onset = min(onset, *(c[0] for c in lead))
    began = {c.signal: pd.Timestamp(c.began) for c in changes if c.began is not None}
    onset = _sharpest_onset(near, {f.id for f in findings}, bucket, onset, began)
    if onset >= pd.Timestamp(span.end):
        # the timelines run over the whole case, a scanned slice may end before them: a change
        # after the slice is no incident of it (varied tuning accelerator_fault seed 13: a
        # focused slice dated one 6 days after its end and crashed on an inverted window)
        return None
    # symptoms that start with the incident (or unfold over its first half day, or pile up
    # after its lead-in) keep it open
    horizon = max(4 * pd.Timedelta(bucket), pd.Timedelta(hours=12))
    # (a change dated inside a later bucket than its change point, ``began``, is one that
    # starts with the incident too)
    supporting = [c for c in changes
                  if onset - pd.Timedelta(bucket) <= pd.Timestamp(c.began or c.at)
                  and pd.Timestamp(c.at) <= pile_up + horizon]
    # A release changes the version mix for good; the incident ends when the symptoms do. A
    # signal that repeats another one does not end it on its own either: when its twin did not
    # change, its recovery is a blip of one measurement, not the end of the symptoms.
    symptoms = [c for c in supporting if (not c.signal.startswith(_RELEASE_SIGNALS) or
                                          c in shifted and c.signal == _SCORE_SHIFT)
                and c.signal not in _DUPLICATE_SIGNALS]
    recovered = [c.recovered for c in symptoms]
    if _drift_left_open(near, findings, symptoms):
        recovered = recovered + [None]
    end = pd.Timestamp(span.end)
    if recovered and all(r is not None for r in recovered):
        end = max(pd.Timestamp(max(recovered)), onset + bucket)
    base_start = max(pd.Timestamp(span.start), onset - pd.Timedelta(MAX_BASELINE))
    base_end = max(onset - pd.Timedelta(bucket), base_start + pd.Timedelta(bucket))
    if base_end > onset:
        base_end = onset
    return DetectedWindows(
        baseline=Window(base_start, base_end), incident=Window(onset, end),
        onset=onset.to_pydatetime(), changes=tuple(sorted(changes, key=lambda c: c.at)),
        supporting=tuple(sorted({c[2] for c in near} | {c.signal for c in supporting})),
    )


def _drift_left_open(near: list, findings: list, symptoms: list[SignalChange]) -> bool:
    """Whether the incident is a drift of the inputs that no timeline of the inputs says ended.

    A drift is a state, not an event: its findings compare the whole scan window with the
    baseline and say nothing of when it ended; only the inputs' own timelines (``drift.``,
    ``data.``) can. When the cluster's findings (a failure segment's first failure aside,
    :data:`_FIRST_ROW_DIAGNOSTICS`) are all of the data pathway and no data timeline is among
    the symptoms, the symptoms that recovered are something else (a latency blip, an OOD
    share settling) and the incident runs on to the end of the data. Varied tuning
    covariate_shift seeds 6 and 16 (C25) closed their windows 9 and 12 hours after the onset,
    when an OOD share and a latency tail recovered (IoU 0.02, 0.11, both read none); a cluster
    with a finding of another pathway is left alone: the drift may be its side effect (a
    version out of lineage, varied version_skew seed 2), and an infrastructure fault's error
    rate recovering is its end (accelerator_fault seeds 3 and 4).
    """
    cluster = {c[2] for c in near}
    paths = {f.pathway for f in findings
             if f.id in cluster and f.diagnostic not in _FIRST_ROW_DIAGNOSTICS} - {None}
    return paths == {"data"} and "data" not in {_pathway(c.signal, {}) for c in symptoms}


def _shifted_release(changes: list[SignalChange], bucket: timedelta,
                     findings: list = ()) -> list[SignalChange]:
    """A new model version whose scores move: a strong change of the scores' distribution
    (:data:`_SCORE_SHIFT`, robust z :data:`CANDIDATE_EFFECT` or more) within two buckets of a
    change of the model version mix (:data:`_NEW_VERSION`), both changes; else none. When the
    scores' timeline cannot date the shift (too few scores a bucket for a per-bucket PSI: every
    bucket missing), a medium or high undated finding of the shift over the whole scan window
    (:data:`_SCORE_SHIFT_FINDING`) stands for it, and the version's arrival alone is returned
    when the version then serves to the end of the data (a version rolled back, then another:
    which one shifted the scores is not known). Varied tuning calibration_collapse seeds 1 and
    3 (a sparse log, the collapsed version arriving at the onset and staying) opened their
    windows on another owner's lone change 8 hours and 6 days away.

    A release alone is not an incident, and a score shift alone may follow the inputs' drift
    (both only corroborate an onset), but a release that changes what the model outputs is an
    incident sign, dated by the version's arrival (its scores fill a bucket later). A bad
    release with its incident labels missing shows nothing else: classic tuning bad_release
    seed 4 without them had no finding and no other change, and no window was found.
    """
    reach = 2 * pd.Timedelta(bucket)
    versions = [c for c in changes if c.signal == _NEW_VERSION]
    scores = [c for c in changes if c.signal == _SCORE_SHIFT and c.strength >= CANDIDATE_EFFECT]
    pairs = [(s, v) for s in scores for v in versions
             if abs(pd.Timestamp(s.at) - pd.Timestamp(v.at)) <= reach]
    if pairs:
        return [c for pair in pairs for c in pair]
    undated = [f for f in findings if f.id == _SCORE_SHIFT_FINDING and f.onset is None
               and f.severity in ("high", "medium")]
    if not undated or any(c.signal == _SCORE_SHIFT for c in changes):
        return []  # no shift, or one its timeline dated away from the release
    # (one change per signal: a version rolled back is followed by no other arrival here)
    return [v for v in versions if v.recovered is None]


def _agreement(candidates: list, changes: list[SignalChange], bucket: timedelta) -> list[bool]:
    """Whether anything else agrees with each candidate: another candidate or a sustained change
    of another signal within two buckets of it. A signal's twin (:data:`_DUPLICATE_SIGNALS`) is
    the same measurement, not an agreement."""
    reach = 2 * pd.Timedelta(bucket)
    others = [(at, name) for at, _, name in candidates] + [
        (pd.Timestamp(c.at), c.signal) for c in changes if c.signal not in _DUPLICATE_SIGNALS]
    return [any(other != name and abs(t - at) <= reach for t, other in others)
            for at, _, name in candidates]


def _weigh_by_agreement(candidates: list, agreed: list[bool]) -> list:
    """The candidates, each weighed by whether anything else agrees with it (:func:`_agreement`).

    A finding or change point that nothing else agrees with counts :data:`LONE_WEIGHT` of its
    weight: a lone high ``memory_pressure`` finding 18 to 78 hours away from the incident
    outweighed a medium drift finding that the drift timeline corroborates (varied tuning
    null_injection seed 1, covariate_shift seed 16).
    """
    return [(at, weight if ok else weight * LONE_WEIGHT, name)
            for (at, weight, name), ok in zip(candidates, agreed, strict=True)]


def _drop_blips(weighed: list, agreed: list[bool], changes: list[SignalChange],
                bucket: timedelta) -> list:
    """The candidates without the blips: a change of a generic symptom (latency, error or
    timeout rate, traffic: :func:`_pathway` is ``None``) that nothing else agrees with
    (``agreed``, from :func:`_agreement`) and that recovers within :data:`SUSTAIN` buckets is
    not an incident on its own.

    A healthy period holds such blips (a latency spike of two buckets, varied tuning ``none``
    seed 2: the timeout rate at robust z 50 for six hours, nothing else moving) and the
    detector opened its window there; a mature detector says no incident was found. A blip
    that a finding or another signal agrees with, a change that lasts, and a change of a signal
    that points to a pathway (an out-of-range input share) still count. A lone change of any
    signal whose departing buckets the baseline's own spikes explain (``chance`` at least
    :data:`RUN_ALPHA`, :func:`_chance`) is a blip too: a sparse share's spikes, two in three
    buckets, opened windows days from the incident (varied tuning calibration_collapse seed 1
    on model.ood_share, concept_drift seed 6 on data.max_null_rate). Each change-point
    candidate is paired with its own change (by signal and time), so whether it lasts is read
    on that change, and a finding (no change of its own) is never a blip.
    """
    own = {(c.signal, pd.Timestamp(c.at)): c for c in changes}

    def blip(candidate: tuple) -> bool:
        change = own.get((candidate[2], pd.Timestamp(candidate[0])))
        if change is None:
            return False
        if change.chance >= RUN_ALPHA:
            return True
        if change.recovered is None or pd.Timestamp(change.recovered) - pd.Timestamp(change.at) \
                >= SUSTAIN * pd.Timedelta(bucket):
            return False
        return _pathway(change.signal, {}) is None or change.signal.startswith(_HOST_SIGNALS)

    return [w for w, ok in zip(weighed, agreed, strict=True) if ok or not blip(w)]


def _lead_in(near: list, candidates: list, changes: list[SignalChange],
             pathway_of: dict[str, str], onset: pd.Timestamp, bucket: timedelta,
             first_rows: set[str] = frozenset()) -> list:
    """Earlier evidence of the same incident: the start of a slow mode before its symptoms
    pile up (a leak's memory climbing hours before the OOM kills and the latency tail).

    The most supported cluster of candidates is where the symptoms pile up, which for a slow
    mode is later than its start. Its onset moves back to a finding of the same pathway as the
    cluster that fired up to :data:`LEAD_IN` before it: the same failure already under way.
    Only findings dated on raw rows lead in; change points and findings dated by their
    timeline are placed to within a bucket or two, and the cluster already holds them. A
    finding dated by one row (``first_rows``: a failure segment's first failure,
    :data:`_FIRST_ROW_DIAGNOSTICS`) does not date a change and does not lead in either: a new
    client version's first failure 7 and 8 hours before the timeout change opened the window
    there (varied tuning timeout_misconfiguration seeds 2 and 4). Generic symptoms (latency,
    failure segments) and releases do not date a lead-in, and findings or signals of another
    pathway are another story.
    """
    pathways = {_pathway(name, pathway_of) for _, _, name in near} - {None}
    if not pathways:
        return []
    start = onset - LEAD_IN
    # a change point is placed to within two buckets, and so is a finding dated by its timeline
    # (a coarse accuracy or calibration onset may be a day early): only a finding refined on
    # raw rows dates a lead-in
    lead = [c for c in candidates
            if c[2] in pathway_of and c[2] not in first_rows and start <= c[0] < onset
            and not on_grid(c[0], bucket)
            and _pathway(c[2], pathway_of) in pathways]
    return lead


def supporting_pathways(located: DetectedWindows, findings: list) -> set[str | None]:
    """The pathways a window's supporting signals point to: a finding's (by its id, among
    ``findings``), a timeline's by its prefix; ``None`` for a generic symptom (latency, errors,
    traffic) that every pathway can cause.

    >>> from datetime import UTC, datetime, timedelta
    >>> from toolkit.types import Window
    >>> t, h = datetime(2026, 3, 1, tzinfo=UTC), timedelta(hours=1)
    >>> w = DetectedWindows(Window(t - h, t), Window(t, t + h), t, (),
    ...                     ("latency.p99_ms", "memory.max_utilisation"))
    >>> sorted(supporting_pathways(w, []), key=str)
    [None, 'infrastructure']
    """
    pathway_of = {f.id: f.pathway for f in findings}
    return {_pathway(name, pathway_of) for name in located.supporting}


def _pathway(name: str, pathway_of: dict[str, str]) -> str | None:
    """The pathway a finding (by id) or a timeline signal (by prefix) points to; ``None`` for
    generic symptoms that every pathway can cause."""
    if name in pathway_of:
        return pathway_of[name]
    return next((p for prefix, p in _SIGNAL_PATHWAYS if name.startswith(prefix)), None)


def _sharpest_onset(near: list, finding_ids: set[str], bucket: timedelta,
                    earliest: pd.Timestamp, began: dict[str, pd.Timestamp] | None = None
                    ) -> pd.Timestamp:
    """The onset of a cluster of candidates: a finding's onset (refined on raw rows) rather than
    the start of the timeline bucket that contains it, so that the incident window does not open
    with hours of healthy traffic. Change points on bucketed timelines are placed to within a
    bucket, so only a timeline change two buckets before every finding is an earlier start in its
    own right and wins. A finding whose onset is a bucket start (its diagnostic did not refine
    it) is placed no better than a change point and is treated like one: otherwise a coarse
    accuracy or error-rate onset opens the window a bucket early, hours before the change.
    A change point is dated by when it began within its bucket (``began``, from
    :func:`_within_bucket`) rather than by the bucket's start."""
    began = began or {}

    def dated(at: pd.Timestamp, name: str) -> pd.Timestamp:
        return began.get(name, at) if name not in finding_ids else at

    refined = [at for at, _, name in near if name in finding_ids and not on_grid(at, bucket)]
    if not refined:
        return min(dated(at, name) for at, _, name in near) if began else earliest
    first = min(refined)
    coarse = [dated(at, name) for at, _, name in near
              if (name not in finding_ids or on_grid(at, bucket))
              and dated(at, name) + 2 * pd.Timedelta(bucket) <= first]
    # a change point dated inside its bucket (by more than the noise of a full step, a few
    # hundredths of a bucket) is placed as finely as a finding
    coarse += [dated(at, name) for at, _, name in near
               if name not in finding_ids
               and abs(dated(at, name) - at) > WITHIN_NOISE * pd.Timedelta(bucket)]
    return min([first, *coarse])


def on_grid(at: pd.Timestamp, bucket: timedelta) -> bool:
    """Whether ``at`` is the start of a timeline bucket (they are epoch-aligned): a finding
    dated that way was not refined on raw rows (its diagnostic fell back on its timeline) and
    is only placed to within a bucket, like a change point; a refined onset almost never
    lands exactly on the grid.

    Examples
    --------
    >>> hour = timedelta(hours=1)
    >>> on_grid(pd.Timestamp("2026-03-01T05:00Z"), hour), on_grid(pd.Timestamp("2026-03-01T05:07Z"), hour)
    (True, False)
    """
    step = int(pd.Timedelta(bucket).value)
    return step > 0 and pd.Timestamp(at).value % step == 0
