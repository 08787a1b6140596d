"""A regression service: a linear model of a loss amount with a prediction interval.

The service predicts, per transaction, the expected loss in USD (``level + spread * w . z``
on the standardised features, clipped at 6 sd). The truth uses the same score clipped at 2 sd
plus Gaussian noise sized for an R^2 of 0.6-0.85. The interval ``[pred_lower, pred_upper]`` is
the prediction plus and minus the ``interval_coverage`` quantile (0.8 or 0.9, declared in the
``endpoints`` catalog) of the absolute residuals on the training sample, so it covers about
the nominal share of labels before the incident.

A request's ``prediction`` is the number as text (``score`` stays empty). Per failure mode:

* ``concept_drift``: the truth gains a new direction of the inputs, sized so the RMSE grows
  1.3-2.5 times; inputs stay;
* ``calibration_collapse``: the quantized build keeps the point predictions (a small
  input-dependent error) but its intervals shrink by the binary plan's temperature (2.5-6):
  coverage falls well below nominal while MAE barely moves;
* ``bad_release``: the new version's weights move along a random direction, sized so the RMSE
  on the same inputs grows 1.25-2 times; it keeps the old interval width;
* ``adversarial_inputs``: the crafted rows' true value lies 4-8 interval half-widths from the
  prediction (confidently wrong);
* ``cache_staleness``: the new version is retrained about as accurately (1% more RMSE) with
  different predictions; stale hits carry the old answers;
* ``version_skew``: the rolled-back model reads permuted inputs; the truth follows the world.

Examples
--------
>>> from toolkit.simulate import make_case
>>> case = make_case("none", seed=1, rows=2_000, task="regression")
>>> answered = next(case.request_chunks()).dropna(subset=["prediction"])
>>> bool((answered["pred_lower"] <= answered["prediction"].astype(float)).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.simulate import model as M
from toolkit.simulate.plan import Plan
from toolkit.simulate.tasks.shared import Decoded, ramp_weight, train_sample, unit_direction

__all__ = ["Linear", "RegressionHead", "build", "COVERAGES", "TARGET"]

#: Nominal coverages an endpoint's interval may declare.
COVERAGES = (0.8, 0.9)
#: What the service predicts.
TARGET = "expected_loss_usd"


@dataclass(frozen=True)
class Linear:
    """``level + spread * score(x)`` with an interval of ``half_width / temperature`` either
    side; ``noise`` adds a deterministic input-dependent error (quantisation) in spreads."""

    score: M.Linear = field(repr=False)
    level: float
    spread: float
    half_width: float
    temperature: float = 1.0
    noise: float = 0.0
    noise_key: tuple[float, ...] = ()

    def predict(self, X: dict[str, np.ndarray], std: M.Standardizer) -> np.ndarray:
        value = self.level + self.spread * (self.score.linear(X, std) - self.score.threshold)
        if self.noise:
            value = value + self.noise * self.spread * M._hash_noise(X, std, self.noise_key)
        return value

    @property
    def half(self) -> float:
        return self.half_width / self.temperature


@dataclass(frozen=True)
class RegressionHead:
    """The regression model versions, the truth and the injected drift of one case."""

    plan: Plan = field(repr=False)
    models: dict[str, Linear] = field(repr=False)
    truth_model: Linear = field(repr=False)
    sigma: float
    coverage: float
    drift: M.Linear | None = field(default=None, repr=False)
    drift_magnitude: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    task: str = "regression"

    def predictions(self, d: Decoded) -> tuple[np.ndarray, np.ndarray]:
        value = np.zeros(len(d.version))
        half = np.zeros(len(d.version))
        for version, model in self.models.items():
            rows = d.version == version
            if rows.any():
                value[rows] = model.predict({k: v[rows] for k, v in d.received.items()},
                                            self.plan.std)
                half[rows] = model.half
        return value, half

    def answer(self, d: Decoded) -> dict[str, pa.Array]:
        value, half = self.predictions(d)
        value = np.round(value, 2)
        mask = ~d.answered
        return {"prediction": pc.cast(pa.array(value, mask=mask), pa.string()),
                "score": pa.nulls(len(value), pa.float64()),
                "pred_lower": pa.array(np.round(value - half, 2), pa.float64(), mask=mask),
                "pred_upper": pa.array(np.round(value + half, 2), pa.float64(), mask=mask),
                "_value": value, "_half": half}

    def true_values(self, X: dict[str, np.ndarray], t: np.ndarray | None,
                    rng: np.random.Generator) -> np.ndarray:
        y = self.truth_model.predict(X, self.plan.std)
        if self.drift is not None and t is not None:
            w = ramp_weight(self.plan, t)
            if w.any():
                y = y + self.drift_magnitude * w * self.truth_model.spread * \
                    (self.drift.linear(X, self.plan.std) - self.drift.threshold)
        return y + rng.normal(0.0, self.sigma, len(y))

    def truth(self, d: Decoded, answers: dict[str, Any],
              rng: np.random.Generator) -> pa.Array:
        y = self.true_values(d.world, d.t, rng)
        if d.adversarial.any():
            away = rng.uniform(4.0, 8.0, len(y)) * answers["_half"] * \
                np.where(rng.random(len(y)) < 0.5, -1.0, 1.0)
            y = np.where(d.adversarial, answers["_value"] + away, y)
        return pc.cast(pa.array(np.round(y, 2)), pa.string())

    def reference(self, X: dict[str, np.ndarray],
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
        base = self.models[self.plan.platform.model_version]
        value = np.round(base.predict(X, self.plan.std), 2)
        y = np.round(self.true_values(X, None, rng), 2)
        return {"label": pc.cast(pa.array(y), pa.string()).to_numpy(zero_copy_only=False),
                "prediction": pc.cast(pa.array(value), pa.string())
                .to_numpy(zero_copy_only=False)}

    def endpoint_row(self) -> dict[str, Any]:
        return {"task": "regression", "positive_class": None, "classes": None,
                "interval_coverage": self.coverage}

    def summary(self) -> dict[str, Any]:
        return {"task": "regression", "target": TARGET, "interval_coverage": self.coverage,
                "noise_sd": round(self.sigma, 4), **self.facts}


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def build(plan: Plan, injected: dict[str, Any], rng: np.random.Generator) -> RegressionHead:
    """The regression head of ``plan`` (its mode, versions and severity)."""
    train = train_sample(plan, np.random.default_rng([*plan.key, 22]))
    std = plan.std
    severity = float(injected.get("severity", 0.5))
    coverage = float(rng.choice(COVERAGES))
    score = unit_direction(plan, rng, train, clip=6.0)
    level, spread = float(rng.uniform(80.0, 400.0)), float(rng.uniform(20.0, 90.0))
    r2 = float(rng.uniform(0.6, 0.85))
    sigma = spread * float(np.sqrt((1.0 - r2) / r2))
    draft = Linear(score, level, spread, 1.0)
    truth_model = replace(draft, score=replace(score, clip=M.TRUTH_CLIP))
    noise_rng = np.random.default_rng([*plan.key, 23])
    n = len(next(iter(train.values())))
    y = truth_model.predict(train, std) + noise_rng.normal(0.0, sigma, n)
    served = draft.predict(train, std)
    half = float(np.quantile(np.abs(y - served), coverage))
    base = replace(draft, half_width=half)
    rmse = _rmse(served, y)
    base_version = plan.platform.model_version
    models = {v: base for v in plan.models}
    facts: dict[str, Any] = {"rmse_before": round(rmse, 3), "mae_before":
                             round(float(np.mean(np.abs(served - y))), 3)}
    head_args: dict[str, Any] = {}

    if plan.mode == "calibration_collapse":
        version = injected["model_to"]
        q = plan.models[version]
        quantized = replace(base, temperature=q.temperature, noise=q.noise * 0.2,
                            noise_key=tuple(rng.normal(size=8).tolist()))
        models[version] = quantized
        after = quantized.predict(train, std)
        facts.update(expected_rmse_after=round(_rmse(after, y), 3),
                     expected_coverage_before=round(float(np.mean(np.abs(y - served) <= half)),
                                                    4),
                     expected_coverage_after=round(float(np.mean(np.abs(y - after)
                                                                 <= quantized.half)), 4))
    elif plan.mode in ("bad_release", "cache_staleness"):
        version = injected["model_to"]
        along = unit_direction(plan, rng, train, clip=6.0)

        def moved(eta: float) -> Linear:
            weights = {k: w + eta * along.weights.get(k, 0.0) for k, w in score.weights.items()}
            levels = {k: w + eta * along.level_weights[k] for k, w in score.level_weights.items()}
            return replace(base, score=replace(score, weights=weights, level_weights=levels,
                                               threshold=score.threshold
                                               + eta * along.threshold))

        # a bad release's RMSE grows 1.25-2 times; the update behind a stale cache is a
        # retrained model about as accurate (1% more RMSE), whose predictions differ
        ratio = 1.25 + severity * 0.75 if plan.mode == "bad_release" else 1.01
        eta = M.bisect(lambda e: _rmse(moved(e).predict(train, std), y) / rmse, 0.0, 4.0,
                       ratio, iterations=25)
        models[version] = moved(eta)
        facts.update(weight_perturbation=round(eta, 4),
                     expected_rmse_after=round(_rmse(models[version].predict(train, std), y), 3))
    elif plan.mode == "concept_drift":
        d = unit_direction(plan, rng, train)
        push = spread * (d.linear(train, std) - d.threshold)
        ratio = 1.3 + severity * 1.2
        magnitude = M.bisect(lambda m: _rmse(served, y + m * push) / rmse, 0.0, 20.0, ratio,
                             iterations=25)
        head_args = {"drift": d, "drift_magnitude": magnitude}
        facts.update(rmse_ratio=round(ratio, 4), drift_spreads=round(magnitude, 4))
    del models[base_version]
    models = {base_version: base, **models}
    return RegressionHead(plan, models, truth_model, sigma, coverage, facts=facts, **head_args)
