"""``make_case``: a simulated incident (or a healthy period), decided up front, generated lazily.

Examples
--------
>>> import toolkit as tk
>>> from toolkit.simulate import make_case
>>> case = make_case("cache_staleness", seed=3, rows=5_000)
>>> case.pathway, case.failure_mode
('integration', 'cache_staleness')
>>> first = next(case.request_chunks())
>>> len(first), {"request_id", "ts", "cache_hit", "cache_model_version"} <= set(first.columns)
(5000, True)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from toolkit.errors import InvalidParameterError
from toolkit.simulate import confounders as C
from toolkit.simulate import fleet as fleet_mod
from toolkit.simulate import model as M
from toolkit.simulate import serving
from toolkit.simulate import tables as T
from toolkit.simulate import world as W
from toolkit.simulate.effects import Saturation
from toolkit.simulate.features import SEGMENT_SHARE, catalog, round_values, sample
from toolkit.simulate.features import extra_features as _extras
from toolkit.simulate.metrics import metric_chunks
from toolkit.simulate.modes import FAILURE_MODES, FINALIZERS, PLANNERS
from toolkit.simulate.plan import DAY, HOUR, MINUTE, Builder, Plan
from toolkit.simulate.presets import PRESETS, Preset
from toolkit.simulate.rows import CHUNK_ROWS, RowGenerator
from toolkit.types import Window, to_utc

__all__ = ["Case", "CaseTables", "make_case", "task_modes", "MIN_ROWS", "MAX_ROWS", "TASKS"]

MIN_ROWS = 1_000
MAX_ROWS = 1_000_000_000
#: Rows of the model's training sample (standardisation, tuning, Monte Carlo of effects).
_TRAIN_ROWS = 40_000
_DEFAULT_START = datetime(2026, 2, 2, tzinfo=UTC)
#: Metrics are exported for the investigation window: from this long before the onset (whole
#: days) to the end, as an analyst exports a Prometheus range around an incident, and no further
#: back than Prometheus' default retention.
METRICS_BEFORE_ONSET = 3 * DAY
METRICS_RETENTION = 15 * DAY


@dataclass(frozen=True)
class CaseTables:
    """Every table of a case in memory (``None`` for a table this platform does not export).

    Examples
    --------
    >>> from toolkit.simulate import make_case
    >>> tables = make_case("none", seed=1, rows=2_000).tables()
    >>> tables["requests"].shape[0], "events" in tables.names
    (2000, True)
    """

    requests: pd.DataFrame
    labels: pd.DataFrame | None
    reference: pd.DataFrame | None
    features: pd.DataFrame
    metrics: pd.DataFrame
    events: pd.DataFrame
    lineage: pd.DataFrame | None
    #: The ``endpoints`` catalog (multiclass and regression cases; ``None`` for binary ones).
    endpoints: pd.DataFrame | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the tables present."""
        return tuple(k for k, v in self.as_dict().items() if v is not None)

    def as_dict(self) -> dict[str, pd.DataFrame | None]:
        return {k: getattr(self, k) for k in ("requests", "labels", "reference", "features",
                                              "metrics", "events", "lineage", "endpoints")}

    def __getitem__(self, name: str) -> pd.DataFrame | None:
        if name not in self.as_dict():
            raise KeyError(name)
        return getattr(self, name)


