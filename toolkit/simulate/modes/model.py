"""Model pathway: concept drift, calibration collapse, bad release, adversarial inputs."""

from __future__ import annotations

from dataclasses import replace

from toolkit.simulate import model as M
from toolkit.simulate.effects import Adversarial, ConceptDrift, Selector
from toolkit.simulate.plan import HOUR, MINUTE, Builder
from toolkit.simulate.serving import bump
from toolkit.simulate.traffic import Ramp

__all__ = ["concept_drift", "calibration_collapse", "bad_release", "adversarial_inputs",
           "direction", "perturbed"]


def _baseline(b: Builder) -> M.Linear:
    return b.models[b.platform.model_version]


def direction(b: Builder, *, clip: float = M.TRUTH_CLIP) -> M.Linear:
    """A random linear score over the features with mean 0 and variance 1 on the reference."""
    weights = {f.name: float(b.rng.normal()) for f in b.features if f.numeric}
    levels = {f.name: b.rng.normal(0.0, 0.7, len(f.levels)) for f in b.features if not f.numeric}
    raw = M.Linear("", weights, levels, 0.0, 1.0, clip=clip)
    d = raw.linear(b.train, b.std)
    sd = float(d.std()) or 1.0
    return M.Linear("", {k: v / sd for k, v in weights.items()},
                    {k: v / sd for k, v in levels.items()}, float(d.mean()) / sd, 1.0, clip=clip)


def perturbed(b: Builder, base: M.Linear, version: str, eta: float, d: M.Linear) -> M.Linear:
    """``base`` with its weights moved by ``eta`` along ``d`` (a retrained / broken model)."""
    weights = {k: w + eta * d.weights.get(k, 0.0) for k, w in base.weights.items()}
    levels = {k: w + eta * d.level_weights[k] for k, w in base.level_weights.items()}
    return replace(base, version=version, weights=weights, level_weights=levels)


def concept_drift(b: Builder) -> None:
    """The relation between inputs and labels changes (a new fraud pattern): the truth's logit
    gains a new direction, sized so accuracy falls by 5-20 points, at once or over up to two
    days. Inputs do not move; no artifact changes."""
    model = _baseline(b)
    truth = b.truth.logit(b.train, b.std)
    served = model.logit(b.train, b.std)
    d = direction(b)
    dz = d.linear(b.train, b.std) - d.threshold
    base = M.accuracy(truth, served, b.train_u)
    drop = b.preset.get("accuracy_drop") or b.scale(0.05, 0.2)
    magnitude = M.bisect(lambda k: base - M.accuracy(truth + k * dz, served, b.train_u),
                         0.0, 60.0, drop)
    remaining = b.span_s - b.onset
    gradual = bool(b.rng.random() < 0.5)
    ramp_s = (float(b.rng.uniform(0.15, 0.35)) * remaining if gradual
              else float(b.rng.uniform(5, 60)) * MINUTE)
    b.effects.append(ConceptDrift(d, magnitude, Ramp(b.onset, b.onset + ramp_s)))
    b.injected.update(accuracy_before=round(base, 4), accuracy_drop=round(drop, 4),
                      magnitude_logit=round(magnitude, 4), shape="gradual" if gradual else "sudden",
                      ramp_hours=round(ramp_s / HOUR, 2))


def calibration_collapse(b: Builder) -> None:
    """A quantized build of the same model is deployed (detail ``{"quantization": "int8"}``):
    its logits are sharpened by a temperature of 2.5-6 plus a small input-dependent error, so
    accuracy stays within about 1% while confidence rises: ECE grows and more wrong answers
    score above 0.85."""
    model = _baseline(b)
    temperature = b.preset.get("temperature") or b.scale(2.5, 6.0)
    noise = float(b.preset.get("quantization_noise", b.rng.uniform(0.05, 0.2)))
    version = f"{model.version}-int8"
    quantized = replace(model, version=version, temperature=temperature, noise=noise,
                        noise_key=tuple(b.rng.normal(size=8).tolist()))
    b.models[version] = quantized
    b.deploy(b.onset, "model", version, quantization="int8", base_model=model.version)
    truth = b.truth.logit(b.train, b.std)
    before, after = model.logit(b.train, b.std), quantized.logit(b.train, b.std)
    threshold = float(b.preset.get("decision_threshold", 0.85))
    b.injected.update(
        model_from=model.version, model_to=version, quantization="int8",
        temperature=round(temperature, 4), quantization_noise_logit=round(noise, 4),
        decision_threshold=threshold,
        expected_accuracy_before=round(M.accuracy(truth, before, b.train_u), 4),
        expected_accuracy_after=round(M.accuracy(truth, after, b.train_u), 4),
        expected_ece_before=round(M.ece(truth, before, b.train_u), 4),
        expected_ece_after=round(M.ece(truth, after, b.train_u), 4),
    )


