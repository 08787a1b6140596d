"""The *varied* world: per-case draws of what the classic simulator holds fixed.

The classic world (``world="classic"``, the default) simulates one fraud-scoring service
with a fixed export layout. The varied world (``world="varied"``) draws, from the seed and
on its own random stream (so the classic cases stay byte-identical):

* the **service** (fraud scoring, recommendations ranking, text moderation): its name,
  endpoints, model name, the names of its features and categorical levels, how many features
  it has (0-4 optional and 0-6 generic extra ones) and how much each matters to the model;
* the **request-log sampling**: the service logs 1 in ``sample_every`` (2 to 50) requests;
  ``rows`` is the number of requests it served and the files hold about ``rows /
  sample_every`` of them (at least 1,000). The rate is recorded in ``truth.json`` only;
* **labels**: none at all, or a coverage of 2-90% with a delay of 0.5-72 hours;
* which optional **tables** (``metrics``, ``events``, ``reference``, ``lineage``, ``labels``)
  and request **columns** (``host``, ``in_flight``, ``cache_*``, ``pipeline_version``,
  ``client_version``) exist, except the evidence a mode needs (:data:`REQUIRES`);
* the **metric cadence** (15 s to 5 min) and the **event vocabulary** (detail keys and values
  worded as different platforms write them, in forms the loader and diagnostics accept);
* the **traffic shape**: ``flat``, ``diurnal``, ``weekly`` or ``bursty``;
* the **strength** of the failure (0 = barely visible, 1 = obvious), the **confounders**
  (any subset of the four, some more than once), the span (10-21 days) and where the onset
  falls (``early``: first 10% of the span, ``late``: last 10%, else ``middle``).

Examples
--------
>>> import numpy as np
>>> w = draw_world(np.random.default_rng(0), "none", 50_000)
>>> w.service in SERVICES, 2 <= w.sample_every <= 50
(True, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from toolkit.simulate import confounders as C
from toolkit.simulate.features import Feature
from toolkit.simulate.plan import DAY, HOUR, MINUTE, Builder
from toolkit.simulate.serving import ClientFamily, Platform
from toolkit.simulate.traffic import Ramp

__all__ = ["World", "draw_world", "SERVICES", "REQUIRES", "WORLDS", "SHAPES"]

WORLDS = ("classic", "varied")
SHAPES = ("flat", "diurnal", "weekly", "bursty")
#: Smallest request log of a varied case (after sampling).
MIN_LOGGED = 1_000

#: Evidence each mode needs in the varied world, on top of ``serving.REQUIREMENTS``:
#: ``metrics`` / ``events`` tables and the ``host`` column.
REQUIRES: dict[str, frozenset[str]] = {
    "memory_exhaustion": frozenset({"metrics", "host"}),
    "memory_leak": frozenset({"metrics", "host"}),
    "cold_start": frozenset({"events", "host"}),
    "accelerator_fault": frozenset({"host"}),
    "timeout_misconfiguration": frozenset({"events"}),
    "cache_staleness": frozenset({"events"}),
}
#: Modes whose planner needs this much history before the onset (version skew: the release the
#: rollback leaves the pipeline of, 1-3.5 days earlier and not before day 2): never ``early``.
_LEAD_DAYS = {"version_skew": 2.5}
#: Modes whose evidence is accuracy: their labels must arrive within the case.
_LABEL_MODES = ("concept_drift", "calibration_collapse", "bad_release", "adversarial_inputs",
                "version_skew")


@dataclass(frozen=True)
class Service:
    """How one kind of service names things (internal feature name -> its own)."""

    kind: str
    names: tuple[str, ...]
    endpoints: dict[str, str]
    model_name: str
    label: str
    features: dict[str, str]
    levels: dict[str, tuple[str, ...]]
    extra_prefix: str


_FRAUD_LEVELS: dict[str, tuple[str, ...]] = {}
SERVICES: dict[str, Service] = {
    "fraud_scoring": Service(
        "fraud_scoring", ("payments-fraud", "txn-risk", "chargeback-guard"),
        {"/v2/score": "/v3/fraud/score", "/v1/score": "/v1/fraud/score"}, "fraud-gbm",
        "is_fraud",
        {"amount_usd": "txn_amount_usd", "distance_km": "billing_shipping_km",
         "session_duration_s": "checkout_seconds", "account_age_days": "customer_age_days",
         "time_since_last_txn_min": "mins_since_prev_txn", "country": "issuer_country",
         "device_type": "channel", "merchant_category": "mcc_group",
         "txn_count_24h": "txns_last_day", "ip_risk": "ip_reputation",
         "travel_speed_mps": "geo_velocity_mps", "screen_size_in": "screen_in",
         "package_weight_lb": "parcel_weight_lb"},
        {"device_type": ("app", "web", "pos")},
        "fx"),
    "recommendations_ranking": Service(
        "recommendations_ranking", ("reco-ranker", "feed-ranking", "homepage-recs"),
        {"/v2/score": "/v1/rank", "/v1/score": "/v1/partner/rank"}, "ctr-ranker",
        "clicked",
        {"amount_usd": "item_price_usd", "distance_km": "user_item_distance_km",
         "session_duration_s": "session_length_s", "account_age_days": "user_tenure_days",
         "time_since_last_txn_min": "minutes_since_last_visit", "country": "locale",
         "device_type": "surface", "merchant_category": "item_category",
         "txn_count_24h": "clicks_24h", "ip_risk": "ctr_7d",
         "travel_speed_mps": "scroll_speed_mps", "screen_size_in": "viewport_in",
         "package_weight_lb": "item_weight_lb"},
        {"country": ("en_US", "en_GB", "de_DE", "fr_FR", "en_CA", "hi_IN", "pt_BR", "es_MX",
                     "en_NG"),
         "device_type": ("app", "web", "tv"),
         "merchant_category": ("home", "sports", "fashion", "electronics", "travel", "games",
                               "ebooks", "food")},
        "emb"),
    "text_moderation": Service(
        "text_moderation", ("moderation-api", "content-safety", "toxicity-filter"),
        {"/v2/score": "/v1/moderate", "/v1/score": "/v1/partner/moderate"}, "toxicity-clf",
        "is_violation",
        {"amount_usd": "listing_price_usd", "distance_km": "author_audience_km",
         "session_duration_s": "compose_time_s", "account_age_days": "author_age_days",
         "time_since_last_txn_min": "minutes_since_last_post", "country": "language",
         "device_type": "client_app", "merchant_category": "surface",
         "txn_count_24h": "posts_24h", "ip_risk": "lexicon_hit_ratio",
         "travel_speed_mps": "typing_speed_cps", "screen_size_in": "screen_in",
         "package_weight_lb": "attachment_size_lb"},
        {"country": ("en", "en-GB", "de", "fr", "en-CA", "hi", "pt", "es", "ha"),
         "device_type": ("android", "web", "ipad"),
         "merchant_category": ("comments", "reviews", "listings", "dm", "forum", "game_chat",
                               "marketplace", "support")},
        "txt"),
}

#: Event vocabularies: how platforms word the same detail (all forms the diagnostics read).
_TIMEOUT_FORMS = ("client_timeout_ms", "timeout_ms", "request_timeout_ms", "client_timeout_s",
                  "nested")
_TTL_FORMS = ("cache_ttl_s", "ttl_s", "cache_ttl_ms", "cache_ttl_min", "cache_ttl_h")
_SCALE_FORMS = (("up", "down"), ("out", "in"), ("scale_up", "scale_down"))
_TEXT_KEYS = (("reason", "change"), ("cause", "description"), ("message", "summary"))
_ALERT_FORMS = ({"HighLatencyP99": "HighLatencyP99"},
                {"HighLatencyP99": "LatencyP99SLOBurn"},
                {"HighLatencyP99": "p99_latency_high"})


@dataclass(frozen=True)
class World:
    """The draws of one varied case (see the module docstring)."""

    service: str
    service_name: str
    optional_features: int
    extra_features: int
    importance: dict[str, float]
    sample_every: int
    served_rows: int
    logged_rows: int
    labels: bool
    label_coverage: float
    label_delay_h: float
    tables: dict[str, bool]
    columns: dict[str, bool]
    metric_step_s: int
    vocabulary: dict[str, Any]
    traffic_shape: str
    traffic: dict[str, float]
    bursts: tuple[tuple[float, float, float], ...]
    strength: float
    confounders: dict[str, int]
    span_days: int
    onset_position: str
    onset_fraction: float
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    # -- applying the draws ----------------------------------------------------------------

    def platform(self, p: Platform) -> Platform:
        """``p`` with the world's service, export layout, labels and cadence."""
        spec = SERVICES[self.service]
        pod_hash = p.pods[0].split("-")[-2]
        pods = tuple(f"{self.service_name}-{pod_hash}-{pod.split('-')[-1]}" for pod in p.pods)
        clients = tuple(ClientFamily(c.name, c.share, c.endpoint, c.version) for c in p.clients)
        columns = {c for c in ("in_flight", "cache", "pipeline_version", "client_version")
                   if self.columns[c]}
        return replace(
            p, service=self.service_name, model_name=spec.model_name, pods=pods,
            clients=clients, columns=frozenset(columns), reference=self.tables["reference"],
            lineage=self.tables["lineage"], labels=self.labels,
            label_coverage=self.label_coverage, label_delay_h=self.label_delay_h,
            metric_step_s=self.metric_step_s, metrics=self.tables["metrics"],
            events=self.tables["events"], host_column=self.columns["host"],
            traffic_amplitude=self.traffic["amplitude"], peak_hour=self.traffic["peak_hour"])

    def reweight(self, features: tuple[Feature, ...]) -> tuple[Feature, ...]:
        """The features with the world's importance multipliers on the model weights."""
        out = []
        for f in features:
            k = self.importance.get(f.name, 1.0)
            out.append(replace(f, weight=f.weight * k,
                               level_weights=tuple(w * k for w in f.level_weights)))
        return tuple(out)

    def onset_s(self, span_s: float) -> float:
        return round(self.onset_fraction * span_s)

    def shape(self, b: Builder) -> None:
        """Traffic seasonality and bursts (after the confounders: overrides their weekends)."""
        b.weekend_factor = self.traffic["weekend_factor"]
        for start, minutes, factor in self.bursts:
            t = start * b.span_s
            b.traffic_mods.append((Ramp(t, t + 2 * MINUTE, t + minutes * MINUTE, 2 * MINUTE),
                                   factor))

    def add_confounders(self, b: Builder) -> None:
        C.some(b, self.confounders)

    def name(self, internal: str) -> str:
        """The service's name for an internal feature / column name."""
        return self.names.get(internal, internal)

    def value(self, text: str) -> str:
        """The service's wording of an internal string (level, endpoint, feature name)."""
        return self.values.get(text, self.names.get(text, text))

    def rename(self, obj: Any) -> Any:
        """``obj`` (JSON-like) with every internal feature name, level and endpoint renamed."""
        if isinstance(obj, str):
            return self.value(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.rename(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.rename(v) for v in obj]
        return obj

    def notes(self, text: str) -> str:
        """Free text with the internal feature names replaced by the service's."""
        if not self.names:
            return text
        pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, self.names), key=len,
                                                      reverse=True)) + r")\b")
        return pattern.sub(lambda m: self.names[m.group(1)], text)

    def detail(self, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
        """An event's detail in this world's vocabulary."""
        v = self.vocabulary
        timeout_form = v["timeout"]
        if timeout_form == "nested" and "client" in detail:
            # ``client`` already scopes the change to a client family: no nesting under it
            timeout_form = "client_timeout_ms"
        out: dict[str, Any] = {}
        for key, value in detail.items():
            base = key
            prefix = ""
            for p in ("previous_", "old_"):
                if key.startswith(p):
                    prefix, base = p, key[len(p):]
            if base == "client_timeout_ms":
                form = timeout_form
                if form == "nested" and not prefix:
                    out.setdefault("client", {})["timeout_ms"] = value
                elif form == "client_timeout_s":
                    out[prefix + form] = value / 1000.0
                elif form == "nested":
                    out[prefix + "client_timeout_ms"] = value
                else:
                    out[prefix + form] = value
            elif base == "cache_ttl_s":
                form = v["ttl"]
                factor = {"cache_ttl_s": 1, "ttl_s": 1, "cache_ttl_ms": 1000,
                          "cache_ttl_min": 1 / 60, "cache_ttl_h": 1 / 3600}[form]
                out[prefix + form] = round(value * factor, 6)
            elif key == "direction" and kind == "scale":
                up, down = v["scale"]
                out[key] = up if value == "up" else down if value == "down" else value
            elif key in ("reason", "change"):
                out[v["text"][0 if key == "reason" else 1]] = value
            elif key == "alert":
                out[key] = v["alerts"].get(value, value)
            else:
                out[key] = value
        return out

    def truth(self) -> dict[str, Any]:
        """What was drawn, for ``truth.json``."""
        return {
            "world": "varied",
            "service": self.service,
            "service_name": self.service_name,
            "features": {"optional": self.optional_features, "extra": self.extra_features,
                         "importance": {self.name(k): round(v, 3)
                                        for k, v in self.importance.items()
                                        if k in self.names},
                         "names": dict(self.names)},
            "sampling": {"sample_every": self.sample_every, "served_rows": self.served_rows,
                         "logged_rows": self.logged_rows},
            "labels": {"present": self.labels,
                       "coverage": round(self.label_coverage, 4) if self.labels else None,
                       "delay_h": round(self.label_delay_h, 2) if self.labels else None},
            "tables": dict(self.tables),
            "columns": dict(self.columns),
            "metric_step_s": self.metric_step_s,
            "vocabulary": {k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in self.vocabulary.items()},
            "traffic": {"shape": self.traffic_shape, **{k: round(v, 3)
                                                        for k, v in self.traffic.items()},
                        "bursts": len(self.bursts)},
            "strength": round(self.strength, 4),
            "confounders": dict(self.confounders),
            "span_days": self.span_days,
            "onset_position": self.onset_position,
            "onset_fraction": round(self.onset_fraction, 4),
        }


def draw_world(rng: np.random.Generator, mode: str, rows: int,
               requires: frozenset[str] | set[str] = frozenset()) -> World:
    """Draw the varied world of one case of ``mode`` (``rows``: requests served).

    ``requires`` are the mode's evidence needs (``serving.REQUIREMENTS``); together with
    :data:`REQUIRES` they are always present.
    """
    need = set(requires) | set(REQUIRES.get(mode, ()))
    service = str(rng.choice(list(SERVICES)))
    spec = SERVICES[service]
    service_name = str(rng.choice(list(spec.names)))
    optional = int(rng.integers(0, 5))
    extra = int(rng.choice([0, 0, 1, 2, 4, 6]))
    importance = {}
    for name in ("amount_usd", "distance_km", "session_duration_s", "account_age_days",
                 "time_since_last_txn_min", "country", "device_type", "merchant_category",
                 "txn_count_24h", "ip_risk"):
        importance[name] = float(rng.uniform(0.5, 1.5))
    sample_every = int(np.round(np.exp(rng.uniform(np.log(2), np.log(50)))))
    logged = max(MIN_LOGGED, int(rows) // sample_every)

    labels = "labels" in need or bool(rng.random() < 0.65)
    coverage = float(np.exp(rng.uniform(np.log(0.02), np.log(0.9))))
    delay = float(np.exp(rng.uniform(np.log(0.5), np.log(72.0))))
    if mode in _LABEL_MODES:
        coverage = max(coverage, 0.1)
    tables = {"metrics": "metrics" in need or bool(rng.random() < 0.75),
              "events": "events" in need or bool(rng.random() < 0.8),
              "reference": "reference" in need or bool(rng.random() < 0.5),
              "lineage": "lineage" in need or bool(rng.random() < 0.5),
              "labels": labels}
    columns = {c: c in need or bool(rng.random() < p) for c, p in
               (("host", 0.85), ("in_flight", 0.5), ("cache", 0.4), ("pipeline_version", 0.6),
                ("client_version", 0.6))}
    step = int(rng.choice([15, 30, 60, 120, 300], p=[0.1, 0.25, 0.35, 0.2, 0.1]))
    vocabulary = {"timeout": str(rng.choice(_TIMEOUT_FORMS)), "ttl": str(rng.choice(_TTL_FORMS)),
                  "scale": _SCALE_FORMS[int(rng.integers(len(_SCALE_FORMS)))],
                  "text": _TEXT_KEYS[int(rng.integers(len(_TEXT_KEYS)))],
                  "alerts": _ALERT_FORMS[int(rng.integers(len(_ALERT_FORMS)))]}
    shape = str(rng.choice(SHAPES))
    traffic = {"amplitude": 0.03 if shape == "flat" else float(rng.uniform(0.3, 0.75)),
               "peak_hour": float(rng.uniform(0.0, 24.0)),
               "weekend_factor": float(rng.uniform(0.35, 0.7)) if shape == "weekly" else
               1.0 if shape == "flat" else float(rng.uniform(0.85, 1.0))}
    bursts: tuple[tuple[float, float, float], ...] = ()
    if shape == "bursty":
        bursts = tuple((float(rng.uniform(0.02, 0.98)), float(rng.uniform(10, 90)),
                        float(rng.uniform(2.0, 5.0))) for _ in range(int(rng.integers(3, 11))))
    strength = float(rng.random())
    counts = {name: int(rng.random() < 0.75) for name in C.CONFOUNDERS}
    counts["benign_deploy"] += int(rng.integers(0, 3))
    counts["latency_blip"] += int(rng.integers(0, 2))
    position = str(rng.choice(["early", "middle", "late"], p=[0.15, 0.7, 0.15]))
    if position == "early" and mode in _LEAD_DAYS:
        position = "middle"  # the mode's story needs days of history before the onset
    span_days = int(rng.choice([14, 21])) if position == "early" else int(rng.choice([10, 14, 21]))
    span_s = span_days * DAY
    if position == "early":
        fraction = float(rng.uniform(1.1 * DAY, 0.1 * span_s)) / span_s
    elif position == "late":
        fraction = float(rng.uniform(0.9 * span_s, span_s - 4 * HOUR)) / span_s
    else:
        fraction = float(rng.uniform(0.3, 0.85))
    if mode in _LABEL_MODES:  # some labels of the incident arrive before the export
        delay = min(delay, max(1.0, (1.0 - fraction) * span_s / HOUR / 3.0))
    names: dict[str, str] = dict(spec.features)
    values: dict[str, str] = dict(spec.endpoints)
    return World(
        service=service, service_name=service_name, optional_features=optional,
        extra_features=extra, importance=importance, sample_every=sample_every,
        served_rows=int(rows), logged_rows=logged, labels=labels, label_coverage=coverage,
        label_delay_h=delay, tables=tables, columns=columns, metric_step_s=step,
        vocabulary=vocabulary, traffic_shape=shape, traffic=traffic, bursts=bursts,
        strength=strength, confounders=counts, span_days=span_days, onset_position=position,
        onset_fraction=fraction, names=names, values=values)


def with_features(world: World, features: tuple[Feature, ...],
                  extra_columns: dict[str, str]) -> World:
    """Complete the name maps once the catalog and renamed columns are known: generic extra
    features take the service's prefix, categorical levels its wording, and a column a
    schema change renames takes a short form of the service's name."""
    spec = SERVICES[world.service]
    names = {k: v for k, v in world.names.items() if any(f.name == k for f in features)}
    values = dict(world.values)
    for f in features:
        if re.fullmatch(r"f\d\d", f.name):
            names[f.name] = f"{spec.extra_prefix}_{f.name[1:]}"
        for old, new in zip(f.levels, spec.levels.get(f.name, f.levels), strict=True):
            if old != new:
                values.setdefault(old, new)
    taken = set(names.values())
    for new_name in extra_columns:
        source = next((k for k, v in _renamed_sources().items() if v == new_name), None)
        alias = names.get(source, new_name) if source else new_name
        short = alias.rsplit("_", 1)[0] if "_" in alias else alias + "_code"
        if short in taken or short == alias:
            short = alias + "_v2"
        names[new_name] = short
        taken.add(short)
    return replace(world, names=names, values=values)


def _renamed_sources() -> dict[str, str]:
    from toolkit.simulate.modes.data import RENAMES

    return RENAMES
