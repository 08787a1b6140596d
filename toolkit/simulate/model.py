"""The scoring model, the ground-truth relation and the Monte Carlo helpers that tune them.

The served model is logistic on standardised features: ``logit = K * (w . z + c - t)``, with
``z`` the standardised (log-)values clipped to +-6 sd and ``c`` the categorical level weights.
The ground truth uses the same weights but is *nonlinear where the model is linear*: each
numeric effect saturates beyond +-2 sd, and for travel merchants distance and amount carry
almost no risk. In the reference distribution the model is therefore well calibrated; inputs
that move out of it make the model confidently wrong.

Examples
--------
>>> import numpy as np
>>> from toolkit.simulate import features as F
>>> rng = np.random.default_rng(0)
>>> feats = F.catalog(rng, optional=0)
>>> X = F.sample(rng, feats, rng.random(20_000) < F.SEGMENT_SHARE)
>>> std = Standardizer.fit(feats, X)
>>> model = Linear.from_features("1.0.0", feats, std, X, sharpness=3.5)
>>> truth = model.as_truth()
>>> p = precision(truth.logit(X, std), model.logit(X, std), rng.random(20_000))
>>> 0.8 < p < 0.97
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from toolkit.simulate.features import Feature, forward

__all__ = [
    "Standardizer",
    "Linear",
    "sigmoid",
    "outputs",
    "precision",
    "accuracy",
    "ece",
    "bisect",
]

#: Where the ground truth's numeric effects saturate (standard deviations).
TRUTH_CLIP = 2.0
#: For travel merchants the truth keeps this share of the distance and amount effects.
TRAVEL_MUTE = 0.1


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class Standardizer:
    """How the model preprocesses inputs (fitted on its training sample).

    Attributes
    ----------
    center, scale
        Mean and standard deviation of each numeric feature in transform space.
    median
        Imputation value (training median, raw units) for a null numeric input.
    features
        The features, by name.
    """

    center: dict[str, float]
    scale: dict[str, float]
    median: dict[str, float]
    features: dict[str, Feature] = field(repr=False)

    @classmethod
    def fit(cls, features: tuple[Feature, ...], X: dict[str, np.ndarray]) -> Standardizer:
        center, scale, median = {}, {}, {}
        for f in features:
            if f.numeric:
                v = forward(f, X[f.name])
                center[f.name] = float(np.nanmean(v))
                scale[f.name] = float(np.nanstd(v)) or 1.0
                median[f.name] = float(np.nanmedian(X[f.name]))
        return cls(center, scale, median, {f.name: f for f in features})

    def z(self, name: str, x: np.ndarray) -> np.ndarray:
        """Standardised value; nulls take the training median."""
        f = self.features[name]
        x = np.where(np.isnan(x), self.median[name], x)
        return (forward(f, x) - self.center[name]) / self.scale[name]

    def shift(self, name: str, x: np.ndarray, delta_sd: np.ndarray | float) -> np.ndarray:
        """Move ``x`` by ``delta_sd`` standard deviations in transform space (nulls stay)."""
        from toolkit.simulate.features import inverse

        f = self.features[name]
        return inverse(f, forward(f, x) + np.asarray(delta_sd) * self.scale[name])


@dataclass(frozen=True)
class Linear:
    """A linear logit over standardised features.

    Used for the served model versions (``clip=6``), for the ground truth (``clip=2`` with the
    travel interaction) and for the concept-drift direction.

    Attributes
    ----------
    version
        Model version it stands for (empty for the truth).
    weights
        Numeric feature -> weight per sd.
    level_weights
        Categorical feature -> weight of each level code.
    threshold
        Subtracted before sharpening: the decision boundary in units of ``w . z``.
    sharpness
        The factor ``K`` that scales the logit (how confident the model is).
    clip
        Standardised values are clipped to +-clip.
    travel_mute
        Truth only: multiply amount and distance effects by this for travel merchants.
    temperature
        Extra sharpening of the logit (quantisation overconfidence); 1 = none.
    noise
        Size (logits) of a deterministic, input-dependent perturbation (quantisation error).
    """

    version: str
    weights: dict[str, float]
    level_weights: dict[str, np.ndarray]
    threshold: float
    sharpness: float
    clip: float = 6.0
    travel_mute: float | None = None
    temperature: float = 1.0
    noise: float = 0.0
    noise_key: tuple[float, ...] = ()

    @classmethod
    def from_features(
        cls,
        version: str,
        features: tuple[Feature, ...],
        std: Standardizer,
        X: dict[str, np.ndarray],
        *,
        sharpness: float,
        positive_rate: float = 0.17,
    ) -> Linear:
        """The baseline model: catalog weights, threshold at the ``positive_rate`` quantile."""
        weights = {f.name: f.weight for f in features if f.numeric}
        levels = {f.name: np.asarray(f.level_weights, dtype=np.float64)
                  for f in features if not f.numeric}
        draft = cls(version, weights, levels, 0.0, 1.0)
        lin = draft.linear(X, std)
        threshold = float(np.quantile(lin, 1.0 - positive_rate))
        return cls(version, weights, levels, threshold, sharpness)

    def as_truth(self) -> Linear:
        """The ground-truth relation that goes with this (baseline) model."""
        return replace(self, version="", clip=TRUTH_CLIP, travel_mute=TRAVEL_MUTE)

    def linear(self, X: dict[str, np.ndarray], std: Standardizer) -> np.ndarray:
        """``w . z + c`` (before threshold and sharpening)."""
        n = len(next(iter(X.values())))
        total = np.zeros(n)
        travel = None
        if self.travel_mute is not None and "merchant_category" in X:
            codes = X["merchant_category"]
            levels = std.features["merchant_category"].levels
            travel = codes == levels.index("travel")
        for name, w in self.weights.items():
            if w == 0.0 or name not in X:
                continue
            z = np.clip(std.z(name, X[name]), -self.clip, self.clip)
            term = w * z
            if travel is not None and name in ("amount_usd", "distance_km"):
                term = np.where(travel, term * self.travel_mute, term)
            total += term
        for name, lw in self.level_weights.items():
            if name not in X:
                continue
            codes = X[name]
            known = (codes >= 0) & (codes < len(lw))
            total += np.where(known, lw[np.clip(codes, 0, len(lw) - 1)], 0.0)
        return total

    def logit(self, X: dict[str, np.ndarray], std: Standardizer) -> np.ndarray:
        """The model's logit for the positive class."""
        s = self.sharpness * (self.linear(X, std) - self.threshold) * self.temperature
        if self.noise:
            s = s + self.noise * _hash_noise(X, std, self.noise_key)
        return s


