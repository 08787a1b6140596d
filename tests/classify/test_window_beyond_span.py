"""A scan of one slice of the case places no window after the slice's end.

A focused scan (``focus.focused_scan``) diagnoses a slice of the case, but the diagnostics'
timelines run over the whole case: a sustained change days after the slice used to become the
slice's onset, and with nothing recovered the window ran from that onset back to the slice's
end, which raised "A window's start must come before its end" and crashed the classification
(varied tuning accelerator_fault seed 13 at 2da61ca, found by the lead after the report-seed
run). The slice holds no incident there; the first scan's window stands.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from toolkit.classify.windows import locate_incident
from toolkit.types import Window

START = pd.Timestamp("2026-03-01", tz="UTC")
HOUR = timedelta(hours=1)


def _signals() -> pd.DataFrame:
    """Two timelines over 240 hours that step up at hour 150 and stay up."""
    rng = np.random.default_rng(0)
    p99 = rng.normal(200, 10, 240)
    p99[150:] += 400
    errors = rng.normal(0.01, 0.002, 240)
    errors[150:] += 0.05
    starts = START + pd.to_timedelta(np.arange(240), "h")
    return pd.concat([
        pd.DataFrame({"bucket_start": starts, "signal": "latency.p99_ms", "value": p99}),
        pd.DataFrame({"bucket_start": starts, "signal": "latency.error_rate", "value": errors}),
    ])


def test_a_change_after_the_slice_places_no_window_in_it():
    # the slice ends at hour 120, a day before the step
    assert locate_incident([], _signals(), Window(START, START + 120 * HOUR), HOUR,
                           START + 60 * HOUR) is None


def test_the_same_change_inside_the_span_is_located():
    # guard: over the whole span the step is the incident, open to the end of the data
    found = locate_incident([], _signals(), Window(START, START + 240 * HOUR), HOUR,
                            START + 60 * HOUR)
    assert found is not None
    assert found.onset == START + 150 * HOUR
    assert found.incident.end == START + 240 * HOUR
