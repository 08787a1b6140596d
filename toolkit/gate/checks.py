"""The gate's checks: each aggregates both versions' traffic in the engine, then judges it.

Every check returns a :class:`~toolkit.gate.result.Check`. Recipes:

* **accuracy**: labelled predictions per version (requests joined with their latest label);
  the 95% Newcombe (hybrid Wilson score) interval of candidate minus baseline accuracy.
  ``accuracy_rule="point"`` fails when the observed difference is below ``-max_accuracy_drop``;
  ``"non_inferiority"`` fails unless the interval's lower end is above it. Without
  ``min_labels`` labels for either version the check is missing data: a label-free estimate
  (``model.estimation``) is no substitute here, because its calibration is the baseline
  version's and a new model's scores need not mean what the old ones did.
* **calibration** (rule 4): ECE on 15 equal-width bins of the confidence (``score``) against
  correctness, and the share of wrong answers with confidence >= ``confident_threshold``;
  fails when the candidate's ECE exceeds the baseline's by more than ``max_ece_increase`` or
  ``max_ece`` outright, or its confident-error share by more than
  ``max_confident_wrong_increase``: a quantized checkpoint that keeps its accuracy but grows
  overconfident fails.
* **latency**: exact p99 of ``latency_ms`` per version; fails above ``max_latency_p99_ms`` or
  ``max_latency_p99_ratio`` times the baseline's.
* **errors**: share of requests whose ``status`` is not ``ok``; fails above
  ``max_error_rate`` or ``max_error_rate_increase`` over the baseline's.
* **lineage** (rule 3): every combination of pipeline, client (and template) versions served
  with the candidate must be a released combination of the ``lineage`` table; without one
  (DESIGN section 3: combinations in service count as known-good), one the baseline version
  serves with, so a candidate that also brings a new pipeline needs a lineage table.
* **cache** (rule 6): when a prediction cache serves the endpoint (cache hits, or cache events),
  a ``deploy``/``config_change`` event must key the cache by model version (``cache_key``
  naming the model version, ``cache_key_includes_model_version = true``, or a
  ``cache_version``/``cache_namespace`` equal to the candidate; the latest such event before
  the window's end decides), or a ``cache_flush`` of the candidate's version, or one within 30
  minutes of its first request, must invalidate it; a TTL alone fails.
"""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import pandas as pd

from toolkit.diagnose._case import CaseView, within
from toolkit.diagnose._engine import Recorder
from toolkit.diagnose._labels import labelled_rows
from toolkit.diagnose._stats import wilson_interval
from toolkit.gate.policy import Profile
from toolkit.gate.result import Check
from toolkit.types import Window

__all__ = ["accuracy", "calibration", "latency", "errors", "lineage", "cache",
           "newcombe_interval", "ECE_BINS"]

ECE_BINS = 15
Z = 1.959964


def newcombe_interval(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float]:
    """95% Newcombe (method 10, hybrid Wilson score) interval of ``k2/n2 - k1/n1``.

    Examples
    --------
    >>> lo, hi = newcombe_interval(56, 70, 48, 80)   # Newcombe (1998), example (a)
    >>> round(lo, 4), round(hi, 4)                   # of p2 - p1 = -0.2
    (-0.3339, -0.0524)
    """
    p1, p2 = k1 / n1, k2 / n2
    (l1,), (u1,) = wilson_interval(np.array([k1]), np.array([n1]))
    (l2,), (u2,) = wilson_interval(np.array([k2]), np.array([n2]))
    d = p2 - p1
    lo = d - np.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    hi = d + np.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return float(lo), float(hi)


def _missing(name: str, why: str, policy_missing: str) -> Check:
    status = "fail" if policy_missing == "fail" else "skip"
    return Check(name, status, f"not assessed: {why}")


def _labelled(case: CaseView, record: Recorder, window: Window, versions: list[str]
              ) -> pd.DataFrame:
    """Per version and confidence bin: labelled rows, correct ones, summed confidence and
    confident errors (one query)."""
    t = labelled_rows(case, window)
    t = t.filter(t.model_version.isin(versions))
    has_score = "score" in case.columns["requests"]
    score = t.score.cast("float64").clip(0.0, 1.0) if has_score else ibis.literal(float("nan"))
    t = t.mutate(_s=score)
    return record(t.group_by(version=t.model_version,
                             bin=(t._s * ECE_BINS).floor().clip(0, ECE_BINS - 1).cast("int64"))
                  .aggregate(n=t.count(), ok=t.correct.cast("int64").sum(),
                             scored=t._s.count(), sf=t._s.sum(),
                             sok=(t.correct & t._s.notnull()).cast("int64").sum()))


