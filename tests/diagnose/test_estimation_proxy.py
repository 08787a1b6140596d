"""The stand-in (proxy) model estimate of a model version no label vouches for (issue 25):
hand computations on the engine's sums, a new version's accuracy without its labels, and the
abstentions (a proxy that cannot predict, features missing or out of support, concept drift)."""

from __future__ import annotations

from importlib import import_module

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tests.diagnose.conftest import make_case
from toolkit.diagnose._case import case_view
from toolkit.diagnose._engine import Recorder
from toolkit.types import Window

est = import_module("toolkit.diagnose.model.estimation")
proxy_mod = import_module("toolkit.diagnose.model.estimation_proxy")

T0 = pd.Timestamp("2026-03-01", tz="UTC")
LEVELS = np.array(["a", "b", "c"])
LEVEL_EFFECT = {"a": 0.0, "b": 0.8, "c": -0.8}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _features(rng, n):
    return {"amount": np.round(np.exp(rng.normal(3.0, 1.0, n)), 2),
            "x2": np.round(rng.normal(0.0, 1.0, n), 3),
            "merchant": LEVELS[rng.integers(0, 3, n)]}


def _truth(X):
    """P(y = 1 | x): logistic in log(amount), x2 and the merchant level."""
    z = (np.log1p(X["amount"]) - 3.0) * 1.5 - 1.2 * X["x2"] + np.vectorize(
        LEVEL_EFFECT.get)(X["merchant"])
    return _sigmoid(z)


def _case(n_ref=6000, n_inc=4000, *, seed=0, new_logit=None, inc_labels=False, truth=_truth,
          inc_truth=None, old_share=0.0, features_table=None, drop_incident=None):
    """Reference served by v1 (a model close to the truth) with labels; incident served by v2
    (``new_logit``, a re-ranking by default) with its labels hidden unless ``inc_labels``.
    Returns the connection, windows, the incident's true labels and predictions."""
    rng = np.random.default_rng(seed)
    n = n_ref + n_inc
    X = _features(rng, n)
    p_true = truth(X)
    if inc_truth is not None:
        p_true[n_ref:] = inc_truth({k: v[n_ref:] for k, v in X.items()})
    y = rng.uniform(size=n) < p_true
    old = np.log(p_true / (1 - p_true)) + rng.normal(0, 0.3, n)
    new = new_logit(X) if new_logit else 2.0 * (0.3 - X["x2"])  # v2 ranks by x2 alone
    served_new = np.arange(n) >= n_ref
    if old_share:
        served_new &= rng.uniform(size=n) >= old_share
    logit = np.where(served_new, new, old)
    pred = np.where(logit >= 0, "1", "0")
    ts = T0 + pd.to_timedelta(np.arange(n), unit="min")
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "ts": ts,
                             "prediction": pred, "score": np.round(_sigmoid(np.abs(logit)), 4),
                             "model_version": np.where(served_new, "v2", "v1"), **X})
    if drop_incident:
        requests.loc[n_ref:, drop_incident] = np.nan
    keep = n if inc_labels else n_ref
    labels = pd.DataFrame({"request_id": requests["request_id"][:keep],
                           "label": y[:keep].astype(int).astype(str),
                           "labeled_at": ts[:keep] + pd.Timedelta("1h")})
    tables = {"requests": requests, "labels": labels}
    if features_table is not None:
        tables["features"] = features_table
    con = make_case(**tables)
    b, i = Window(ts[0], ts[n_ref]), Window(ts[n_ref], ts[-1] + pd.Timedelta(minutes=1))
    return con, b, i, y[n_ref:], pred[n_ref:], served_new[n_ref:]


