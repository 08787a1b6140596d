"""A healthy period's blip does not open an incident window (issue 22, cause 2): a generic
symptom that spikes for two buckets with nothing else moving is no incident."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.classify.test_window_slow_modes import HOUR, SPAN, START, finding, series, windows


def timeout_blip(rng: np.random.Generator, at: int, length: int) -> pd.DataFrame:
    """A timeout rate near 0.1% that jumps to 5% for ``length`` buckets from ``at`` (robust z
    ~ 50: far above the 3 x 4 that lets a two-bucket change count as sustained)."""
    rate = np.abs(rng.normal(0.001, 0.0002, 240))
    rate[at:at + length] = 0.05
    return pd.concat([series("latency.timeout_rate", rate),
                      series("latency.p50_ms", rng.normal(50, 1, 240))])


def test_a_lone_two_bucket_blip_of_a_generic_symptom_opens_no_window():
    # varied tuning none seed 2: a latency blip (timeout rate at z 50 for six hours, nothing
    # else moving) opened a window on a healthy period; the old code returned one at the blip
    rng = np.random.default_rng(31)
    signals = timeout_blip(rng, 150, 2)
    changes = windows.detect_windows(signals, SPAN, HOUR).changes
    assert [c.signal for c in changes] == ["latency.timeout_rate"]
    assert changes[0].strength >= windows.CANDIDATE_EFFECT
    assert windows.locate_incident([], signals, SPAN, HOUR) is None


def test_a_lasting_or_corroborated_change_of_the_same_symptom_still_opens_one():
    rng = np.random.default_rng(32)
    # lasting: the same jump held for SUSTAIN buckets or more is an incident
    located = windows.locate_incident([], timeout_blip(rng, 150, 6), SPAN, HOUR)
    assert located is not None and located.onset >= START + 149 * HOUR
    assert located.onset <= START + 151 * HOUR
    # corroborated: a finding at the blip keeps it (the blip is where the incident shows)
    at = START + 150 * HOUR + timedelta(minutes=20)
    found = [finding("integration.timeout_misconfiguration", "integration", at, "medium")]
    located = windows.locate_incident(found, timeout_blip(rng, 150, 2), SPAN, HOUR)
    assert located is not None and located.onset == at


def test_a_short_change_of_a_pathway_signal_is_not_a_blip():
    # a two-bucket burst of out-of-range inputs points to the model pathway: not dropped
    rng = np.random.default_rng(33)
    share = np.abs(rng.normal(0.01, 0.002, 240))
    share[150:152] = 0.4
    located = windows.locate_incident([], series("model.ood_share", share), SPAN, HOUR)
    assert located is not None
    assert START + 149 * HOUR <= pd.Timestamp(located.onset) <= START + 151 * HOUR


def test_a_lone_short_excess_of_one_host_is_a_blip_too():
    # varied tuning null_injection seed 5: one host's failure share above the fleet's for two
    # buckets, a day before the incident, outweighed the null-rate change that dates it
    rng = np.random.default_rng(34)
    excess = np.abs(rng.normal(0.001, 0.0002, 240))
    excess[100:102] = 0.08
    nulls = np.abs(rng.normal(0.01, 0.002, 240))
    nulls[150:] = 0.03  # robust z ~ 10: a candidate of weight 0.5, alone too
    signals = pd.concat([series("hosts.failure_rate_excess", excess),
                         series("data.max_null_rate", nulls)])
    located = windows.locate_incident([], signals, SPAN, HOUR)
    assert located is not None
    assert START + 149 * HOUR <= pd.Timestamp(located.onset) <= START + 151 * HOUR
    # a lasting excess of one host is not a blip (an accelerator fault on one host)
    excess[100:110] = 0.08
    located = windows.locate_incident([], pd.concat([series("hosts.failure_rate_excess", excess),
                                                     series("data.max_null_rate", nulls)]),
                                      SPAN, HOUR)
    assert START + 99 * HOUR <= pd.Timestamp(located.onset) <= START + 101 * HOUR


def test_a_blip_is_lone_by_what_agrees_with_it_not_by_how_much_it_weighs(monkeypatch):
    # "lone" was read from the weighing (a weight below the original one): a lone candidate
    # kept at full weight was no longer a blip. Whether anything agrees is its own question.
    monkeypatch.setattr(windows, "LONE_WEIGHT", 1.0)
    rng = np.random.default_rng(31)
    assert windows.locate_incident([], timeout_blip(rng, 150, 2), SPAN, HOUR) is None
    # and the same blip with a finding beside it still counts, at any weight of the lone ones
    at = START + 150 * HOUR + timedelta(minutes=20)
    found = [finding("integration.timeout_misconfiguration", "integration", at, "medium")]
    located = windows.locate_incident(found, timeout_blip(rng, 150, 2), SPAN, HOUR)
    assert located is not None and located.onset == at
