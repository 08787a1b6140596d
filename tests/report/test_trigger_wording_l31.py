"""The Root cause section's trigger line for a report with no onset (L31).

A ``none`` verdict's postmortem said "no deploy, rollback or configuration change was logged
near the onset" where no onset is dated (varied tuning none s3, seen in G31's render).
"""

from __future__ import annotations

from tests.report.test_postmortem_faults_l31 import _undecided
from tests.report.test_sections import _postmortem


def test_a_none_verdict_looks_for_no_trigger():
    text = _undecided("none").root_cause().fragment
    assert "no incident was found" in text
    assert "near the onset" not in text


def test_an_undated_undetermined_verdict_says_no_onset_is_dated():
    text = _undecided("undetermined").root_cause().fragment
    assert "no onset is dated" in text
    assert "near the onset" not in text


def test_a_dated_verdict_without_a_logged_change_keeps_the_old_line():
    pm = _postmortem()  # a model verdict with a dated onset and no logged change
    assert pm._trigger() is None and not pm._undated()
    assert "was logged near the onset" in pm.root_cause().fragment


def test_a_given_windows_slow_fall_explains_its_onset():
    """A concept drift dated at a given window's start by ``fall_from_window_start``
    (60976df): Detection says why the onset precedes the accuracy drop's own date."""
    from datetime import timedelta

    from tests.report.test_sections import INCIDENT
    from toolkit.diagnose._base import Finding

    visible = INCIDENT.start + timedelta(hours=42)
    drop = Finding(id="model.accuracy_drop", pathway="model", severity="high", statistic=0.16,
                   threshold=0.03, summary="accuracy fell",
                   evidence={"fall_from_window_start": INCIDENT.start}, onset=visible,
                   diagnostic="model.performance")
    pm = _postmortem(mode="concept_drift", pathway="model", findings=[drop])
    pm.result.onset = pm.result.verdict.onset = INCIDENT.start
    text = pm._slow_start()
    assert text is not None and "model.accuracy_drop" in text
    assert "2,520 min before it became visible" in text
    assert "cannot place the fall after the start of the incident window given" in text
