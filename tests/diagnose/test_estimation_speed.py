"""Estimation's band at scale (issue 26's speed bar): the bootstrap's draws and the replicates'
metrics, checked against the direct per-replicate computation they replace."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.test_estimation import _release_case

est = import_module("toolkit.diagnose.model.estimation")


def _reference_groups(seed: int = 3, groups: int = 400) -> pd.DataFrame:
    """Engine-like reference counts: per fold, P(positive), predicted class and weight."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.uniform(0, 1, groups), 2)
    n = rng.integers(1, 40, groups).astype(float)
    return pd.DataFrame({"fold": rng.integers(0, 2, groups), "p": p, "pred_pos": p >= 0.5,
                         "n": n, "k": rng.binomial(n.astype(int), p).astype(float),
                         "w": rng.choice([0.5, 1.0, 3.0], groups)})


def test_bootstrap_depends_only_on_the_counts_per_score_and_weight():
    """Groups that share a P(positive) and a weight are pooled before the Poisson draws (a sum
    of Poisson counts is Poisson): however the engine splits the same rows (here per fold, or
    not at all), the same seed gives the same replicate maps. Per-group draws (the old code)
    gave other maps for the other split."""
    ref = _reference_groups()
    pooled = ref.groupby(["p", "w"], as_index=False)[["n", "k"]].sum()
    split = est._bootstrap(ref, 30, np.random.default_rng(7))
    whole = est._bootstrap(pooled, 30, np.random.default_rng(7))
    for a, b in zip(split, whole, strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)


def test_bootstrap_replicates_keep_the_binomial_spread():
    """The pooled draws are the same bootstrap: one score value split over 40 groups, the
    replicates' calibrated value has the positive share's binomial standard error."""
    n, q = 4000, 0.3
    ref = pd.DataFrame({"p": np.full(40, 0.4), "n": np.full(40, n / 40),
                        "k": np.full(40, q * n / 40), "fold": np.arange(40) % 2})
    maps = est._bootstrap(ref, 400, np.random.default_rng(1))
    values = np.array([m(np.array([0.4]))[0] for m in maps])
    assert values.mean() == pytest.approx(q, abs=0.003)
    assert values.std(ddof=1) == pytest.approx(np.sqrt(q * (1 - q) / n), rel=0.1)


def _maps() -> tuple[object, pd.DataFrame]:
    """A reference calibration, a new version's own one, and replicates of both; an analysis
    frame of three buckets mixing the versions, with scores on and off the 4-decimal grid."""
    rng = np.random.default_rng(5)
    ref, head = _reference_groups(1), _reference_groups(2).drop(columns="w")
    boot_ref = est._bootstrap(ref, 25, rng)
    boot_own = est._bootstrap(head, 25, rng)
    full, own = est.fit_calibrator(ref["p"], ref["k"], ref["n"]), est.fit_calibrator(
        head["p"], head["k"], head["n"])
    support = est._support(ref)
    maps = est._Maps(full, {}, support, {"v2": (own, {}, est._support(head))},
                     tuple((b, {"v2": o}) for b, o in zip(boot_ref, boot_own, strict=True)))
    rows = 300
    p = np.round(rng.uniform(0, 1, rows), 4)
    p[:7] = rng.uniform(0, 1, 7)  # off the grid (more decimals than the engine rounds to)
    frame = pd.DataFrame({
        "bucket_start": pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(
            rng.integers(0, 3, rows), unit="D"),
        "pred_pos": rng.uniform(size=rows) < 0.5, "p": p,
        "version": rng.choice(["v1", "v2"], rows), "n": rng.integers(1, 20, rows).astype(float)})
    return maps, frame


def test_window_replicates_equal_the_per_replicate_computation():
    """Each bucket's replicate metrics (one grid evaluation per map, one matrix product for
    every bucket) equal :func:`_replicate_metrics` on each replicate's calibrated values, for
    both calibrations and for scores off the grid."""
    maps, frame = _maps()
    got = maps.replicate_metrics(frame, by="bucket_start")
    assert len(got) == 3
    for start, part in frame.groupby("bucket_start"):
        c = np.array([maps.calibrate(part, replicate=j) for j in range(len(maps.boot))])
        want = est._replicate_metrics(part["pred_pos"].to_numpy(bool), c,
                                      part["n"].to_numpy(float))
        np.testing.assert_allclose(got[start], want, rtol=1e-12, atol=1e-14)
    whole = np.array([maps.calibrate(frame, replicate=j) for j in range(len(maps.boot))])
    np.testing.assert_allclose(maps.replicate_metrics(frame)[None], est._replicate_metrics(
        frame["pred_pos"].to_numpy(bool), whole, frame["n"].to_numpy(float)), rtol=1e-12)


def test_replicates_evaluate_each_map_once_per_window_not_per_bucket(monkeypatch):
    """A 14-bucket estimate evaluates each replicate's map about once (on the grid), not once
    per bucket: the per-bucket evaluations were a third of a 10M-row estimation's time."""
    con, b, i, *_ = _release_case(n_new=3000)
    as_of = i.start + pd.Timedelta(minutes=1000) + pd.Timedelta("1h")
    calls = []
    original = est.Calibrator.__call__
    monkeypatch.setattr(est.Calibrator, "__call__",
                        lambda self, p: calls.append(len(np.atleast_1d(p))) or original(self, p))
    r = est.estimation(con, b, i, as_of=as_of, bucket=timedelta(hours=4))
    assert not r.abstained, r.not_assessed
    assert len(r.table) >= 12
    # two calibrations (v1's and v2's), each replicate evaluated on the grid once; the
    # estimates, folds and realised checks add a few calls per bucket
    assert len(calls) <= 2 * est.BOOTSTRAP + 12 * (len(r.table) + 1)
