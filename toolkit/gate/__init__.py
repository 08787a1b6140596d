"""Release gates: check a candidate model version against the current one before promotion.

:func:`gate` compares the candidate's shadow, canary or replayed traffic in a case with the
baseline (current) version's and checks a policy (TOML; :func:`load_policy`, the packaged
``policy_template.toml``): accuracy with a Newcombe interval, ECE and confident-error share
(a quantized checkpoint that keeps its accuracy but grows overconfident fails), p99 latency
and error-rate SLOs, lineage (the candidate's pipeline, client and template versions released
together with it) and cache invalidation keyed by model version, with thresholds from the
tolerance profile (real-time or batch) of the endpoint. ``forensics gate`` is its CLI.

Imports flow one way: the gate reads the store and the diagnostics' engine helpers; nothing
but the CLI imports the gate.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd

from toolkit.diagnose._case import CaseView, case_view, within
from toolkit.diagnose._engine import Recorder
from toolkit.errors import InvalidParameterError
from toolkit.gate import checks
from toolkit.gate.policy import CHECKS, Policy, Profile, load_policy, template_path
from toolkit.gate.result import Check, GateResult
from toolkit.types import Window

__all__ = ["gate", "GateResult", "Check", "Policy", "Profile", "load_policy", "template_path",
           "CHECKS"]


def gate(con: duckdb.DuckDBPyConnection, candidate: str, baseline: str | None = None,
         policy: Policy | str | Path | None = None, *, case: CaseView | None = None
         ) -> GateResult:
    """Check ``candidate`` against ``baseline`` on the case's traffic under ``policy``.

    Parameters
    ----------
    con
        Case connection (read-only use).
    candidate
        The model version to promote.
    baseline
        The current model version (default: the version other than the candidate that served
        the most requests).
    policy
        A :class:`Policy`, a policy file, or None for the packaged template.
    case
        A :class:`~toolkit.diagnose._case.CaseView` to reuse.

    Returns
    -------
    GateResult
        The verdict and every check; ``exit_code`` 0 on pass, 1 on fail.

    Raises
    ------
    InvalidParameterError
        The case has no model versions, or ``candidate``/``baseline`` served no request.
    """
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    case = case or case_view(con)
    if not case.has("requests", "model_version", "ts"):
        raise InvalidParameterError("the case's requests carry no model_version: nothing to "
                                    "gate")
    record = Recorder(joins_as_written=True)
    r = case.table("requests")
    served = r.filter(r.model_version.notnull())
    versions = record(served.group_by(version=served.model_version).aggregate(
        n=served.count(), first=served.ts.min(), last=served.ts.max()))
    versions["version"] = versions["version"].astype(str)
    versions = versions.set_index("version")
    known = ", ".join(sorted(versions.index)[:20])
    if candidate not in versions.index:
        raise InvalidParameterError(f"candidate model version {candidate!r} served no request "
                                    f"in the case (versions: {known})")
    if baseline is None:
        others = versions.drop(index=candidate).sort_values("n", ascending=False)
        if others.empty:
            raise InvalidParameterError(f"no model version other than {candidate!r} in the "
                                        "case: give --baseline")
        baseline = str(others.index[0])
    elif baseline not in versions.index:
        raise InvalidParameterError(f"baseline model version {baseline!r} served no request "
                                    f"in the case (versions: {known})")
    if baseline == candidate:
        raise InvalidParameterError("the candidate and the baseline are the same version")

    endpoint = None
    if "endpoint" in case.columns["requests"]:
        mine = r.filter(r.model_version == candidate)
        top = record(mine.group_by("endpoint").aggregate(n=mine.count()))
        if not top.empty:
            endpoint = str(top.sort_values(["n", "endpoint"], ascending=[False, True])
                           .iloc[0]["endpoint"])
    profile = policy.profile_for(endpoint)
    window = _window(versions, candidate, baseline, case, record, profile)
    pair = [candidate, baseline]
    results: list[Check] = []
    if policy.checks["accuracy"] or policy.checks["calibration"]:
        if case.has("labels") and case.has("requests", "prediction"):
            cells = checks._labelled(case, record, window, pair)
            cells["version"] = cells["version"].astype(str)
        else:
            cells = pd.DataFrame(columns=["version", "bin", "n", "ok", "scored", "sf", "sok"])
        if policy.checks["accuracy"]:
            results.append(checks.accuracy(cells, candidate, baseline, profile,
                                           policy.missing["accuracy"]))
        if policy.checks["calibration"]:
            results.append(checks.calibration(case, record, window, cells, candidate, baseline,
                                              profile, policy.missing["calibration"]))
    if policy.checks["latency"] or policy.checks["errors"]:
        per = checks.traffic(case, record, window, pair)
        per.index = per.index.astype(str)
        if policy.checks["latency"]:
            results.append(checks.latency(per, candidate, baseline, profile,
                                          policy.missing["latency"]))
        if policy.checks["errors"]:
            results.append(checks.errors(per, candidate, baseline, profile,
                                         policy.missing["errors"]))
    if policy.checks["lineage"]:
        results.append(checks.lineage(case, record, window, candidate, baseline,
                                      policy.missing["lineage"]))
    if policy.checks["cache"]:
        results.append(checks.cache(case, record, window, candidate, policy.missing["cache"]))
    return GateResult(candidate=candidate, baseline=baseline, endpoint=endpoint,
                      profile=profile.name, checks=tuple(results), policy=policy.source,
                      window=(_iso(window.start), _iso(window.end)))


def _window(versions: pd.DataFrame, candidate: str, baseline: str, case: CaseView,
            record: Recorder, profile: Profile) -> Window:
    """Where both versions served (the same traffic period) when each has at least
    ``min_requests`` there, else the span of both versions' traffic."""
    first = pd.Timestamp(max(versions.loc[candidate, "first"], versions.loc[baseline, "first"]))
    last = pd.Timestamp(min(versions.loc[candidate, "last"], versions.loc[baseline, "last"]))
    end_pad = timedelta(microseconds=1)
    if first < last:
        overlap = Window(first, last + end_pad)
        r = case.table("requests")
        both = r.filter(within(r.ts, overlap) & r.model_version.isin([candidate, baseline]))
        counts = record(both.group_by(version=both.model_version).aggregate(n=both.count()))
        n = dict(zip(counts["version"].astype(str), counts["n"], strict=True))
        if min(n.get(candidate, 0), n.get(baseline, 0)) >= profile.min_requests:
            return overlap
    start = min(versions.loc[candidate, "first"], versions.loc[baseline, "first"])
    end = max(versions.loc[candidate, "last"], versions.loc[baseline, "last"])
    return Window(pd.Timestamp(start), pd.Timestamp(end) + end_pad)


def _iso(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
