"""What an injected failure (or a confounder) does, as plain data.

A failure mode's planner draws its parameters and returns effects; the row generator applies
every effect the same way, whichever mode or confounder asked for it. Times are seconds since
the case start; each effect is gated by a :class:`~toolkit.simulate.traffic.Ramp`.

* ``x_true`` (what happened in the world) feeds the ground truth: :class:`FeatureShift`,
  :class:`MixShift`, :class:`Adversarial`, :class:`ConceptDrift`;
* ``x_recv`` (what the model received, which is what the request log shows) feeds the model:
  :class:`UnitChange`, :class:`NullBurst`, :class:`Rename`, :class:`Permutation`;
* serving: :class:`LatencyEffect`, :class:`ErrorEffect`, :class:`Saturation`,
  :class:`LeakPressure`, :class:`ColdStart`, :class:`Timeout`, :class:`StaleCache`,
  :class:`GpuFault`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.simulate.model import Linear
from toolkit.simulate.traffic import Ramp

__all__ = [
    "Selector",
    "FeatureShift",
    "MixShift",
    "UnitChange",
    "NullBurst",
    "Rename",
    "Permutation",
    "Adversarial",
    "ConceptDrift",
    "LatencyEffect",
    "ErrorEffect",
    "Saturation",
    "LeakPressure",
    "ColdStart",
    "Timeout",
    "StaleCache",
    "GpuFault",
]


@dataclass(frozen=True)
class Selector:
    """Rows whose ``column`` (a request column such as ``client_version`` or ``host``) takes
    one of ``values`` (or starts with one of them when ``prefix``)."""

    column: str
    values: tuple[str, ...]
    prefix: bool = False

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.prefix:
            return value.startswith(self.values)
        return value in self.values


@dataclass(frozen=True)
class FeatureShift:
    """``feature`` moves by ``delta_sd`` standard deviations (transform space); only rows whose
    categorical ``where[0]`` equals ``where[1]`` when given."""

    feature: str
    delta_sd: float
    ramp: Ramp
    where: tuple[str, str] | None = None


@dataclass(frozen=True)
class MixShift:
    """A share of rows (``share`` x ramp) switch categorical ``feature`` to ``level``."""

    feature: str
    level: str
    share: float
    ramp: Ramp


@dataclass(frozen=True)
class UnitChange:
    """The received value is ``factor`` x the real one (for ramp-weight share of rows)."""

    feature: str
    factor: float
    ramp: Ramp


@dataclass(frozen=True)
class NullBurst:
    """A share ``rate`` x ramp of rows receive null (``default`` None) or ``default``."""

    feature: str
    rate: float
    ramp: Ramp
    default: float | str | None = None
    selector: Selector | None = None


@dataclass(frozen=True)
class Rename:
    """The upstream field was renamed: the model gets null for ``feature``; the payload log
    shows the value under ``new_name``."""

    feature: str
    new_name: str
    ramp: Ramp
    selector: Selector | None = None


@dataclass(frozen=True)
class Permutation:
    """For rows served by ``model_version`` behind ``pipeline_version``, the model receives in
    column ``target`` the value of feature ``source`` for each pair of ``mapping``."""

    mapping: tuple[tuple[str, str], ...]
    model_version: str
    pipeline_version: str


@dataclass(frozen=True)
class Adversarial:
    """A burst of crafted inputs from one source.

    ``share`` of the rows in the ramp window come from ``source`` with values drawn uniformly
    from ``numeric`` ranges (raw units) and fixed ``categorical`` levels; their true label is
    positive with probability ``positive``.
    """

    ramp: Ramp
    share: float
    source: Selector
    endpoint: str
    numeric: dict[str, tuple[float, float]]
    categorical: dict[str, str]
    positive: float
    kind: str


@dataclass(frozen=True)
class ConceptDrift:
    """The truth's logit gains ``magnitude`` x ramp x ``direction`` (unit-variance score)."""

    direction: Linear = field(repr=False)
    magnitude: float = 0.0
    ramp: Ramp = Ramp(0.0, 0.0)


@dataclass(frozen=True)
class LatencyEffect:
    """Latency x ``factor`` (scaled by the ramp) for the selected rows."""

    factor: float
    ramp: Ramp
    selector: Selector | None = None


@dataclass(frozen=True)
class ErrorEffect:
    """Selected rows fail with probability ``rate`` x ramp."""

    rate: float
    ramp: Ramp
    error_type: str
    http_status: int
    selector: Selector | None = None


@dataclass(frozen=True)
class Saturation:
    """Above ``knee`` requests in flight, memory runs out: latency ``latency_ms`` (median),
    errors ``oom`` with probability ``error_rate``; the last 20% below the knee degrade."""

    knee: float
    latency_ms: float
    error_rate: float
    oom_level: float


@dataclass(frozen=True)
class LeakPressure:
    """Near its memory limit a replica slows down (GC, swapping) and starts failing."""

    onset: float
    slow_from: float = 0.85
    factor: float = 6.0
    error_rate: float = 0.3


@dataclass(frozen=True)
class ColdStart:
    """Requests on a replica that started ``age`` seconds ago take ``1 + factor*exp(-age/tau)``
    times longer, for starts within the ramp window."""

    factor: float
    tau_s: float
    ramp: Ramp


@dataclass(frozen=True)
class Timeout:
    """Selected clients give up after ``timeout_ms`` (status ``timeout``)."""

    timeout_ms: float
    ramp: Ramp
    selector: Selector | None = None


@dataclass(frozen=True)
class StaleCache:
    """After ``deploy`` the cache keeps answers of ``old_version`` until ``ttl_s`` passes."""

    deploy: float
    ttl_s: float
    old_version: str


@dataclass(frozen=True)
class GpuFault:
    """One GPU misbehaves: its utilisation metric is stuck at ``utilization``."""

    host: str
    ramp: Ramp
    utilization: float
