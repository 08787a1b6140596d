"""Independent checks of simulated cases, written with numpy / pandas only (no toolkit code).

Each failure mode has a *specific* check that uses the injected parameters from ``truth.json``
(which feature, which host, which client version) and a *generic* check that searches every
feature / host / version for the same kind of signal. A case of mode M must pass M's specific
check; a healthy case (``none``) must fail every generic check.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

CORE = {"request_id", "ts", "endpoint", "model_name", "model_version", "pipeline_version",
        "client_version", "host", "latency_ms", "status", "http_status", "error_type",
        "in_flight", "cache_hit", "cache_model_version", "prediction", "score", "input_tokens",
        "output_tokens", "ttft_ms"}


# -- helpers --------------------------------------------------------------------------------

def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value)


def seconds(values: pd.Series) -> np.ndarray:
    """UTC timestamps as float seconds since the epoch."""
    return (values - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()


def in_window(frame: pd.DataFrame, window: list[str], column: str = "ts") -> pd.DataFrame:
    lo, hi = ts(window[0]), ts(window[1])
    return frame[(frame[column] >= lo) & (frame[column] < hi)]


def split(tables, truth: dict, name: str = "requests") -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = tables[name]
    return in_window(frame, truth["baseline"]), in_window(frame, truth["incident"])


def feature_names(requests: pd.DataFrame, features: pd.DataFrame) -> list[str]:
    return [n for n in features["name"] if n in requests.columns]


def psi(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """Population stability index on the baseline's deciles (numeric) or levels."""
    expected, actual = expected.dropna(), actual.dropna()
    if len(expected) < 50 or len(actual) < 50:
        return 0.0
    if pd.api.types.is_numeric_dtype(expected):
        edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
        e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
        a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    else:
        levels = sorted(set(expected) | set(actual))
        e = expected.value_counts().reindex(levels, fill_value=0).to_numpy()
        a = actual.value_counts().reindex(levels, fill_value=0).to_numpy()
    e = np.maximum(e / e.sum(), 1e-4)
    a = np.maximum(a / a.sum(), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def served(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests the model itself answered (not prediction-cache hits)."""
    if "cache_hit" not in frame.columns:
        return frame
    return frame[~frame["cache_hit"].fillna(False).astype(bool)]


def labelled(tables) -> pd.DataFrame:
    labels = tables["labels"]
    requests = tables["requests"]
    merged = requests.merge(labels[["request_id", "label"]], on="request_id")
    merged = merged[merged["prediction"].notna()]
    return merged.assign(correct=merged["prediction"] == merged["label"])


def accuracy(frame: pd.DataFrame) -> float:
    return float(frame["correct"].mean()) if len(frame) else float("nan")


def precision(frame: pd.DataFrame) -> float:
    positive = frame[frame["prediction"] == "1"]
    return float((positive["label"] == "1").mean()) if len(positive) else float("nan")


def ece(frame: pd.DataFrame, bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence (15 equal-width bins)."""
    conf = frame["score"].to_numpy()
    correct = frame["correct"].to_numpy().astype(float)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, conf, bins) - np.bincount(idx, correct, bins))
    return float(gap.sum() / max(total.sum(), 1))


def event_rows(tables, kind: str, artifact: str | None = None) -> pd.DataFrame:
    events = tables["events"]
    rows = events[events["kind"] == kind]
    if artifact is not None:
        rows = rows[rows["artifact"] == artifact]
    return rows


def details(rows: pd.DataFrame) -> list[dict]:
    return [json.loads(d) for d in rows["detail"]]


def blank_rate(values: pd.Series, default=None) -> float:
    """Share of null values (or values equal to ``default``)."""
    if not len(values):
        return 0.0
    blank = values.isna()
    if default is not None:
        blank |= values == default
    return float(blank.mean())