def bad_release(b: Builder) -> None:
    """A new model version, less accurate on the same inputs (3-15 points), replaces the
    previous one; sometimes it is rolled back after a day or two."""
    model = _baseline(b)
    version = bump(model.version, part=1)
    truth = b.truth.logit(b.train, b.std)
    base = M.accuracy(truth, model.logit(b.train, b.std), b.train_u)
    drop = b.preset.get("accuracy_drop") or b.scale(0.03, 0.15)
    d = direction(b, clip=6.0)

    # the perturbed model's logit is linear in eta: precompute both parts
    served = model.logit(b.train, b.std)
    along = model.sharpness * d.linear(b.train, b.std)

    def loss(eta: float) -> float:
        return base - M.accuracy(truth, served + eta * along, b.train_u)

    eta = M.bisect(loss, 0.0, 8.0, drop)
    b.models[version] = perturbed(b, model, version, eta, d)
    b.deploy(b.onset, "model", version, training_run=f"run-{int(b.rng.integers(1000, 9999))}")
    end = b.mitigated(0.4, 24 * HOUR, 60 * HOUR)
    if end is not None:
        b.incident_end = end
        b.deploy(end, "model", model.version, kind="rollback", reason="accuracy regression")
    b.injected.update(model_from=model.version, model_to=version, accuracy_before=round(base, 4),
                      accuracy_drop=round(drop, 4), weight_perturbation=round(eta, 4))


def adversarial_inputs(b: Builder) -> None:
    """For 3-10 hours one narrow source (a client version nobody else uses) sends crafted,
    out-of-distribution inputs (20-60% of traffic in the burst). ``evasion``: fraud dressed as
    ancient accounts with long sessions, scored confidently legitimate; ``flood``: absurd
    amounts and distances from a scraper, scored confidently fraudulent."""
    onset = b.onset
    duration = b.scale(3, 10) * HOUR
    share = b.scale(0.2, 0.6)
    ramp = Ramp(onset, onset + 5 * MINUTE, onset + duration, 5 * MINUTE)
    b.incident_end = onset + duration + 5 * MINUTE
    b.traffic_mods.append((ramp, 1.0 / (1.0 - share)))
    family = str(b.rng.choice(["partner", "android", "web"]))
    source = {
        "partner": f"partner-api-0.{b.rng.integers(1, 9)}.{b.rng.integers(0, 9)}",
        "android": f"android-5.{b.rng.integers(0, 9)}.{b.rng.integers(0, 9)}",
        "web": f"web-2024.{b.rng.integers(1, 12)}.{b.rng.integers(0, 9)}",
    }[family]
    endpoint = "/v1/score" if family == "partner" else "/v2/score"
    kind = "evasion" if b.rng.random() < 0.6 else "flood"
    if kind == "evasion":
        numeric = {"account_age_days": (8000.0, 14000.0), "session_duration_s": (4000.0, 20000.0),
                   "time_since_last_txn_min": (30000.0, 90000.0), "amount_usd": (450.0, 499.99)}
        categorical = {"merchant_category": "electronics", "device_type": "desktop"}
        positive = 0.92
    else:
        numeric = {"amount_usd": (5000.0, 50000.0), "distance_km": (2000.0, 15000.0),
                   "session_duration_s": (0.3, 3.0), "account_age_days": (0.0, 2.0)}
        categorical = {"merchant_category": "digital_goods", "country": "NG"}
        positive = 0.04
    numeric = {k: v for k, v in numeric.items() if b.has_feature(k)}
    b.effects.append(Adversarial(ramp, share, Selector("client_version", (source,)), endpoint,
                                 numeric, categorical, positive, kind))
    b.injected.update(kind=kind, source={"client_version": source, "endpoint": endpoint},
                      share=round(share, 4), features=sorted(numeric) + sorted(categorical),
                      ranges={k: list(v) for k, v in numeric.items()}, levels=categorical,
                      true_positive_rate=positive, burst_hours=round(duration / HOUR, 2))
