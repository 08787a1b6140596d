"""What the multiclass and regression services share: reading back what the binary simulator
generated, and swapping its answers for the task model's.

A task case is the binary case of the same mode and seed (traffic, fleet, events, metrics,
deploys, clients, caches and every serving effect are the binary simulator's, unchanged) with
another model behind the endpoint. Each request chunk the binary generator makes is read back
(:func:`decode`: the features as the model received them, the answering model version, the
adversarial rows), the task's *head* answers it and draws the ground truth, and only the answer
and label columns are replaced (:func:`transform`).

What the model received (``R``, the logged features) differs from what happened in the world
(``X``, which the truth follows) only under a version skew, whose permutation is undone here
(:func:`true_inputs`): the data modes whose received values lose information (null injection,
unit change, schema mismatch) are not offered for the tasks.

Examples
--------
>>> import numpy as np
>>> from toolkit.simulate.tasks.shared import gumbel_argmax
>>> gumbel_argmax(np.array([[0.0, 50.0], [50.0, 0.0]]), np.zeros((2, 2))).tolist()
[1, 0]
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.simulate import model as M
from toolkit.simulate.effects import Adversarial, ConceptDrift, Permutation
from toolkit.simulate.features import SEGMENT_SHARE, round_values, sample
from toolkit.simulate.modes.model import direction as _direction
from toolkit.simulate.plan import Plan
from toolkit.simulate.rows import CHUNK_ROWS, UNKNOWN

__all__ = ["Decoded", "Head", "decode", "decode_features", "true_inputs", "transform", "train_sample",
           "unit_direction", "gumbel_argmax", "ramp_weight", "MODES", "TRAIN_ROWS"]

#: Failure modes of the multiclass and regression services (and ``none``): the model pathway,
#: the integration pathway and covariate shift.
MODES: tuple[str, ...] = (
    "covariate_shift",
    "concept_drift",
    "calibration_collapse",
    "bad_release",
    "adversarial_inputs",
    "version_skew",
    "api_contract_mismatch",
    "timeout_misconfiguration",
    "cache_staleness",
    "none",
)
#: Rows of the sample the task models are fitted and tuned on.
TRAIN_ROWS = 30_000


@dataclass(frozen=True)
class Decoded:
    """One chunk of requests read back.

    Attributes
    ----------
    received
        Feature -> values as the model received them (numeric float64 with NaN, categorical
        int16 codes into the levels plus ``unknown``, -1 = null).
    world
        The same with a version skew's permutation undone: what the truth follows.
    version
        The model version whose answer the row carries (the cached one on a cache hit).
    answered
        The row carries an answer (not an error).
    adversarial
        The row came from an adversarial source.
    t
        Seconds since the case start.
    """

    received: dict[str, np.ndarray]
    world: dict[str, np.ndarray]
    version: np.ndarray
    answered: np.ndarray
    adversarial: np.ndarray
    t: np.ndarray


class Head(Protocol):
    """A task model behind the endpoint: answers requests and draws their ground truth."""

    task: str

    def answer(self, d: Decoded) -> dict[str, pa.Array]:
        """The answer columns (``prediction``, ``score`` and the task's own), nulls where the
        row is not answered; keys starting with ``_`` hold arrays for :meth:`truth` and are
        not written."""

    def truth(self, d: Decoded, answers: dict[str, pa.Array],
              rng: np.random.Generator) -> pa.Array:
        """The true label of every row (text)."""

    def reference(self, X: dict[str, np.ndarray],
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``label``, ``prediction`` (and ``score``) of the baseline model on a reference
        sample."""

    def endpoint_row(self) -> dict[str, Any]:
        """The task's columns of the ``endpoints`` catalog."""

    def summary(self) -> dict[str, Any]:
        """What the head is, for ``truth.json``."""


def train_sample(plan: Plan, rng: np.random.Generator,
                 n: int = TRAIN_ROWS) -> dict[str, np.ndarray]:
    """A baseline sample of the case's features (as the reference is drawn)."""
    X = sample(rng, plan.features, rng.random(n) < SEGMENT_SHARE)
    for f in plan.features:
        if f.numeric:
            X[f.name] = round_values(f, X[f.name])
    return X


def unit_direction(plan: Plan, rng: np.random.Generator, train: dict[str, np.ndarray], *,
                   clip: float = M.TRUTH_CLIP) -> M.Linear:
    """A random linear score with mean 0 and variance 1 on ``train`` (the binary simulator's
    :func:`toolkit.simulate.modes.model.direction`)."""
    return _direction(SimpleNamespace(rng=rng, features=plan.features, train=train,
                                      std=plan.std), clip=clip)


def gumbel_argmax(logits: np.ndarray, gumbel: np.ndarray) -> np.ndarray:
    """A draw from ``softmax(logits)`` per row, given standard Gumbel noise of the same shape."""
    return np.argmax(logits + gumbel, axis=1)


def ramp_weight(plan: Plan, t: np.ndarray) -> np.ndarray:
    """The concept drift's ramp at ``t`` (0 without a concept drift)."""
    drift = plan.effects_of(ConceptDrift)
    return drift[0].ramp.weight(t) if drift else np.zeros(len(t))


def decode(plan: Plan, requests: pa.Table) -> Decoded:
    """Read a chunk of the binary generator's requests back into arrays."""
    received = decode_features(plan, requests)
    model = requests.column("model_version")
    version = model
    if "cache_model_version" in requests.column_names:
        version = pc.coalesce(requests.column("cache_model_version"), model)
    n = requests.num_rows
    adversarial = np.zeros(n, dtype=bool)
    for e in plan.effects_of(Adversarial):
        if "client_version" in requests.column_names:
            hit = pc.equal(requests.column("client_version"), e.source.values[0])
            adversarial |= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    start_us = int(plan.start.timestamp() * 1_000_000)
    us = pc.cast(requests.column("ts"), pa.int64()).to_numpy()
    answered = pc.is_valid(requests.column("prediction")).to_numpy(zero_copy_only=False)
    return Decoded(received, true_inputs(plan, received, requests), _text(version),
                   answered, adversarial, (us - start_us) / 1e6)


def decode_features(plan: Plan, table: pa.Table) -> dict[str, np.ndarray]:
    """The feature columns of ``table`` (exported names and levels) as the generator's arrays:
    numeric float64 with NaN for null, categorical int16 codes into the levels plus
    ``unknown`` (-1 for null)."""
    out: dict[str, np.ndarray] = {}
    for f in plan.features:
        column = table.column(plan.column(f.name))
        if f.numeric:
            out[f.name] = pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy()
        else:
            shown = [plan.label_of(v) for v in (*f.levels, UNKNOWN)]
            codes = pc.index_in(column, value_set=pa.array(shown, pa.string()))
            out[f.name] = pc.fill_null(codes, -1).to_numpy().astype(np.int16)
    return out


def true_inputs(plan: Plan, received: dict[str, np.ndarray],
                requests: pa.Table) -> dict[str, np.ndarray]:
    """The inputs as they were in the world: a version skew's permutation undone on the rows
    of the skewed (model, pipeline) pair. The generator set ``R[target] = X[source]``."""
    world = dict(received)
    for e in plan.effects_of(Permutation):
        hit = _text(requests.column("model_version")) == e.model_version
        if "pipeline_version" in requests.column_names:
            hit &= _text(requests.column("pipeline_version")) == e.pipeline_version
        for target, source in e.mapping:
            world[source] = np.where(hit, received[target], world[source])
    return world


def transform(plan: Plan, head: Head, chunk: int, requests: pa.Table,
              labels: pa.Table | None) -> tuple[pa.Table, pa.Table | None]:
    """The binary chunk with the task's answers and labels in place of the binary ones.

    ``prediction`` and ``score`` are replaced where they stand; the task's other answer columns
    (``scores``, ``pred_lower``, ``pred_upper``) follow ``score``. Labels keep their request
    ids and arrival times.
    """
    d = decode(plan, requests)
    answers = head.answer(d)
    rng = np.random.default_rng([*plan.key, 21, chunk])
    truth = head.truth(d, answers, rng)
    names = list(requests.column_names)
    columns = {name: requests.column(name) for name in names}
    out: dict[str, Any] = {}
    for name in names:
        if name in answers:  # prediction, score
            out[name] = answers[name]
        else:
            out[name] = columns[name]
        if name == "score":
            for extra, values in answers.items():
                if extra not in names and not extra.startswith("_"):
                    out[extra] = values
    requests = pa.table(out)
    if labels is not None and labels.num_rows:
        first = chunk * CHUNK_ROWS
        k = pc.cast(pc.utf8_slice_codeunits(labels.column("request_id"), -10),
                    pa.int64()).to_numpy() - first
        labels = labels.set_column(labels.column_names.index("label"), "label",
                                   truth.take(pa.array(k)))
    elif labels is not None:
        labels = labels.set_column(labels.column_names.index("label"), "label",
                                   pa.array([], pa.string()))
    return requests, labels


def _text(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_pylist(), dtype=object) if column.null_count else \
        column.to_numpy(zero_copy_only=False).astype(object)