def modal_share(values: pd.Series) -> tuple[object, float]:
    """Most common non-null value and its share of all values."""
    counts = values.value_counts(dropna=True)
    if not len(counts):
        return None, 0.0
    return counts.index[0], float(counts.iloc[0] / len(values))


def age_since_start(tables) -> pd.Series:
    """Seconds since the serving host last (re)started or was scaled up (from the events)."""
    requests = tables["requests"]
    events = tables["events"]
    starts = events[(events["kind"].isin(["restart", "scale"])) & events["host"].notna()]
    up = np.array([json.loads(d).get("direction", "up") == "up" for d in starts["detail"]],
                  dtype=bool)
    starts = starts[up]
    out = pd.Series(np.inf, index=requests.index)
    for host, group in starts.groupby("host"):
        mine = requests["host"] == host
        if not mine.any():
            continue
        times = np.sort(seconds(group["ts"]))
        at = seconds(requests.loc[mine, "ts"])
        i = np.searchsorted(times, at, side="right") - 1
        age = at - times[np.maximum(i, 0)]
        out[mine] = np.where(i >= 0, age, np.inf)
    return out


def ood_share(baseline: pd.DataFrame, rows: pd.DataFrame, names: list[str]) -> pd.Series:
    """Per row: is any numeric feature outside the baseline's 0.1-99.9% range?"""
    out = pd.Series(False, index=rows.index)
    for name in names:
        if not pd.api.types.is_numeric_dtype(baseline[name]):
            continue
        lo, hi = baseline[name].quantile([0.001, 0.999])
        out |= (rows[name] < lo) | (rows[name] > hi)
    return out


# -- generic checks (all must stay quiet on a healthy case) ---------------------------------

def max_feature_psi(tables, truth) -> float:
    base, inc = split(tables, truth)
    names = feature_names(tables["requests"], tables["features"])
    return max(psi(base[n], inc[n]) for n in names)


def max_blank_jump(tables, truth) -> float:
    base, inc = split(tables, truth)
    names = feature_names(tables["requests"], tables["features"])
    jumps = []
    for n in names:
        default = inc[n].mode().iloc[0] if inc[n].notna().any() else None
        share_default = float((inc[n] == default).mean()) - float((base[n] == default).mean())
        jumps.append(max(blank_rate(inc[n]) - blank_rate(base[n]), share_default))
    return max(jumps)


def max_scale_ratio(tables, truth) -> float:
    """Largest |log ratio| of incident / baseline medians over numeric features."""
    base, inc = split(tables, truth)
    names = [n for n in feature_names(tables["requests"], tables["features"])
             if pd.api.types.is_numeric_dtype(base[n])]
    out = 0.0
    for n in names:
        b, i = base[n].median(), inc[n].median()
        if b and i and b > 0 and i > 0:
            out = max(out, abs(float(np.log(i / b))))
    return out


def accuracy_drop(tables, truth) -> float:
    lab = labelled(tables)
    base = in_window(lab, truth["baseline"])
    inc = in_window(lab, truth["incident"])
    return accuracy(base) - accuracy(inc)


def version_ece_ratio(tables, truth) -> float:
    """Largest ECE ratio between model versions with >= 500 labelled answers."""
    lab = labelled(tables)
    values = [ece(group) for _, group in lab.groupby("model_version") if len(group) >= 500]
    return float(max(values) / min(values)) if len(values) > 1 and min(values) > 0 else 1.0


def version_accuracy_gap(tables, truth) -> float:
    """Largest accuracy gap between model versions with >= 200 labelled answers."""
    lab = labelled(tables)
    acc = lab.groupby("model_version")["correct"].agg(["mean", "size"])
    acc = acc[acc["size"] >= 200]["mean"]
    return float(acc.max() - acc.min()) if len(acc) > 1 else 0.0


