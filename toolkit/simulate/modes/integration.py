"""Integration pathway: version skew, API contract mismatch, timeout misconfiguration, cache
staleness."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from toolkit.simulate import model as M
from toolkit.simulate.effects import ErrorEffect, Permutation, Selector, StaleCache, Timeout
from toolkit.simulate.modes.model import direction, perturbed
from toolkit.simulate.plan import DAY, HOUR, Builder
from toolkit.simulate.serving import bump
from toolkit.simulate.traffic import Ramp

__all__ = ["version_skew", "api_contract_mismatch", "timeout_misconfiguration",
           "cache_staleness", "server_latency_quantile"]


def permuted(X: dict, mapping: tuple[tuple[str, str], ...]) -> dict:
    out = dict(X)
    for target, source in mapping:
        out[target] = X[source]
    return out


def version_skew(b: Builder) -> None:
    """A release ships model ``m1`` with pipeline ``p1`` (a new feature order). Days later the
    model alone is rolled back to ``m0`` while ``p1`` stays: ``m0`` receives valid-schema
    inputs in the wrong positions (a permutation of 2-4 numeric features) and answers
    confidently wrong. ``(m0, p1)`` was never released together, so it is not in lineage."""
    p = b.preset
    m0, p0 = b.platform.model_version, b.platform.pipeline_version
    m1, p1 = bump(m0, part=1), bump(p0, part=1)
    onset = b.onset
    released = max(onset - float(b.rng.uniform(1.0, 3.5)) * DAY, 2 * DAY)
    release = b.deploy(released, "model", m1)
    b.deploy(released, "pipeline", p1, release=release, feature_order="v2")
    b.models[m1] = replace(b.models[m0], version=m1)
    mapping = tuple(tuple(pair) for pair in p["permutation"]) if "permutation" in p \
        else _confusing_permutation(b)
    b.deploy(onset, "model", m0, kind="rollback", lineage=False,
             reason=str(b.rng.choice(["latency regression", "canary alert", "memory footprint"])))
    end = b.mitigated(0.5, 6 * HOUR, 36 * HOUR)
    if end is not None:
        b.incident_end = end
        b.deploy(end, "pipeline", p0, kind="rollback", reason="restore lineage")
    b.effects.append(Permutation(mapping, m0, p1))
    truth = b.truth.logit(b.train, b.std)
    served = b.models[m0].logit(permuted(b.train, mapping), b.std)
    _, score = M.outputs(served)
    b.injected.update(
        model_from=m1, model_to=m0, pipeline_version=p1, pipeline_before=p0,
        pair_not_in_lineage=[m0, p1], permutation={t: s for t, s in mapping},
        expected_accuracy_before=round(M.accuracy(truth, b.models[m0].logit(b.train, b.std),
                                                  b.train_u), 4),
        expected_accuracy_after=round(M.accuracy(truth, served, b.train_u), 4),
        expected_mean_score_after=round(float(score.mean()), 4),
    )


def _confusing_permutation(b: Builder) -> tuple[tuple[str, str], ...]:
    """Of a few random derangements of 2-4 important numeric features, the one whose answers
    are most confident among those that cost at least 20 points of accuracy (else the one that
    costs most)."""
    names = [f.name for f in b.features if f.numeric and f.important]
    truth = b.truth.logit(b.train, b.std)
    model = b.models[b.platform.model_version]
    base = M.accuracy(truth, model.logit(b.train, b.std), b.train_u)
    best, best_key = None, (-1.0, 0.0)
    for _ in range(12):
        k = int(b.rng.integers(2, min(4, len(names)) + 1))
        chosen = list(b.rng.choice(names, k, replace=False))
        shift = int(b.rng.integers(1, k))
        mapping = tuple(zip(chosen, chosen[shift:] + chosen[:shift], strict=True))
        logit = model.logit(permuted(b.train, mapping), b.std)
        drop = base - M.accuracy(truth, logit, b.train_u)
        confidence = float(M.outputs(logit)[1].mean())
        key = (confidence, drop) if drop >= 0.2 else (-1.0, drop)
        if key > best_key:
            best, best_key = mapping, key
    return best


def api_contract_mismatch(b: Builder) -> None:
    """A client release speaks a changed API contract: 30-95% of its requests fail validation
    (HTTP 400/422) while other clients, and the model, are fine. The new version's share
    grows as users update (time constant 2-12 hours)."""
    onset = b.onset
    family = str(b.rng.choice(["ios", "android", "web", "partner"]))
    version = bump(b.client_version_at(family, onset), part=1)
    tau = float(b.rng.uniform(2, 12)) * HOUR
    b.client_release(onset, family, version, tau, api_contract="v3")
    rate = b.scale(0.3, 0.95)
    status = int(b.rng.choice([400, 422]))
    b.effects.append(ErrorEffect(rate, Ramp(onset, onset), "validation_error", status,
                                 Selector("client_version", (version,))))
    b.injected.update(client_version=version, client=family, error_rate=round(rate, 4),
                      http_status=status, adoption_hours=round(tau / HOUR, 2))


def server_latency_quantile(b: Builder, q: float) -> float:
    """Quantile ``q`` of the healthy server latency (Monte Carlo of the latency model)."""
    from toolkit.simulate.latency import healthy

    rng = np.random.default_rng(11)
    n = 200_000
    inflight = rng.poisson(b.platform.concurrency * rng.uniform(0.4, 1.6, n))
    return float(np.quantile(healthy(b.platform, inflight, rng.normal(size=n), rng.random(n),
                                     rng.pareto(2.2, n)), q))


def timeout_misconfiguration(b: Builder) -> None:
    """A config change sets the client timeout below the server's latency tail (its 85-98th
    percentile): requests slower than that end as ``timeout`` / ``client_timeout`` for one
    client or all, while the server's own latency is unchanged."""
    onset = b.onset
    q = b.scale(0.98, 0.85)
    timeout = max(10.0, round(server_latency_quantile(b, q), -1))
    scope = str(b.rng.choice(["all", "ios", "android", "web"]))
    selector = None if scope == "all" else Selector("client_version", (scope + "-",), prefix=True)
    previous = int(b.client_timeout_ms)
    end = b.mitigated(0.5, 6 * HOUR, 36 * HOUR)
    b.event(onset, "config_change", "client", None, None, client=scope,
            client_timeout_ms=int(timeout), previous_client_timeout_ms=previous)
    if end is not None:
        b.incident_end = end
        b.event(end, "config_change", "client", None, None, client=scope,
                client_timeout_ms=previous, previous_client_timeout_ms=int(timeout))
    b.effects.append(Timeout(timeout, Ramp(onset, onset, end or float("inf")), selector))
    b.injected.update(client_timeout_ms=int(timeout), previous_client_timeout_ms=previous,
                      clients=scope, server_latency_quantile=round(q, 4))


