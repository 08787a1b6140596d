"""An accuracy drop on a window that opens long before it (issue 22): the whole window's drop
is diluted below significance, so the labels after a step inside the window are tested,
with a Bonferroni correction for the splits tried."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from tests.diagnose.conftest import make_case
from toolkit.diagnose.model.performance import (
    MIN_LABELS,
    STEP_ALPHA,
    accuracy_step,
    model_performance,
)

HOURS = pd.date_range("2026-03-01", periods=8, freq="h", tz="UTC")


def _buckets(labelled, correct):
    return pd.DataFrame({"bucket_start": HOURS[:len(labelled)], "labelled": labelled,
                         "correct": correct})


def _pooled_z_p(k1, n1, k2, n2):
    pooled = (k1 + k2) / (n1 + n2)
    z = (k2 / n2 - k1 / n1) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 2 * stats.norm.sf(abs(z))


def test_the_step_is_the_split_with_the_smallest_corrected_p():
    labelled = [40, 40, 40, 40, 40, 40]
    correct = [38, 37, 38, 30, 29, 30]
    step = accuracy_step(_buckets(labelled, correct), 900, 1000)
    # by hand: splits 1..4 (one bucket before, two after); the labels after split 3 are
    # 89/120 against the baseline's 900/1000 and the 113/120 before it, the smallest p;
    # Bonferroni multiplies it by the 4 splits
    ps = {j: _pooled_z_p(900 + sum(correct[:j]), 1000 + sum(labelled[:j]), sum(correct[j:]),
                         sum(labelled[j:])) for j in range(1, 5)}
    assert min(ps, key=ps.get) == 3
    assert step.start == HOURS[3] and step.labelled == 120 and step.splits == 4
    assert step.accuracy == 89 / 120 and step.drop == 0.9 - 89 / 120
    assert np.isclose(step.pvalue, 4 * ps[3])


def test_the_correction_for_the_splits_tried_bites():
    # the best of the 6 splits reaches p < alpha on its own, but not times 6
    labelled = [MIN_LABELS] * 8
    correct = [27, 27, 27, 27, 27, 24, 23, 23]
    ps = [_pooled_z_p(900 + sum(correct[:j]), 1000 + sum(labelled[:j]), sum(correct[j:]),
                      sum(labelled[j:])) for j in range(1, 7)]
    assert min(ps) < STEP_ALPHA < 6 * min(ps)
    assert accuracy_step(_buckets(labelled, correct), 900, 1000) is None
    assert accuracy_step(_buckets(labelled, correct), 900, 1000, alpha=1.0).start == HOURS[5]


def test_many_sparse_buckets_are_merged_before_splitting():
    # 96 buckets of 5 labels: merged into 24 groups of 4, the step at bucket 72 is group 18
    labelled = np.full(96, 5)
    correct = np.r_[np.tile([5, 4, 5, 5], 18), np.tile([3, 4, 3, 3], 6)]
    buckets = pd.DataFrame({"bucket_start": pd.date_range("2026-03-01", periods=96, freq="h",
                                                         tz="UTC"),
                            "labelled": labelled, "correct": correct})
    step = accuracy_step(buckets, 900, 1000)
    assert step.splits == 22 and step.start == buckets["bucket_start"][72]
    assert step.labelled == 120 and step.accuracy == 78 / 120


def test_a_healthy_window_or_a_last_bucket_blip_has_no_step():
    assert accuracy_step(_buckets([40] * 6, [36, 37, 35, 36, 37, 36]), 900, 1000) is None
    # one bad bucket is not a step: without it the labels after the split hold the baseline
    assert accuracy_step(_buckets([40] * 6, [36, 37, 35, 36, 37, 0]), 900, 1000) is None
    assert accuracy_step(_buckets([40] * 6, [36, 37, 0, 36, 37, 36]), 900, 1000) is None


def test_a_diluted_drop_in_a_widened_window_is_found_from_its_step():
    # accuracy 0.9, then 0.7 in the last 12 hours of a 48-hour incident window (5-minute
    # requests): over the whole window the drop is ~0.05 on 576 labels, not significant at
    # 1e-3, so the old test made no finding at that level; the step after 36 hours is
    rng = np.random.default_rng(3)
    ts = pd.date_range("2026-03-01", periods=108 * 12, freq="5min", tz="UTC")
    onset = ts[0] + pd.Timedelta("96h")
    p_right = np.where(ts >= onset, 0.7, 0.9)
    prediction = rng.choice(["0", "1"], len(ts))
    right = rng.uniform(size=len(ts)) < p_right
    label = np.where(right, prediction, np.where(prediction == "1", "0", "1"))
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(ts))], "ts": ts,
                             "prediction": prediction})
    labels = pd.DataFrame({"request_id": requests["request_id"], "label": label,
                           "labeled_at": ts + pd.Timedelta("1h")})
    con = make_case(requests=requests, labels=labels)
    baseline, incident = (ts[0], ts[0] + pd.Timedelta("60h")), (ts[0] + pd.Timedelta("60h"),
                                                               ts[-1] + pd.Timedelta("5min"))
    result = model_performance(con, baseline, incident)
    b, i = (result.table.set_index("window").loc[w] for w in ("baseline", "incident"))
    whole_p = _pooled_z_p(b["correct"], b["labelled"], i["correct"], i["labelled"])
    assert whole_p > 1e-3  # the whole window alone is not significant
    (finding,) = [f for f in result.findings() if f.id == "model.accuracy_drop"]
    assert finding.severity == "high" and finding.statistic > 0.1
    assert abs(pd.Timestamp(finding.onset) - onset) <= pd.Timedelta("3h")
    assert finding.evidence["pvalue"] < STEP_ALPHA
