"""A unit change seen in a few hundred values is matched within their sampling noise (L31).

``noisy_match`` accepted a known factor of 10 or more within the sampling noise of few values,
but still asked the quantile ratios to be as tight as a direct match's (median absolute log
deviation at most 0.10). A few hundred values of a heavy-tailed feature scatter them by more:
varied tuning unit_change s22 (216 incident values, minutes logged as seconds, 0.108) was read
as a covariate shift. The bound now widens with the noise of the log quantile ratios.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

import toolkit.diagnose.data.units as units
from toolkit.diagnose._profile import LEVELS

LEVELS_ = np.asarray(LEVELS)
KEEP = (LEVELS_ >= 0.05) & (LEVELS_ <= 0.95)


def test_log_ratio_noise_matches_the_lognormal_quantile_standard_error():
    # for a log-normal, SE(log q_p) = sqrt(p (1 - p) / n) * sigma / phi(z_p) exactly
    sigma, n_b, n_i = 1.2, 1240, 216
    q = stats.lognorm.ppf(LEVELS_, sigma, scale=np.e)
    p = LEVELS_[KEEP]
    z = stats.norm.ppf(p)
    se = np.sqrt(p * (1 - p)) * sigma / stats.norm.pdf(z)
    expected = float(np.median(np.sqrt(se ** 2 / n_b + se ** 2 / n_i)))
    got = units.log_ratio_noise(q, q * 60, (n_b, n_i))
    assert abs(got - expected) / expected < 0.05  # finite differences over the levels
    bound = units.dispersion_bound(q, q * 60, (n_b, n_i))
    assert bound == min(units.MAX_NOISY_DISPERSION, max(
        units.MAX_DISPERSION, units.NOISE_Z * 0.6745 * got))
    # many values: the noise is small and the bound is the direct match's
    assert units.dispersion_bound(q, q * 60, (10 ** 7, 10 ** 7)) == units.MAX_DISPERSION


def _sample(seed, factor=60.0, n_b=1240, n_i=216):
    rng = np.random.default_rng(seed)
    qb = np.quantile(rng.lognormal(1.0, 1.2, n_b), LEVELS_)
    qi = np.quantile(rng.lognormal(1.0, 1.2, n_i) * factor, LEVELS_)
    return qb, qi


def test_a_rescaled_sample_scattered_past_the_old_bound_is_matched():
    qb, qi = _sample(2)
    factor, dispersion = units.scale_factor(qb[KEEP], qi[KEEP])
    assert dispersion > units.MAX_DISPERSION  # the old bound refused it
    matched, meaning, ks = units.noisy_match(factor, dispersion, qb, qi, (1240, 216), "min")
    assert matched == 60.0 and "min->s" in meaning
    # the Kolmogorov-Smirnov guard still holds: the rescaled incident is the baseline's
    assert ks <= units.KS_95 * np.sqrt(1 / 1240 + 1 / 216)


def test_a_reshaped_feature_is_still_refused():
    # the incident's spread tripled as well as its scale: a reshaping, not a unit
    rng = np.random.default_rng(2)
    qb = np.quantile(rng.lognormal(1.0, 1.2, 1240), LEVELS_)
    qi = np.quantile(rng.lognormal(1.0 + np.log(60), 3.6, 216), LEVELS_)
    factor, dispersion = units.scale_factor(qb[KEEP], qi[KEEP])
    assert dispersion > units.dispersion_bound(qb, qi, (1240, 216))
    assert np.isnan(units.noisy_match(factor, dispersion, qb, qi, (1240, 216), "min")[0])
