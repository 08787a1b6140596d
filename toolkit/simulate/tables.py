"""The small tables of a case: feature catalog, events, lineage and the reference sample."""

from __future__ import annotations

import numpy as np
import pandas as pd

from toolkit.simulate.features import SEGMENT_SHARE, round_values, sample
from toolkit.simulate.model import outputs, sigmoid
from toolkit.simulate.plan import DAY, HOUR, Deploy, Plan
from toolkit.simulate.serving import Platform

__all__ = ["features_frame", "events_frame", "lineage_rows", "lineage_frame", "reference_frame",
           "reference_rows"]


def features_frame(plan: Plan) -> pd.DataFrame:
    """The catalog: ``name, kind, position, unit`` in the model's input order."""
    return pd.DataFrame({
        "name": [plan.column(f.name) for f in plan.features],
        "kind": [f.kind for f in plan.features],
        "position": np.arange(1, len(plan.features) + 1, dtype=np.int64),
        "unit": [f.unit for f in plan.features],
    })


def _ts(plan: Plan, seconds) -> pd.Series:
    base = pd.Timestamp(plan.start)
    return base + pd.to_timedelta(np.round(np.asarray(seconds, dtype=np.float64) * 1e6)
                                  .astype(np.int64), unit="us")


def events_frame(plan: Plan) -> pd.DataFrame:
    """``ts, kind, artifact, version, host, detail`` (detail as JSON text), by time."""
    import json

    events = sorted(plan.events, key=lambda e: (e.t, e.kind, e.host or ""))
    frame = pd.DataFrame({
        "ts": _ts(plan, [e.t for e in events]),
        "kind": [e.kind for e in events],
        "artifact": [e.artifact for e in events],
        "version": [e.version for e in events],
        "host": [e.host for e in events],
        "detail": [json.dumps(e.detail if plan.world is None else
                              plan.world.detail(e.kind, e.detail), sort_keys=True)
                   for e in events],
    })
    return frame


def lineage_rows(
    deploys: list[Deploy], platform: Platform, rng: np.random.Generator
) -> tuple[tuple[str, str, str, float], ...]:
    """The ``(model, pipeline)`` pairs that were released together, with their creation time.

    The case starts from one release; every later deploy flagged ``lineage`` records the pair
    it leaves in place (a rollback that breaks lineage is not flagged).
    """
    rows = [(platform.model_version, platform.pipeline_version,
             -float(rng.uniform(5, 30)) * DAY)]
    model, pipeline = platform.model_version, platform.pipeline_version
    by_release: dict[int, list[Deploy]] = {}
    for d in sorted(deploys, key=lambda d: (d.t, d.release)):
        by_release.setdefault(d.release, []).append(d)
    for group in sorted(by_release.values(), key=lambda g: g[0].t):
        for d in group:
            if d.artifact == "model":
                model = d.version
            elif d.artifact == "pipeline":
                pipeline = d.version
        if all(d.lineage for d in group) and any(d.artifact in ("model", "pipeline")
                                                 for d in group):
            pair = (model, pipeline)
            if pair not in {(m, p) for m, p, _ in rows}:
                rows.append((model, pipeline, group[0].t - float(rng.uniform(1, 24)) * HOUR))
    return tuple((f"release-{i + 1:03d}", m, p, t) for i, (m, p, t) in enumerate(rows))


def lineage_frame(plan: Plan) -> pd.DataFrame | None:
    if not plan.platform.lineage:
        return None
    return pd.DataFrame({
        "release": [r[0] for r in plan.lineage],
        "model_version": [r[1] for r in plan.lineage],
        "pipeline_version": [r[2] for r in plan.lineage],
        "client_version": pd.Series([None] * len(plan.lineage), dtype=object),
        "created_at": _ts(plan, [r[3] for r in plan.lineage]),
    })


def reference_rows(plan: Plan) -> int:
    """Size of the reference (training) sample: a fifth of the requests, 2,000 to 100,000."""
    return int(min(max(plan.rows // 5, 2_000), 100_000))


def reference_frame(plan: Plan) -> pd.DataFrame | None:
    """A sample from the baseline distribution with the baseline model's outputs and labels."""
    if not plan.platform.reference:
        return None
    rng = np.random.default_rng([*plan.key, 3])
    n = reference_rows(plan)
    X = sample(rng, plan.features, rng.random(n) < SEGMENT_SHARE)
    for f in plan.features:
        if f.numeric:
            X[f.name] = round_values(f, X[f.name])
    model = plan.models[plan.platform.model_version]
    prediction, score = outputs(model.logit(X, plan.std))
    y = rng.random(n) < sigmoid(plan.truth.logit(X, plan.std))
    frame = pd.DataFrame({
        f.name: (X[f.name] if f.numeric else
                 pd.Categorical.from_codes(X[f.name], list(f.levels)).astype(object))
        for f in plan.features
    })
    for f in plan.features:
        if not f.numeric:
            frame[f.name] = frame[f.name].where(frame[f.name].notna(), None)
    frame["label"] = np.where(y, "1", "0")
    frame["prediction"] = np.where(prediction == 1, "1", "0")
    frame["score"] = np.round(score, 6)
    if plan.world is not None:
        for f in plan.features:
            if not f.numeric:
                frame[f.name] = frame[f.name].map(lambda v: None if v is None else
                                                  plan.label_of(v))
        frame = frame.rename(columns={f.name: plan.column(f.name) for f in plan.features})
    return frame
