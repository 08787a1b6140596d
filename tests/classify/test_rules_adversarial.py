"""Adversarial inputs against covariate shift (issue 22's second hard distinction): a burst of
out-of-range inputs from a narrow source (one client version, one or two hosts) with
confidently wrong outputs is adversarial inputs. model.ood counts a request as out of
distribution when two features leave the baseline's central 99% or one leaves it far (by more
than its width), and a source value that already carried traffic is narrow when it carries at
most a third of it and holds far more of the burst than that share explains."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

import toolkit as tk

ood = importlib.import_module("toolkit.diagnose.model.ood")


def build(*, features_out: int = 2, source: str = "new_client", burst: float = 0.08,
          low: float = 6.0, high: float = 9.0, drop: tuple[str, ...] = (), n: int = 16_000,
          seed: int = 0):
    """Six standard-normal inputs; in the second half a ``burst`` of requests gets
    ``features_out`` of them drawn from ``[low, high]`` and a wrong label for a confident
    answer. The burst comes from a new client version ``bot-9`` (``new_client``), from the
    established ``web-3`` (a fifth of the traffic, ``old_client``), from hosts h1 and h2
    (``hosts``) or from everyone (``everyone``)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-03-01", periods=n, freq="30s", tz="UTC")
    later = np.arange(n) >= n // 2
    x = rng.normal(0, 1, (6, n))
    client = rng.choice(["ios-1", "android-2", "web-3"], n, p=[0.45, 0.35, 0.2])
    host = rng.choice([f"h{i}" for i in range(8)], n)
    hit = later & (rng.uniform(size=n) < burst)
    if source == "new_client":
        client[hit] = "bot-9"
    elif source == "old_client":
        hit = later & (client == "web-3") & (rng.uniform(size=n) < burst * 5)
    elif source == "hosts":
        hit = later & np.isin(host, ["h1", "h2"]) & (rng.uniform(size=n) < burst * 4)
    for j in range(features_out):
        x[j, hit] = rng.uniform(low, high, hit.sum())
    p = 1 / (1 + np.exp(-2 * x[0] + x[1]))
    predicted = (p >= 0.5).astype(int)
    label = (rng.uniform(size=n) < p).astype(int)
    label[hit] = 1 - predicted[hit]  # confidently wrong
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts,
                             **{f"x{j}": x[j] for j in range(6)},
                             "prediction": predicted.astype(str),
                             "score": np.where(predicted == 1, p, 1 - p), "host": host,
                             "client_version": client, "latency_ms": rng.gamma(4, 10, n),
                             "status": "ok"})
    con = tk.connect()
    tk.load(con, requests.drop(columns=list(drop)), table="requests")
    tk.load(con, pd.DataFrame({"request_id": requests["request_id"],
                               "label": label.astype(str),
                               "labeled_at": ts + pd.Timedelta(hours=1)}), table="labels")
    windows = {"baseline": (ts[0], ts[n // 2]),
               "incident": (ts[n // 2], ts[-1] + pd.Timedelta(seconds=1))}
    return con, windows


def bursts(**kwargs):
    con, windows = build(**kwargs)
    found = ood.ood_bursts(con, windows["baseline"], windows["incident"]).findings()
    con.close()
    return found


@pytest.mark.parametrize(("kwargs", "source", "values"), [
    # one feature pushed far out (6-9 standard deviations): two features were needed before
    ({"features_out": 1}, "client_version", ["bot-9"]),
    # a client version in use before (a fifth of the traffic) sends the burst
    ({"source": "old_client"}, "client_version", ["web-3"]),
    ({"features_out": 1, "source": "hosts"}, "host", ["h1", "h2"]),
])
def test_bursts_the_old_recipe_missed(kwargs, source, values):
    found = bursts(**kwargs)
    assert len(found) == 1
    assert found[0].evidence["source"] == source
    assert sorted(found[0].evidence["values"]) == values
    # confidently wrong: high severity from the accuracy of the OOD answers
    assert found[0].severity == "high"
    assert found[0].evidence["ood_accuracy"] < 0.7


def test_a_single_feature_just_outside_the_range_is_not_out_of_distribution():
    # 3-4 standard deviations: outside the central 99% but not far beyond it
    assert bursts(features_out=1, low=3.0, high=4.0) == []


def test_a_shift_of_everyone_is_no_narrow_burst():
    assert bursts(features_out=1, source="everyone") == []
    assert bursts(features_out=2, source="everyone") == []


def test_a_burst_from_a_client_in_use_is_classified_adversarial():
    con, windows = build(features_out=1, source="old_client")
    result = tk.classify_incident(con, **windows)
    assert (result.pathway, result.failure_mode) == ("model", "adversarial_inputs")


def test_without_source_columns_the_burst_is_not_assessed_and_not_called_adversarial():
    con, windows = build(features_out=2, drop=("client_version", "host"))
    result = tk.classify_incident(con, **windows)
    gaps = {g.check: g.reason for g in result.not_assessed}
    assert "source column" in gaps["model.ood"]
    # accuracy fell with 8% of inputs far out of range and nothing to trace them to: neither
    # adversarial inputs nor (as before: concept_drift 0.94) a confident concept drift
    assert "accuracy fell with inputs outside the baseline's range: not concept drift" in {
        h.name for h in result.verdict.hits}
    assert result.failure_mode == "undetermined"
