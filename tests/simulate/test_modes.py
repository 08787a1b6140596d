"""Each failure mode's injected signal is visible to a simple independent check; a healthy
case (``none``) shows none of them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.simulate import signals as S
from tests.simulate.conftest import generated
from toolkit import simulate

MODES = [m for m in simulate.FAILURE_MODES if m != "none"]
#: Seeds whose case each mode is checked on (different platforms, magnitudes and onsets).
SEEDS = (0, 1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", MODES)
def test_injected_signal_is_visible(mode, seed):
    case, tables, truth = generated(mode, seed)
    stats = S.SPECIFIC[mode](tables, truth)
    assert stats.pop("ok"), f"{mode} (seed {seed}) not visible: {stats} {truth['injected']}"


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_none_shows_no_failure(seed):
    case, tables, truth = generated("none", seed)
    assert truth["pathway"] == "none" and truth["onset"] is None
    loud = {}
    for name, (check, limit) in S.QUIET.items():
        value = float(check(tables, truth))
        if value >= limit:
            loud[name] = value
    assert not loud, f"healthy case shows failure signals: {loud}"
    assert set(truth["confounders"]) == {"benign_deploy", "benign_drift", "seasonality",
                                         "latency_blip"}


def test_truth_describes_the_case():
    case, tables, truth = generated("api_contract_mismatch", 0)
    assert truth["pathway"] == "integration"
    assert truth["failure_mode"] == "api_contract_mismatch"
    onset, (start, end) = pd.Timestamp(truth["onset"]), truth["incident"]
    assert pd.Timestamp(start) == onset < pd.Timestamp(end)
    assert pd.Timestamp(truth["baseline"][1]) <= onset
    assert truth["onset"].endswith("Z") and truth["seed"] == 0 and truth["rows"] == 20_000
    assert {"client_version", "error_rate", "severity"} <= set(truth["injected"])
    json.dumps(truth, allow_nan=False)  # valid JSON, no NaN
    requests = tables["requests"]
    assert str(requests["ts"].dt.tz) == "UTC"
    assert requests["ts"].is_monotonic_increasing
    assert requests["ts"].min() >= case.start and requests["ts"].max() < case.end


def test_realistic_service():
    case, tables, truth = generated("none", 1)
    requests, features = tables["requests"], tables["features"]
    named = features[~features["name"].str.match(r"f\d\d$")]
    assert 8 <= len(named) <= 12
    assert {"USD", "km", "s"} <= set(named["unit"].dropna())
    assert {"country", "device_type", "merchant_category"} <= set(
        features.loc[features["kind"] == "categorical", "name"])
    # the model answers with a prediction and its confidence in it
    answered = requests[requests["prediction"].notna()]
    assert set(answered["prediction"]) == {"0", "1"}
    assert answered["score"].between(0.5, 1.0).all()
    # ground truth: precision of the positive class around 0.9, late and partial labels
    lab = S.labelled(tables)
    assert 0.85 <= S.precision(S.in_window(lab, truth["baseline"])) <= 0.95
    coverage = len(tables["labels"]) / len(requests)
    assert 0.2 <= coverage <= 0.85
    merged = tables["labels"].merge(requests[["request_id", "ts"]], on="request_id")
    delay_h = (merged["labeled_at"] - merged["ts"]).dt.total_seconds() / 3600
    assert (delay_h > 0).all() and delay_h.median() > 1
    # diurnal traffic over several hosts, latency growing with load
    hourly = requests.groupby(requests["ts"].dt.hour).size()
    assert hourly.max() > 1.8 * hourly.min()
    assert 4 <= requests["host"].nunique() <= 8
    assert requests["client_version"].nunique() >= 4 if "client_version" in requests else True
    metrics = tables["metrics"]
    steps = metrics[metrics["name"] == "memory_used_bytes"].groupby("host")["ts"].diff()
    assert 30 <= steps.dropna().dt.total_seconds().mode().iloc[0] <= 60
    assert {"memory_used_bytes", "memory_limit_bytes", "cpu_utilization", "in_flight"} <= set(
        metrics["name"])


def test_load_drives_latency():
    case, tables, truth = generated("memory_exhaustion", 0)
    requests = S.served(tables["requests"])
    requests = requests[requests["in_flight"] < 0.7 * truth["injected"]["knee_in_flight"]]
    low, high = requests["in_flight"].quantile([0.1, 0.9])
    assert requests[requests["in_flight"] >= high]["latency_ms"].median() > \
        requests[requests["in_flight"] <= low]["latency_ms"].median()


def test_events_vocabulary():
    kinds, artifacts = set(), set()
    for mode in ("version_skew", "memory_exhaustion", "cold_start", "cache_staleness",
                 "timeout_misconfiguration", "accelerator_fault"):
        events = generated(mode, 0)[1]["events"]
        kinds |= set(events["kind"])
        artifacts |= set(events["artifact"].dropna())
        for detail in events["detail"]:
            assert isinstance(json.loads(detail), dict)
    assert kinds == {"deploy", "rollback", "config_change", "restart", "oom_kill", "scale",
                     "cache_flush", "alert"} - ({"cache_flush"} - kinds)
    assert {"model", "pipeline", "client", "cache", "infra"} <= artifacts


def test_version_skew_permutes_received_columns():
    case, tables, truth = generated("version_skew", 0)
    inj = truth["injected"]
    requests = tables["requests"]
    skewed = requests[(requests["model_version"] == inj["model_to"])
                      & (requests["pipeline_version"] == inj["pipeline_version"])]
    base = S.in_window(requests, truth["baseline"])
    for target, source in inj["permutation"].items():
        # the column named `target` carries the values of feature `source`
        ratio = skewed[target].median() / base[source].median()
        assert 0.7 < ratio < 1.4, (target, source, ratio)


def test_severity_varies_with_the_seed():
    drops = {generated("bad_release", seed)[2]["injected"]["accuracy_drop"] for seed in SEEDS}
    factors = [generated("unit_change", seed)[2]["injected"]["factor"] for seed in (0, 1)]
    assert len(drops) == len(SEEDS) and all(f > 0 for f in factors)


def test_no_confounders():
    case, tables, truth = generated("none", 0, confounders=False)
    assert truth["confounders"] == []
    events = tables["events"]
    # no benign deploy of a pipeline / service, no latency-blip alert
    assert not events["artifact"].isin(["pipeline", "service"]).any()
    assert not (events["kind"] == "alert").any()
    assert "confounder_drift" not in truth["injected"]


def test_optional_evidence_varies_but_required_evidence_is_there():
    seen_columns = []
    for seed in range(4):
        case = simulate.make_case("none", seed=seed, rows=1_000)
        seen_columns.append(frozenset(case.truth()["platform"]["optional_columns"]))
        seen_columns.append(frozenset(case.table_names))
    assert len(set(seen_columns)) > 2
    for mode, needs in (("cache_staleness", "cache"), ("memory_exhaustion", "in_flight"),
                        ("version_skew", "pipeline_version"), ("api_contract_mismatch",
                                                               "client_version")):
        for seed in range(2):
            platform = simulate.make_case(mode, seed=seed, rows=1_000).truth()["platform"]
            assert needs in platform["optional_columns"]
    for mode in ("concept_drift", "calibration_collapse", "bad_release", "adversarial_inputs"):
        for seed in range(2):
            assert "labels" in simulate.make_case(mode, seed=seed, rows=1_000).table_names
    for seed in range(2):
        assert "lineage" in simulate.make_case("version_skew", seed=seed, rows=1_000).table_names


def test_extra_features():
    case = simulate.make_case("covariate_shift", seed=3, rows=2_000, extra_features=12)
    names = list(case.features()["name"])
    assert [n for n in names if n.startswith("f") and n[1:].isdigit()] == \
        [f"f{i:02d}" for i in range(1, 13)]
    first = next(case.request_chunks())
    assert first[[f"f{i:02d}" for i in range(1, 13)]].notna().all().all()
    assert np.isfinite(first["f12"]).all()