def accuracy(cells: pd.DataFrame, candidate: str, baseline: str, p: Profile,
             missing: str) -> Check:
    per = cells.groupby("version")[["n", "ok"]].sum()
    n = {v: float(per["n"].get(v, 0)) for v in (candidate, baseline)}
    short = [f"{v} has {int(n[v])} labelled predictions" for v in (candidate, baseline)
             if n[v] < p.min_labels]
    if short:
        return _missing("accuracy", f"{'; '.join(short)} (at least {p.min_labels} needed; "
                        "a label-free estimate cannot stand in: its calibration would be the "
                        "baseline version's)", missing)
    kc, kb = float(per.loc[candidate, "ok"]), float(per.loc[baseline, "ok"])
    ac, ab = kc / n[candidate], kb / n[baseline]
    lo, hi = newcombe_interval(kb, n[baseline], kc, n[candidate])
    diff = ac - ab
    if p.accuracy_rule == "non_inferiority":
        ok = lo > -p.max_accuracy_drop
        rule = f"lower end of the 95% interval {lo:+.2%} must be above {-p.max_accuracy_drop:+.2%}"
    else:
        ok = diff >= -p.max_accuracy_drop
        rule = f"difference must be at least {-p.max_accuracy_drop:+.2%}"
    return Check("accuracy", "pass" if ok else "fail",
                 f"accuracy {ab:.2%} -> {ac:.2%} ({diff:+.2%}, 95% interval {lo:+.2%} to "
                 f"{hi:+.2%}); {rule}",
                 {"candidate": ac, "baseline": ab, "difference": diff, "interval": [lo, hi],
                  "labelled_candidate": int(n[candidate]), "labelled_baseline": int(n[baseline])},
                 {"max_accuracy_drop": p.max_accuracy_drop, "rule": p.accuracy_rule})


def _ece(part: pd.DataFrame) -> float:
    scored = part["scored"].to_numpy(float)
    return float(np.abs(part["sok"].to_numpy(float) - part["sf"].to_numpy(float)).sum()
                 / scored.sum())


def calibration(case: CaseView, record: Recorder, window: Window, cells: pd.DataFrame,
                candidate: str, baseline: str, p: Profile, missing: str) -> Check:
    if "score" not in case.columns["requests"]:
        return _missing("calibration", "requests carry no score (confidence)", missing)
    scored = cells.groupby("version")["scored"].sum()
    short = [f"{v} has {int(scored.get(v, 0))} labelled scored predictions"
             for v in (candidate, baseline) if scored.get(v, 0) < p.min_labels]
    if short:
        return _missing("calibration", f"{'; '.join(short)} (at least {p.min_labels} needed)",
                        missing)
    ece = {v: _ece(cells[(cells["version"] == v) & cells["bin"].notna()])
           for v in (candidate, baseline)}
    t = labelled_rows(case, window)
    t = t.filter(t.model_version.isin([candidate, baseline]) & t.score.notnull())
    wrong = record(t.group_by(version=t.model_version).aggregate(
        n=t.count(), cw=((~t.correct) & (t.score.cast("float64") >=
                                         p.confident_threshold)).cast("int64").sum()))
    wrong = wrong.set_index("version")
    cw = {v: float(wrong.loc[v, "cw"] / wrong.loc[v, "n"]) for v in (candidate, baseline)}
    reasons = []
    if ece[candidate] - ece[baseline] > p.max_ece_increase:
        reasons.append(f"ECE rose by {ece[candidate] - ece[baseline]:.3f} (> "
                       f"{p.max_ece_increase})")
    if ece[candidate] > p.max_ece:
        reasons.append(f"ECE {ece[candidate]:.3f} > {p.max_ece}")
    if cw[candidate] - cw[baseline] > p.max_confident_wrong_increase:
        reasons.append(f"confident-wrong share rose by {cw[candidate] - cw[baseline]:.2%} (> "
                       f"{p.max_confident_wrong_increase:.2%})")
    summary = (f"ECE {ece[baseline]:.3f} -> {ece[candidate]:.3f}; wrong with confidence >= "
               f"{p.confident_threshold}: {cw[baseline]:.2%} -> {cw[candidate]:.2%}")
    if reasons:
        summary += "; " + "; ".join(reasons)
    return Check("calibration", "fail" if reasons else "pass", summary,
                 {"ece_candidate": ece[candidate], "ece_baseline": ece[baseline],
                  "confident_wrong_candidate": cw[candidate],
                  "confident_wrong_baseline": cw[baseline]},
                 {"max_ece_increase": p.max_ece_increase, "max_ece": p.max_ece,
                  "confident_threshold": p.confident_threshold,
                  "max_confident_wrong_increase": p.max_confident_wrong_increase})


