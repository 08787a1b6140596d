"""Unit changes read on a window that opens long before the change (issue 22: a detected
window of IoU 0.42 left under half of its rows rescaled; the mixture fit asked for half and the
unit change was read as covariate shift)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose._profile import LEVELS
from toolkit.diagnose.data.units import (
    MIN_RESCALED_SHARE,
    MIN_WINDOW_SHARE,
    mixture_fit,
    mixture_match,
    unit_change,
)

N = 4000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = (TS[0], TS[N])
INCIDENT = (TS[N], TS[-1] + pd.Timedelta("1min"))


def frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(2 * N)], "ts": TS,
        "distance_km": rng.gamma(2.0, 5.0, 2 * N),
        "amount": rng.lognormal(3, 0.6, 2 * N),
    })


@pytest.mark.parametrize("at", [0.58, 0.7])
def test_a_step_late_in_a_window_that_opened_early_is_a_unit_change(at):
    # x1000 from 58% (70%) of the window on: 42% (30%) of its rows rescaled, the last third
    # entirely; the old whole-window mixture needed 50% and found nothing
    data = frame(11)
    switch = N + int(at * N)
    data.loc[data.index >= switch, "distance_km"] *= 1000
    result = unit_change(make_case(requests=data), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.evidence["feature"] == "distance_km"
    assert finding.evidence["matched"] == 1000.0
    assert f"on {1 - at:.0%} of the incident's rows" in finding.evidence["meaning"]
    assert abs(pd.Timestamp(finding.onset) - TS[switch]) <= pd.Timedelta("2min")


@pytest.mark.parametrize("where", ["scattered", "last tenth"])
def test_a_burst_of_out_of_range_values_is_not_a_unit_change(where):
    # 10% of the incident's values x1000 (an adversarial burst, a few rows far out): scattered
    # over the window no third is mostly rescaled; packed into its last tenth, the last third
    # is 30% rescaled, a burst rather than a step
    data = frame(12)
    rng = np.random.default_rng(5)
    inc = np.flatnonzero(data.index >= N)
    hit = rng.choice(inc, N // 10, replace=False) if where == "scattered" else inc[-N // 10:]
    data.loc[hit, "distance_km"] *= 1000
    assert unit_change(make_case(requests=data), BASELINE, INCIDENT).findings() == []


def test_whole_window_share_is_the_least_that_lets_a_third_be_mostly_rescaled():
    assert MIN_WINDOW_SHARE == pytest.approx(MIN_RESCALED_SHARE / 3)
    rng = np.random.default_rng(3)
    levels = np.asarray(LEVELS)
    base = rng.gamma(2.0, 5.0, 50_000)
    qb = np.quantile(base, levels)
    fresh = rng.gamma(2.0, 5.0, 20_000)
    mix = np.r_[fresh[:14_000], fresh[14_000:] * 1000]  # 30% rescaled
    qi = np.quantile(mix, levels)
    share, ks = mixture_fit(qb, qi, 1000.0)
    assert share == pytest.approx(0.30, abs=0.02) and ks < 0.02
    assert np.isnan(mixture_match(qb, qi)[0])  # a third needs half its rows rescaled
    assert mixture_match(qb, qi, min_share=MIN_WINDOW_SHARE)[0] == 1000.0


def test_a_late_step_on_a_sampled_log_is_read_within_the_sampling_noise():
    # a log sampled 1 in 50: 500 baseline and 800 incident values of a heavy-tailed price;
    # x100 (dollars -> cents) from 40% of the window on. The mixture's fit misses the
    # incident's CDF by more than 0.02 through sampling alone, well inside the two-sample
    # Kolmogorov bound 1.36 sqrt(1/500 + 1/800) = 0.078
    rng = np.random.default_rng(21)
    ts = pd.date_range("2026-03-01", periods=1300, freq="20min", tz="UTC")
    price = rng.lognormal(3, 1.2, len(ts))
    price[500 + 320:] *= 100
    con = make_case(requests=pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(ts))], "ts": ts, "price_usd": price,
        "other": rng.normal(5, 1, len(ts))}))
    result = unit_change(con, (ts[0], ts[500]), (ts[500], ts[-1] + pd.Timedelta("20min")))
    (finding,) = result.findings()
    assert finding.evidence["feature"] == "price_usd" and finding.evidence["matched"] == 100.0
    assert finding.evidence["distance_after_rescaling"] > 0.02  # beyond the fixed tolerance
