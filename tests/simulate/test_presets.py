"""The published scenarios' figures hold in the generated data."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.simulate import signals as S
from tests.simulate.conftest import generated
from toolkit import simulate


def test_presets_are_listed():
    assert set(simulate.PRESETS) == {"gradual-shift-8w", "gpu-oom-16gb", "rollback-feature-order",
                                     "int8-overconfidence", "stale-cache-72h"}
    for name, spec in simulate.PRESETS.items():
        assert spec.failure_mode in simulate.FAILURE_MODES
        case = simulate.make_case(None, preset=name, rows=1_000)
        assert case.preset == name and case.failure_mode == spec.failure_mode
        assert case.truth()["figures"] == spec.figures


@pytest.mark.slow
def test_gradual_shift_precision_091_to_074_over_8_weeks():
    case, tables, truth = generated(None, 0, 150_000, "gradual-shift-8w")
    assert truth["failure_mode"] == "covariate_shift"
    incident = pd.Timestamp(truth["incident"][1]) - pd.Timestamp(truth["incident"][0])
    assert incident == pd.Timedelta(weeks=8)
    lab = S.labelled(tables)
    baseline = S.in_window(lab, truth["baseline"])
    final_week = lab[lab["ts"] >= pd.Timestamp(truth["incident"][1]) - pd.Timedelta(days=7)]
    assert S.precision(baseline) == pytest.approx(0.91, abs=0.02)
    assert S.precision(final_week) == pytest.approx(0.74, abs=0.03)
    # a gradual shift: precision falls week after week, inputs drift away from the reference
    weekly = [S.precision(lab[(lab["ts"] >= pd.Timestamp(truth["incident"][0]) + pd.Timedelta(weeks=w))
                              & (lab["ts"] < pd.Timestamp(truth["incident"][0])
                                 + pd.Timedelta(weeks=w + 1))]) for w in (0, 3, 7)]
    assert weekly[0] > weekly[1] > weekly[2]
    requests = tables["requests"]
    base = S.in_window(requests, truth["baseline"])
    last = requests[requests["ts"] >= pd.Timestamp(truth["incident"][1]) - pd.Timedelta(days=7)]
    assert max(S.psi(base[n], last[n]) for n in truth["injected"]["features"]) > 0.2


def test_gpu_oom_16gb():
    case, tables, truth = generated(None, 0, 40_000, "gpu-oom-16gb")
    requests = S.served(tables["requests"])
    baseline = S.in_window(requests, truth["baseline"])
    assert baseline["latency_ms"].median() == pytest.approx(180, rel=0.05)
    at_knee = requests[requests["in_flight"] >= 40]
    assert len(at_knee) > 100
    assert at_knee["latency_ms"].median() == pytest.approx(4200, rel=0.05)
    below = requests[requests["in_flight"] < 32]
    assert below["latency_ms"].median() < 300
    metrics = tables["metrics"]
    assert metrics.loc[metrics["name"] == "gpu_memory_total_bytes", "value"].max() == 16 * 2**30
    stats = S.memory_exhaustion(tables, truth)
    assert stats.pop("ok"), stats
    kills = S.in_window(S.event_rows(tables, "oom_kill"), truth["incident"])
    assert len(kills) >= 1 and kills["host"].notna().all()


def test_rollback_feature_order():
    case, tables, truth = generated(None, 0, 30_000, "rollback-feature-order")
    stats = S.version_skew(tables, truth)
    assert stats.pop("ok"), stats
    assert stats["mean_score_after"] >= 0.9 and stats["acc_after"] <= 0.75
    requests = tables["requests"]
    skewed = requests[(requests["model_version"] == truth["injected"]["model_to"])
                      & (requests["pipeline_version"] == truth["injected"]["pipeline_version"])]
    # valid-schema inputs: no more nulls than usual, no validation errors beyond the usual
    names = list(tables["features"]["name"])
    baseline = S.in_window(requests, truth["baseline"])
    assert (skewed[names].isna().mean() <= baseline[names].isna().mean() + 0.01).all()
    assert (skewed["error_type"] == "validation_error").mean() < 0.005
    rollback = S.event_rows(tables, "rollback", "model")
    assert pd.Timestamp(truth["onset"]) == rollback["ts"].iloc[0].floor("s")


def test_int8_overconfidence():
    case, tables, truth = generated(None, 0, 100_000, "int8-overconfidence")
    stats = S.calibration_collapse(tables, truth)
    assert stats.pop("ok"), stats
    assert abs(stats["acc_new"] - stats["acc_old"]) <= 0.012
    assert stats["wrong_confident_new"] >= 1.5 * stats["wrong_confident_old"]
    deploys = S.details(S.event_rows(tables, "deploy", "model"))
    assert any(d.get("quantization") == "int8" for d in deploys)
    assert truth["injected"]["decision_threshold"] == 0.85


def test_stale_cache_72h():
    case, tables, truth = generated(None, 0, 30_000, "stale-cache-72h")
    stats = S.cache_staleness(tables, truth)
    assert stats.pop("ok"), stats
    assert stats["ttl_h"] == 72
    assert 60 <= stats["max_stale_age_h"] <= 72
    configs = S.details(S.event_rows(tables, "config_change", "cache"))
    assert {"cache_ttl_s": 259200} in [{"cache_ttl_s": d["cache_ttl_s"]} for d in configs]