def cache_staleness(b: Builder) -> None:
    """The prediction cache is keyed by request only. After a model update, hits keep serving
    the previous model's answers until their TTL (6-72 hours) runs out: the share of stale
    hits starts near 100% and falls to 0 at deploy + TTL."""
    onset = b.onset
    ttls = [h * HOUR for h in (6, 12, 24, 48, 72) if h * HOUR <= b.span_s - onset - 2 * HOUR]
    ttl = float(b.preset.get("ttl_s") or b.rng.choice(ttls or [6 * HOUR]))
    b.cache_keyed_by_model = False
    b.event(float(b.rng.uniform(0.3, 1.5)) * DAY, "config_change", "cache", None, None,
            cache_ttl_s=int(ttl), cache_key="request_hash")
    m0 = b.platform.model_version
    m1 = bump(m0, part=1)
    b.models[m1] = perturbed(b, b.models[m0], m1, float(b.rng.uniform(0.4, 0.9)),
                             direction(b, clip=6.0))
    b.deploy(onset, "model", m1)
    b.effects.append(StaleCache(onset, ttl, m0))
    b.incident_end = min(onset + ttl, b.span_s)
    b.injected.update(cache_ttl_s=int(ttl), model_from=m0, model_to=m1,
                      stale_until=None)  # filled in as ISO time by the case
