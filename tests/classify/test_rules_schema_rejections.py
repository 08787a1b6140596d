"""Schema mismatch against null injection when the 4xx rejections are logged as status codes
only (issue 22's third hard distinction): a feature that turns all-NULL right after a pipeline
release, with requests rejected 400/422, is the release's schema. data.quality counts a 400 or
422 without an error_type as an input rejection; a log that names the error keeps its name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import toolkit as tk

N = 12_000


def build(*, null_share: float = 1.0, rejected: float = 0.05, deploy: bool = True,
          error_type: bool = False, http_status: bool = True, seed: int = 0):
    """Four inputs; from the midpoint pipeline ``fe-2`` serves, ``x3`` is NULL on
    ``null_share`` of the requests and ``rejected`` of them fail with HTTP 422 (``error_type``
    ``validation_error`` when that column is logged). ``deploy`` logs the pipeline release."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-03-01", periods=N, freq="40s", tz="UTC")
    later = np.arange(N) >= N // 2
    x = rng.normal(0, 1, (4, N))
    x3 = np.where(later & (rng.uniform(size=N) < null_share), np.nan, x[3])
    p = 1 / (1 + np.exp(-2 * x[0]))
    failed = later & (rng.uniform(size=N) < rejected)
    requests = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(N)], "ts": ts, "x0": x[0], "x1": x[1],
        "x2": x[2], "x3": x3, "pipeline_version": np.where(later, "fe-2", "fe-1"),
        "client_version": rng.choice(["ios-1", "web-2"], N),
        "host": rng.choice(["h1", "h2", "h3"], N),
        "latency_ms": rng.gamma(4, 10, N), "status": np.where(failed, "error", "ok"),
        "prediction": np.where(failed, None, (p >= 0.5).astype(int).astype(str)),
        "score": np.where(failed, np.nan, np.maximum(p, 1 - p))})
    if http_status:
        requests["http_status"] = np.where(failed, 422, 200)
    if error_type:
        requests["error_type"] = np.where(failed, "validation_error", None)
    con = tk.connect()
    tk.load(con, requests, table="requests")
    if deploy:
        tk.load(con, pd.DataFrame({"ts": [ts[N // 2] - pd.Timedelta(minutes=2)],
                                   "kind": ["deploy"], "artifact": ["pipeline"],
                                   "version": ["fe-2"]}), table="events")
    windows = {"baseline": (ts[0], ts[N // 2]),
               "incident": (ts[N // 2], ts[-1] + pd.Timedelta(seconds=1))}
    return con, windows


def classify(**kwargs):
    con, windows = build(**kwargs)
    result = tk.classify_incident(con, **windows)
    con.close()
    return result, {f.id: f for f in result.diagnosis.findings()}


def test_rejections_logged_as_422_only_count_as_validation_errors():
    result, findings = classify(deploy=False)
    rejected = findings["data.validation_errors"]
    assert rejected.severity == "high"
    # independent count: 5% of the 6,000 incident requests, none in the baseline
    assert rejected.evidence["counts"]["incident"] == pytest.approx(300, abs=60)
    assert "baseline" not in rejected.evidence["counts"]
    assert (result.pathway, result.failure_mode) == ("data", "schema_mismatch")


def test_a_named_error_type_is_not_counted_twice():
    _, findings = classify(deploy=False, error_type=True)
    with_type = findings["data.validation_errors"].evidence["counts"]["incident"]
    _, findings = classify(deploy=False, error_type=False)
    assert findings["data.validation_errors"].evidence["counts"]["incident"] == with_type


@pytest.mark.parametrize("deploy", [True, False])
def test_nulls_on_the_new_pipeline_with_422s_are_schema_mismatch(deploy):
    # x3 NULL on 90% of requests (not all: no missing feature), rejections as status codes
    # only, failures on pipeline fe-2: null_injection (0.87 / 0.79) before 422s counted
    result, findings = classify(null_share=0.9, deploy=deploy)
    assert findings["integration.failure_segment"].evidence["role"] == "pipeline"
    assert (result.pathway, result.failure_mode) == ("data", "schema_mismatch")


def test_a_partial_null_jump_without_rejections_or_release_is_null_injection():
    result, findings = classify(null_share=0.4, rejected=0.0, deploy=False)
    assert "data.validation_errors" not in findings
    assert (result.pathway, result.failure_mode) == ("data", "null_injection")


def test_without_status_codes_the_release_still_decides():
    # neither error_type nor http_status: the rejections cannot be seen, the release can
    result, findings = classify(http_status=False)
    assert "data.validation_errors" not in findings
    assert result.failure_mode == "schema_mismatch"
