"""Requests and their labels, one chunk of rows at a time.

Chunk ``c`` holds requests ``c * CHUNK_ROWS`` .. and is generated from its own random stream,
so any chunk can be made on its own, in any order, and the same seed always gives the same
rows. Inside a chunk everything is vectorised: one numpy call per column and per effect.

The order of work for a chunk:

1. arrival times, risky segment, true feature values (``x_true``);
2. client, endpoint; adversarial sources; shifts of the true inputs;
3. replica, model and pipeline versions (per-pod rollout);
4. what the model received (``x_recv``: unit changes, nulls, renames, permutations), and the
   model's answer; the prediction cache;
5. load, latency, errors and timeouts;
6. the ground truth (from ``x_true``) and the labels that arrived before the export.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from toolkit.simulate import encode
from toolkit.simulate.effects import (
    Adversarial,
    ColdStart,
    ConceptDrift,
    ErrorEffect,
    FeatureShift,
    LatencyEffect,
    LeakPressure,
    MixShift,
    NullBurst,
    Permutation,
    Rename,
    Saturation,
    Selector,
    StaleCache,
    Timeout,
    UnitChange,
)
from toolkit.simulate.features import SEGMENT_SHARE, round_values, sample
from toolkit.simulate.latency import healthy, saturated
from toolkit.simulate.model import outputs, sigmoid
from toolkit.simulate.plan import Plan

__all__ = ["CHUNK_ROWS", "RowGenerator", "UNKNOWN"]

#: Rows per generated chunk (a Parquet row group).
CHUNK_ROWS = 250_000
#: Level the model receives when a categorical value is defaulted.
UNKNOWN = "unknown"
_STATUS = ("ok", "error", "timeout")
_ERRORS = ("internal_error", "validation_error", "oom", "gpu_error", "client_timeout")


class _Vocab:
    """String values of one column and their integer codes."""

    def __init__(self, values=()) -> None:
        self.values: list[str] = []
        self.index: dict[str, int] = {}
        for v in values:
            self.code(v)

    def code(self, value: str) -> int:
        if value not in self.index:
            self.index[value] = len(self.values)
            self.values.append(value)
        return self.index[value]

    def match(self, codes: np.ndarray, selector: Selector) -> np.ndarray:
        hits = [i for i, v in enumerate(self.values) if selector.matches(v)]
        return np.isin(codes, hits)


class RowGenerator:
    """Generates the requests (and labels) of a plan chunk by chunk."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        p = plan.platform
        self.families = [c.name for c in p.clients]
        shares = np.array([c.share for c in p.clients])
        self.family_cum = np.cumsum(shares) / shares.sum()
        self.clients = _Vocab(c.version for c in p.clients)
        self.endpoints = _Vocab(sorted({c.endpoint for c in p.clients}))
        self.family_endpoint = np.array([self.endpoints.code(c.endpoint) for c in p.clients])
        self.releases = sorted(plan.clients, key=lambda r: r.t)
        for r in self.releases:
            self.clients.code(r.version)
        for e in plan.effects_of(Adversarial):
            self.clients.code(e.source.values[0])
            self.endpoints.code(e.endpoint)
        self.models = _Vocab([p.model_version] + [d.version for d in plan.deploys
                                                  if d.artifact == "model"])
        self.pipelines = _Vocab([p.pipeline_version] + [d.version for d in plan.deploys
                                                        if d.artifact == "pipeline"])
        self.hosts = _Vocab(plan.fleet.names)
        self.levels = {f.name: list(f.levels) + [UNKNOWN] for f in plan.features
                       if not f.numeric}
        self.start_us = int(plan.start.timestamp() * 1_000_000)
        self.chunks = max(1, -(-plan.rows // CHUNK_ROWS))

    # -- helpers --------------------------------------------------------------------------

    def shown(self, values: list[str]) -> list[str]:
        """Internal strings (levels, endpoints) as the service writes them."""
        if self.plan.world is None:
            return values
        return [self.plan.label_of(v) for v in values]

    def _rng(self, chunk: int) -> np.random.Generator:
        return np.random.default_rng([*self.plan.key, 1, chunk])

    def _versions(self, artifact: str, vocab: _Vocab, t: np.ndarray, pod: np.ndarray) -> np.ndarray:
        initial = {"model": self.plan.platform.model_version,
                   "pipeline": self.plan.platform.pipeline_version}[artifact]
        codes = np.full(len(t), vocab.code(initial), dtype=np.int32)
        for d in sorted(self.plan.deploys, key=lambda d: d.t):
            if d.artifact == artifact:
                switch = d.t + self.plan.stagger[d.release, pod]
                codes[t >= switch] = vocab.code(d.version)
        return codes

    def _select(self, selector: Selector | None, cols: dict[str, np.ndarray], n: int) -> np.ndarray:
        if selector is None:
            return np.ones(n, dtype=bool)
        vocab = {"client_version": self.clients, "host": self.hosts, "endpoint": self.endpoints,
                 "model_version": self.models, "pipeline_version": self.pipelines}
        return vocab[selector.column].match(cols[selector.column], selector)

    # -- the chunk ------------------------------------------------------------------------

    def chunk(self, c: int) -> tuple[pa.Table, pa.Table | None]:
        """Requests of chunk ``c`` and the labels that arrived for them."""
        plan, p = self.plan, self.plan.platform
        lo = c * CHUNK_ROWS
        hi = min(lo + CHUNK_ROWS, plan.rows)
        n = hi - lo
        k = np.arange(lo, hi, dtype=np.int64)
        rng = self._rng(c)

        # 1. when, who, what (true values)
        t = plan.traffic.arrival_times(k, rng.random(n), plan.rows)
        segment = rng.random(n) < SEGMENT_SHARE
        X = sample(rng, plan.features, segment)

        # 2. clients, adversarial sources, shifts of the world
        family = np.minimum(np.searchsorted(self.family_cum, rng.random(n), side="right"),
                            len(self.families) - 1)
        client = np.array([self.clients.code(cf.version) for cf in p.clients])[family]
        for r in self.releases:
            adopt = 1.0 - np.exp(-np.maximum(t - r.t, 0.0) / r.tau_s)
            mine = (family == self.families.index(r.family)) & (t >= r.t)
            client = np.where(mine & (rng.random(n) < adopt), self.clients.code(r.version), client)
        endpoint = self.family_endpoint[family]
        adversarial = np.zeros(n, dtype=bool)
        positive = np.zeros(n)
        for e in plan.effects_of(Adversarial):
            hit = rng.random(n) < e.share * e.ramp.weight(t)
            adversarial |= hit
            positive[hit] = e.positive
            client = np.where(hit, self.clients.code(e.source.values[0]), client)
            endpoint = np.where(hit, self.endpoints.code(e.endpoint), endpoint)
            for name, (a, b) in e.numeric.items():
                X[name] = np.where(hit, rng.uniform(a, b, n), X[name])
            for name, level in e.categorical.items():
                if name in X:
                    X[name] = np.where(hit, self.levels[name].index(level), X[name]).astype(np.int16)
        for e in plan.effects_of(MixShift):
            moved = (rng.random(n) < e.share * e.ramp.weight(t)) & ~adversarial
            X[e.feature] = np.where(moved, self.levels[e.feature].index(e.level),
                                    X[e.feature]).astype(np.int16)
        for e in plan.effects_of(FeatureShift):
            if e.feature not in X:
                continue
            mask = ~adversarial
            if e.where is not None:
                mask &= X[e.where[0]] == self.levels[e.where[0]].index(e.where[1])
            moved = plan.std.shift(e.feature, X[e.feature], e.delta_sd * e.ramp.weight(t))
            X[e.feature] = np.where(mask, moved, X[e.feature])
        for f in plan.features:
            if f.numeric:
                X[f.name] = round_values(f, X[f.name])

        # 3. replica and versions
        pod = plan.fleet.route(t, rng.random(n))
        model_v = self._versions("model", self.models, t, pod)
        pipeline_v = self._versions("pipeline", self.pipelines, t, pod)
        cols = {"client_version": client, "host": pod, "endpoint": endpoint,
                "model_version": model_v, "pipeline_version": pipeline_v}

        # 4. what the model received, and its answer
        R = dict(X)
        extra: dict[str, np.ndarray] = {}
        for e in plan.effects_of(UnitChange):
            hit = rng.random(n) < e.ramp.weight(t)
            R[e.feature] = np.where(hit, round_values(plan.std.features[e.feature],
                                                      R[e.feature] * e.factor), R[e.feature])
        for e in plan.effects_of(NullBurst):
            hit = (rng.random(n) < e.rate * e.ramp.weight(t)) & self._select(e.selector, cols, n)
            R[e.feature] = _blank(R[e.feature], hit, e.default, self.levels.get(e.feature))
        for e in plan.effects_of(Rename):
            hit = e.ramp.active(t) & self._select(e.selector, cols, n)
            numeric = plan.std.features[e.feature].numeric
            extra[e.new_name] = np.where(hit, R[e.feature], np.nan if numeric else -1)
            R[e.feature] = _blank(R[e.feature], hit, None, self.levels.get(e.feature))
        for e in plan.effects_of(Permutation):
            hit = (model_v == self.models.code(e.model_version)) & \
                  (pipeline_v == self.pipelines.code(e.pipeline_version))
            before = dict(R)
            for target, source in e.mapping:
                R[target] = np.where(hit, before[source], before[target])
        logit = np.zeros(n)
        for version, code in self.models.index.items():
            rows = model_v == code
            if rows.any():
                logit[rows] = plan.models[version].logit(_take(R, rows), plan.std)

        has_cache = p.has("cache")
        hit_cache = (rng.random(n) < p.cache_hit_rate) if has_cache else np.zeros(n, dtype=bool)
        cache_v = np.where(hit_cache, model_v, -1)
        for e in plan.effects_of(StaleCache):
            left = np.clip(1.0 - (t - e.deploy) / e.ttl_s, 0.0, 1.0)
            old = self.models.code(e.old_version)
            stale = hit_cache & (t >= e.deploy) & (rng.random(n) < left) & (model_v != old)
            cache_v = np.where(stale, old, cache_v)
            if stale.any():
                logit[stale] = plan.models[e.old_version].logit(_take(R, stale), plan.std)
        prediction, score = outputs(logit)

        # 5. load, latency, errors, timeouts
        g = plan.fleet.cell(t)
        inflight = rng.poisson(plan.fleet.lam[g, pod])
        z = rng.normal(size=n)
        latency = healthy(p, inflight, z, rng.random(n), rng.pareto(2.2, n))
        failing = np.zeros(n, dtype=np.int8)  # index into _ERRORS + 1; 0 = none
        u_base = rng.random(n)
        failing[u_base < 0.0015] = 1
        failing[(u_base >= 0.0015) & (u_base < 0.002)] = 2
        for e in plan.effects_of(Saturation):
            latency = saturated(e, inflight, latency, rng.normal(size=n))
            oom = (inflight >= e.knee) & (rng.random(n) < e.error_rate)
            failing = np.where((failing == 0) & oom, 3, failing)
        for e in plan.effects_of(LeakPressure):
            memory = plan.fleet.memory[g, pod]
            slow = np.clip((memory - e.slow_from) / (0.97 - e.slow_from), 0.0, 1.0)
            latency = latency * (1.0 + e.factor * slow)
            oom = rng.random(n) < e.error_rate * np.clip((memory - 0.9) / 0.07, 0.0, 1.0)
            failing = np.where((failing == 0) & oom & (t >= e.onset), 3, failing)
        for e in plan.effects_of(ColdStart):
            age = plan.fleet.age(t, pod)
            cold = e.ramp.active(t - age)
            latency = latency * np.where(cold, 1.0 + e.factor * np.exp(-age / e.tau_s), 1.0)
        for e in plan.effects_of(LatencyEffect):
            w = e.ramp.weight(t) * self._select(e.selector, cols, n)
            latency = latency * (1.0 + (e.factor - 1.0) * w)
        latency = np.where(hit_cache, rng.uniform(1.0, 4.0, n) * np.exp(0.3 * z), latency)
        http = np.full(n, 200, dtype=np.int32)
        http[failing == 1] = 500
        http[failing == 2] = 422
        http[failing == 3] = 503
        for e in plan.effects_of(ErrorEffect):
            eligible = (failing == 0) & self._select(e.selector, cols, n)
            if e.error_type != "validation_error":
                eligible &= ~hit_cache
            hit = eligible & (rng.random(n) < e.rate * e.ramp.weight(t))
            failing = np.where(hit, _ERRORS.index(e.error_type) + 1, failing)
            http = np.where(hit, e.http_status, http)
        failing = np.where(hit_cache & (failing == 3), 0, failing)
        http = np.where(failing == 0, 200, http)
        timeout_ms = np.full(n, plan.client_timeout_ms)
        for e in plan.effects_of(Timeout):
            timeout_ms = np.where(e.ramp.active(t) & self._select(e.selector, cols, n),
                                  e.timeout_ms, timeout_ms)
        status = np.where(failing > 0, 1, 0).astype(np.int8)
        timed_out = (status == 0) & (latency > timeout_ms)
        status[timed_out] = 2
        failing = np.where(timed_out, _ERRORS.index("client_timeout") + 1, failing)
        http = np.where(timed_out, 504, http)
        answered = status != 1

        # 6. ground truth and labels
        truth = plan.truth.logit(X, plan.std)
        for e in plan.effects_of(ConceptDrift):
            shift = e.direction.linear(X, plan.std) - e.direction.threshold
            truth = truth + e.magnitude * e.ramp.weight(t) * shift
        y = rng.random(n) < np.where(adversarial, positive, sigmoid(truth))
        labelled = rng.random(n) < p.label_coverage
        delay = np.maximum(p.label_delay_h * 3600.0 * np.exp(0.8 * rng.normal(size=n)), 600.0)
        arrived = labelled & (t + delay < plan.span_s)

        columns: dict[str, pa.Array] = {
            "request_id": encode.ids(plan.id_prefix, k),
            "ts": encode.timestamps(self.start_us, t),
            "endpoint": encode.strings(endpoint, self.shown(self.endpoints.values)),
            "model_name": encode.strings(np.zeros(n, dtype=np.int32), [p.model_name]),
            "model_version": encode.strings(model_v, self.models.values),
        }
        if p.has("pipeline_version"):
            columns["pipeline_version"] = encode.strings(pipeline_v, self.pipelines.values)
        if p.has("client_version"):
            columns["client_version"] = encode.strings(client, self.clients.values)
        columns["host"] = encode.strings(pod, self.hosts.values)
        columns["latency_ms"] = encode.floats(np.round(latency, 3))
        columns["status"] = encode.strings(status, _STATUS)
        columns["http_status"] = encode.ints(http)
        columns["error_type"] = encode.strings(failing.astype(np.int32) - 1, _ERRORS)
        if p.has("in_flight"):
            columns["in_flight"] = encode.ints(inflight)
        if has_cache:
            columns["cache_hit"] = pa.array(hit_cache, pa.bool_())
            columns["cache_model_version"] = encode.strings(cache_v, self.models.values)
        columns["prediction"] = encode.strings(np.where(answered, prediction, -1), ("0", "1"))
        columns["score"] = encode.floats(np.where(answered, np.round(score, 6), np.nan))
        for f in plan.features:
            if f.numeric:
                columns[f.name] = encode.floats(R[f.name])
            else:
                columns[f.name] = encode.strings(R[f.name], self.shown(self.levels[f.name]))
        for name, kind in plan.extra_columns.items():
            values = extra.get(name)
            if kind == "numeric":
                columns[name] = encode.floats(values if values is not None else np.full(n, np.nan))
            else:
                source = next(e.feature for e in plan.effects_of(Rename) if e.new_name == name)
                codes = values if values is not None else np.full(n, -1)
                columns[name] = encode.strings(codes, self.shown(self.levels[source]))
        if not p.host_column:
            del columns["host"]
        if plan.world is not None:
            columns = {plan.column(k): v for k, v in columns.items()}
        requests = pa.table(columns)

        labels = None
        if p.labels:
            keep = np.flatnonzero(arrived)
            labels = pa.table({
                "request_id": encode.ids(plan.id_prefix, k[keep]),
                "label": encode.strings(y[keep].astype(np.int32), ("0", "1")),
                "labeled_at": encode.timestamps(self.start_us, t[keep] + delay[keep]),
            })
        return requests, labels


def _take(X: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in X.items()}


def _blank(values: np.ndarray, hit: np.ndarray, default, levels: list[str] | None) -> np.ndarray:
    """``values`` with the ``hit`` rows set to null or to ``default``."""
    if levels is not None:  # categorical codes
        code = -1 if default is None else levels.index(str(default))
        return np.where(hit, code, values).astype(np.int16)
    return np.where(hit, np.nan if default is None else float(default), values)
