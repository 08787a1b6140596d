"""Cold-start onset in a long incident window: the start of the flapping, not the first
routine restart (the window detector's scan compares the first quarter of the data with the
rest, and the old onset, the incident's first replica start, was days early on the varied
tuning cases: s3 -77 h, s9 -111 h, s12 -227 h, s15 -161 h)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from tests.diagnose.conftest import make_case
from tests.diagnose.test_cold_start import CUT, END, T0, _case
from toolkit.diagnose.infra.cold_start import cold_start_effect

STORM = CUT + timedelta(minutes=30)  # the first of 16 starts 20 minutes apart


def _finding(baseline, incident, **kwargs):
    frame, events = _case(storm=True, **kwargs)
    con = make_case(requests=frame, events=events)
    result = cold_start_effect(con, baseline, incident)
    (finding,) = result.findings()
    return finding


def test_a_routine_restart_early_in_a_long_window_does_not_date_the_storm():
    # the incident window opens at 5 h and holds pod-1's routine restart at 6 h and pod-2's
    # at 15 h, then the storm from 24 h 30
    finding = _finding((T0, T0 + timedelta(hours=5)), (T0 + timedelta(hours=5), END))
    assert pd.Timestamp(finding.onset) == STORM


def test_with_the_true_windows_the_first_storm_start_is_the_onset():
    finding = _finding((T0, CUT), (CUT, END))
    assert pd.Timestamp(finding.onset) == STORM
