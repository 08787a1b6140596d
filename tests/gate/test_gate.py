"""Each rule of the release gate on hand-built shadow traffic, with independent arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.gate.conftest import N, baseline_rows, build_case
from toolkit.errors import InvalidParameterError
from toolkit.gate import gate, load_policy
from toolkit.gate.checks import newcombe_interval


def _ece(conf, right, bins=15):
    b = np.clip(np.floor(conf * bins), 0, bins - 1).astype(int)
    return sum(abs(right[b == k].sum() - conf[b == k].sum()) for k in range(bins)) / len(conf)


def _status(result):
    return {c.name: c.status for c in result.checks}


def test_a_clean_candidate_passes():
    result = gate(build_case(), "m2")
    assert result.baseline == "m1"  # the other version with the most requests
    assert result.profile == "realtime" and result.endpoint == "score-rt"
    assert _status(result) == dict.fromkeys(
        ("accuracy", "calibration", "latency", "errors", "lineage", "cache"), "pass")
    assert result.passed and result.exit_code == 0


def test_quantized_candidate_with_stable_accuracy_and_higher_ece_fails():
    b = baseline_rows()
    rng = np.random.default_rng(1)
    # int8: the same answers, 0.8% of the right ones now wrong, every confidence pushed up
    right = b["right"] & ~(b["right"] & (rng.uniform(size=N) < 0.008))
    conf = np.round(np.minimum(0.999, b["conf"] + 0.8 * (1 - b["conf"])), 4)
    result = gate(build_case(cand_conf=conf, cand_right=right), "m2")
    checks = {c.name: c for c in result.checks}
    acc = checks["accuracy"]
    assert acc.status == "pass"  # the accuracy loss is inside the 1-point tolerance ...
    assert acc.measured["difference"] == pytest.approx(right.mean() - b["right"].mean())
    assert -0.01 < acc.measured["difference"] < 0
    cal = checks["calibration"]
    assert cal.status == "fail"  # ... but the calibration is not (rule 4)
    assert cal.measured["ece_candidate"] == pytest.approx(_ece(conf, right))
    assert cal.measured["ece_baseline"] == pytest.approx(_ece(b["conf"], b["right"]))
    wrong = (~right & (conf >= 0.85)).mean()
    assert cal.measured["confident_wrong_candidate"] == pytest.approx(wrong)
    assert not result.passed and result.exit_code == 1


def test_an_out_of_lineage_pair_fails():
    result = gate(build_case(cand_pipeline="p1"), "m2")  # m2 released with p2, served with p1
    check = {c.name: c for c in result.checks}["lineage"]
    assert check.status == "fail"
    assert check.measured["out_of_lineage"] == [
        {"combination": {"pipeline_version": "p1", "client_version": "c1"}, "requests": N}]
    assert "pipeline_version p1" in check.summary
    # a candidate in no release at all fails too
    result = gate(build_case(lineage=(("r1", "m1", "p1", "c1"),)), "m2")
    assert _status(result)["lineage"] == "fail"
    assert not result.passed


def test_without_a_lineage_table_the_baselines_combinations_are_known_good():
    # DESIGN section 3: m2 keeps m1's pipeline p1 and client c1 -> known-good
    same = gate(build_case(cand_pipeline="p1", lineage=()), "m2")
    check = {c.name: c for c in same.checks}["lineage"]
    assert check.status == "pass" and "no lineage table" in check.measured["source"]
    # m2 brings pipeline p2, released nowhere: fails
    new = gate(build_case(cand_pipeline="p2", lineage=()), "m2")
    check = {c.name: c for c in new.checks}["lineage"]
    assert check.status == "fail" and "pipeline_version p2" in check.summary


def test_a_ttl_only_cache_fails():
    result = gate(build_case(cache_detail={"cache_ttl_s": 259200, "cache_key": "request_hash"}),
                  "m2")
    check = {c.name: c for c in result.checks}["cache"]
    assert check.status == "fail" and "TTL only" in check.summary
    assert check.measured["cache_hits"] == 2 * N // 10
    keyed = gate(build_case(cache_detail={"cache_key_includes_model_version": True}), "m2")
    assert _status(keyed)["cache"] == "pass"


def test_the_cache_configuration_in_force_decides():
    from tests.gate.conftest import T0

    # keyed by model version at first, then replaced by a TTL-only set-up: fails
    later = ((T0 - pd.Timedelta(minutes=10), "config_change", "cache", None,
              {"cache_ttl_s": 600}),)
    result = gate(build_case(extra_events=later), "m2")
    assert _status(result)["cache"] == "fail"
    # TTL-only, but flushed when the candidate started serving: passes
    flush = ((T0 + pd.Timedelta(minutes=2), "cache_flush", "cache", None, {}),)
    result = gate(build_case(cache_detail={"cache_ttl_s": 600}, extra_events=flush), "m2")
    assert _status(result)["cache"] == "pass"
    # a flush a day later is no invalidation at release
    late = ((T0 + pd.Timedelta(days=1), "cache_flush", "cache", None, {}),)
    result = gate(build_case(cache_detail={"cache_ttl_s": 600}, extra_events=late), "m2")
    assert _status(result)["cache"] == "fail"


def test_the_endpoint_tolerance_chooses_the_thresholds(tmp_path):
    slow = baseline_rows()["latency"] * 1.5  # p99 ~ 298 ms, 1.5 times the baseline's
    policy = tmp_path / "gate.toml"
    template = load_policy().source
    text = open(template, encoding="utf-8").read().replace(
        '# "nightly-scoring" = "batch"', '"score-batch" = "batch"')
    policy.write_text(text, encoding="utf-8")
    realtime = gate(build_case(cand_latency=slow), "m2", policy=policy)
    batch = gate(build_case(cand_latency=slow, endpoint="score-batch"), "m2", policy=policy)
    assert (realtime.profile, batch.profile) == ("realtime", "batch")
    lat = {c.name: c for c in realtime.checks}["latency"]
    assert lat.status == "fail"
    assert lat.measured["p99_candidate_ms"] == pytest.approx(np.quantile(slow, 0.99))
    assert _status(batch)["latency"] == "pass" and batch.passed


def test_missing_labels_follow_the_policy(tmp_path):
    con = build_case()
    con.execute("DELETE FROM labels WHERE request_id LIKE 'm2-%'")
    result = gate(con, "m2")
    check = {c.name: c for c in result.checks}["accuracy"]
    assert check.status == "fail" and "0 labelled predictions" in check.summary
    policy = tmp_path / "gate.toml"
    policy.write_text(open(load_policy().source, encoding="utf-8").read().replace(
        'accuracy = "fail"', 'accuracy = "skip"'), encoding="utf-8")
    assert _status(gate(con, "m2", policy=policy))["accuracy"] == "skip"


def test_unknown_versions_are_usage_errors():
    con = build_case()
    with pytest.raises(InvalidParameterError, match="'m9' served no request"):
        gate(con, "m9")
    with pytest.raises(InvalidParameterError, match="same version"):
        gate(con, "m2", baseline="m2")


def test_newcombe_interval_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.proportion")
    for k1, n1, k2, n2 in ((56, 70, 48, 80), (2900, 3000, 2870, 3000), (5, 50, 9, 40)):
        ours = newcombe_interval(k1, n1, k2, n2)
        theirs = sm.confint_proportions_2indep(k2, n2, k1, n1, method="newcomb",
                                               compare="diff")
        np.testing.assert_allclose(ours, theirs, atol=1e-7)


def test_non_inferiority_rule_is_stricter_than_the_point_rule(tmp_path):
    b = baseline_rows()
    rng = np.random.default_rng(4)
    right = b["right"] & (rng.uniform(size=N) >= 0.005)  # half a point less accurate
    policy = tmp_path / "gate.toml"
    policy.write_text(open(load_policy().source, encoding="utf-8").read().replace(
        'accuracy_rule = "point"', 'accuracy_rule = "non_inferiority"'), encoding="utf-8")
    con = build_case(cand_right=right)
    point = {c.name: c for c in gate(con, "m2").checks}["accuracy"]
    strict = {c.name: c for c in gate(con, "m2", policy=policy).checks}["accuracy"]
    assert point.status == "pass"
    lo, hi = strict.measured["interval"]
    assert lo < -0.01 < point.measured["difference"] < hi  # 3,000 labels cannot show it
    assert strict.status == "fail"