def test_engine_sums_equal_a_hand_computation_with_the_fitted_coefficients():
    con, b, i, _, _, _ = _case(seed=1)
    case = case_view(con)
    got = proxy_mod.proxy_estimate(case, Recorder(), b, i, i.end - i.start, None, "1")
    assert got.ok, got.checks
    proxy = got.proxy
    rows = con.execute("SELECT * FROM requests WHERE ts >= ? AND ts < ?",
                       [i.start, i.end]).df()
    # the design in numpy, written out here for the three features
    cols = []
    for t in proxy.terms:
        if t.kind == "numeric":
            v = np.clip(rows[t.feature].fillna(t.fill).to_numpy(float), t.lo, t.hi)
            cols.append(((np.log1p(v) if t.log else v) - t.center) / t.scale)
        else:
            cols.append((rows[t.feature] == t.level).to_numpy(float))
    p = _sigmoid(proxy.coef[0] + np.column_stack(cols) @ proxy.coef[1:])
    pp = (rows["prediction"] == "1").to_numpy()
    tp, fn = p[pp].sum(), p[~pp].sum()
    o = got.overall
    assert o["rows"] == len(rows)
    assert o["accuracy"] == pytest.approx(np.where(pp, p, 1 - p).mean(), abs=1e-9)
    assert o["precision"] == pytest.approx(tp / pp.sum(), abs=1e-9)
    assert o["recall"] == pytest.approx(tp / (tp + fn), abs=1e-9)
    assert o["f1"] == pytest.approx(2 * tp / (pp.sum() + tp + fn), abs=1e-9)
    assert o["expected_fp"] == pytest.approx(pp.sum() - tp, abs=1e-6)
    # the sampling part of the band: Bernoulli outcomes under the proxy
    assert o["accuracy_se_sampling"] == pytest.approx(
        np.sqrt((p * (1 - p)).sum()) / len(p), rel=1e-9)
    # the coefficients' part: the delta method with the gradient summed in the engine
    X1 = np.column_stack([np.ones(len(p)), *cols])
    grad = ((p * (1 - p) * np.where(pp, 1.0, -1.0))[:, None] * X1).sum(axis=0) / len(p)
    total = np.sqrt(o["accuracy_se_sampling"] ** 2 + grad @ proxy.cov @ grad)
    assert o["accuracy_se"] == pytest.approx(total, rel=1e-9)
    assert got.overall["outside_share"] == pytest.approx(0.0, abs=0.01)
    # the skewed amount is modelled on a log scale, the symmetric x2 not
    kinds = {t.feature: t.log for t in proxy.terms if t.kind == "numeric"}
    assert kinds == {"amount": True, "x2": False}
    # the reported AUC is scikit-learn's on the check part (the same split)
    assert 0.8 < proxy.info["auc"] <= 1.0


def test_proxy_checks_by_hand_on_the_held_out_part():
    rng = np.random.default_rng(4)
    n = 5000
    X = _features(rng, n)
    p = _truth(X)
    y = rng.uniform(size=n) < p
    pred = np.where(p >= 0.5, "1", "0")
    sample = pd.DataFrame({**X, "label": y.astype(int).astype(str), "prediction": pred})
    proxy = proxy_mod.fit_proxy(sample, ["amount", "x2"], ["merchant"], "1")
    part = np.random.default_rng(proxy_mod.SPLIT_SEED).permutation(n) % 5 == 4
    q = _sigmoid(proxy.coef[0] + proxy_mod.design(sample, proxy.terms) @ proxy.coef[1:])
    assert proxy.info["auc"] == pytest.approx(roc_auc_score(y[part], q[part]), abs=1e-12)
    right = np.where(pred[part] == "1", y[part], ~y[part])
    expect = np.where(pred[part] == "1", q[part], 1 - q[part])
    assert proxy.info["agreement_gap"] == pytest.approx(right.mean() - expect.mean(), abs=1e-12)
    assert proxy.ok