def _hash_noise(X: dict[str, np.ndarray], std: Standardizer, key: tuple[float, ...]) -> np.ndarray:
    """A deterministic function of the inputs in [-1.4, 1.4] that looks like noise."""
    acc = np.zeros(len(next(iter(X.values()))))
    for i, name in enumerate(sorted(std.center)):
        if name in X:
            acc += np.nan_to_num(std.z(name, X[name])) * key[i % len(key)]
    return np.sqrt(2.0) * np.sin(acc * 97.0)


def outputs(logit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(prediction 0/1, score = confidence in the prediction)`` from a logit."""
    p = sigmoid(logit)
    pred = (p >= 0.5).astype(np.int8)
    return pred, np.maximum(p, 1.0 - p)


def precision(truth_logit: np.ndarray, model_logit: np.ndarray, u: np.ndarray) -> float:
    """Precision of the positive class when labels are drawn as ``u < sigmoid(truth)``."""
    y = u < sigmoid(truth_logit)
    pred = model_logit >= 0
    return float(y[pred].mean()) if pred.any() else float("nan")


def accuracy(truth_logit: np.ndarray, model_logit: np.ndarray, u: np.ndarray) -> float:
    y = u < sigmoid(truth_logit)
    return float(((model_logit >= 0) == y).mean())


def ece(truth_logit: np.ndarray, model_logit: np.ndarray, u: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence (equal-width bins)."""
    y = u < sigmoid(truth_logit)
    pred, conf = outputs(model_logit)
    correct = (pred == 1) == y
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, conf, bins) - np.bincount(idx, correct, bins))
    return float(gap.sum() / max(n.sum(), 1))


def bisect(
    fn: Callable[[float], float], lo: float, hi: float, target: float, *, iterations: int = 40
) -> float:
    """The ``x`` in ``[lo, hi]`` where the monotone ``fn(x)`` crosses ``target``."""
    f_lo = fn(lo)
    increasing = fn(hi) > f_lo
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        value = fn(mid)
        if (value < target) == increasing:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
