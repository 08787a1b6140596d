"""Regression performance, interval calibration and output shift against scikit-learn, scipy
and hand computations on the same arrays."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    root_mean_squared_error,
)

from tests.diagnose.conftest import make_case

performance = importlib.import_module("toolkit.diagnose.model.performance")
calibration_module = importlib.import_module("toolkit.diagnose.model.calibration")
shift_module = importlib.import_module("toolkit.diagnose.model.prediction_shift")

N = 3000
TS = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
BASELINE = (TS[0], TS[N])
INCIDENT = (TS[N], TS[-1] + pd.Timedelta("1min"))
BR, IR = slice(0, N), slice(N, 2 * N)  # baseline and incident rows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    y = rng.uniform(20, 200, 2 * N).round(3)
    noise = rng.normal(0, 4, 2 * N)
    # the incident: version v2 over-predicts and is noisier on host h2
    host = rng.choice(["h1", "h2"], 2 * N)
    later = np.arange(2 * N) >= N
    noise = noise + later * (3.0 + (host == "h2") * rng.normal(0, 8, 2 * N))
    yhat = (y + noise).round(3)
    half = 7.0  # a fixed +-7 interval: about 92% coverage before, less after
    return {"y": y, "yhat": yhat, "host": host, "lower": yhat - half, "upper": yhat + half,
            "version": np.where(later, "v2", "v1")}


def _case(d, *, intervals=True, coverage=0.9, labels=None):
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(2 * N)], "ts": TS,
                          "endpoint": "price", "prediction": d["yhat"], "host": d["host"],
                          "model_version": d["version"]})
    if intervals:
        frame["pred_lower"], frame["pred_upper"] = d["lower"], d["upper"]
    tables = {"requests": frame, "labels": pd.DataFrame(
        {"request_id": frame["request_id"], "label": d["y"] if labels is None else labels})}
    if coverage is not None:
        tables["endpoints"] = pd.DataFrame({"endpoint": ["price"], "task": ["regression"],
                                            "interval_coverage": [coverage]})
    return make_case(**tables)


@pytest.fixture(scope="module")
def con(data):
    return _case(data)


@pytest.fixture(scope="module")
def perf(con):
    return performance.model_performance(con, BASELINE, INCIDENT)


def test_metrics_equal_scikit_learn(data, perf):
    y, yhat = data["y"], data["yhat"]
    assert perf.task == "regression"
    for name, part in (("baseline", BR), ("incident", IR)):
        assert perf.value(name, "mae") == pytest.approx(mean_absolute_error(y[part], yhat[part]),
                                                        rel=1e-12)
        assert perf.value(name, "rmse") == pytest.approx(
            root_mean_squared_error(y[part], yhat[part]), rel=1e-12)
        assert perf.value(name, "mape") == pytest.approx(
            mean_absolute_percentage_error(y[part], yhat[part]), rel=1e-12)
        assert perf.value(name, "bias") == pytest.approx(np.mean(yhat[part] - y[part]),
                                                         rel=1e-9)
        # analytic intervals: mean +- 1.96 standard errors of |e| (and of e for the bias)
        err = np.abs(yhat[part] - y[part])
        half = stats.norm.ppf(0.975) * err.std(ddof=1) / np.sqrt(len(err))
        assert perf.value(name, "mae_lo") == pytest.approx(err.mean() - half, rel=1e-9)
        assert perf.value(name, "mae_hi") == pytest.approx(err.mean() + half, rel=1e-9)


def test_the_mae_interval_covers_the_truth_at_its_nominal_rate():
    """95% intervals from many small independent samples cover the population MAE about 95%
    of the time (a wrong standard error would not)."""
    rng = np.random.default_rng(3)
    e = rng.normal(0, 2, (400, 200))
    truth = 2 * np.sqrt(2 / np.pi)  # E|N(0, 2^2)|
    frame = pd.DataFrame({"labelled": 200, "se": e.sum(1), "se2": (e**2).sum(1),
                          "se4": (e**4).sum(1), "sae": np.abs(e).sum(1), "sape": 0.0,
                          "sape2": 0.0, "min_abs_y": 1.0, "sabs_y": 200.0})
    m = performance.regression_metrics(frame)
    covered = np.mean((m["mae_lo"] <= truth) & (truth <= m["mae_hi"]))
    assert 0.92 <= covered <= 0.98
    rmse_covered = np.mean((m["rmse_lo"] <= 2) & (2 <= m["rmse_hi"]))
    assert 0.92 <= rmse_covered <= 0.98


def test_error_by_segment_and_findings(data, perf):
    y, yhat, host = data["y"], data["yhat"], data["host"]
    seg = perf.by_segment[perf.by_segment["segment"] == "host"].set_index(["value", "window"])
    for h in ("h1", "h2"):
        rows = (host == h) & (np.arange(2 * N) >= N)
        assert seg.loc[(h, "incident"), "mae"] == pytest.approx(
            mean_absolute_error(y[rows], yhat[rows]), rel=1e-12)
    assert seg.loc[("h2", "incident"), "mae"] > seg.loc[("h1", "incident"), "mae"] + 2
    found = {f.id: f for f in perf.findings()}
    drop = found["model.accuracy_drop"]
    assert drop.evidence["task"] == "regression"
    assert drop.statistic == pytest.approx(perf.value("incident", "mae") /
                                           perf.value("baseline", "mae") - 1)
    assert drop.statistic >= 0.25 and drop.severity == "high"
    version = found["model.version_regression"]
    assert version.evidence["version"] == "v2" and version.evidence["new_version"]


def test_no_finding_when_the_error_holds(data):
    d = dict(data, yhat=data["y"] + np.random.default_rng(1).normal(0, 4, 2 * N))
    d["lower"], d["upper"] = d["yhat"] - 7, d["yhat"] + 7
    result = performance.model_performance(_case(d), BASELINE, INCIDENT)
    assert result.findings() == []
    assert abs(result.value("incident", "mae") / result.value("baseline", "mae") - 1) < 0.1


def test_mape_is_not_assessed_near_zero_and_text_labels_are_counted(data):
    labels = data["y"].astype(object).copy()
    labels[5] = 0.001  # a label near 0 in the baseline
    labels[N + 7] = "n/a"  # a label that is no number, in the incident
    result = performance.model_performance(_case(data, labels=labels), BASELINE, INCIDENT)
    assert np.isnan(result.value("baseline", "mape"))
    assert not np.isnan(result.value("incident", "mape"))
    reasons = {g.check: g.reason for g in result.not_assessed}
    assert "near 0" in reasons["model.performance:mape"]
    assert reasons["model.performance:unparsed"].startswith("1 labelled prediction")
    assert result.value("incident", "labelled") == N - 1


def test_interval_coverage_against_nominal(data, con):
    result = calibration_module.calibration(con, BASELINE, INCIDENT)
    y, lower, upper = data["y"], data["lower"], data["upper"]
    assert result.task == "regression" and result.nominal == 0.9
    for name, part in (("baseline", BR), ("incident", IR)):
        covered = np.mean((y[part] >= lower[part]) & (y[part] <= upper[part]))
        assert result.value(name, "coverage") == pytest.approx(covered)
        assert result.value(name, "shortfall") == pytest.approx(0.9 - covered)
        residual = y[part] - data["yhat"][part]
        assert result.value(name, "residual_mean") == pytest.approx(residual.mean(), rel=1e-9)
    (finding,) = result.findings()
    assert finding.id == "model.calibration_shift"
    assert finding.evidence["task"] == "regression"
    assert finding.evidence["coverage_drop"] == pytest.approx(
        result.value("baseline", "coverage") - result.value("incident", "coverage"))
    assert finding.evidence["versions"]["after"] == "v2"
    assert finding.onset == TS[N].to_pydatetime()
    # the residuals moved: PSI on the baseline's residual deciles
    assert result.value("incident", "residual_psi") > 0.1


def test_coverage_without_intervals_or_nominal_is_not_assessed(data):
    result = calibration_module.calibration(_case(data, intervals=False, coverage=None),
                                            BASELINE, INCIDENT)
    assert np.isnan(result.value("incident", "coverage"))
    assert {g.check for g in result.not_assessed} == {"model.calibration:coverage"}
    assert result.findings() == []
    result = calibration_module.calibration(_case(data, coverage=None), BASELINE, INCIDENT)
    assert "nominal" in {g.check: g.reason for g in result.not_assessed}[
        "model.calibration:nominal"]


def test_output_shift_equals_scipy(data, con):
    result = shift_module.prediction_shift(con, BASELINE, INCIDENT)
    b, i = data["yhat"][BR], data["yhat"][IR]
    assert result.task == "regression"
    assert result.output_ks == pytest.approx(stats.ks_2samp(b, i).statistic, abs=1e-12)
    assert result.output_wasserstein == pytest.approx(stats.wasserstein_distance(b, i),
                                                      rel=1e-9)
    assert result.mean_output == pytest.approx((b.mean(), i.mean()))
    # PSI on the baseline's deciles, right-closed bins (e_{k-1}, e_k] as DuckDB's histogram
    edges = np.unique(np.quantile(b, np.arange(1, 10) / 10))
    bounds = list(zip(np.r_[-np.inf, edges], np.r_[edges, np.inf], strict=True))
    counts = [np.array([np.sum((x > lo) & (x <= hi)) for lo, hi in bounds]) for x in (b, i)]
    from toolkit.diagnose import _stats as st

    assert result.output_psi == pytest.approx(st.psi(counts[0], counts[1]), rel=1e-12)
    # the +3 bias in the incident moves the outputs only slightly: no shift finding, but the
    # concept-drift signal reads the error rise
    assert [f.id for f in result.findings()] == ["model.concept_drift"]
    assert result.findings()[0].evidence["task"] == "regression"


def test_a_shifted_output_is_a_prediction_shift(data):
    d = dict(data, yhat=np.r_[data["yhat"][BR], data["yhat"][IR] * 1.6])
    result = shift_module.prediction_shift(_case(d), BASELINE, INCIDENT)
    (finding,) = [f for f in result.findings() if f.id == "model.prediction_shift"]
    assert finding.severity == "high" and finding.evidence["task"] == "regression"
    assert finding.statistic == pytest.approx(result.output_psi)
    assert finding.onset is not None and abs(finding.onset - TS[N].to_pydatetime()) <= \
        pd.Timedelta("2h")


def test_results_plot_the_task_s_signals(perf, con):
    import matplotlib

    matplotlib.use("Agg")
    ax = perf.plot()
    mae, bias = ax.get_lines()[:2]
    np.testing.assert_allclose(mae.get_ydata(), perf.timeline["mae"])
    np.testing.assert_allclose(bias.get_ydata(), perf.timeline["bias"])
    assert "bias" in ax.get_title()
    signals = perf.signals()
    assert set(signals["signal"]) == {"model.mae", "model.bias"}
    assert "MAE incident" in perf.headline()


def test_calibration_signals_and_values_of_a_regression(con):
    """Regression: classify read ``model.ece`` from every calibration timeline and crashed
    (KeyError 'ece') on regression cases; the signals are coverage and the residual mean, and
    a measure of another task reads NaN."""
    result = calibration_module.calibration(con, BASELINE, INCIDENT, bucket=pd.Timedelta("6h"))
    signals = result.signals()
    assert set(signals["signal"]) == {"model.interval_coverage", "model.residual_mean"}
    coverage = signals[signals["signal"] == "model.interval_coverage"]
    np.testing.assert_allclose(coverage["value"], result.timeline["coverage"])
    assert np.isnan(result.value("incident", "ece"))
    perf = performance.model_performance(con, BASELINE, INCIDENT)
    assert np.isnan(perf.value("incident", "accuracy"))


def test_the_coverage_plot(con):
    import matplotlib

    matplotlib.use("Agg")
    result = calibration_module.calibration(con, BASELINE, INCIDENT, bucket=pd.Timedelta("6h"))
    ax = result.plot()
    line, nominal = ax.get_lines()[:2]
    np.testing.assert_allclose(line.get_ydata(), result.timeline["coverage"])
    assert list(nominal.get_ydata()) == [0.9, 0.9]
