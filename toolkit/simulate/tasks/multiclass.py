"""A multiclass service (3-10 classes): a softmax model on the binary service's features.

The case's requests route a transaction to one of ``K`` queues (``approve``, ``review``, ...).
The served model is a softmax over ``K`` linear scores of the standardised features (clipped at
6 sd); the ground truth uses the same scores clipped at 2 sd, so in the reference distribution
the model is close to calibrated and inputs that move out of it make it wrong. The sharpness is
solved for a baseline top-1 accuracy of 0.72-0.88.

A request's ``prediction`` is the class, ``score`` its probability and ``scores`` a JSON object
with every class's probability. Per failure mode:

* ``concept_drift``: the truth's scores of 1-3 classes gain a new direction of the inputs
  (``P(y|x)`` changes for those classes), sized for a 5-20 point accuracy drop; inputs stay;
* ``calibration_collapse``: the quantized build multiplies the logits by the binary plan's
  temperature (2.5-6) plus a small input-dependent error: the argmax, hence accuracy, barely
  moves while top-label and classwise ECE rise;
* ``bad_release``: the new version's class weights move along a random direction, sized for a
  3-15 point accuracy drop on the same inputs;
* ``adversarial_inputs``: the crafted rows' true class is, 90% of the time, the one the model
  finds least likely (confidently wrong);
* ``cache_staleness``: the new version is retrained about as accurately (half a point) with
  some answers changed; stale hits carry the old answers;
* ``version_skew``: the rolled-back model reads permuted inputs; the truth follows the world.

Examples
--------
>>> from toolkit.simulate import make_case
>>> case = make_case("calibration_collapse", seed=1, rows=2_000, task="multiclass")
>>> first = next(case.request_chunks())
>>> import json
>>> scores = json.loads(first["scores"].dropna().iloc[0])
>>> len(scores) == len(case.head.classes), abs(sum(scores.values()) - 1) < 1e-5
(True, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.simulate import model as M
from toolkit.simulate.plan import Plan
from toolkit.simulate.tasks.shared import (
    Decoded,
    gumbel_argmax,
    ramp_weight,
    train_sample,
    unit_direction,
)

__all__ = ["Softmax", "MulticlassHead", "build", "CLASS_NAMES", "MIN_CLASSES", "MAX_CLASSES"]

CLASS_NAMES = ("approve", "review", "step_up_auth", "decline", "hold_funds", "manual_kyc",
               "merchant_check", "velocity_block", "refer_issuer", "escalate")
MIN_CLASSES, MAX_CLASSES = 3, 10


@dataclass(frozen=True)
class Softmax:
    """``K`` linear scores (one :class:`~toolkit.simulate.model.Linear` per class, its
    ``threshold`` the negative class bias) times ``sharpness * temperature``, plus a
    deterministic input-dependent error of size ``noise`` (quantisation)."""

    scores: tuple[M.Linear, ...] = field(repr=False)
    sharpness: float
    temperature: float = 1.0
    noise: float = 0.0
    noise_keys: tuple[tuple[float, ...], ...] = ()

    def logits(self, X: dict[str, np.ndarray], std: M.Standardizer) -> np.ndarray:
        out = np.column_stack([s.linear(X, std) - s.threshold for s in self.scores])
        out = out * (self.sharpness * self.temperature)
        if self.noise:
            for k, key in enumerate(self.noise_keys):
                out[:, k] += self.noise * M._hash_noise(X, std, key)
        return out

    def moved(self, eta: float, along: tuple[M.Linear, ...]) -> Softmax:
        """The class weights moved by ``eta`` along one direction per class."""
        moved = []
        for s, d in zip(self.scores, along, strict=True):
            moved.append(replace(s, weights={k: w + eta * d.weights.get(k, 0.0)
                                             for k, w in s.weights.items()},
                                 level_weights={k: w + eta * d.level_weights[k]
                                                for k, w in s.level_weights.items()}))
        return replace(self, scores=tuple(moved))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class MulticlassHead:
    """The multiclass model versions, the truth and the injected drift of one case."""

    plan: Plan = field(repr=False)
    classes: tuple[str, ...]
    models: dict[str, Softmax] = field(repr=False)
    truth_model: Softmax = field(repr=False)
    drift_classes: tuple[int, ...] = ()
    drift: M.Linear | None = field(default=None, repr=False)
    drift_magnitude: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    task: str = "multiclass"

    # -- answers -------------------------------------------------------------------------

    def probabilities(self, d: Decoded) -> np.ndarray:
        std = self.plan.std
        probs = np.zeros((len(d.version), len(self.classes)))
        for version, model in self.models.items():
            rows = d.version == version
            if rows.any():
                X = {k: v[rows] for k, v in d.received.items()}
                probs[rows] = softmax(model.logits(X, std))
        return probs

    def answer(self, d: Decoded) -> dict[str, pa.Array]:
        probs = np.round(self.probabilities(d), 6)
        top = np.argmax(probs, axis=1)
        mask = ~d.answered
        prediction = pa.array(np.asarray(self.classes, dtype=object)[top], pa.string(),
                              mask=mask)
        score = pa.array(probs[np.arange(len(top)), top], pa.float64(), mask=mask)
        return {"prediction": prediction, "score": score,
                "scores": pc.if_else(pa.array(mask), pa.scalar(None, pa.string()),
                                     _json_objects(self.classes, probs)),
                "_probs": probs}

    def truth_logits(self, X: dict[str, np.ndarray], t: np.ndarray | None) -> np.ndarray:
        logits = self.truth_model.logits(X, self.plan.std)
        if self.drift is not None and t is not None:
            w = ramp_weight(self.plan, t)
            if w.any():
                push = self.drift_magnitude * w * (self.drift.linear(X, self.plan.std)
                                                   - self.drift.threshold)
                for k in self.drift_classes:
                    logits[:, k] += push
        return logits

    def truth(self, d: Decoded, answers: dict[str, Any],
              rng: np.random.Generator) -> pa.Array:
        logits = self.truth_logits(d.world, d.t)
        y = gumbel_argmax(logits, rng.gumbel(size=logits.shape))
        if d.adversarial.any():
            least = np.argmin(answers["_probs"], axis=1)
            fooled = d.adversarial & (rng.random(len(y)) < 0.9)
            y = np.where(fooled, least, y)
        return pa.array(np.asarray(self.classes, dtype=object)[y], pa.string())

    def reference(self, X: dict[str, np.ndarray],
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
        base = self.models[self.plan.platform.model_version]
        probs = softmax(base.logits(X, self.plan.std))
        top = np.argmax(probs, axis=1)
        logits = self.truth_logits(X, None)
        y = gumbel_argmax(logits, rng.gumbel(size=logits.shape))
        names = np.asarray(self.classes, dtype=object)
        return {"label": names[y], "prediction": names[top],
                "score": np.round(probs[np.arange(len(top)), top], 6)}

    def endpoint_row(self) -> dict[str, Any]:
        return {"task": "multiclass", "positive_class": None,
                "classes": json.dumps(list(self.classes)), "interval_coverage": None}

    def summary(self) -> dict[str, Any]:
        return {"task": "multiclass", "classes": list(self.classes),
                "drift_classes": [self.classes[k] for k in self.drift_classes], **self.facts}


def _json_objects(classes: tuple[str, ...], probs: np.ndarray) -> pa.Array:
    """One JSON object ``{"class": p, ...}`` per row (built column-wise, not row by row)."""
    parts = [pc.binary_join_element_wise(
        f'"{name}": ', pc.cast(pa.array(probs[:, k]), pa.string()), "")
        for k, name in enumerate(classes)]
    joined = pc.binary_join_element_wise(*parts, ", ")
    return pc.binary_join_element_wise("{", joined, "}", "")


def _accuracy(model_logits: np.ndarray, truth_logits: np.ndarray, gumbel: np.ndarray) -> float:
    return float((np.argmax(model_logits, axis=1) == gumbel_argmax(truth_logits, gumbel)).mean())


def build(plan: Plan, injected: dict[str, Any], rng: np.random.Generator) -> MulticlassHead:
    """The multiclass head of ``plan`` (its mode, versions and severity)."""
    train = train_sample(plan, np.random.default_rng([*plan.key, 22]))
    severity = float(injected.get("severity", 0.5))
    k = int(rng.integers(MIN_CLASSES, MAX_CLASSES + 1))
    classes = CLASS_NAMES[:k]
    prior = rng.dirichlet(np.full(k, 4.0))
    scores = []
    for c in range(k):
        d = unit_direction(plan, rng, train, clip=6.0)
        scores.append(replace(d, threshold=d.threshold - float(np.log(prior[c]))))
    draft = Softmax(tuple(scores), 1.0)
    truth_draft = replace(draft, scores=tuple(replace(s, clip=M.TRUTH_CLIP) for s in scores))
    std = plan.std
    gumbel = rng.gumbel(size=(len(next(iter(train.values()))), k))
    served1, truth1 = draft.logits(train, std), truth_draft.logits(train, std)
    target = float(rng.uniform(0.72, 0.88))
    sharp = M.bisect(lambda s: _accuracy(s * served1, s * truth1, gumbel), 0.5, 12.0, target,
                     iterations=25)
    base = replace(draft, sharpness=sharp)
    truth_model = replace(truth_draft, sharpness=sharp)
    served, truth = base.logits(train, std), truth_model.logits(train, std)
    accuracy = _accuracy(served, truth, gumbel)
    base_version = plan.platform.model_version
    models = {v: base for v in plan.models}
    facts: dict[str, Any] = {"accuracy_before": round(accuracy, 4)}
    head_args: dict[str, Any] = {}

    if plan.mode == "calibration_collapse":
        version = injected["model_to"]
        quantized = replace(base, temperature=plan.models[version].temperature,
                            noise=plan.models[version].noise,
                            noise_keys=tuple(tuple(rng.normal(size=8).tolist())
                                             for _ in range(k)))
        models[version] = quantized
        after = quantized.logits(train, std)
        facts.update(expected_accuracy_after=round(_accuracy(after, truth, gumbel), 4),
                     expected_top_label_ece_before=round(top_label_ece(served, truth, gumbel), 4),
                     expected_top_label_ece_after=round(top_label_ece(after, truth, gumbel), 4))
    elif plan.mode in ("bad_release", "cache_staleness"):
        version = injected["model_to"]
        along = tuple(unit_direction(plan, rng, train, clip=6.0) for _ in range(k))
        # a bad release loses 3-15 points; the update behind a stale cache is a retrained
        # model about as accurate (half a point), whose answers differ from the old one's
        drop = 0.03 + severity * 0.12 if plan.mode == "bad_release" else 0.005
        eta = M.bisect(lambda e: accuracy - _accuracy(base.moved(e, along).logits(train, std),
                                                       truth, gumbel), 0.0, 3.0, drop,
                       iterations=25)
        models[version] = base.moved(eta, along)
        after = models[version].logits(train, std)
        facts.update(weight_perturbation=round(eta, 4),
                     expected_accuracy_after=round(_accuracy(after, truth, gumbel), 4),
                     answers_changed=round(float((np.argmax(after, 1)
                                                  != np.argmax(served, 1)).mean()), 4))
    elif plan.mode == "concept_drift":
        m = int(rng.integers(1, min(3, k - 1) + 1))
        chosen = tuple(sorted(rng.choice(k, m, replace=False).tolist()))
        d = unit_direction(plan, rng, train)
        push = d.linear(train, std) - d.threshold
        drop = 0.05 + severity * 0.15

        def loss(mag: float) -> float:
            moved = truth.copy()
            moved[:, list(chosen)] += mag * push[:, None]
            return accuracy - _accuracy(served, moved, gumbel)

        magnitude = M.bisect(loss, 0.0, 40.0, drop, iterations=25)
        head_args = {"drift_classes": chosen, "drift": d, "drift_magnitude": magnitude}
        facts.update(accuracy_drop=round(drop, 4), drift_logit=round(magnitude, 4))
    del models[base_version]
    models = {base_version: base, **models}
    return MulticlassHead(plan, classes, models, truth_model, facts=facts, **head_args)


def top_label_ece(model_logits: np.ndarray, truth_logits: np.ndarray, gumbel: np.ndarray,
                  bins: int = 15) -> float:
    """Top-label ECE (equal-width bins) of the model against labels drawn from the truth."""
    probs = softmax(model_logits)
    top = np.argmax(probs, axis=1)
    conf = probs[np.arange(len(top)), top]
    correct = top == gumbel_argmax(truth_logits, gumbel)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    gap = np.abs(np.bincount(idx, conf, bins) - np.bincount(idx, correct, bins))
    return float(gap.sum() / len(conf))