def max_source_ood(tables, truth) -> float:
    """Largest share of out-of-distribution rows of one incident client version (>= 30 rows)."""
    requests = tables["requests"]
    if "client_version" not in requests.columns:
        return 0.0
    base, inc = split(tables, truth)
    names = feature_names(requests, tables["features"])
    flags = ood_share(base, inc, names)
    grouped = flags.groupby(inc["client_version"]).agg(["mean", "size"])
    grouped = grouped[grouped["size"] >= 30]
    return float(grouped["mean"].max()) if len(grouped) else 0.0


def saturation_ratio(tables, truth) -> float:
    """p50 latency of the 1% most loaded requests over the p50 of the rest."""
    requests = tables["requests"]
    if "in_flight" not in requests.columns:
        return 1.0
    answered = served(requests)
    cut = answered["in_flight"].quantile(0.99)
    high = answered[answered["in_flight"] >= max(cut, 1)]
    low = answered[answered["in_flight"] < max(cut, 1)]
    return float(high["latency_ms"].median() / low["latency_ms"].median())


def oom_errors(tables, truth) -> int:
    _, inc = split(tables, truth)
    return int((inc["error_type"] == "oom").sum())


def oom_kills(tables, truth) -> int:
    events = event_rows(tables, "oom_kill")
    return int(len(in_window(events, truth["incident"])))


def max_memory_fraction(tables, truth, resource: str = "memory") -> float:
    metrics = in_window(tables["metrics"], truth["incident"])
    used = metrics[metrics["name"] == f"{resource}_used_bytes"]
    limit_name = "memory_limit_bytes" if resource == "memory" else "gpu_memory_total_bytes"
    limit = metrics[metrics["name"] == limit_name]["value"].max()
    return float(used["value"].max() / limit) if len(used) and limit else 0.0


def cold_ratio(tables, truth, within_s: float = 600.0) -> float:
    """p95 latency of requests served within 10 min of a host (re)start over the rest."""
    requests = tables["requests"]
    age = age_since_start(tables)
    answered = requests.index.isin(served(requests).index)
    cold = requests[(age < within_s) & answered]
    warm = requests[(age >= within_s) & answered]
    if len(cold) < 20:
        return 1.0
    return float(cold["latency_ms"].quantile(0.95) / warm["latency_ms"].quantile(0.95))


def host_concentration(tables, truth) -> float:
    """Largest ratio of one host's error rate or p50 latency to the median host's."""
    _, inc = split(tables, truth)
    per_host = served(inc).groupby("host").agg(
        n=("latency_ms", "size"),
        err=("status", lambda s: float((s == "error").mean())),
        p50=("latency_ms", "median"),
    )
    per_host = per_host[per_host["n"] >= 50]
    if len(per_host) < 3:
        return 1.0
    err = (per_host["err"].max() + 0.01) / (per_host["err"].median() + 0.01)
    lat = per_host["p50"].max() / per_host["p50"].median()
    return float(max(err, lat))


def pairs_outside_lineage(tables, truth) -> set[tuple[str, str]]:
    requests = tables["requests"]
    if "pipeline_version" not in requests.columns:
        return set()
    _, inc = split(tables, truth)
    seen = set(map(tuple, inc[["model_version", "pipeline_version"]].drop_duplicates()
                   .itertuples(index=False)))
    if tables["lineage"] is not None:
        known = set(map(tuple, tables["lineage"][["model_version", "pipeline_version"]]
                        .itertuples(index=False)))
    else:
        base, _ = split(tables, truth)
        known = set(map(tuple, base[["model_version", "pipeline_version"]]
                        .itertuples(index=False)))
    # a pair must carry traffic for more than a rollout's few minutes to count
    counts = inc.groupby(["model_version", "pipeline_version"]).size()
    return {p for p in seen - known if counts.get(p, 0) >= 20}


def max_client_error_rate(tables, truth) -> float:
    requests = tables["requests"]
    if "client_version" not in requests.columns:
        return 0.0
    _, inc = split(tables, truth)
    rates = inc.groupby("client_version")["status"].agg(
        rate=lambda s: float((s == "error").mean()), n="size")
    rates = rates[rates["n"] >= 30]
    return float(rates["rate"].max()) if len(rates) else 0.0