@dataclass(frozen=True)
class Case:
    """A simulated case: the truth and the schedule; tables are generated on demand.

    Attributes
    ----------
    failure_mode, pathway
        What was injected (``none`` / ``none`` for a healthy period).
    seed, rows, preset
        How it was made; the same arguments always give the same tables.
    start, end
        The period the exported logs cover (UTC).
    onset
        When the failure started (``None`` for ``none``).
    incident, baseline
        The incident window and a healthy baseline window before it.
    confounders
        Confounders present (``benign_deploy``, ``benign_drift``, ``seasonality``,
        ``latency_blip``).
    injected
        Mode-specific parameters (shifted feature, factor, bad host, client version, ...).
    notes
        What the failure does, in words.
    """

    failure_mode: str
    pathway: str
    seed: int
    rows: int
    preset: str | None
    start: datetime
    end: datetime
    onset: datetime | None
    incident: Window
    baseline: Window
    confounders: tuple[str, ...]
    injected: dict[str, Any] = field(compare=False)
    notes: str = field(compare=False, default="")
    plan: Plan = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    # -- what exists -----------------------------------------------------------------------

    @property
    def table_names(self) -> tuple[str, ...]:
        """Tables this case exports."""
        p = self.plan.platform
        names = ["requests"]
        if p.labels:
            names.append("labels")
        if p.reference:
            names.append("reference")
        names += ["features"] + (["metrics"] if p.metrics else [])
        names += ["events"] if self.plan.events and p.events else []
        if p.lineage:
            names.append("lineage")
        return tuple(names)

    @property
    def chunk_count(self) -> int:
        """Number of request chunks (``CHUNK_ROWS`` rows each, the last one shorter)."""
        return max(1, -(-self.rows // CHUNK_ROWS))

    def truth(self) -> dict[str, Any]:
        """The ground truth as written to ``truth.json``."""
        p = self.plan.platform
        world = self.plan.world
        platform = {
            "hosts": list(p.pods),
            "gpu": p.gpu,
            "optional_columns": sorted(p.columns),
            "tables": list(self.table_names),
            "metric_step_s": p.metric_step_s,
            "metrics_from": _iso(self.start + timedelta(seconds=self.plan.metrics_from)),
            "label_coverage": round(p.label_coverage, 4) if p.labels else None,
            "model_name": p.model_name,
        }
        if world is not None:
            platform["optional_columns"] = sorted([*p.columns, *(["host"] if p.host_column
                                                                  else [])])
            platform["label_delay_h"] = round(p.label_delay_h, 2) if p.labels else None
        doc = {
            "pathway": self.pathway,
            "failure_mode": self.failure_mode,
            "onset": _iso(self.onset) if self.onset else None,
            "incident": self.incident.as_list(),
            "baseline": self.baseline.as_list(),
            "notes": self.notes,
            "seed": self.seed,
            "rows": self.rows,
            "preset": self.preset,
            "figures": dict(PRESETS[self.preset].figures) if self.preset else None,
            "confounders": list(self.confounders),
            "injected": self.injected,
            "platform": platform,
        }
        if world is not None:
            doc["world"] = world.truth()
            doc["strength"] = round(world.strength, 4)
        return doc

    # -- lazy tables ---------------------------------------------------------------------

    def arrow_chunks(self) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        """``(requests, labels)`` Arrow tables per chunk (what :func:`write_case` writes)."""
        generator = RowGenerator(self.plan)
        for c in range(self.chunk_count):
            yield generator.chunk(c)

    def request_chunks(self) -> Iterator[pd.DataFrame]:
        """The requests, one DataFrame per chunk of up to ``CHUNK_ROWS`` rows."""
        for requests, _ in self.arrow_chunks():
            yield requests.to_pandas()

    def label_chunks(self) -> Iterator[pd.DataFrame]:
        """The labels that arrived before the export, per request chunk (empty without
        labels)."""
        if not self.plan.platform.labels:
            return
        for _, labels in self.arrow_chunks():
            yield labels.to_pandas()

    def metric_chunks(self) -> Iterator[pd.DataFrame]:
        """Metrics in long format, one DataFrame per host (then one for ``replicas``)."""
        for table in metric_chunks(self.plan):
            yield table.to_pandas()

    def events(self) -> pd.DataFrame:
        return T.events_frame(self.plan)

    def features(self) -> pd.DataFrame:
        return T.features_frame(self.plan)

    def lineage(self) -> pd.DataFrame | None:
        return T.lineage_frame(self.plan)

    def reference(self) -> pd.DataFrame | None:
        return T.reference_frame(self.plan)

    def endpoints(self) -> pd.DataFrame | None:
        """The ``endpoints`` catalog; ``None``: the binary service declares none (its task is
        inferred). Multiclass and regression cases (:mod:`toolkit.simulate.tasks`) have one."""
        return None

    def tables(self, *, max_rows: int = 2_000_000) -> CaseTables:
        """All tables in memory; refused above ``max_rows`` requests (use the chunks, or
        :func:`write_case`, for large cases).

        Raises
        ------
        InvalidParameterError
            The case has more than ``max_rows`` requests.
        """
        if self.rows > max_rows:
            raise InvalidParameterError(
                f"This case has {self.rows:,} requests, more than max_rows={max_rows:,}. "
                "Iterate over request_chunks() or write it with write_case() instead."
            )
        parts = list(self.arrow_chunks())
        requests = pa.concat_tables([r for r, _ in parts]).to_pandas()
        labels = None
        if self.plan.platform.labels:
            labels = pa.concat_tables([lab for _, lab in parts]).to_pandas()
        metrics = pa.concat_tables(list(metric_chunks(self.plan))).to_pandas() \
            if self.plan.platform.metrics else None
        events = self.events() if self.plan.platform.events else None
        return CaseTables(requests, labels, self.reference(), self.features(), metrics,
                          events, self.lineage())


def make_case(
    failure_mode: str | None,
    /,
    *,
    seed: int = 0,
    rows: int = 100_000,
    start: str | datetime | None = None,
    confounders: bool = True,
    preset: str | None = None,
    extra_features: int = 0,
    world: str = "classic",
    task: str = "binary",
) -> Case:
    """Plan a simulated incident of ``failure_mode`` (or a healthy period, ``"none"``).

    Parameters
    ----------
    failure_mode
        One of :data:`toolkit.simulate.FAILURE_MODES`; may be ``None`` when ``preset`` is given.
    seed
        Everything random follows from it: the same arguments give byte-identical tables.
    rows
        Number of request rows (1,000 to 1,000,000,000).
    start
        Start of the logs (UTC); by default a Monday-aligned date in February 2026 that depends
        on the seed.
    confounders
        Add a benign deploy near the onset, mild drift of an unimportant feature, weekly and
        promotion-day seasonality, and a brief unrelated latency blip.
    preset
        One of :data:`toolkit.simulate.PRESETS` (a published scenario with its figures).
    extra_features
        Add this many generic numeric features ``f01``.. (weakly or not used by the model).
    world
        ``classic`` (the default: the fraud-scoring service of the published figures) or
        ``varied``: the service, features, log sampling, labels, tables and columns, metric
        cadence, event wording, traffic shape, strength, confounders and onset position are
        drawn from the seed (see :mod:`toolkit.simulate.world`); ``rows`` is then the number
        of requests served, of which the log keeps a 1-in-2 to 1-in-50 sample.
    task
        The model behind the endpoint (DESIGN section 3a): ``binary`` (the default),
        ``multiclass`` (3-10 classes) or ``regression`` (a value with a prediction interval),
        see :mod:`toolkit.simulate.tasks`, for the modes :func:`task_modes` lists; or
        ``generative`` (an LLM endpoint, :mod:`toolkit.simulate.generative`, with its own
        modes; ``seed`` and ``rows`` only).

    Returns
    -------
    Case
        The scenario. Nothing is generated yet: tables come from :meth:`Case.tables`, the
        chunk iterators, or :func:`~toolkit.simulate.write_case`.

    Raises
    ------
    InvalidParameterError
        Unknown mode or preset, a mode that contradicts the preset, or out-of-range numbers.

    Examples
    --------
    >>> from toolkit.simulate import make_case
    >>> case = make_case("unit_change", seed=7, rows=2_000)
    >>> case.injected["factor"] > 0, case.onset > case.baseline.end
    (True, True)
    >>> make_case("concept_drift", seed=1, rows=2_000, task="multiclass").task
    'multiclass'
    """
    if task != "binary":
        return _task_case(failure_mode, task, seed=seed, rows=rows, start=start,
                          confounders=confounders, preset=preset,
                          extra_features=extra_features, world=world)
    spec = _check(failure_mode, seed, rows, preset, extra_features)
    if world not in W.WORLDS:
        raise InvalidParameterError(f"Unknown world {world!r}; choose one of "
                                    f"{', '.join(W.WORLDS)}.")
    if world == "varied" and preset is not None:
        raise InvalidParameterError("Presets are scenarios of the classic world; "
                                    "leave out world='varied' or the preset.")
    mode = spec.failure_mode if spec else failure_mode
    assert mode is not None
    key = (int(seed), list(FAILURE_MODES).index(mode),
           list(PRESETS).index(preset) + 1 if preset else 0)
    if world == "varied":  # its own streams: the classic cases stay as they are
        key = (*key, 1)
    rng = np.random.default_rng([*key, 0])
    requires = serving.REQUIREMENTS[mode] | (spec.requires if spec else frozenset())
    w = W.draw_world(np.random.default_rng([*key, 11]), mode, rows, requires) \
        if world == "varied" else None
    platform = serving.draw(rng, requires=requires, overrides=spec.platform if spec else None)
    if w is not None:
        platform = w.platform(platform)
        rows = w.logged_rows
    features = catalog(rng, optional=spec.optional_features if spec else
                       (w.optional_features if w else None))
    features = features + _extras(rng, extra_features + (w.extra_features if w else 0))
    if w is not None:
        features = w.reweight(features)

    train_rng = np.random.default_rng([*key, 9])
    train = sample(train_rng, features, train_rng.random(_TRAIN_ROWS) < SEGMENT_SHARE)
    for f in features:
        if f.numeric:
            train[f.name] = round_values(f, train[f.name])
    train_u = train_rng.random(_TRAIN_ROWS)
    std = M.Standardizer.fit(features, train)
    target = spec.baseline_precision if spec and spec.baseline_precision else \
        float(rng.uniform(0.88, 0.92))
    positive_rate = float(rng.uniform(0.14, 0.2))
    draft = M.Linear.from_features(platform.model_version, features, std, train, sharpness=1.0,
                                   positive_rate=positive_rate)

    served = draft.linear(train, std) - draft.threshold
    truth = draft.as_truth().linear(train, std) - draft.threshold

    def precision_at(k: float) -> float:  # the logits are k times these linear parts
        return M.precision(k * truth, k * served, train_u)

    sharpness = M.bisect(precision_at, 1.0, 10.0, target, iterations=30)
    baseline_model = M.Linear(draft.version, draft.weights, draft.level_weights, draft.threshold,
                              sharpness)

    span_s = (spec.span_days if spec else w.span_days if w else 14.0) * DAY
    start_dt = to_utc(start, name="start") if start is not None else \
        _DEFAULT_START + timedelta(days=7 * int(rng.integers(0, 4)))
    onset_day = spec.onset_day if spec and spec.onset_day else None
    onset = round(onset_day * DAY if onset_day else float(rng.uniform(0.55, 0.78)) * span_s)
    severity = spec.severity if spec and spec.severity is not None else float(rng.random())
    if w is not None:
        onset, severity = w.onset_s(span_s), w.strength
    b = Builder(rng=rng, mode=mode, preset=dict(spec.params) if spec else {}, span_s=span_s,
                start=start_dt, onset=float(onset), platform=platform, features=features,
                std=std, model=baseline_model, train=train, train_u=train_u, severity=severity)
    C.background(b)
    if confounders and w is not None:
        w.add_confounders(b)
    elif confounders:
        C.confounders(b)
    if w is not None:
        w.shape(b)
    PLANNERS[mode](b)

    traffic = b.traffic()
    saturation = next((e for e in b.effects if isinstance(e, Saturation)), None)
    fleet, fleet_events = fleet_mod.build(
        np.random.default_rng([*key, 4]), pods=platform.pods, span_s=span_s,
        step=platform.metric_step_s, traffic=traffic, concurrency=platform.concurrency,
        memory_base=platform.memory_base_fraction, windows=tuple(b.windows),
        restarts=tuple(b.restarts), saturation=saturation, leak=b.leak)
    for t, kind, host, detail in fleet_events:
        b.event(t, kind, "infra", None, host, **detail)
    if mode in FINALIZERS:
        FINALIZERS[mode](b, fleet, fleet_events)

    plan = _freeze(b, key, seed, rows, preset, traffic, fleet, saturation)
    if w is not None:
        plan = dataclasses.replace(plan, world=W.with_features(w, plan.features,
                                                                 plan.extra_columns))
    return _case(plan, b, mode)


#: Tasks :func:`make_case` simulates (``generative`` comes from its own module).
TASKS = ("binary", "multiclass", "regression", "generative")
#: The generative simulator's module: ``make_case(mode, *, seed, rows)`` and ``MODES``.
GENERATIVE_MODULE = "toolkit.simulate.generative"


def task_modes(task: str) -> tuple[str, ...]:
    """The failure modes (and ``none``) the ``task`` service simulates.

    Raises
    ------
    InvalidParameterError
        Unknown task, or ``generative`` when its simulator is not installed.
    """
    if task == "binary":
        return tuple(FAILURE_MODES)
    if task in ("multiclass", "regression"):
        from toolkit.simulate.tasks import MODES

        return MODES
    if task == "generative":
        return tuple(_generative().MODES)
    raise InvalidParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")


def _generative():
    import importlib

    try:
        return importlib.import_module(GENERATIVE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != GENERATIVE_MODULE:
            raise
        raise InvalidParameterError(
            "task='generative' needs the generative simulator (toolkit.simulate.generative), "
            "which this installation does not have.") from None


def _task_case(mode, task, *, seed, rows, start, confounders, preset, extra_features,
               world) -> Case:
    if task == "generative":
        if (start, confounders, preset, extra_features, world) != \
                (None, True, None, 0, "classic"):
            raise InvalidParameterError(
                "task='generative' takes a mode, seed and rows only (no start, confounders, "
                "preset, extra_features or world).")
        return _generative().make_case(mode, seed=seed, rows=rows)
    if task not in TASKS:
        raise InvalidParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    from toolkit.simulate.tasks import make_task_case

    return make_task_case(mode, task, seed=seed, rows=rows, world=world, start=start,
                          confounders=confounders, preset=preset,
                          extra_features=extra_features)


def _check(failure_mode, seed, rows, preset, extra) -> Preset | None:
    spec = None
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidParameterError(
                f"Unknown preset {preset!r}. Presets: {', '.join(PRESETS)}.")
        spec = PRESETS[preset]
        if failure_mode is not None and failure_mode != spec.failure_mode:
            raise InvalidParameterError(
                f"Preset {preset!r} is a {spec.failure_mode} scenario, not {failure_mode}.")
    elif failure_mode not in FAILURE_MODES:
        raise InvalidParameterError(
            f"Unknown failure mode {failure_mode!r}. Modes: {', '.join(FAILURE_MODES)}.")
    for name, value, lo, hi in (("seed", seed, 0, 2**63 - 1), ("rows", rows, MIN_ROWS, MAX_ROWS),
                                ("extra_features", extra, 0, 99)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                not lo <= value <= hi:
            raise InvalidParameterError(
                f"{name} must be an integer from {lo:,} to {hi:,}. Got {value!r}.")
    return spec


def _freeze(b: Builder, key, seed, rows, preset, traffic, fleet, saturation) -> Plan:
    p = b.platform
    n_pods = len(fleet.names)
    stagger_rng = np.random.default_rng([*key, 5])
    stagger = np.zeros((b._release + 1, n_pods))
    stagger[:, : len(p.pods)] = stagger_rng.uniform(0, 8 * MINUTE, (b._release + 1, len(p.pods)))
    if saturation is not None and not p.gpu:
        per_request = p.memory_limit_bytes * (0.99 - p.memory_base_fraction) / saturation.knee
    else:
        per_request = p.memory_limit_bytes * 0.12 / p.capacity
    free_gpu = p.gpu_memory_total_bytes - p.gpu_model_bytes
    gpu_per_request = free_gpu / saturation.knee if saturation is not None and p.gpu \
        else free_gpu * 0.6 / p.capacity
    onset = b.onset
    baseline_end = b.baseline_end if b.baseline_end is not None else onset - 30 * MINUTE
    baseline_end = max(np.floor(baseline_end / HOUR) * HOUR, DAY)
    lineage = T.lineage_rows(b.deploys, p, np.random.default_rng([*key, 6]))
    token = "".join(np.random.default_rng([*key, 7]).choice(list("0123456789abcdef"), 6))
    return Plan(
        seed=int(seed), key=key, mode=b.mode, preset=preset, rows=int(rows), start=b.start,
        span_s=b.span_s, onset=None if b.mode == "none" else onset,
        incident=(onset, max(b.incident_end, onset + HOUR)), baseline=(0.0, baseline_end),
        platform=p, features=b.features, std=b.std, truth=b.truth, models=dict(b.models),
        deploys=tuple(b.deploys), stagger=stagger, clients=tuple(b.clients),
        effects=tuple(b.effects), traffic=traffic, fleet=fleet, events=tuple(b.events),
        lineage=lineage, injected=b.injected, notes=tuple(b.notes),
        confounders=tuple(b.confounders), extra_columns=dict(b.extra_columns),
        client_timeout_ms=b.client_timeout_ms, cache_keyed_by_model=b.cache_keyed_by_model,
        memory_per_request=float(per_request), gpu_per_request=float(gpu_per_request),
        id_prefix=f"req-{token}-",
        metrics_from=max(0.0, np.floor((onset - METRICS_BEFORE_ONSET) / DAY) * DAY,
                         np.ceil((b.span_s - METRICS_RETENTION) / DAY) * DAY),
    )


def _case(plan: Plan, b: Builder, mode: str) -> Case:
    start = plan.start

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=round(float(seconds)))

    injected = dict(plan.injected)
    injected["severity"] = round(b.severity, 4)
    if mode == "cache_staleness":
        injected["stale_until"] = _iso(at(min(plan.incident[1], plan.span_s)))
    injected = json.loads(json.dumps(injected, default=_jsonable))
    doc = (PLANNERS[mode].__doc__ or "A healthy period: confounders only, no failure.").split()
    notes = " ".join(doc + list(plan.notes)).replace("``", "")
    if plan.world is not None:
        injected, notes = plan.world.rename(injected), plan.world.notes(notes)
    return Case(
        failure_mode=mode,
        pathway=FAILURE_MODES[mode],
        seed=plan.seed,
        rows=plan.rows,
        preset=plan.preset,
        start=start,
        end=at(plan.span_s),
        onset=at(plan.onset) if plan.onset is not None else None,
        incident=Window(at(plan.incident[0]), at(min(plan.incident[1], plan.span_s))),
        baseline=Window(at(plan.baseline[0]), at(plan.baseline[1])),
        confounders=plan.confounders,
        injected=injected,
        notes=notes,
        plan=plan,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