def traffic(case: CaseView, record: Recorder, window: Window, versions: list[str]
            ) -> pd.DataFrame:
    """Per version: requests, errors (status not ``ok``) and the exact p99 latency."""
    r = case.table("requests")
    r = r.filter(within(r.ts, window) & r.model_version.isin(versions))
    aggs: dict[str, Any] = {"n": r.count()}
    if "status" in case.columns["requests"]:
        aggs["with_status"] = r.status.count()
        aggs["errors"] = (r.status.notnull() & (r.status != "ok")).cast("int64").sum()
    if "latency_ms" in case.columns["requests"]:
        aggs["p99"] = r.latency_ms.cast("float64").quantile(0.99)
    return record(r.group_by(version=r.model_version).aggregate(**aggs)).set_index("version")


def latency(per: pd.DataFrame, candidate: str, baseline: str, p: Profile, missing: str
            ) -> Check:
    if "p99" not in per or per["n"].get(candidate, 0) < p.min_requests:
        return _missing("latency", "no latency_ms, or fewer than "
                        f"{p.min_requests} candidate requests", missing)
    pc, pb = float(per.loc[candidate, "p99"]), float(per.loc[baseline, "p99"])
    reasons = []
    if pc > p.max_latency_p99_ms:
        reasons.append(f"p99 above the SLO of {p.max_latency_p99_ms:g} ms")
    if pb > 0 and pc / pb > p.max_latency_p99_ratio:
        reasons.append(f"p99 {pc / pb:.2f} times the baseline's (> {p.max_latency_p99_ratio:g})")
    return Check("latency", "fail" if reasons else "pass",
                 f"p99 {pb:.1f} ms -> {pc:.1f} ms" + ("; " + "; ".join(reasons) if reasons
                                                      else ""),
                 {"p99_candidate_ms": pc, "p99_baseline_ms": pb},
                 {"max_latency_p99_ms": p.max_latency_p99_ms,
                  "max_latency_p99_ratio": p.max_latency_p99_ratio})


def errors(per: pd.DataFrame, candidate: str, baseline: str, p: Profile, missing: str
           ) -> Check:
    if "errors" not in per or per["with_status"].get(candidate, 0) < p.min_requests:
        return _missing("errors", "no status, or fewer than "
                        f"{p.min_requests} candidate requests", missing)
    rc = float(per.loc[candidate, "errors"] / per.loc[candidate, "with_status"])
    rb = float(per.loc[baseline, "errors"] / per.loc[baseline, "with_status"])
    reasons = []
    if rc > p.max_error_rate:
        reasons.append(f"above the SLO of {p.max_error_rate:.2%}")
    if rc - rb > p.max_error_rate_increase:
        reasons.append(f"{rc - rb:+.2%} over the baseline (> {p.max_error_rate_increase:.2%})")
    return Check("errors", "fail" if reasons else "pass",
                 f"error rate {rb:.2%} -> {rc:.2%}" + ("; " + "; ".join(reasons) if reasons
                                                       else ""),
                 {"error_rate_candidate": rc, "error_rate_baseline": rb},
                 {"max_error_rate": p.max_error_rate,
                  "max_error_rate_increase": p.max_error_rate_increase})


def lineage(case: CaseView, record: Recorder, window: Window, candidate: str, baseline: str,
            missing: str) -> Check:
    requests_have = [c for c in ("pipeline_version", "client_version", "template_version")
                     if c in case.columns["requests"]]
    source = "the lineage table"
    if case.counts.get("lineage"):
        artifacts = [c for c in requests_have if c in case.columns.get("lineage", {})]
        lin = case.table("lineage")
        mine = lin.filter(lin.model_version == candidate)
        released = record(mine.select(*artifacts).distinct() if artifacts else mine.limit(1))
        if released.empty:
            return Check("lineage", "fail",
                         f"model {candidate} is in no release of the lineage table",
                         {"released_with": []}, {})
        if not artifacts:
            return Check("lineage", "pass", f"model {candidate} is released; the requests "
                         "carry no pipeline, client or template version to compare", {}, {})
    else:
        # DESIGN section 3: without a lineage table, the combinations in service count as
        # known-good; for a release, those the baseline version serves with
        if not requests_have:
            return _missing("lineage", "no lineage table, and the requests carry no pipeline, "
                            "client or template version", missing)
        artifacts = requests_have
        source = f"the combinations {baseline} serves with (the case has no lineage table)"
        r = case.table("requests")
        theirs = r.filter(within(r.ts, window) & (r.model_version == baseline))
        released = record(theirs.select(*artifacts).distinct())
    r = case.table("requests")
    r = r.filter(within(r.ts, window) & (r.model_version == candidate))
    served = record(r.group_by(*artifacts).aggregate(n=r.count()))
    known = {tuple(None if pd.isna(v) else str(v) for v in row)
             for row in released[artifacts].itertuples(index=False)}
    bad = []
    for row in served.itertuples(index=False):
        combo = tuple(None if pd.isna(getattr(row, a)) else str(getattr(row, a))
                      for a in artifacts)
        ok = any(all(k is None or c is None or k == c for k, c in zip(rel, combo, strict=True))
                 for rel in known)
        if not ok:
            bad.append({"combination": dict(zip(artifacts, combo, strict=True)), "requests":
                        int(row.n)})
    measured = {"served": [dict(zip(artifacts, (None if pd.isna(getattr(r_, a)) else
                                                str(getattr(r_, a)) for a in artifacts),
                                    strict=True)) for r_ in served.itertuples(index=False)],
                "released": [dict(zip(artifacts, k, strict=True)) for k in sorted(
                    known, key=str)], "out_of_lineage": bad}
    if bad:
        first = bad[0]["combination"]
        return Check("lineage", "fail",
                     f"model {candidate} serves with "
                     f"{', '.join(f'{k} {v}' for k, v in first.items())} "
                     f"({bad[0]['requests']} requests), not released together in {source}",
                     measured | {"source": source}, {})
    return Check("lineage", "pass", f"model {candidate} serves only known combinations of "
                 f"{', '.join(artifacts)} (from {source})", measured | {"source": source}, {})