def timeout_share(tables, truth) -> float:
    _, inc = split(tables, truth)
    return float((inc["status"] == "timeout").mean())


def stale_share(tables, truth) -> float:
    requests = tables["requests"]
    if "cache_hit" not in requests.columns:
        return 0.0
    _, inc = split(tables, truth)
    hits = inc[inc["cache_hit"].fillna(False).astype(bool)]
    if not len(hits):
        return 0.0
    return float((hits["cache_model_version"] != hits["model_version"]).mean())


#: Generic check -> the value a healthy case stays below.
QUIET = {
    "max_feature_psi": (max_feature_psi, 0.1),
    "max_blank_jump": (max_blank_jump, 0.05),
    "max_scale_ratio": (max_scale_ratio, float(np.log(1.3))),
    "accuracy_drop": (accuracy_drop, 0.03),
    "version_ece_ratio": (version_ece_ratio, 2.0),
    "version_accuracy_gap": (version_accuracy_gap, 0.03),
    "max_source_ood": (max_source_ood, 0.3),
    "saturation_ratio": (saturation_ratio, 3.0),
    "oom_errors": (oom_errors, 1),
    "oom_kills": (oom_kills, 1),
    "max_memory_fraction": (max_memory_fraction, 0.9),
    "cold_ratio": (cold_ratio, 2.0),
    "host_concentration": (host_concentration, 2.0),
    "pairs_outside_lineage": (lambda t, tr: len(pairs_outside_lineage(t, tr)), 1),
    "max_client_error_rate": (max_client_error_rate, 0.05),
    "timeout_share": (timeout_share, 0.005),
    "stale_share": (stale_share, 0.01),
}


# -- specific checks: the injected signal of each mode --------------------------------------

def recent(frame: pd.DataFrame, truth: dict, share: float = 1 / 3) -> pd.DataFrame:
    """The latest ``share`` of the incident window (where a gradual change has gone furthest)."""
    lo, hi = ts(truth["incident"][0]), ts(truth["incident"][1])
    return in_window(frame, [lo + (1 - share) * (hi - lo), hi])


def covariate_shift(tables, truth) -> dict:
    base, _ = split(tables, truth)
    latest = recent(tables["requests"], truth)
    shifted = truth["injected"]["features"]
    stat = max(psi(base[n], latest[n]) for n in shifted)
    return {"psi": stat, "ok": stat >= 0.2}


def schema_mismatch(tables, truth) -> dict:
    inj = truth["injected"]
    base, inc = split(tables, truth)
    new = inc[inc["pipeline_version"] == inj["pipeline_to"]]
    feature = inj["feature"]
    default = inj.get("default_value")
    before = blank_rate(base[feature], default)
    after = blank_rate(new[feature], default)
    errors_before = float((base["error_type"] == "validation_error").mean())
    errors_after = float((new["error_type"] == "validation_error").mean())
    renamed = inj.get("new_name")
    ok = after >= 0.95 and after - before >= 0.5 and errors_after > errors_before + 0.005
    if renamed:
        ok &= bool(new[renamed].notna().mean() > 0.9) and bool(base[renamed].isna().all())
    return {"blank_before": before, "blank_after": after, "errors_before": errors_before,
            "errors_after": errors_after, "ok": ok}


def null_injection(tables, truth) -> dict:
    inj = truth["injected"]
    base, inc = split(tables, truth)
    values = inj["value"]
    jumps = {}
    for feature in inj["features"]:
        default = None if values == "null" else values[feature]
        jumps[feature] = blank_rate(inc[feature], default) - blank_rate(base[feature], default)
    deploys = in_window(event_rows(tables, "deploy"), truth["incident"])
    no_deploy = not deploys["artifact"].isin(["model", "pipeline"]).any()
    return {"jumps": jumps, "ok": min(jumps.values()) >= 0.1 and no_deploy}