def test_a_new_version_without_labels_gets_its_accuracy_from_the_proxy():
    con, b, i, y, pred, _ = _case(seed=2)
    realized = float((pred == np.where(y, "1", "0")).mean())
    # the reference's old model is far better than v2: the drop is real
    r = est.estimation(con, b, i)
    assert r.method == "proxy" and not r.abstained, r.not_assessed
    assert abs(r.overall["accuracy"] - realized) < 0.02
    assert r.overall["accuracy_lo"] <= realized <= r.overall["accuracy_hi"]
    assert (r.table["status"] == "estimated").all() and (r.table["method"] == "proxy").all()
    assert r.reference["proxy"]["applied"]
    # its precision and recall too, against the hidden labels
    tp = ((pred == "1") & y).sum()
    assert abs(r.overall["precision"] - tp / (pred == "1").sum()) < 0.03
    assert abs(r.overall["recall"] - tp / y.sum()) < 0.03
    f = [f for f in r.findings() if f.id == "model.estimated_accuracy_drop"]
    assert f and f[0].evidence["method"] == "proxy"
    assert "stand-in model" in f[0].summary
    assert r.headline()["method"] == "stand-in model on the features"
    assert "stand-in model" in r.to_html(figure=False)
    assert (r.to_frame()["method"] == "proxy").all()
    import matplotlib

    matplotlib.use("Agg")
    labels = [line.get_label() for line in r.plot().get_lines()]
    assert "estimated accuracy (stand-in model)" in labels
    bands = [c.get_label() for c in r.plot().collections]
    assert "95% band (sampling + stand-in coefficients)" in bands


def test_the_old_version_still_serving_gets_both_estimates_and_their_gap():
    con, b, i, y, pred, new = _case(seed=3, old_share=0.3)
    r = est.estimation(con, b, i)
    assert r.method == "proxy", r.not_assessed
    old = r.reference["proxy"]["old_version"]
    truth_old = float((pred[~new] == np.where(y[~new], "1", "0")).mean())
    assert old["rows"] == int((~new).sum())
    assert abs(old["cbpe_accuracy"] - truth_old) < 0.03
    assert abs(old["proxy_accuracy"] - truth_old) < 0.03
    assert old["gap"] == pytest.approx(old["proxy_accuracy"] - old["cbpe_accuracy"])
    shown = r.headline()["old version (CBPE vs stand-in)"]
    assert shown.startswith(f"{old['cbpe_accuracy']:.3f} vs {old['proxy_accuracy']:.3f}")
    realized = float((pred == np.where(y, "1", "0")).mean())
    assert abs(r.overall["accuracy"] - realized) < 0.02


def test_abstains_when_the_features_do_not_predict_the_label():
    con, b, i, _, _, _ = _case(seed=5, truth=lambda X: np.full(len(X["x2"]), 0.3))
    r = est.estimation(con, b, i)
    assert r.abstained and r.method == "cbpe"
    reasons = " ".join(g.reason for g in r.not_assessed)
    assert "stand-in model AUC" in reasons and "barely predict" in reasons
    assert not r.reference["proxy"]["applied"]


def test_abstains_when_a_declared_feature_is_missing_from_the_requests():
    catalog = pd.DataFrame({"name": ["amount", "x2", "merchant", "x3"],
                            "kind": ["numeric", "numeric", "categorical", "numeric"],
                            "position": [1, 2, 3, 4]})
    con, b, i, _, _, _ = _case(seed=6, features_table=catalog)
    r = est.estimation(con, b, i)
    assert r.abstained
    assert any("x3 declared but absent" in g.reason for g in r.not_assessed)


def test_abstains_when_the_incident_loses_a_feature_the_reference_always_had():
    con, b, i, _, _, _ = _case(seed=7, drop_incident="x2")
    r = est.estimation(con, b, i)
    assert r.abstained
    assert any("outside the reference's range" in g.reason for g in r.not_assessed)
    assert r.reference["proxy"]["checks"][3]["statistic"] == pytest.approx(1.0)


def test_incident_labels_that_contradict_the_proxy_say_concept_drift():
    # P(y | x) flips its x2 effect in the incident: the features are the same
    def flipped(X):
        z = (np.log1p(X["amount"]) - 3.0) * 1.5 + 1.2 * X["x2"]
        return _sigmoid(z)

    con, b, i, _, _, _ = _case(seed=8, inc_labels=True, inc_truth=flipped)
    r = est.estimation(con, b, i, as_of=i.start + pd.Timedelta("10h"))
    assert r.abstained
    assert any("concept drift" in g.reason and "stand-in" in g.reason for g in r.not_assessed)
    # before any incident label it cannot see it, and says what it assumes
    hidden = est.estimation(con, b, i, as_of=i.start)
    assert hidden.method == "proxy" and not hidden.abstained
    row = hidden.assumptions.set_index("check").loc["concept drift (proxy)"]
    assert "assumed unchanged" in row["detail"]
