"""A given window's slow accuracy fall is not dated at a split deep inside its ramp (L31).

``drop_began`` dates a drop that no timeline bucket can date at the split with the smallest
two-proportion p-value, when the window's labels before the split show it. A slow concept
drift's first labels are mostly right, so they "show" a split late in the ramp: varied tuning
concept_drift s11 (a given window opening at a 53-hour ramp) was dated 42 hours late. When a
step there does not beat a linear fall from the window's start by half the chi-square(1) 95%
point in binomial log-likelihood, the finding says so (``fall_from_window_start``) and the
classifier dates a concept drift on a given window at the window's start. The split stays the
finding's onset: a detected window may open days early (s3, detected: 62 hours early).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from toolkit.classify.engine import Evidence, _climb_began
from toolkit.diagnose._base import Finding
from toolkit.diagnose.model.performance import (
    RAMP_MARGIN_LL,
    _ramp_explains,
    _split_shown,
    _step_over_ramp,
    drop_began,
)
from toolkit.types import Window

# varied tuning concept_drift s11, given window: labelled incident buckets (3 hours wide)
S11_HOURS = [0, 3, 6, 9, 15, 18, 24, 27, 30, 33, 39, 42, 45, 48, 51, 54, 63, 66, 69, 72, 75,
             78, 81, 84, 87, 90, 93, 96, 102, 105, 111, 114, 117, 120, 123, 129, 132, 135, 141,
             144, 147, 150, 153, 159, 162]
S11_N = [1, 1, 1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 3, 1, 4, 1, 2, 1, 2, 3, 2, 3, 2, 1, 1, 2, 1, 5,
         2, 1, 2, 4, 1, 2, 3, 1, 2, 1, 1, 3, 1, 1, 2, 2, 1]
S11_K = [1, 1, 1, 2, 1, 3, 1, 1, 2, 1, 1, 0, 2, 1, 3, 0, 0, 1, 2, 2, 2, 3, 2, 1, 1, 2, 0, 3,
         2, 1, 2, 3, 1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1]
S11_BASE = (164, 166)


def _buckets(hours, n, k):
    start = pd.Timestamp("2026-03-08 15:00", tz="UTC")
    return pd.DataFrame({"bucket_start": [start + pd.Timedelta(hours=h) for h in hours],
                         "labelled": n, "correct": k})


def _loglik(p, n, k):
    return float(stats.binom.logpmf(k, n, np.clip(p, 1e-12, 1 - 1e-12)).sum())


def _best_over_level(shares, n, k, base):
    """Largest binomial log-likelihood over the level after the fall, by scipy."""
    res = optimize.minimize_scalar(lambda a: -_loglik(base + (a - base) * shares, n, k),
                                   bounds=(1e-6, base), method="bounded",
                                   options={"xatol": 1e-7})
    return -res.fun


def _independent_margin(hours, n, k, base, width=3.0):
    hours, n, k = np.asarray(hours, float), np.asarray(n, float), np.asarray(k, float)
    centre = hours + width / 2
    step = max(_best_over_level((centre >= h).astype(float), n, k, base) for h in hours[1:])
    ends = np.append(hours[1:], hours[-1] + width)
    ramp = max(_best_over_level(np.clip(centre / e, 0, 1), n, k, base) for e in ends)
    return step - ramp


def test_margin_matches_binomial_likelihoods_maximised_by_scipy():
    base = S11_BASE[0] / S11_BASE[1]
    b = _buckets(S11_HOURS, S11_N, S11_K)
    got = _step_over_ramp(b["bucket_start"], b["labelled"].to_numpy(float),
                          b["correct"].to_numpy(float), base)
    expected = _independent_margin(S11_HOURS, S11_N, S11_K, base)
    # binomial coefficients cancel in the difference; the level is on a grid of 1/200
    assert abs(got - expected) < 0.05
    assert 0 < got < RAMP_MARGIN_LL  # the step is better, not by enough


def test_a_slow_ramps_labels_are_explained_by_a_fall_from_the_windows_start():
    b = _buckets(S11_HOURS, S11_N, S11_K)
    n, k = np.array(S11_N, float), np.array(S11_K, float)
    split = S11_HOURS.index(42)
    # the split at +42 h: 15 right labels before it, 51 of 65 after; shown, and still the date
    assert (k[:split].sum(), n[:split].sum()) == (15, 15)
    assert _split_shown(15, 15, k[split:].sum(), n[split:].sum(), *S11_BASE)
    assert drop_began(b, *S11_BASE) == b["bucket_start"].iloc[split]
    assert _ramp_explains(b["bucket_start"], n, k, S11_BASE[0] / S11_BASE[1])


def _evidence(window_given, onset, severity="high", fall=True):
    start, end = pd.Timestamp("2026-03-08 14:52:54", tz="UTC"), \
        pd.Timestamp("2026-03-16", tz="UTC")
    finding = Finding(id="model.accuracy_drop", pathway="model", severity=severity,
                      statistic=0.16, threshold=0.03, summary="accuracy fell",
                      evidence={"fall_from_window_start": start.to_pydatetime()} if fall
                      else {},
                      onset=onset.to_pydatetime(), diagnostic="model.performance")
    evidence = Evidence((finding,), (), pd.DataFrame(columns=["ts", "kind"]),
                        Window(pd.Timestamp("2026-02-23", tz="UTC").to_pydatetime(),
                               start.to_pydatetime()),
                        Window(start.to_pydatetime(), end.to_pydatetime()),
                        window_given=window_given)
    return evidence, finding, start


def test_a_given_windows_concept_drift_is_dated_at_its_start():
    split = pd.Timestamp("2026-03-10 09:00", tz="UTC")
    evidence, finding, start = _evidence(True, split)
    assert _climb_began(evidence, finding, "concept_drift") == start
    # not for a detected window, a mode the fall does not date, a low finding or no evidence
    assert _climb_began(_evidence(False, split)[0], finding, "concept_drift") is None
    assert _climb_began(evidence, finding, "covariate_shift") is None
    low_evidence, low, _ = _evidence(True, split, severity="low")
    assert _climb_began(low_evidence, low, "concept_drift") is None
    bare_evidence, bare, _ = _evidence(True, split, fall=False)
    assert _climb_began(bare_evidence, bare, "concept_drift") is None


def test_a_clear_step_is_still_dated_at_the_split():
    hours = list(range(0, 48, 3))
    n = [20] * 16
    k = [19, 20, 19, 20, 19, 20, 19, 20, 14, 13, 14, 15, 13, 14, 14, 13]
    b = _buckets(hours, n, k)
    margin = _step_over_ramp(b["bucket_start"], np.array(n, float), np.array(k, float), 0.97)
    assert margin > RAMP_MARGIN_LL
    assert abs(margin - _independent_margin(hours, n, k, 0.97)) < 0.05
    assert not _ramp_explains(b["bucket_start"], np.array(n, float), np.array(k, float), 0.97)
    assert drop_began(b, 970, 1000) == b["bucket_start"].iloc[8]