def unit_change(tables, truth) -> dict:
    inj = truth["injected"]
    base, inc = split(tables, truth)
    feature = inj["feature"]
    ratio = float(inc[feature].median() / base[feature].median())
    return {"ratio": ratio, "factor": inj["factor"],
            "ok": abs(np.log(ratio / inj["factor"])) < np.log(1.2)}


def concept_drift(tables, truth) -> dict:
    drop = accuracy_drop(tables, truth)
    drift = max_feature_psi(tables, truth)
    return {"accuracy_drop": drop, "max_psi": drift, "ok": drop >= 0.03 and drift < 0.1}


def calibration_collapse(tables, truth) -> dict:
    inj = truth["injected"]
    lab = labelled(tables)
    old = lab[lab["model_version"] == inj["model_from"]]
    new = lab[lab["model_version"] == inj["model_to"]]
    threshold = inj["decision_threshold"]

    def wrong_confident(frame):
        return float(((~frame["correct"]) & (frame["score"] > threshold)).mean())

    stats = {"ece_old": ece(old), "ece_new": ece(new), "acc_old": accuracy(old),
             "acc_new": accuracy(new), "wrong_confident_old": wrong_confident(old),
             "wrong_confident_new": wrong_confident(new)}
    stats["ok"] = (stats["ece_new"] >= max(2.0 * stats["ece_old"], stats["ece_old"] + 0.01)
                   and abs(stats["acc_new"] - stats["acc_old"]) <= 0.02
                   and stats["wrong_confident_new"] >= 1.3 * stats["wrong_confident_old"])
    return stats


def bad_release(tables, truth) -> dict:
    inj = truth["injected"]
    lab = labelled(tables)
    old = accuracy(lab[lab["model_version"] == inj["model_from"]])
    new = accuracy(lab[lab["model_version"] == inj["model_to"]])
    drift = max_feature_psi(tables, truth)
    return {"acc_old": old, "acc_new": new, "max_psi": drift,
            "ok": old - new >= 0.02 and drift < 0.1}


def adversarial_inputs(tables, truth) -> dict:
    inj = truth["injected"]
    base, inc = split(tables, truth)
    source = inj["source"]["client_version"]
    names = feature_names(tables["requests"], tables["features"])
    rows = inc[inc["client_version"] == source]
    ood = float(ood_share(base, rows, names).mean()) if len(rows) else 0.0
    others = inc[inc["client_version"] != source]
    ood_others = float(ood_share(base, others, names).mean())
    lab = labelled(tables)
    mine = lab[lab["client_version"] == source]
    stats = {"rows": len(rows), "ood": ood, "ood_others": ood_others,
             "in_baseline": int((base["client_version"] == source).sum()),
             "accuracy": accuracy(mine), "mean_score": float(mine["score"].mean())}
    stats["ok"] = (ood >= 0.9 and ood_others < 0.1 and stats["in_baseline"] == 0
                   and stats["accuracy"] <= 0.3 and stats["mean_score"] >= 0.85)
    return stats


def memory_exhaustion(tables, truth) -> dict:
    inj = truth["injected"]
    answered = served(tables["requests"])
    knee = inj["knee_in_flight"]
    high = answered[answered["in_flight"] >= knee]["latency_ms"]
    low = answered[answered["in_flight"] < 0.8 * knee]["latency_ms"]
    resource = "gpu_memory" if inj["memory"] == "gpu" else "memory"
    stats = {"above_knee": len(high), "p50_ratio": float(high.median() / low.median()),
             "p99_ratio": float(high.quantile(0.99) / low.quantile(0.99)),
             "oom_errors": oom_errors(tables, truth), "oom_kills": oom_kills(tables, truth),
             "memory_fraction": max_memory_fraction(tables, truth, resource)}
    stats["ok"] = (stats["p50_ratio"] >= 5 and stats["oom_errors"] > 0
                   and stats["oom_kills"] >= 1 and stats["memory_fraction"] >= 0.95)
    return stats