_KEY_FIELDS = ("cache_key", "cache_keyed_by", "cache_key_fields")
#: A cache flush this close to the candidate's first request counts as its invalidation.
_FLUSH_SLACK = pd.Timedelta(minutes=30)


def _has_cache_settings(detail: Any) -> bool:
    return isinstance(detail, dict) and any(str(k).startswith("cache") for k in detail)


def _keyed_by_version(detail: dict[str, Any], candidate: str) -> bool:
    """Whether cache settings key the cache by model version."""
    key_text = " ".join(str(detail.get(k, "")) for k in _KEY_FIELDS).lower()
    return ("model_version" in key_text or
            detail.get("cache_key_includes_model_version") is True or
            str(detail.get("cache_version", "")) == candidate or
            str(detail.get("cache_namespace", "")) == candidate)


def cache(case: CaseView, record: Recorder, window: Window, candidate: str, missing: str
          ) -> Check:
    events = case.events
    is_cache = events["artifact"].astype(str).eq("cache") | events["detail"].map(
        _has_cache_settings)
    cache_events = events[is_cache]
    hits = 0
    if "cache_hit" in case.columns["requests"]:
        r = case.table("requests")
        r = r.filter(within(r.ts, window) & r.cache_hit.fill_null(False))
        hits = int(record(r.aggregate(n=r.count()))["n"].iloc[0])
    if cache_events.empty and not hits:
        return _missing("cache", "no prediction cache in front of the endpoint (no cache hits, "
                        "no cache events)", missing)
    r = case.table("requests")
    mine = r.filter(r.model_version == candidate)
    first = pd.Timestamp(record(mine.aggregate(t=mine.ts.min()))["t"].iloc[0])
    keyed, ttl_only = [], []
    # the cache configuration in force when the window ends: the latest deploy or config
    # change carrying cache settings (an earlier keyed set-up replaced by a TTL-only one fails)
    settings = cache_events[cache_events["kind"].isin(["deploy", "config_change"]) &
                            cache_events["detail"].map(_has_cache_settings) &
                            (pd.to_datetime(cache_events["ts"], utc=True) < window.end)]
    if not settings.empty:
        ev = settings.iloc[-1]
        detail = ev["detail"]
        entry = {"ts": str(ev["ts"]), "kind": ev["kind"], "detail": detail}
        (keyed if _keyed_by_version(detail, candidate) else ttl_only).append(entry)
    for ev in cache_events[cache_events["kind"] == "cache_flush"].itertuples(index=False):
        own = str(ev.version) == candidate
        at_release = pd.isna(ev.version) and abs(pd.Timestamp(ev.ts) - first) <= _FLUSH_SLACK
        if own or at_release:  # flushed when the candidate started serving
            keyed.append({"ts": str(ev.ts), "kind": ev.kind,
                          "detail": ev.detail if isinstance(ev.detail, dict) else {}})
    measured = {"cache_hits": hits, "keyed_by_model_version": keyed, "ttl_only": ttl_only}
    if keyed:
        return Check("cache", "pass", "the cache is keyed by (or flushed for) model version: "
                     f"{keyed[0]['kind']} at {keyed[0]['ts']}", measured, {})
    if ttl_only:
        detail = ttl_only[0]["detail"]
        settings_text = ", ".join(f"{k}={v}" for k, v in detail.items())
        why = (f"the cache is invalidated by TTL only ({settings_text})"
               if any("ttl" in str(k) for k in detail) else
               f"the cache is not keyed by model version ({settings_text})")
    else:
        why = "no event keys the cache by model version"
    return Check("cache", "fail", f"{why}: cached answers of the old model can outlive the "
                 f"release of {candidate} (rule 6)", measured, {})
