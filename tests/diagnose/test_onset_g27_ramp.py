"""The start of a slow fall of accuracy, fitted over the whole span (issue 22, G27).

``broken_line`` (weighted, on the negated accuracy: a fall) is checked against an independent
weighted least squares (numpy lstsq per breakpoint) on a tiny series; ``ramp_began`` on label counts per bucket: a ramp's start is
found to within two buckets, a step or flat noise gives nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from toolkit.diagnose._onset import broken_line, ramp_began


def _lstsq(x, y, w, t0):
    design = np.column_stack([np.ones_like(x), -np.maximum(0.0, x - t0)])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    return coef, float((w * (y - design @ coef) ** 2).sum())


def test_a_falling_broken_line_matches_a_weighted_lstsq_per_breakpoint():
    x = np.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5])
    y = np.array([0.91, 0.89, 0.90, 0.86, 0.80, 0.77, 0.72])
    w = np.array([9.0, 4.0, 7.0, 5.0, 8.0, 3.0, 6.0])
    cands = np.arange(0.0, 6.0, 0.25)
    t0, b, rss, line = broken_line(x, -y, cands, w)
    fits = [(_lstsq(x, y, w, c), c) for c in cands]
    falling = [(r, c, coef[1]) for (coef, r), c in fits if coef[1] > 0]
    r_best, c_best, b_best = min(falling)
    assert t0 == c_best
    assert np.isclose(b, b_best) and np.isclose(rss, r_best)
    line_coef = np.polyfit(x, y, 1, w=np.sqrt(w))
    assert np.isclose(line, float((w * (y - np.polyval(line_coef, x)) ** 2).sum()))


def test_a_free_first_slope_matches_a_weighted_lstsq_of_three_columns():
    rng = np.random.default_rng(5)
    x = np.arange(0.0, 24.0)
    y = 1.0 + 0.05 * x + 0.9 * np.maximum(0.0, x - 15.2) + rng.normal(0, 0.1, len(x))
    w = rng.uniform(1.0, 9.0, len(x))
    cands = np.arange(2.0, 21.0, 0.2)
    t0, b, rss, _ = broken_line(x, y, cands, w, free=True)
    fits = []
    for c in cands:
        design = np.column_stack([np.ones_like(x), x, np.maximum(0.0, x - c)])
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
        fits.append((float((w * (y - design @ coef) ** 2).sum()), c, coef[2]))
    r_best, c_best, b_best = min(f for f in fits if f[2] > 0)
    assert t0 == c_best and np.isclose(b, b_best) and np.isclose(rss, r_best)
    assert abs(t0 - 15.2) < 1.0


def _buckets(acc, labelled=40, seed=0):
    rng = np.random.default_rng(seed)
    n = len(acc)
    lab = np.full(n, labelled)
    correct = rng.binomial(lab, acc)
    start = pd.Timestamp("2026-02-16", tz="UTC") + pd.to_timedelta(np.arange(n) * 3, unit="h")
    return pd.DataFrame({"bucket_start": start, "labelled": lab, "correct": correct,
                         "accuracy": correct / lab})


def test_a_ramp_s_start_is_found_within_a_bucket():
    k = np.arange(160, dtype=float)
    # flat at 0.92, falling from t = 250.5 h (bucket 83.5) over 16 buckets to 0.72
    t = k * 3 + 1.5
    acc = 0.92 - 0.20 * np.clip((t - 250.5) / 48.0, 0, 1)
    began = ramp_began(_buckets(acc, labelled=400), "accuracy")
    assert began is not None
    truth = pd.Timestamp("2026-02-16", tz="UTC") + pd.Timedelta(hours=250.5)
    assert abs(pd.Timestamp(began) - truth) <= pd.Timedelta(hours=6)  # two buckets


def test_flat_noise_and_a_step_give_no_ramp():
    assert ramp_began(_buckets(np.full(160, 0.9)), "accuracy") is None
    step = np.where(np.arange(160) < 90, 0.92, 0.75)
    assert ramp_began(_buckets(step, labelled=400), "accuracy") is None
