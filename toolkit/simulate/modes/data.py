"""Data pathway: covariate shift, schema mismatch, null injection, unit change."""

from __future__ import annotations

import numpy as np

from toolkit.simulate import model as M
from toolkit.simulate.effects import (
    ErrorEffect,
    FeatureShift,
    MixShift,
    NullBurst,
    Rename,
    Selector,
    UnitChange,
)
from toolkit.simulate.plan import DAY, HOUR, MINUTE, Builder
from toolkit.simulate.serving import bump
from toolkit.simulate.traffic import Ramp

__all__ = ["covariate_shift", "schema_mismatch", "null_injection", "unit_change", "shifted"]

#: Renames an upstream change may make (old field -> new field).
RENAMES = {
    "merchant_category": "mcc",
    "amount_usd": "amount",
    "account_age_days": "account_age",
    "country": "country_code",
    "device_type": "device",
    "session_duration_s": "session_length",
}


def shifted(b: Builder, effects: list, weight: np.ndarray | float = 1.0) -> dict:
    """The training sample with ``effects`` (shifts of the true inputs) applied at ``weight``."""
    X = {k: v.copy() for k, v in b.train.items()}
    u = np.random.default_rng(7).random(len(b.train_u))
    for e in effects:
        if isinstance(e, MixShift):
            level = b.feature(e.feature).levels.index(e.level)
            X[e.feature] = np.where(u < e.share * weight, level, X[e.feature]).astype(np.int16)
    for e in effects:
        if isinstance(e, FeatureShift):
            mask = np.ones(len(u), dtype=bool)
            if e.where is not None:
                mask = X[e.where[0]] == b.feature(e.where[0]).levels.index(e.where[1])
            moved = b.std.shift(e.feature, X[e.feature], e.delta_sd * weight)
            X[e.feature] = np.where(mask, moved, X[e.feature])
    return X


def _precision(b: Builder, X: dict, rows: np.ndarray | None = None) -> float:
    model = b.models[b.platform.model_version]
    truth, served = b.truth.logit(X, b.std), model.logit(X, b.std)
    if rows is None:
        return M.precision(truth, served, b.train_u)
    return M.precision(truth[rows], served[rows], b.train_u[rows])


def _final_week(b: Builder, ramp: Ramp) -> tuple[np.ndarray, np.ndarray]:
    """Per training row: a time in the final week, the ramp's weight then, and whether its
    label (delayed like the platform's) arrived before the export."""
    from scipy.stats import norm

    rng = np.random.default_rng(5)
    t = rng.uniform(b.span_s - 7 * DAY, b.span_s, len(b.train_u))
    left = np.maximum(b.span_s - t, 1.0)
    median = max(b.platform.label_delay_h * HOUR, 600.0)
    arrived_p = norm.cdf((np.log(left) - np.log(median)) / 0.8)
    return ramp.weight(t), rng.random(len(t)) < arrived_p


def covariate_shift(b: Builder) -> None:
    """Important inputs move away from the reference, gradually or at once; no artifact
    changes. Either one or two important numeric features shift (by 0.8-2.2 sd, towards
    fraud-looking values), or the merchant mix moves to travel with longer, pricier trips
    (where the truth differs from the linear model)."""
    p = b.preset
    onset = b.onset
    remaining = b.span_s - onset
    variant = p.get("variant") or ("travel" if b.rng.random() < 0.35 else "numeric")
    gradual = p.get("gradual", bool(b.rng.random() < 0.5))
    if "ramp_s" in p:
        ramp_s = p["ramp_s"]
    elif gradual:
        ramp_s = float(b.rng.uniform(0.2, 0.4)) * remaining
    else:
        ramp_s = float(b.rng.uniform(10, 60)) * MINUTE
    ramp = Ramp(onset, onset + ramp_s)
    effects: list = []
    if variant == "numeric":
        candidates = [f for f in b.features if f.numeric and f.important]
        count = 1 if b.rng.random() < 0.6 else 2
        chosen = [candidates[i] for i in b.rng.choice(len(candidates), count, replace=False)]
        delta = b.scale(0.8, 2.2)
        for f in chosen:
            sign = 1.0 if f.weight > 0 else -1.0
            effects.append(FeatureShift(f.name, sign * delta, ramp))
        b.injected.update(
            features=[f.name for f in chosen],
            delta_sd={e.feature: round(e.delta_sd, 4) for e in effects},
            median_ratio={e.feature: (round(float(np.exp(e.delta_sd * b.std.scale[e.feature])), 4)
                                      if b.feature(e.feature).transform != "identity" else None)
                          for e in effects},
        )
    else:
        d_dist, d_amount = p.get("travel_delta_sd", (1.0, 0.8))

        def travel(share: float) -> list:
            return [MixShift("merchant_category", "travel", share, ramp),
                    FeatureShift("distance_km", d_dist, ramp, where=("merchant_category", "travel")),
                    FeatureShift("amount_usd", d_amount, ramp, where=("merchant_category", "travel"))]

        if "target_precision" in p:
            # the share of traffic that moves, so that the precision measured on the labels of
            # the final week (which arrive late, so fewer for the last days) hits the target
            weight, arrived = _final_week(b, ramp)
            share = M.bisect(lambda s: _precision(b, shifted(b, travel(s), weight), arrived),
                             0.0, 0.95, p["target_precision"])
        else:
            share = b.scale(0.25, 0.5)
        effects = travel(share)
        b.injected.update(
            features=["merchant_category", "distance_km", "amount_usd"],
            level="travel",
            share_moved=round(share, 4),
            delta_sd={"distance_km": d_dist, "amount_usd": d_amount},
        )
    b.effects.extend(effects)
    b.injected.update(
        shape="gradual" if gradual else "sudden",
        ramp_hours=round(ramp_s / HOUR, 2),
        expected_precision_before=round(_precision(b, b.train), 4),
        expected_precision_after=round(_precision(b, shifted(b, effects)), 4),
    )
    b.notes.append("inputs move away from the reference; the ground truth saturates where the "
                   "linear model extrapolates, so precision falls")


