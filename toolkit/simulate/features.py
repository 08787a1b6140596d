"""The simulated service's input features: catalog, units and baseline distributions.

The service scores card transactions for fraud (the positive class ``"1"``). A latent *risky
segment* (about 14% of traffic) shifts several features at once, which is what makes the
score distribution bimodal and a linear model's precision high (about 0.9), as in real fraud
models. Numeric values are drawn in a *transform space* (log, log1p or identity) where the
model standardises them; categorical values are integer codes into ``levels`` (``-1`` = null).

Examples
--------
>>> import numpy as np
>>> feats = catalog(np.random.default_rng(0))
>>> [f.name for f in feats][:3]
['amount_usd', 'distance_km', 'session_duration_s']
>>> 8 <= len(feats) <= 12
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Feature", "catalog", "extra_features", "sample", "inverse", "forward", "SEGMENT_SHARE"]

#: Share of traffic in the latent risky segment.
SEGMENT_SHARE = 0.14


@dataclass(frozen=True)
class Feature:
    """One model input.

    Attributes
    ----------
    name, kind, unit
        As in the ``features`` catalog (``kind`` is ``numeric`` or ``categorical``).
    weight
        Model weight per standard deviation of the transformed value (numeric), before the
        global sharpness factor; 0 for features the model ignores.
    important
        Whether a failure mode may pick it as "an important feature".
    transform
        ``log``, ``log1p`` or ``identity``: the space the model standardises in.
    dist, params
        Baseline distribution in transform space: ``normal`` (mu, sd, segment shift of mu),
        ``gamma`` (shape, scale, segment shape, segment scale), ``poisson`` (mean, segment
        factor), ``beta`` (a, b, segment a), ``screen`` (per device type mean and sd).
    levels, probs, level_weights
        Categorical levels, baseline probabilities, model weights.
    unit_changes
        ``(factor, unit)`` pairs a unit change may apply (value in the new unit = factor x).
    decimals
        Rounding of the logged value.
    null_rate
        Baseline share of nulls (optional fields are sometimes absent).
    """

    name: str
    kind: str
    unit: str | None
    weight: float = 0.0
    important: bool = False
    transform: str = "identity"
    dist: str = "normal"
    params: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()
    probs: tuple[float, ...] = ()
    level_weights: tuple[float, ...] = ()
    segment_probs: tuple[float, ...] = ()
    unit_changes: tuple[tuple[float, str], ...] = ()
    decimals: int = 2
    null_rate: float = 0.0

    @property
    def numeric(self) -> bool:
        return self.kind == "numeric"


_LN = np.log
_CORE: tuple[Feature, ...] = (
    Feature("amount_usd", "numeric", "USD", 0.85, True, "log", "normal",
            (_LN(42.0), 1.05, 1.6), unit_changes=((100.0, "USD cents"),)),
    Feature("distance_km", "numeric", "km", 0.70, True, "log", "normal",
            (_LN(5.5), 1.25, 1.8), unit_changes=((1000.0, "m"), (0.621371, "mi")), decimals=3),
    Feature("session_duration_s", "numeric", "s", -0.75, True, "log", "normal",
            (_LN(140.0), 0.95, -1.5), unit_changes=((1000.0, "ms"),), decimals=1),
    Feature("account_age_days", "numeric", "days", -0.95, True, "log1p", "gamma",
            (0.9, 550.0, 0.7, 90.0), unit_changes=((24.0, "h"),), decimals=0),
    Feature("time_since_last_txn_min", "numeric", "min", -0.45, True, "log", "normal",
            (_LN(300.0), 1.6, -2.0), unit_changes=((60.0, "s"),), decimals=1, null_rate=0.004),
    Feature("country", "categorical", None,
            levels=("US", "GB", "DE", "FR", "CA", "IN", "BR", "MX", "NG"),
            probs=(0.36, 0.10, 0.09, 0.07, 0.06, 0.11, 0.09, 0.07, 0.05),
            level_weights=(0.0, -0.1, -0.3, -0.2, -0.1, 0.3, 0.5, 0.4, 1.0),
            segment_probs=(0.22, 0.06, 0.05, 0.05, 0.04, 0.14, 0.15, 0.12, 0.17)),
    Feature("device_type", "categorical", None,
            levels=("mobile", "desktop", "tablet"), probs=(0.62, 0.30, 0.08),
            level_weights=(0.0, 0.25, -0.2), segment_probs=(0.45, 0.50, 0.05)),
    Feature("merchant_category", "categorical", None,
            levels=("grocery", "fuel", "fashion", "electronics", "travel", "gaming",
                    "digital_goods", "restaurants"),
            probs=(0.20, 0.10, 0.14, 0.12, 0.08, 0.08, 0.10, 0.18),
            level_weights=(-0.9, -0.5, 0.0, 0.7, 0.4, 0.8, 1.0, -0.6),
            segment_probs=(0.05, 0.04, 0.10, 0.22, 0.10, 0.17, 0.27, 0.05)),
)
_OPTIONAL: tuple[Feature, ...] = (
    Feature("txn_count_24h", "numeric", "count", 0.55, True, "log1p", "poisson", (1.8, 2.5),
            decimals=0),
    Feature("ip_risk", "numeric", "ratio", 0.60, True, "identity", "beta", (1.4, 9.0, 2.5),
            unit_changes=((100.0, "%"),), decimals=4, null_rate=0.01),
    Feature("travel_speed_mps", "numeric", "m/s", 0.25, False, "log", "normal",
            (_LN(2.5), 1.3, 1.0), unit_changes=((3.6, "km/h"),), decimals=2),
    Feature("screen_size_in", "numeric", "in", 0.0, False, "identity", "screen",
            (6.3, 0.45, 23.0, 3.0, 10.4, 0.8), unit_changes=((2.54, "cm"),), decimals=1),
    Feature("package_weight_lb", "numeric", "lb", 0.05, False, "log", "normal",
            (_LN(2.2), 0.9, 0.0), unit_changes=((0.45359237, "kg"),), decimals=2,
            null_rate=0.02),
)


def catalog(rng: np.random.Generator, *, optional: int | None = None) -> tuple[Feature, ...]:
    """The named features of one simulated platform: 8 core ones plus 0-4 optional ones.

    Parameters
    ----------
    rng
        Draws how many and which optional features the platform logs.
    optional
        Force the number of optional features (0-4; the preset scenarios fix it).
    """
    count = int(rng.integers(0, 5)) if optional is None else optional
    chosen = sorted(rng.choice(len(_OPTIONAL), size=count, replace=False).tolist())
    picked = [_OPTIONAL[i] for i in chosen]
    # screen size follows device type, so it comes after the categoricals
    numeric_core = [f for f in _CORE if f.numeric]
    categorical = [f for f in _CORE if not f.numeric]
    return tuple(numeric_core + [f for f in picked if f.name != "screen_size_in"]
                 + categorical + [f for f in picked if f.name == "screen_size_in"])


def extra_features(rng: np.random.Generator, count: int) -> tuple[Feature, ...]:
    """``count`` generic numeric features ``f01``..: weakly (the first two) or not used."""
    out = []
    for i in range(count):
        scale = float(10.0 ** rng.integers(-1, 4))
        mu = float(rng.normal(0.0, 3.0)) * scale
        out.append(Feature(f"f{i + 1:02d}", "numeric", None, 0.1 if i < 2 else 0.0, False,
                           "identity", "normal", (mu, scale, 0.0), decimals=4))
    return tuple(out)


def forward(feature: Feature, x: np.ndarray) -> np.ndarray:
    """Value -> transform space (where the model standardises)."""
    if feature.transform == "log":
        return np.log(np.maximum(x, 1e-6))
    if feature.transform == "log1p":
        return np.log1p(np.maximum(x, 0.0))
    return x


def inverse(feature: Feature, v: np.ndarray) -> np.ndarray:
    """Transform space -> value."""
    if feature.transform == "log":
        return np.exp(v)
    if feature.transform == "log1p":
        return np.expm1(v)
    return v


def sample(
    rng: np.random.Generator,
    features: tuple[Feature, ...],
    segment: np.ndarray,
) -> dict[str, np.ndarray]:
    """Baseline values for ``len(segment)`` rows.

    Numeric features are float64 (NaN for the baseline nulls), categorical ones int16 codes.
    Draws are made in catalog order, one vectorised call per feature.
    """
    n = len(segment)
    out: dict[str, np.ndarray] = {}
    for f in features:
        if f.kind == "categorical":
            out[f.name] = _categorical(rng, f, segment)
            continue
        p = f.params
        if f.dist == "normal":
            v = rng.normal(p[0] + p[2] * segment, p[1])
            x = inverse(f, v)
        elif f.dist == "gamma":
            x = np.empty(n)
            risky = int(segment.sum())
            x[segment] = rng.gamma(p[2], p[3], risky)
            x[~segment] = rng.gamma(p[0], p[1], n - risky)
            x += 1.0
        elif f.dist == "poisson":
            x = rng.poisson(p[0] * np.where(segment, p[1], 1.0)).astype(np.float64)
        elif f.dist == "beta":
            x = rng.beta(p[0] + p[2] * segment, p[1])
        elif f.dist == "screen":
            device = out.get("device_type")
            d = np.zeros(n, dtype=np.int16) if device is None else device
            mean = np.choose(np.clip(d, 0, 2), (p[0], p[2], p[4]))
            sd = np.choose(np.clip(d, 0, 2), (p[1], p[3], p[5]))
            x = np.maximum(rng.normal(mean, sd), 3.5)
        else:  # pragma: no cover - catalog is fixed
            raise ValueError(f.dist)
        if f.null_rate:
            x = np.where(rng.random(n) < f.null_rate, np.nan, x)
        out[f.name] = x
    return out


def _categorical(rng: np.random.Generator, f: Feature, segment: np.ndarray) -> np.ndarray:
    # one search for both populations: risky rows look up u + 1 in 1 + their cumulative shares
    u = rng.random(len(segment))
    base = np.cumsum(f.probs)
    risky = np.cumsum(f.segment_probs or f.probs)
    levels = len(f.levels)
    table = np.concatenate([base / base[-1], 1.0 + risky / risky[-1]])
    table[levels - 1] = 1.0
    idx = np.searchsorted(table, u + segment, side="right") - levels * segment
    return np.clip(idx, 0, levels - 1).astype(np.int16)


def round_values(feature: Feature, x: np.ndarray) -> np.ndarray:
    """Round as the service logs the value."""
    return np.round(x, feature.decimals)
