"""Evidence scoring: findings -> failure-mode and pathway probabilities, verdict, rationale.

The classifier never touches the database: it reads the findings of the diagnostics, the
(small) event log and the windows. Every rule of the table that fires adds log-likelihood
ratios to failure modes; a softmax over the modes and a "no incident" option turns the scores
into probabilities; pathway scores are the sums over their modes. The verdict abstains
(``undetermined``) when the top pathway is not clearly ahead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from toolkit.classify.remediation import remediation_for, remediation_for_runs
from toolkit.classify.rules import (
    SEVERITY_SCALE,
    Context,
    RuleTable,
    holds,
    load_rules,
    severity_of,
)
from toolkit.classify.taxonomy import (
    FAILURE_MODES,
    NONE,
    PATHWAY_OF,
    PATHWAYS,
    UNDETERMINED,
    applicable_modes,
)
from toolkit.classify.windows import on_grid
from toolkit.diagnose._base import SEVERITIES, Finding, NotAssessed
from toolkit.diagnose._case import choose_bucket
from toolkit.diagnose._stats import psi
from toolkit.types import Window

__all__ = ["Evidence", "RuleHit", "Verdict", "score", "undetermined_remediation"]


@dataclass(frozen=True)
class Evidence:
    """Everything the classifier reads (no database connection).

    Attributes
    ----------
    findings
        Findings of the diagnostics.
    not_assessed
        Checks that could not run.
    events
        The case's events (``ts``, ``kind``, ``artifact``, ``version``, ``host``, ``detail``).
    baseline, incident
        The windows the findings compare.
    serving_mode
        ``real-time`` or ``batch``.
    window_given
        Whether the user gave the incident window (its start is then what they know of the
        onset), rather than the detector placing it.
    """

    findings: tuple[Finding, ...]
    not_assessed: tuple[NotAssessed, ...]
    events: pd.DataFrame
    baseline: Window
    incident: Window
    serving_mode: str = "real-time"
    window_given: bool = False


@dataclass(frozen=True)
class RuleHit:
    """A rule that fired, and what it added."""

    name: str
    add: dict[str, float]
    findings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "adds": {k: round(v, 3) for k, v in self.add.items()},
                "findings": list(self.findings)}


@dataclass(frozen=True)
class Verdict:
    """The outcome of scoring."""

    pathway: str
    failure_mode: str
    confidence: float
    scores: dict[str, float]
    mode_scores: dict[str, float]
    onset: datetime
    hits: tuple[RuleHit, ...]
    remediation: tuple[str, ...]
    alternatives: tuple[dict[str, Any], ...] = field(default=())
    #: The logged change that started the failure mode (rules' ``[onset_events]``), if any.
    trigger: dict[str, Any] | None = None


def score(evidence: Evidence, rules: RuleTable | None = None) -> Verdict:
    """Score the evidence against the rule table and decide."""
    rules = rules or load_rules()
    findings = _with_outputs_moved(_with_unexplained_drift(_strongest(evidence.findings)),
                                   evidence.not_assessed)
    onset = _provisional_onset(evidence, findings)
    context = Context(findings, _events(evidence.events), onset)
    # only the modes that apply to the case's task (generative ones need generative evidence)
    modes = applicable_modes(f.id for f in evidence.findings)
    prior_total = sum(rules.priors[mode] for mode in modes)
    logits = {mode: math.log(rules.priors[mode] / prior_total * len(modes)) + rules.base
              for mode in modes}
    hits = []
    for rule in rules.rules:
        if not all(holds(condition, context) for condition in rule.when):
            continue
        factor = SEVERITY_SCALE.get(severity_of(rule, context) or "high", 1.0) if rule.scale \
            else 1.0
        added = {mode: weight * factor for mode, weight in rule.add.items() if mode in logits}
        if rule.add and not added:
            continue
        for mode, weight in added.items():
            logits[mode] += weight
        hits.append(RuleHit(rule.name, added, tuple(
            c["finding"] for c in rule.when if "finding" in c)))
    penalty = rules.scoring.get("none_penalty", {})
    none = float(rules.scoring.get("none_score", 0.0)) - sum(
        float(penalty.get(f.severity, 0.0)) for f in findings.values())
    top = max(max(logits.values()), none)
    weights = {mode: math.exp(v - top) for mode, v in logits.items()}
    weights[NONE] = math.exp(none - top)
    total = sum(weights.values())
    probabilities = {mode: w / total for mode, w in weights.items()}
    pathway_p = {p: sum(probabilities[m] for m in FAILURE_MODES[p] if m in logits)
                 for p in PATHWAYS}
    p_none = probabilities[NONE]
    ranked = sorted(pathway_p.items(), key=lambda kv: -kv[1])
    best_pathway, best_p = ranked[0]
    runner_up = ranked[1][1]
    best_mode = max((m for m in FAILURE_MODES[best_pathway] if m in logits),
                    key=lambda m: probabilities[m])
    min_confidence = float(rules.scoring.get("min_confidence", 0.5))
    min_margin = float(rules.scoring.get("min_margin", 0.15))
    if p_none >= best_p and not _blind(evidence, rules):
        pathway, mode, confidence = NONE, NONE, p_none
    elif p_none >= best_p:  # nothing that would show an incident could be looked at
        pathway, mode, confidence = UNDETERMINED, UNDETERMINED, best_p
    elif best_p < min_confidence or best_p - runner_up < min_margin:
        pathway, mode, confidence = UNDETERMINED, UNDETERMINED, best_p
    else:
        pathway, mode, confidence = best_pathway, best_mode, best_p
    alternatives = tuple(
        {"pathway": PATHWAY_OF[m], "failure_mode": m, "probability": round(probabilities[m], 4)}
        for m in sorted(logits, key=lambda m: -probabilities[m])[:4]
        if m != mode
    )
    final_onset = _final_onset(evidence, hits, mode, onset)
    trigger = _trigger_event(rules, context.events, mode, final_onset)
    if trigger is not None:
        final_onset = trigger["ts"].to_pydatetime()
    scores_out = {p: round(v / max(1 - p_none, 1e-12), 4) for p, v in pathway_p.items()}
    if mode == UNDETERMINED:
        remediation = undetermined_remediation(probabilities, evidence.serving_mode,
                                               evidence.not_assessed)
    else:
        remediation = tuple(remediation_for(mode, evidence.serving_mode))
        if evidence.serving_mode == "batch":  # the runs to quarantine, complete or dedupe
            runs = remediation_for_runs(evidence.findings)
            remediation = (*runs, *(a for a in remediation if a not in runs))
    return Verdict(
        pathway=pathway, failure_mode=mode, confidence=round(confidence, 4), scores=scores_out,
        mode_scores={**{m: round(p, 4) for m, p in probabilities.items()},
                     **{m: 0.0 for m in PATHWAY_OF if m not in probabilities}},
        onset=final_onset,
        hits=tuple(hits), remediation=remediation,
        alternatives=alternatives,
        trigger=None if trigger is None else {
            k: (v if k != "ts" else v.strftime("%Y-%m-%dT%H:%M:%SZ")) for k, v in trigger.items()
            if k in ("ts", "kind", "artifact", "version", "host", "detail")},
    )


#: How many candidate failure modes an ``undetermined`` verdict lists remediation for.
CANDIDATES = 3


def undetermined_remediation(probabilities: dict[str, float], serving_mode: str,
                             not_assessed: tuple[NotAssessed, ...] = ()) -> tuple[str, ...]:
    """The remediation of a verdict that decides no failure mode.

    No failure mode's fixes are recommended as such: generic first steps come first, then, for
    each of the :data:`CANDIDATES` most probable failure modes, one line that names it as a
    candidate with its probability and gives its actions (``"If it is covariate shift
    (candidate, p=0.41): ..."``), as the postmortem's action items do.

    Parameters
    ----------
    probabilities
        Probability per failure mode (``none`` is ignored).
    serving_mode
        ``real-time`` or ``batch`` (which actions come first).
    not_assessed
        The checks that could not run, named in the step that asks to load what is missing.
    """
    gaps = ", ".join(dict.fromkeys(g.check for g in not_assessed[:6]))
    steps = [
        "The verdict is undetermined: no failure mode is decided, so none of the fixes below is "
        "recommended as such.",
        "Confirm the incident and baseline windows (rerun with explicit --incident and "
        "--baseline if the detected ones are off).",
        "Load what is missing and classify again" + (f" (not assessed: {gaps})." if gaps
                                                     else "."),
        "Check the candidates below against the timeline: a deploy, rollback or config change "
        "near the onset usually decides between them.",
    ]
    ranked = sorted((m for m in probabilities if m in PATHWAY_OF),
                    key=lambda m: -probabilities[m])[:CANDIDATES]
    for candidate in ranked:
        actions = remediation_for(candidate, serving_mode)
        if actions:
            steps.append(f"If it is {candidate.replace('_', ' ')} (candidate, "
                         f"p={probabilities[candidate]:.2f}): " + " ".join(actions))
    return tuple(steps)


def _blind(evidence: Evidence, rules: RuleTable) -> bool:
    """Whether none of the checks that would see an incident could run.

    "No incident" is a finding of its own: it needs at least one of the rule table's
    ``[scoring] health_checks`` (the diagnostics that watch the service's errors, latency,
    quality and inputs) to have been assessed. When every one of them is in ``not_assessed``
    under its own id (the whole diagnostic could not run, e.g. too few requests in the
    incident window), the case is ``undetermined``, not healthy.
    """
    needed = tuple(rules.scoring.get("health_checks", ()))
    gaps = {gap.check for gap in evidence.not_assessed}
    return bool(needed) and all(check in gaps for check in needed)


def _strongest(findings: tuple[Finding, ...]) -> dict[str, Finding]:
    out: dict[str, Finding] = {}
    for finding in findings:
        current = out.get(finding.id)
        if current is None or SEVERITIES.index(finding.severity) > SEVERITIES.index(
                current.severity):
            out[finding.id] = finding
    return out


def _with_unexplained_drift(findings: dict[str, Finding]) -> dict[str, Finding]:
    """``findings`` with the drift finding's evidence extended by :func:`_unexplained_drift`."""
    drift = findings.get("data.feature_drift")
    if drift is None:
        return findings
    extra = _unexplained_drift(drift, findings.get("data.null_rate"),
                               findings.get("data.unit_change"))
    return findings | {"data.feature_drift": replace(drift, evidence={**drift.evidence, **extra})}


#: The diagnostic whose findings say whether the model's outputs moved.
OUTPUTS_CHECK = "model.prediction_shift"
#: The diagnostic that measures accuracy against labels.
ACCURACY_CHECK = "model.performance"


def _with_outputs_moved(findings: dict[str, Finding], not_assessed: tuple[NotAssessed, ...]
                        ) -> dict[str, Finding]:
    """``findings`` with the drift finding's evidence extended by ``outputs_moved``.

    Whether the input drift moved the model's outputs: a drift of features the model relies
    on moves its scores or its class mix (``model.prediction_shift``), one of features it
    barely uses does not. ``outputs_moved`` is ``True`` when the output shift is high, or
    when its score PSI is at least half the drift that nulls and unit changes leave
    unexplained (``unexplained_psi``; a shift without a score PSI counts as moved); ``False``
    when the output check ran and found less (no finding, or a smaller medium one); ``None``
    when it could not run (no score or prediction logged, too few requests): then nothing is
    known and rules that read the value do not fire. Rules read it to tell an accuracy loss
    that the inputs' drift does not explain (concept drift beside a mild drift of unimportant
    features) from a covariate shift.

    ``accuracy_known`` is ``False`` when the accuracy check could not run at all
    (:data:`ACCURACY_CHECK` not assessed: no labels), ``True`` otherwise: a mild drift that
    left the outputs in place says nothing about an accuracy nobody measured.
    """
    drift = findings.get("data.feature_drift")
    if drift is None:
        return findings
    gaps = {gap.check for gap in not_assessed}
    if OUTPUTS_CHECK in gaps:
        moved = None
    else:
        shift = findings.get("model.prediction_shift")
        moved = shift is not None and SEVERITIES.index(shift.severity) >= SEVERITIES.index(
            "medium") and _outputs_moved(shift, drift)
    return findings | {"data.feature_drift": replace(
        drift, evidence={**drift.evidence, "outputs_moved": moved,
                         "accuracy_known": ACCURACY_CHECK not in gaps})}


def _outputs_moved(shift: Finding, drift: Finding) -> bool:
    """Whether a medium or high output shift is as large as the drift behind it."""
    if shift.severity == "high":
        return True
    try:
        score_psi = float(shift.evidence.get("score_psi"))
    except (TypeError, ValueError):
        return True
    if not math.isfinite(score_psi):
        return True
    inputs = float(drift.evidence.get("unexplained_psi", drift.statistic) or 0.0)
    return score_psi >= 0.5 * inputs


def _unexplained_drift(drift: Finding, nulls: Finding | None, units: Finding | None
                       ) -> dict[str, Any]:
    """The input drift that the data-quality findings do not account for.

    A feature rescaled by a unit factor drifts because of it. A feature that gained nulls or
    default values drifts by at most the PSI of that change alone: with the other values left
    as they were, PSI over any binning is at most the divergence of {null, default, rest}
    before and after (binning never increases a divergence). What a feature drifted beyond
    that bound is a move of its other values, and a drift of another feature is a shift of its
    own: ``unexplained_psi`` (with ``unexplained_feature``) is the largest such excess, which
    rules read to tell a covariate shift that also produced some defaults (or that a unit
    change elsewhere accompanies) from nulls or a rescaling that explain the whole drift.
    """
    features = drift.evidence.get("features") or {}
    if not features:  # no per-feature detail: nothing to explain the drift away with
        return {"unexplained_psi": float(drift.statistic), "unexplained_feature": None}
    rescaled = units.evidence.get("feature") if units is not None else None
    quality = (nulls.evidence.get("features") or {}) if nulls is not None else {}
    best, which = 0.0, None
    for name, stats in features.items():
        if name == rescaled or not isinstance(stats, dict):
            continue
        excess = float(stats.get("psi") or 0.0) - _null_bound(quality.get(name))
        if excess > best:
            best, which = excess, name
    return {"unexplained_psi": round(best, 4), "unexplained_feature": which}


#: A feature whose incident values are NULL or the default at least this often has no other
#: values left to drift: its whole drift is the nulls' and defaults'.
GONE = 0.9


def _null_bound(rates: dict[str, Any] | None) -> float:
    """The largest PSI a change of a feature's null and default rates alone can produce.

    Drift counts non-null values only, and ``default_rate`` is a share of them: rows that
    change only in their default share differ, value for value, by the ratio of the two
    default shares, so the two-cell PSI of [defaults, other values] bounds the PSI on any
    binning (merging cells only lowers a divergence). For safety the three-cell PSI over all
    rows, [null, default, other] = [n, d (1 - n), (1 - n)(1 - d)], is taken when larger. Same
    recipe as drift (:func:`toolkit.diagnose._stats.psi`).
    """
    if not rates:
        return 0.0
    try:
        n_b, n_i = (float(v) for v in rates.get("null_rate", (0.0, 0.0)))
        d_b, d_i = (float(v) for v in rates.get("default_rate", (0.0, 0.0)))
    except (TypeError, ValueError):
        return math.inf
    if not all(0.0 <= v <= 1.0 for v in (n_b, n_i, d_b, d_i)):
        return math.inf
    if n_i + d_i * (1 - n_i) >= GONE:
        # (almost) every value is NULL or the default: the few others cannot show a move of
        # their own, and PSI's smoothing of the near-empty bins makes any excess an artifact
        return math.inf
    present = psi(np.array([d_b, 1 - d_b]), np.array([d_i, 1 - d_i]))
    whole = psi(np.array([n_b, d_b * (1 - n_b), (1 - n_b) * (1 - d_b)]),
                np.array([n_i, d_i * (1 - n_i), (1 - n_i) * (1 - d_i)]))
    return max(present, whole)


def _events(events: pd.DataFrame) -> pd.DataFrame:
    if events.empty:
        return events
    events = events.copy()
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    return events


def _provisional_onset(evidence: Evidence, findings: dict[str, Finding]) -> datetime:
    """The earliest onset among medium and high findings that fall in the incident window
    (or the hour before it), else the incident start."""
    onsets = [f.onset for f in findings.values() if _plausible(evidence, f)]
    return min(onsets) if onsets else evidence.incident.start


def _plausible(evidence: Evidence, finding: Finding) -> bool:
    if finding.onset is None or finding.severity not in ("medium", "high"):
        return False
    onset = pd.Timestamp(finding.onset)
    return pd.Timestamp(evidence.incident.start) - pd.Timedelta(hours=1) <= onset <= \
        pd.Timestamp(evidence.incident.end)


def _trigger_event(rules: RuleTable, events: pd.DataFrame, mode: str, estimate: datetime
                   ) -> dict[str, Any] | None:
    """The logged change that starts ``mode`` (rules' ``[onset_events]``): the latest such
    event from 3 hours (or the spec's ``before_hours``) before the estimated onset to 15
    minutes after it."""
    specs = rules.onset_events.get(mode, ())
    if not specs or events.empty:
        return None
    estimate_ts = pd.Timestamp(estimate)
    candidates = []
    for spec in specs:
        lookback = pd.Timedelta(hours=float(spec.get("before_hours", 3)))
        near = events[(events["ts"] <= estimate_ts + pd.Timedelta(minutes=15)) &
                      (events["ts"] >= estimate_ts - lookback)]
        chosen = near[near["kind"] == spec["kind"]]
        if "artifact" in spec:
            chosen = chosen[chosen["artifact"] == spec["artifact"]]
        if "detail" in spec:
            chosen = chosen[chosen["detail"].map(lambda d, k=spec["detail"]:
                                                 isinstance(d, dict) and k in d)]
        candidates.append(chosen)
    found = pd.concat(candidates) if candidates else events.iloc[0:0]
    if found.empty:
        return None
    return found.sort_values("ts").iloc[-1].to_dict()


def _final_onset(evidence: Evidence, hits: list[RuleHit], mode: str, provisional: datetime
                 ) -> datetime:
    """The earliest onset among the findings that supported the winning failure mode.

    A finding dated at the start of a timeline bucket (its diagnostic did not refine the onset
    on raw rows: an error rate's or a latency's first bucket over the threshold) is placed only
    to within that bucket, so it is the onset only when it lies two buckets or more before every
    refined onset (a change that began that much earlier); otherwise the earliest refined onset
    is. The bucket is the diagnoses' (:func:`~toolkit.diagnose._case.choose_bucket` over the
    baseline and incident), as in the window's :func:`~toolkit.classify.windows._sharpest_onset`.
    Varied tuning memory_exhaustion s3 and s4 and accelerator_fault s1 were dated 33-86 minutes
    early by an error rate's or a latency's bucket start beside an OOM kill, a memory-pressure
    or an accelerator-fault onset within minutes of the truth. A date that its diagnostic marks
    as the incident window's own start counts as such a coarse date too (:func:`_coarse`).
    When every supporting date is coarse, another finding's refined onset inside the earliest
    one's bucket places it there (:func:`_within_bucket`).
    """
    supporting = {fid for hit in hits if hit.add.get(mode, 0) > 0 for fid in hit.findings}
    dated = [f for f in evidence.findings if f.id in supporting and _plausible(evidence, f)]
    # a slow climb's start, dated on raw samples: a refined onset even where it falls on the grid
    climbs = [c for f in evidence.findings if f.id in supporting
              and (c := _climb_began(evidence, f, mode)) is not None]
    began = [min(climbs)] if climbs else []
    if not dated and not began:
        return provisional
    bucket = pd.Timedelta(_diagnosis_bucket(evidence))
    refined = [pd.Timestamp(f.onset) for f in dated if not _coarse(f, bucket)] + began
    coarse = [pd.Timestamp(f.onset) for f in dated if _coarse(f, bucket)]
    if not refined:
        return _within_bucket(evidence, min(coarse), bucket, supporting).to_pydatetime()
    first = min(refined)
    earlier = [o for o in coarse if o + 2 * bucket <= first]
    return min([first, *earlier]).to_pydatetime()


def _within_bucket(evidence: Evidence, coarse: pd.Timestamp, bucket: pd.Timedelta,
                   supporting: set[str]) -> pd.Timestamp:
    """A coarse onset placed inside its bucket by another finding's refined onset.

    A timeline bucket's start (:func:`~toolkit.classify.windows.on_grid`) says the change
    began somewhere in the bucket ``[coarse, coarse + bucket)``. When no supporting finding
    is refined, the earliest refined onset of another medium or high finding of the window
    (:func:`_plausible`) that falls inside that bucket places it there: one change that two
    diagnostics saw, one of them on its raw rows. A refined onset outside the bucket says
    nothing about it. A date at the window's start (``onset_at_window_start``) stays: the
    change it marks may have begun before the window.

    Varied tuning adversarial_inputs s7 (detected window, 3-hour buckets): the OOD burst,
    the only finding that dates the verdict, was dated 15:00, the start of its bucket and of
    the window, 72 minutes before the flood's first request; the accuracy drop of the same
    window, refined on its labels, fell at 16:24, 12 minutes after the truth.
    """
    if not on_grid(coarse, bucket):
        return coarse
    inside = [pd.Timestamp(f.onset) for f in evidence.findings
              if f.id not in supporting and _plausible(evidence, f) and not _coarse(f, bucket)
              and coarse <= pd.Timestamp(f.onset) < coarse + bucket]
    return min(inside) if inside else coarse


def _coarse(finding: Finding, bucket: pd.Timedelta) -> bool:
    """Whether ``finding``'s onset only places a change to within a bucket: a timeline
    bucket's start (:func:`~toolkit.classify.windows.on_grid`), or a date its diagnostic says
    is the incident window's start because its fit could go no earlier (the evidence's
    ``onset_at_window_start``: a host's excess, fitted from the window's start on, that
    already stood out in the window's first bucket, with no step on the raw rows around it).

    Varied tuning accelerator_fault s6: a host's excess dated at the detected window's start,
    61 minutes before the truth, counted as a refined onset (the window's start is off the
    diagnosis grid) and dated the verdict beside an accelerator fault refined to within a
    minute of the truth.
    """
    return on_grid(pd.Timestamp(finding.onset), bucket) or bool(
        (finding.evidence or {}).get("onset_at_window_start"))


#: How long before the incident window a slow climb may have begun (as far back as the trigger
#: event of a memory leak is looked for, ``rules.toml``'s ``[onset_events]``).
CLIMB_LOOKBACK = pd.Timedelta(hours=36)


#: The failure modes a slow fall of model quality (``ramp_began``) dates: a covariate shift or
#: a bad release also lower accuracy, and their onsets are dated by their own findings.
RAMP_MODES = frozenset({"concept_drift", "calibration_collapse"})
#: ... and it counts only this many diagnosis buckets or more before the incident window.
RAMP_MARGIN = 2


def _climb_began(evidence: Evidence, finding: Finding, mode: str | None = None
                 ) -> pd.Timestamp | None:
    """Where the slow climb of a medium or high ``finding`` began (its evidence's
    ``climb_began``: a memory leak's first climb, before the OOM kill or reset that made it
    visible), when that is before the finding's onset, in the span analysed and at most
    :data:`CLIMB_LOOKBACK` before the incident window, and the finding's onset is not after
    the window.

    A detected window opens where the leak's symptoms pile up, hours after its first climb,
    and a finding more than an hour before the window does not count (:func:`_plausible`):
    neither the leak's visible onset (classic tuning memory_leak seed 5: three hours before the
    window) nor its first climb would. The climb's start is measured on the whole span's
    samples, so it dates the leak (varied tuning memory_leak seeds 3, 5, 6, 8, 9, 10: 5 to 22
    hours late, now within 20 minutes).

    For a verdict in :data:`RAMP_MODES` on a window the user gave, an accuracy drop whose
    labels a gradual fall from the window's start explains about as well as its dated split
    (evidence ``fall_from_window_start``) began at the window's start.

    For a verdict in :data:`RAMP_MODES`, an accuracy drop's ``ramp_began`` (where a slow fall
    of accuracy began, fitted over the whole span) counts the same way, anywhere in the span
    (no lookback limit) but at least :data:`RAMP_MARGIN` buckets before the window, and before
    the finding's onset or, when it has none (too few labels per bucket), the window's end.
    """
    evidence_ = finding.evidence or {}
    if evidence.window_given and mode in RAMP_MODES and evidence_.get("fall_from_window_start") \
            and finding.severity in ("medium", "high") and finding.onset is not None \
            and pd.Timestamp(evidence.incident.start) < pd.Timestamp(finding.onset) \
            <= pd.Timestamp(evidence.incident.end):
        # a given window's start, where the labels cannot place the drop later: a slow fall
        # from there explains them about as well as the split after it (varied tuning
        # concept_drift s11: a 53-hour ramp whose first 15 labels were right, dated 42 h late)
        return pd.Timestamp(evidence.incident.start)
    began = evidence_.get("climb_began")
    onset = finding.onset
    # a slow fall of model quality (accuracy) dated over the whole span: the baseline of a
    # detected window holds its start (varied tuning concept_drift s4: 43 h before the window,
    # a drop with too few labels per bucket for a dated onset of its own)
    lookback = CLIMB_LOOKBACK
    if began is None and evidence_.get("ramp_began") is not None and mode in RAMP_MODES:
        began, lookback = evidence_["ramp_began"], None
        # the fit places the ramp's start to within about two buckets: nearer the window's
        # start than that, it does not contradict the window (varied tuning concept_drift s4,
        # given window: the window's start is the truth, the fit 3.6 h before it)
        margin = RAMP_MARGIN * pd.Timedelta(_diagnosis_bucket(evidence))
        if pd.Timestamp(began) > pd.Timestamp(evidence.incident.start) - margin:
            return None
        onset = evidence.incident.end if onset is None else onset
    if began is None or onset is None or finding.severity not in ("medium", "high") \
            or pd.Timestamp(onset) > pd.Timestamp(evidence.incident.end):
        return None
    began = pd.Timestamp(began)
    start = pd.Timestamp(min(evidence.baseline.start, evidence.incident.start))
    if lookback is not None:
        start = max(start, pd.Timestamp(evidence.incident.start) - lookback)
    if not (start <= began < pd.Timestamp(onset)):
        return None
    return began


def _diagnosis_bucket(evidence: Evidence) -> timedelta:
    """The timeline bucket the diagnostics used on these windows (their default)."""
    start = min(pd.Timestamp(evidence.baseline.start), pd.Timestamp(evidence.incident.start))
    end = max(pd.Timestamp(evidence.baseline.end), pd.Timestamp(evidence.incident.end))
    return choose_bucket((end - start).to_pytimedelta())