def schema_mismatch(b: Builder) -> None:
    """An upstream pipeline release drops, renames or retypes a feature: the model receives
    nulls or a default value for it, and a share (1-15%) of requests fail validation."""
    onset = b.onset
    new = bump(b.platform.pipeline_version, part=2)
    variant = str(b.rng.choice(["missing", "renamed", "retyped"]))
    if variant == "renamed":
        names = [n for n in RENAMES if b.has_feature(n)]
    else:
        names = [f.name for f in b.features if f.important or not f.numeric]
    feature = b.feature(str(b.rng.choice(names)))
    b.deploy(onset, "pipeline", new)
    end = b.mitigated(0.5, 8 * HOUR, 48 * HOUR)
    if end is not None:
        b.incident_end = end
        b.deploy(end, "pipeline", b.platform.pipeline_version, kind="rollback")
    selector = Selector("pipeline_version", (new,))
    ramp = Ramp(onset, onset)
    default: float | str | None = None
    if variant == "renamed":
        b.effects.append(Rename(feature.name, RENAMES[feature.name], ramp, selector))
        b.extra_columns[RENAMES[feature.name]] = feature.kind
    elif variant == "retyped":
        default = 0.0 if feature.numeric else "unknown"
        b.effects.append(NullBurst(feature.name, 1.0, ramp, default, selector))
    else:
        b.effects.append(NullBurst(feature.name, 1.0, ramp, None, selector))
    rate = b.scale(0.01, 0.15)
    b.effects.append(ErrorEffect(rate, ramp, "validation_error", 422, selector))
    b.injected.update(feature=feature.name, variant=variant, pipeline_from=b.platform.pipeline_version,
                      pipeline_to=new, validation_error_rate=round(rate, 4))
    if variant == "renamed":
        b.injected["new_name"] = RENAMES[feature.name]
    if variant == "retyped":
        b.injected["default_value"] = default


def null_injection(b: Builder) -> None:
    """The null (or default-value) rate of one to three features jumps to 15-90% with no
    deploy (an upstream source or feature-store lookup fails)."""
    onset = b.onset
    count = int(b.rng.choice([1, 1, 2, 3]))
    names = [f.name for f in b.features if f.important or not f.numeric]
    chosen = [b.feature(str(n)) for n in b.rng.choice(names, count, replace=False)]
    rate = b.scale(0.15, 0.9)
    as_default = bool(b.rng.random() < 0.4)
    end = b.mitigated(0.5, 6 * HOUR, 48 * HOUR)
    if end is not None:
        b.incident_end = end
    ramp = Ramp(onset, onset + float(b.rng.uniform(0, 30)) * MINUTE, end or float("inf"))
    values = {}
    for f in chosen:
        default = None
        if as_default:
            default = (float(b.rng.choice([0.0, -1.0])) if f.numeric else "unknown")
        values[f.name] = default
        b.effects.append(NullBurst(f.name, rate, ramp, default))
    b.injected.update(features=[f.name for f in chosen], rate=round(rate, 4),
                      value="null" if not as_default else values)


def unit_change(b: Builder) -> None:
    """One numeric feature arrives in another unit (x1000, x100, x60, x3.6, x2.54, x0.4536,
    ...) from the onset, at once or over an upstream rollout of up to two hours."""
    onset = b.onset
    candidates = [f for f in b.features if f.numeric and f.unit_changes]
    important = [f for f in candidates if f.important]
    pool = important if important and b.rng.random() < 0.75 else candidates
    feature = pool[int(b.rng.integers(len(pool)))]
    factor, unit = feature.unit_changes[int(b.rng.integers(len(feature.unit_changes)))]
    rollout = float(b.rng.choice([0.0, b.rng.uniform(10, 120)])) * MINUTE
    end = b.mitigated(0.3, 12 * HOUR, 48 * HOUR)
    if end is not None:
        b.incident_end = end
    b.effects.append(UnitChange(feature.name, factor, Ramp(onset, onset + rollout,
                                                           end or float("inf"))))
    b.injected.update(feature=feature.name, factor=factor, from_unit=feature.unit, to_unit=unit,
                      rollout_minutes=round(rollout / MINUTE, 1))
