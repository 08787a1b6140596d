"""A flagged slice that never failed in the baseline is not "already failing in the baseline".

G30's report sweep: varied tuning memory_exhaustion s11 named client android-7.17.4 chronic,
"already failing in the baseline", though its first failure came inside the incident: it had
a few baseline requests, none failed, too few for the one-sided Fisher test to show the rise.
Such a value is now ``unknown`` (it cannot be told new), with a chronic value's severity."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from tests.diagnose.conftest import make_case
from tests.diagnose.test_segments import BASELINE, INCIDENT, _requests
from toolkit.diagnose.case.segments import failure_concentration


def _case():
    requests = _requests(values=("c1", "c2", "c3"))
    base = np.flatnonzero(requests.ts < INCIDENT[0])[[100, 500, 900]]
    inc = np.flatnonzero(requests.ts >= INCIDENT[0])[::36][:40]
    requests.loc[np.r_[base, inc], "checkpoint"] = "rare"
    requests.loc[base, "status"] = "ok"
    requests.loc[inc, "status"] = np.where(np.arange(40) < 12, "error", "ok")
    return requests, base, inc


def test_a_slice_with_no_baseline_failure_and_too_few_baseline_requests_is_unknown():
    requests, base, inc = _case()
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["values"] == ["rare"]
    # the rise the old code needed to call it new: 12 of 40 against 0 of 3 (scipy)
    p = stats.fisher_exact([[12, 28], [0, 3]], alternative="greater").pvalue
    assert p > 0.01
    row = result.table[(result.table["scope"] == "incident")
                       & (result.table["value"] == "rare")].iloc[0]
    assert row["baseline_failure_rate"] == 0.0 and row["status"] == "unknown"
    assert finding.evidence["status"] == ["unknown"]
    assert "already failing in the baseline" not in finding.summary
    assert "no failure among its few baseline requests" in finding.summary
    # severity as a chronic value's: strong (30% against about 1%) -> medium, not new's high
    assert finding.severity == "medium"
    # dated by its first failure in the case, which is in the incident
    first = requests.loc[inc[:12], "ts"].min()
    assert pd.Timestamp(finding.evidence["first_failure"]) == first


def test_a_slice_that_failed_in_the_baseline_stays_chronic():
    requests, base, inc = _case()
    requests.loc[base[:2], "status"] = "error"
    result = failure_concentration(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["status"] == ["chronic"]
    assert "already failing in the baseline" in finding.summary
