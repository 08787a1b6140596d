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