def memory_leak(tables, truth) -> dict:
    metrics = tables["metrics"]
    memory = metrics[metrics["name"] == "memory_used_bytes"]
    limit = metrics[metrics["name"] == "memory_limit_bytes"]["value"].max()
    base = in_window(memory, truth["baseline"])
    inc = in_window(memory, truth["incident"])
    kills_base = len(in_window(event_rows(tables, "oom_kill"), truth["baseline"]))
    # saw-tooth: memory correlates with time since the host's last restart
    restarts = event_rows(tables, "restart")
    corrs = []
    for host, rows in inc.groupby("host"):
        starts = np.sort(seconds(restarts[restarts["host"] == host]["ts"]))
        at = seconds(rows["ts"])
        i = np.searchsorted(starts, at, side="right") - 1
        if (i >= 0).sum() < 100:
            continue
        since = at - starts[np.maximum(i, 0)]
        keep = i >= 0
        corrs.append(float(np.corrcoef(since[keep], rows["value"].to_numpy()[keep])[0, 1]))
    stats = {"max_fraction_before": float(base["value"].max() / limit),
             "max_fraction_after": float(inc["value"].max() / limit),
             "kills_before": kills_base, "kills_after": oom_kills(tables, truth),
             "sawtooth_corr": float(np.median(corrs)) if corrs else 0.0}
    stats["ok"] = (stats["max_fraction_after"] >= 0.9 and stats["max_fraction_before"] < 0.8
                   and stats["kills_after"] >= 1 and stats["kills_before"] == 0
                   and stats["sawtooth_corr"] > 0.7)
    return stats


def cold_start(tables, truth) -> dict:
    ratio = cold_ratio(tables, truth)
    scale = in_window(event_rows(tables, "scale"), truth["incident"])
    return {"cold_p95_ratio": ratio, "scale_events": len(scale),
            "ok": ratio >= 3 and len(scale) >= 4}


def accelerator_fault(tables, truth) -> dict:
    inj = truth["injected"]
    _, inc = split(tables, truth)
    answered = served(inc)
    bad = answered[answered["host"] == inj["host"]]
    good = answered[answered["host"] != inj["host"]]
    err_bad = float((bad["status"] == "error").mean())
    err_good = float((good["status"] == "error").mean())
    lat = float(bad["latency_ms"].median() / good["latency_ms"].median())
    stats = {"error_bad": err_bad, "error_good": err_good, "p50_ratio": lat}
    stats["ok"] = (err_bad >= 3 * err_good + 0.02) or lat >= 1.8
    return stats


def version_skew(tables, truth) -> dict:
    inj = truth["injected"]
    pair = tuple(inj["pair_not_in_lineage"])
    lineage = tables["lineage"]
    in_lineage = pair in set(map(tuple, lineage[["model_version", "pipeline_version"]]
                                 .itertuples(index=False)))
    base, inc = split(tables, truth)
    skewed = inc[(inc["model_version"] == pair[0]) & (inc["pipeline_version"] == pair[1])]
    lab = labelled(tables)
    lab_base = in_window(lab, truth["baseline"])
    lab_skew = lab[(lab["model_version"] == pair[0]) & (lab["pipeline_version"] == pair[1])]
    # the permuted column looks like its source feature, not like itself
    swaps = []
    for target, source in inj["permutation"].items():
        like_source = psi(base[source], skewed[target])
        like_itself = psi(base[target], skewed[target])
        swaps.append(like_source < 0.1 < like_itself)
    stats = {"pair_in_lineage": in_lineage, "rows": len(skewed),
             "acc_before": accuracy(lab_base), "acc_after": accuracy(lab_skew),
             "mean_score_after": float(lab_skew["score"].mean()), "swapped": all(swaps),
             "rollback_events": len(event_rows(tables, "rollback", "model"))}
    stats["ok"] = (not in_lineage and len(skewed) > 0 and stats["swapped"]
                   and stats["acc_before"] - stats["acc_after"] >= 0.15
                   and stats["mean_score_after"] >= 0.85 and stats["rollback_events"] >= 1)
    return stats


