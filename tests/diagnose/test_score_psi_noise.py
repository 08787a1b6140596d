"""model.prediction_shift counts the score PSI only beyond sampling noise (issue 22: varied
tuning none s3, a healthy period, read as a calibration collapse on a detected window of 37
logged requests whose score PSI 0.31 was noise: mean score 0.943 -> 0.939)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case
from toolkit.diagnose.model.prediction_shift import SCORE_NOISE_ALPHA, prediction_shift


def _scores(seed: int, n_b: int, n_i: int, *, incident_low: float = 0.5):
    """Scores uniform on [0.5, 1) in the baseline and on [incident_low, 1) in the incident;
    predictions balanced and unchanged."""
    rng = np.random.default_rng(seed)
    n = n_b + n_i
    ts = pd.date_range("2026-03-01", periods=n, freq="7min", tz="UTC")
    score = np.r_[rng.uniform(0.5, 1, n_b), rng.uniform(incident_low, 1, n_i)]
    requests = pd.DataFrame({"request_id": [f"r{k}" for k in range(n)], "ts": ts,
                             "prediction": rng.choice(["0", "1"], n), "score": score,
                             "x": rng.normal(0, 1, n)})
    windows = (ts[0], ts[n_b]), (ts[n_b], ts[-1] + pd.Timedelta("1min"))
    return prediction_shift(make_case(requests=requests), *windows)


def _pvalue_by_hand(result) -> float:
    """Pearson's chi-square by hand: sum (O - E)^2 / E over the 2 x bins table, bins - 1 dof."""
    bins = result.score_bins
    b = bins.loc[bins["window"] == "baseline", "n"].to_numpy(float)
    i = bins.loc[bins["window"] == "incident", "n"].to_numpy(float)
    keep = (b + i) > 0
    b, i = b[keep], i[keep]
    total = b.sum() + i.sum()
    expected = np.vstack([b.sum() * (b + i) / total, i.sum() * (b + i) / total])
    stat = float(((np.vstack([b, i]) - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(stat, len(b) - 1))


def test_a_noise_psi_on_a_few_dozen_requests_makes_no_finding():
    # one distribution, 280 baseline and 37 incident requests: noise PSI of 0.2-0.4
    noisy = [r for r in (_scores(s, 280, 37) for s in range(40)) if r.score_psi >= 0.25]
    assert len(noisy) >= 3  # the old rule made each of these a high prediction shift
    for r in noisy:
        assert r.score_psi_pvalue == pytest.approx(_pvalue_by_hand(r), rel=1e-9)
        assert r.score_psi_pvalue >= SCORE_NOISE_ALPHA
        assert "model.prediction_shift" not in {f.id for f in r.findings()}


def test_a_real_score_shift_is_found_on_the_same_few_requests_and_on_many():
    # the incident's scores squeezed into [0.9, 1): a real shift, beyond noise on 37 rows
    r = _scores(1, 280, 37, incident_low=0.9)
    assert r.score_psi_pvalue < SCORE_NOISE_ALPHA
    (f,) = [f for f in r.findings() if f.id == "model.prediction_shift"]
    assert f.severity == "high"
    # a mild PSI (0.1-0.25) on thousands of requests is far beyond noise: still a finding
    r = _scores(2, 4000, 4000, incident_low=0.545)
    assert 0.1 <= r.score_psi < 0.25 and r.score_psi_pvalue < 1e-9
    (f,) = [f for f in r.findings() if f.id == "model.prediction_shift"]
    assert f.severity == "medium"
