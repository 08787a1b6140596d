"""Postmortem sections on hand-made results: what the summary leads with, rates per hour,
which SLO breaches the Detection section cites, and what an undetermined verdict recommends."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pandas as pd

from toolkit.classify import remediation_for
from toolkit.diagnose._base import Finding
from toolkit.report.postmortem import Postmortem
from toolkit.types import Window

BASELINE = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 11, tzinfo=UTC))  # 240 h
INCIDENT = Window(datetime(2026, 2, 11, tzinfo=UTC), datetime(2026, 2, 16, tzinfo=UTC))  # 120 h
ONSET = datetime(2026, 2, 11, 0, 30, tzinfo=UTC)


class Values(SimpleNamespace):
    """A diagnostic result with per-window values."""

    def value(self, window, column):
        return self.values[window].get(column, float("nan"))

    def findings(self):
        return list(getattr(self, "found", []))


def _postmortem(mode="calibration_collapse", pathway="model", results=None, hits=(),
                mode_scores=None, findings=()):
    verdict = SimpleNamespace(pathway=pathway, failure_mode=mode, confidence=0.9, onset=ONSET,
                              hits=hits, remediation=tuple(remediation_for(mode)),
                              mode_scores=mode_scores or {}, alternatives=(), trigger=None)
    diagnosis = SimpleNamespace(results=results or {}, findings=lambda: list(findings),
                                not_assessed=lambda: [])
    result = SimpleNamespace(verdict=verdict, diagnosis=diagnosis, incident=INCIDENT,
                             baseline=BASELINE, onset=ONSET, serving_mode="real-time",
                             failure_mode=mode, pathway=pathway, detected=None,
                             window_source="given")
    case = SimpleNamespace(events=pd.DataFrame(columns=["ts", "kind", "artifact", "version",
                                                        "host", "detail"]))
    return Postmortem(result, case)


def _calibration():
    return Values(table=pd.DataFrame({"x": [1]}), threshold=0.85, values={
        "baseline": {"ece": 0.0041, "confident_error_share": 0.008},
        "incident": {"ece": 0.0392, "confident_error_share": 0.21}})


def _latency(breaches=None):
    return Values(table=pd.DataFrame({"x": [1]}), slo_ms=200.0, slo_source="case_meta",
                  breaches=breaches if breaches is not None else pd.DataFrame(
                      columns=["start", "end", "buckets", "worst_p99_ms"]),
                  values={"baseline": {"requests": 24_000, "error_rate": 0.01,
                                       "timeout_rate": 0.0, "p50_ms": 30, "p99_ms": 100},
                          "incident": {"requests": 6_000, "error_rate": 0.02,
                                       "timeout_rate": float("nan"), "p50_ms": 31,
                                       "p99_ms": 150}})


def test_calibration_collapse_summary_leads_with_ece_and_confident_wrong_share():
    pm = _postmortem(results={"model.calibration": _calibration(), "infra.latency": _latency()})
    text = pm.summary().fragment
    assert "ECE 0.0041 -&gt; 0.039" in text
    assert "0.8% -&gt; 21.0%" in text
    # the calibration line comes before the impact line
    assert text.index("ECE") < text.index("Impact")


def test_unit_change_summary_names_the_feature_and_the_factor():
    units = Values(table=pd.DataFrame({"x": [1]}), values={}, found=[Finding(
        id="data.unit_change", pathway="data", severity="high", statistic=1000.0,
        threshold=1000.0, summary="s", evidence={"feature": "weight_kg", "factor": 1000.0,
                                                 "meaning": "kilograms sent as grams"})])
    pm = _postmortem("unit_change", "data", results={"data.units": units})
    text = pm.summary().fragment
    assert "Unit change: weight_kg arrives multiplied by 1,000 (kilograms sent as grams)" in text
    units.found[0].evidence.update(factor=1006.2, matched=1000.0)
    text = pm.summary().fragment
    assert "weight_kg arrives multiplied by 1,000 (measured x1,006; kilograms sent as grams)" \
        in text


def test_impact_counts_are_rates_per_hour():
    pm = _postmortem(results={"infra.latency": _latency()})
    text = pm.impact().fragment
    # 24,000 requests in 240 h and 6,000 in 120 h: 100 vs 50 per hour (raw counts would say
    # -18,000)
    assert "<td>requests per hour</td>\n      <td>100</td>\n      <td>50</td>" in text
    assert "-50 (x0.5)" in text
    assert "-18,000" not in text
    # failures per hour: 240 / 240 h = 1, 6,000 x 2% (timeouts unknown count as 0) / 120 h = 1
    assert "<td>failed requests per hour</td>\n      <td>1</td>\n      <td>1</td>" in text
    assert "nan" not in text.lower()


def test_detection_cites_only_breaches_near_or_after_the_onset():
    breaches = pd.DataFrame({
        "start": pd.to_datetime(["2026-02-04 03:00", "2026-02-11 02:00"], utc=True),
        "end": pd.to_datetime(["2026-02-04 04:00", "2026-02-11 05:00"], utc=True),
        "buckets": [1, 3], "worst_p99_ms": [260.0, 900.0]})
    pm = _postmortem(results={"infra.latency": _latency(breaches)})
    text = pm.detection().fragment
    assert "2026-02-11 02:00" in text and "900 ms" in text
    assert "2026-02-04" not in text
    assert "1 earlier breach window(s), before the estimated onset, are not part of this incident" in text


def test_undetermined_verdict_recommends_no_single_failure_modes_fix():
    scores = {"calibration_collapse": 0.31, "covariate_shift": 0.28, "memory_leak": 0.05,
              "none": 0.2, "undetermined": 0.0}
    pm = _postmortem("undetermined", "undetermined", mode_scores=scores)
    text = pm.action_items().fragment
    assert "no remediation is recommended as such" in text
    assert "If it is calibration collapse (candidate, probability 0.31)" in text
    assert "If it is covariate shift (candidate, probability 0.28)" in text
    first = remediation_for("calibration_collapse")[0]
    assert text.count(first.split(" (")[0][:40]) == 1  # only under its candidate heading
    assert text.index("First steps") < text.index("If it is calibration collapse")
    # a decided verdict lists its remediation as action items
    decided = _postmortem().action_items().fragment
    assert "candidate" not in decided and "Action items" in decided


def test_detection_lag_has_no_negative_zero():
    """A first signal 13 s before the onset read "(-0 min from the estimated onset)"."""
    from datetime import timedelta

    finding = Finding(id="model.prediction_shift", pathway="model", severity="high",
                      statistic=1.0, threshold=0.2, summary="outputs moved",
                      onset=ONSET - timedelta(seconds=13))
    text = _postmortem(findings=[finding]).detection().fragment
    assert "(+0 min from the estimated onset)" in text and "-0 min" not in text


def test_detection_says_when_a_slow_climb_dates_the_onset():
    """A memory leak's verdict is dated where its climb began (evidence ``climb_began``),
    hours before the leak finding's own onset: Detection says why the onset lies before every
    signal that moved, and only when that start is the verdict's onset."""
    from datetime import timedelta

    leak = Finding(id="infrastructure.memory_leak", pathway="infrastructure", severity="high",
                   statistic=1.0, threshold=0.5, summary="memory climbs",
                   onset=ONSET + timedelta(hours=8),
                   evidence={"climb_began": ONSET + timedelta(seconds=20)})
    text = _postmortem("memory_leak", "infrastructure", findings=[leak]).detection().fragment
    assert ("The onset is where the change behind infrastructure.memory_leak began, at "
            "2026-02-11 00:30 UTC, 480 min before it became visible (2026-02-11 08:30 UTC)"
            in text)
    leak.evidence["climb_began"] = ONSET - timedelta(hours=3)  # it did not date the verdict
    text = _postmortem("memory_leak", "infrastructure", findings=[leak]).detection().fragment
    assert "The onset is where" not in text


def test_detection_says_when_a_slow_fall_of_accuracy_dates_the_onset():
    """A concept drift's verdict dated where its accuracy began to fall (evidence
    ``ramp_began`` of a drop measured over the whole window, which has no onset of its own),
    hours before the detected window opened: the fall became visible with the window."""
    from datetime import timedelta

    drop = Finding(id="model.accuracy_drop", pathway="model", severity="high", statistic=0.1,
                   threshold=0.03, summary="accuracy fell",
                   evidence={"ramp_began": ONSET + timedelta(seconds=30)})
    pm = _postmortem("concept_drift", "model", findings=[drop])
    pm.result.incident = Window(ONSET + timedelta(hours=9), INCIDENT.end)  # a detected window
    text = pm.detection().fragment
    assert ("The onset is where the change behind model.accuracy_drop began, at "
            "2026-02-11 00:30 UTC, 540 min before it became visible (2026-02-11 09:30 UTC)"
            in text)
