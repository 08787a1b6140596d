"""A new model version that shifts the scores opens an incident window on its own (issue 22):
a bad release whose incident labels are missing shows nothing else. A release alone, or a
score shift alone, still only corroborates."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.classify.test_window_slow_modes import HOUR, SPAN, START, series, windows


def release(rng: np.random.Generator, at: int, into: float) -> pd.DataFrame:
    """The new version's share of traffic from ``into`` of the way through bucket ``at`` on
    (half the traffic), rolled back 30 buckets later."""
    share = np.abs(rng.normal(0.0, 0.002, 240))
    share[at + 1:at + 30] = 0.5
    share[at] = 0.5 * (1 - into)
    return series("model.new_version_share", share)


def score_shift(rng: np.random.Generator, at: int) -> pd.DataFrame:
    """The scores' PSI against the baseline: ~0.01 of noise, 0.8 while the version serves."""
    psi = np.abs(rng.normal(0.01, 0.003, 240))
    psi[at + 1:at + 30] = 0.8
    return series("model.score_psi", psi)


def test_a_new_version_that_shifts_the_scores_opens_the_window_at_the_release():
    # classic tuning bad_release seed 4 with its incident labels removed: no finding, only the
    # version mix and the scores moved, and no window was found (the old code returns None)
    rng = np.random.default_rng(41)
    truth = START + 150 * HOUR + timedelta(minutes=40)
    signals = pd.concat([release(rng, 150, 2 / 3), score_shift(rng, 150)])
    located = windows.locate_incident([], signals, SPAN, HOUR)
    assert located is not None
    assert abs(pd.Timestamp(located.onset) - truth) <= timedelta(minutes=10)
    # the incident ends when the scores come back (the rollback), not at the end of the data
    assert located.incident.end == START + 180 * HOUR


def test_a_release_alone_or_a_score_shift_alone_opens_none():
    rng = np.random.default_rng(42)
    assert windows.locate_incident([], release(rng, 150, 0.5), SPAN, HOUR) is None
    assert windows.locate_incident([], score_shift(rng, 150), SPAN, HOUR) is None
    # a score shift days after a benign release is not the release's
    signals = pd.concat([release(rng, 60, 0.5), score_shift(rng, 150)])
    assert windows.locate_incident([], signals, SPAN, HOUR) is None


def undated_shift(severity: str = "high"):
    """The prediction-shift finding over the whole scan window, with no onset: too few scores a
    bucket for a per-bucket PSI (every bucket of the score timeline missing)."""
    from tests.classify.test_window_slow_modes import finding

    return finding("model.prediction_shift", "model", None, severity)


def test_an_undated_score_shift_and_one_release_open_the_window_at_the_release():
    # varied tuning calibration_collapse seeds 1 and 3: a high prediction shift with no onset (a
    # sparse log: no per-bucket score PSI), the new version arriving at the true onset, and no
    # other finding; the old code opens no window here, or one on another owner's lone change
    rng = np.random.default_rng(43)
    truth = START + 150 * HOUR + timedelta(minutes=40)
    share = np.abs(rng.normal(0.0, 0.002, 240))
    share[151:] = 0.5
    share[150] = 0.5 * (1 / 3)
    signals = series("model.new_version_share", share)
    located = windows.locate_incident([undated_shift()], signals, SPAN, HOUR)
    assert located is not None
    assert abs(pd.Timestamp(located.onset) - truth) <= timedelta(minutes=10)
    # a release never ends an incident: the shift holds to the end of the data
    assert located.incident.end == SPAN.end
    # without the finding, or with a low one, the release alone opens none
    assert windows.locate_incident([], signals, SPAN, HOUR) is None
    assert windows.locate_incident([undated_shift("low")], signals, SPAN, HOUR) is None


def test_an_undated_score_shift_does_not_pick_one_of_two_releases():
    rng = np.random.default_rng(44)
    share = np.abs(rng.normal(0.0, 0.002, 240))
    share[100:130] = 0.5  # a first version, rolled back
    share[180:] = 0.5     # a second one
    signals = series("model.new_version_share", share)
    assert windows.locate_incident([undated_shift()], signals, SPAN, HOUR) is None
    # and a score shift the timeline dated elsewhere is not the release's
    dated = pd.concat([series("model.new_version_share", np.where(np.arange(240) >= 180, 0.5, 0.0)),
                       score_shift(rng, 60)])
    assert windows.locate_incident([undated_shift()], dated, SPAN, HOUR) is None