def api_contract_mismatch(tables, truth) -> dict:
    inj = truth["injected"]
    _, inc = split(tables, truth)
    mine = inc[inc["client_version"] == inj["client_version"]]
    others = inc[inc["client_version"] != inj["client_version"]]
    stats = {"error_rate": float((mine["status"] == "error").mean()),
             "error_rate_others": float((others["status"] == "error").mean()),
             "http_4xx": float(mine["http_status"].between(400, 499).mean()),
             "release_events": int((event_rows(tables, "deploy", "client")["version"]
                                    == inj["client_version"]).sum())}
    stats["ok"] = (stats["error_rate"] >= 0.2 and stats["error_rate_others"] <= 0.02
                   and stats["http_4xx"] >= 0.2 and stats["release_events"] == 1)
    return stats


def timeout_misconfiguration(tables, truth) -> dict:
    inj = truth["injected"]
    base, inc = split(tables, truth)

    def p99(frame: pd.DataFrame) -> float:
        return float(served(frame)["latency_ms"].quantile(0.99))

    changes = details(event_rows(tables, "config_change", "client"))
    timeout = min((d["client_timeout_ms"] for d in changes), default=None)
    stats = {"timeouts_before": float((base["status"] == "timeout").mean()),
             "timeouts_after": float((inc["status"] == "timeout").mean()),
             "p99_ratio": p99(inc) / p99(base), "timeout_ms": timeout,
             "baseline_p99": p99(base)}
    stats["ok"] = (stats["timeouts_after"] >= 0.01 and stats["timeouts_before"] < 0.002
                   and 0.8 < stats["p99_ratio"] < 1.25 and timeout == inj["client_timeout_ms"]
                   and timeout < stats["baseline_p99"])
    return stats


def cache_staleness(tables, truth) -> dict:
    inj = truth["injected"]
    requests = tables["requests"]
    base, inc = split(tables, truth)
    hits = requests[requests["cache_hit"].fillna(False).astype(bool)]
    stale = hits[hits["cache_model_version"] != hits["model_version"]]
    deploy = ts(truth["onset"])
    age_h = (stale["ts"] - deploy).dt.total_seconds() / 3600.0
    ttl_h = inj["cache_ttl_s"] / 3600.0
    configs = details(event_rows(tables, "config_change", "cache"))
    stats = {"stale_share": stale_share(tables, truth),
             "stale_before": int((stale["ts"] < deploy).sum()),
             "max_stale_age_h": float(age_h.max()) if len(age_h) else 0.0, "ttl_h": ttl_h,
             "ttl_in_events": any(d.get("cache_ttl_s") == inj["cache_ttl_s"] for d in configs),
             "stale_old_version": bool((stale["cache_model_version"] == inj["model_from"]).all())}
    stats["ok"] = (stats["stale_share"] >= 0.1 and stats["stale_before"] == 0
                   and stats["max_stale_age_h"] <= ttl_h and stats["ttl_in_events"]
                   and stats["stale_old_version"])
    return stats


SPECIFIC = {
    "covariate_shift": covariate_shift,
    "schema_mismatch": schema_mismatch,
    "null_injection": null_injection,
    "unit_change": unit_change,
    "concept_drift": concept_drift,
    "calibration_collapse": calibration_collapse,
    "bad_release": bad_release,
    "adversarial_inputs": adversarial_inputs,
    "memory_exhaustion": memory_exhaustion,
    "memory_leak": memory_leak,
    "cold_start": cold_start,
    "accelerator_fault": accelerator_fault,
    "version_skew": version_skew,
    "api_contract_mismatch": api_contract_mismatch,
    "timeout_misconfiguration": timeout_misconfiguration,
    "cache_staleness": cache_staleness,
}
