"""Backtest of label-free performance estimation (CBPE, ``model.estimation``) per weekly window.

    python bench/estimation_backtest.py [--seeds 1-15] [--rows 40000]
        [--modes covariate_shift,bad_release,calibration_collapse,concept_drift] [--json OUT]

Issue 25's criterion: on simulated cases with the labels hidden, the estimated accuracy is
within 2 points of the later-realized one for at least 80% of weekly windows (covariate shift,
bad release, calibration collapse), and on concept drift it abstains or says its assumptions
fail. For every mode and seed (classic world, tuning seeds only: 1-15) this script

1. simulates the case (``make_case(mode, seed=, rows=)``) and loads it into a fresh DuckDB file
   (``ingest_case``), with the true baseline and incident windows;
2. estimates with the labels hidden: ``estimation(con, baseline, incident, as_of=incident
   start)`` (no label of the incident is known; the baseline's labels calibrate);
3. reads the realized accuracy from the labels that arrived since (the same call without
   ``as_of``), on the same window.

**Weekly windows.** A simulated incident lasts 2 to 7 days (the simulator's cases span two to
three weeks), so one seed gives one window of at most a week: the whole incident window,
pooled (the estimation's ``overall``). The windows of the 15 seeds are pooled per mode. With
``--calendar-weeks`` the incident is instead cut into epoch-aligned 7-day buckets (Thursday to
Thursday), so an incident that straddles a week boundary gives two (shorter) windows. A window
counts when at least ``--min-labels`` of its predictions got a label in the end (some classic
seeds simulate a service that collects no labels: ``seeds`` counts the seeds, ``windows`` the
ones that could be measured).

``--task regression`` backtests the error model's MAE (issue 25's DLE part) the same way,
errors relative to the realized MAE, "within" meaning 5%.

Printed per mode: windows, windows it abstained on (before the labels: model version, score
support, reference calibration), the share within 2 points and the mean absolute error of the
estimates it made, the coverage of its 95% band (``old_band_coverage``: the band without the
bootstrap term, sampling and the two folds only), the mean signed error (estimate minus
realized), and what the abstained windows' estimate would have been off by (the reason to
abstain); for concept drift also the windows where the estimate fails its assumption once the
labels arrive.

``--labels-after HOURS`` estimates that many hours after the incident's start with the labels
that had arrived by then: a model version the reference did not serve (a bad release, a
quantized checkpoint) is calibrated on its own labelled head when it holds 500 labels that
pass the reference's checks (``model.estimation``), and abstains otherwise. The realized
accuracy is still that of the whole window once every label has come; the share of the
window's labels already in the head is printed with ``--json`` (``own_version_labels`` over
``labelled``). ``--rules`` classifies each case with the labels that had not arrived by then
deleted, with and without ``rules_estimation.toml``'s rules (issue 25 item 4).

Measured (2026-12-06, 40,000 rows, classic tuning seeds 1-15, one window per seed, reweighted
CBPE; seeds 4, 10, 12, 14 and 15 of covariate_shift simulate a service without labels and
cannot be measured). "within" is the share of all windows (abstentions count as not within),
MAE and bias are over the windows it estimated, "band" is the coverage of the 95% band after /
before the bootstrap term, "head" the median share of the window's labels that calibrated the
new version:

=========================== ======= ========= ========== ====== ====== ========== =====
mode (binary), labels after windows abstained within 2pt MAE    bias   band       head
=========================== ======= ========= ========== ====== ====== ========== =====
covariate_shift, 0 h        10      0         90% (9)    0.91pt +0.90  60% / 40%  -
bad_release, 0 h            15      15 (100%) 0%         -      -      -          -
bad_release, 24 h           15      7 (47%)   53% (8)    0.64pt +0.07  100% / 88% 19%
bad_release, 48 h           15      0         100% (15)  0.21pt +0.04  100% / 93% 45%
calibration_collapse, 0 h   15      15 (100%) 0%         -      -      -          -
calibration_collapse, 24 h  15      7 (47%)   53% (8)    0.60pt +0.05  100% / 38% 17%
calibration_collapse, 48 h  15      0         100% (15)  0.50pt +0.29  93% / 73%  37%
concept_drift, 0 h          15      0 (15)    0%         13.3pt +13.3  0% / 0%    -
=========================== ======= ========= ========== ====== ====== ========== =====

Before (the old code) every bad_release and calibration_collapse window abstained whatever the
labels (15 of 15 each: a model version the reference did not serve; also checked on seed 1 at
24 h), covariate_shift's band covered 40%. Without any
label of the new version (0 h) the new code abstains the same way, which is honest but not
"within 2 points". At 24 h the 7 abstentions are 6 versions with fewer than 500 labels by then
(slow labels: a median delay of several hours on long incidents) and one whose head leaves
5.5-5.7% of the incident's scores outside its support; the abstained windows' estimate with
the reference's calibration would have been 9.2 pt (bad release) and 3.2 pt (calibration
collapse) off. So issue 25's ">= 80% of weekly windows within 2 points" holds for these two
modes once about two days of the new version's labels have arrived (48 h: 30 of 30), not
before.

The band: the bootstrap term (the calibration map's own sampling error) brings the heads'
coverage to 93-100%, but under a covariate shift the estimate keeps a systematic bias
(+0.9 pt on average, the reweighting on two features' cells does not fully undo a calibration
that bends with the inputs) that no sampling term holds: its 95% band covers 60% (6 of 10;
40% before). Read it as a 95% band for sampling and calibration error only; under a covariate
shift its measured coverage is about 60%.

Per covariate-shift seed, estimate minus realized (points), reweighted / plain: 1: 0.36 /
1.51, 2: 1.11 / 1.57, 3: 0.38 / 0.79, 5: 1.21 / 0.83, 6: 1.31 / 4.23, 7: 1.07 / 1.75, 8:
0.58 / 0.70, 9: 2.66 / 1.88, 11: 0.35 / 0.35, 13: -0.02 / -0.18 (plain CBPE: 9 of 10 within,
MAE 1.38 pt). With ``--calendar-weeks`` (17 Thursday-aligned weeks from the 10 labelled
covariate-shift seeds, before the bootstrap term): reweighted 16 of 17 within 2 points (94%,
MAE 0.98 pt, band coverage 59%), plain 14 of 17 (82%, MAE 1.25 pt, coverage 41%). Regression
(``--task regression``, seeds 1-8): covariate_shift 7 windows, 7 within 5%, mean relative error
1.1%, band coverage 71%; none 8/8 within 5%, coverage 88%; concept_drift under-estimates by 51%
before the labels and abstains on 8 of 8 once they arrive; bad_release and
calibration_collapse abstain on 8 of 8 (a new model version; the estimate would have been
40% and 1.1% off); the regression error model has no per-version head yet.
Concept drift: "0 (15)" means it estimated every window before the labels (13.3 pt too high)
and fails its concept-drift check on all 15 once they arrive.

Issue 25's bar, measured as it is worded (2026-12-06, E25; ``--calendar-weeks --reweighted
--labels-after 0``, 40,000 rows, classic tuning seeds 1-15): per weekly (Thursday-aligned)
window, every incident label hidden (the reference's labels only), "within" over all windows
(an abstention is not within), MAE, bias and band coverage over the windows it estimated,
"would be off" what an abstained window's estimate with the reference's calibration would have
missed by:

==================== ======= ========== ========== ====== ====== ====== ===========
mode (binary), 0 h   windows abstained  within 2pt MAE    bias   band   would be off
==================== ======= ========== ========== ====== ====== ====== ===========
covariate_shift      17      0 (0%)     94% (16)   0.98pt +0.93  59%    -
bad_release          26      26 (100%)  0%         -      -      -      9.3pt
calibration_collapse 23      23 (100%)  0%         -      -      -      3.4pt
concept_drift        25      0 (0%)     0%         13.8pt +13.8  0%     -
==================== ======= ========== ========== ====== ====== ====== ===========

(covariate_shift: 10 of the 15 seeds collect labels; its one miss is seed 9's second week,
+3.5 pt.) So, literally: the bar holds for covariate shift (94% >= 80%), not for bad release
and calibration collapse (every window abstains: no label vouches for the new version's
scores, and the reference's map would have been 9.3 and 3.4 points off, so a guess would have
failed the bar too), and concept drift neither abstains nor fails a check before its labels
arrive (it cannot: P(y | x) changing leaves no trace in the scores) but fails its concept-drift
check in 15 of 15 seeds once they arrive. What would let a new version be estimated without
its labels, and why it was not built: the simulator's calibration collapse is a monotone
sharpening of the old scores (temperature 2.5-6, plus 0.05-0.2 logit of input-dependent
noise), for which the reference's map composed with the old-to-new score map would hold; its
bad release re-ranks the inputs (the logit moves along a random direction), for which it
would not (accuracy falls 3-15 points at the same score). The score distributions alone
cannot tell the two apart (both change the marginal of the scores); telling them apart needs
the old model's score on the incident's inputs (a surrogate of the old model fitted on the
reference's features, then the check that the new scores are a monotone function of it),
which was future work then: see "With the stand-in model" below, which estimates P(y | x)
from the features instead and so needs neither the old model's scores nor that test.

**With the stand-in model** (0340e80, E25, 2026-12-06; the same command, ``--calendar-weeks
--reweighted --labels-after 0``, 40,000 rows, classic tuning seeds 1-15, every incident label
hidden): a model version with no labelled head is estimated by a logistic stand-in fitted on
the reference's features (``model.estimation_proxy``; P(y | x) holds for any version unless
the concept drifts) instead of abstaining. "proxy" counts the windows it estimated:

==================== ======= ========= ===== ========== ====== ====== ====== =========
mode (binary), 0 h   windows abstained proxy within 2pt MAE    bias   band   worst err
==================== ======= ========= ===== ========== ====== ====== ====== =========
covariate_shift      17      0         0     94% (16)   0.98pt +0.93  59%    3.5pt
bad_release          26      0         26    100% (26)  0.28pt +0.01  92%    0.63pt
calibration_collapse 23      0         23    100% (23)  0.38pt -0.32  83%    1.26pt
concept_drift        25      0         0     0%         13.8pt +13.8  0%     -
==================== ======= ========= ===== ========== ====== ====== ====== =========

Covariate shift and concept drift are unchanged (no new version: CBPE as before, the same
figures to the digit). Bad release and calibration collapse meet the bar (>= 80% within 2
points): 49 of 49 weekly windows, against 0 of 49 (all abstained) before. The stand-in's
held-out checks on those 30 cases: AUC 0.956-0.993 (median 0.977 / 0.982), ECE 0.005-0.018
(at most 0.02 above chance), agreement with the old model's realised accuracy on held-out
reference rows -1.1 to +1.5 points. Its band (Bernoulli sampling plus the delta method on the
coefficients) covers 92% and 83%: it leaves out the stand-in's misspecification, and the
realised accuracy is read on the labelled ~60-75% of the rows. Why a logistic stand-in fits
the classic world: its truth is the model's own logistic in standardised log-features,
saturating beyond 2 sd (the stand-in winsorises at the 1st/99th percentiles and logs a
skewed feature) with one interaction it misses (travel merchants mute distance and amount),
which costs at most about a point of agreement. Concept drift is still not met and cannot
be honestly: before any incident label P(y | x) changing leaves no trace in the scores or
the features; the concept-drift check says "no label in the incident window: P(y | x) is
assumed unchanged", and fails in 15 of 15 seeds once the labels arrive.

Band after E25's faster bootstrap (draws pooled per P(positive) and weight: the same
distribution, other draws; cdf4b19): under covariate shift it covers 59% of the weekly windows
(10 of 17; the band without the bootstrap term covers the same 10), its misses the +0.9 point
bias that no sampling term holds. The heads' coverage is kept: re-run at 48 h (one window per
seed, ``--reweighted --labels-after 48``), bad_release 15 of 15 within 2 points (MAE 0.21 pt),
band 100% (93% without the bootstrap term); calibration_collapse 15 of 15 within (MAE
0.50 pt), band 93% (73% without): the same as with the per-group draws in the table above.

``--rules`` (rules_estimation.toml, labels deleted from the incident's start, true windows):
30 cases (covariate_shift and adversarial_inputs seeds 1-8; null_injection, unit_change,
schema_mismatch, bad_release, calibration_collapse, concept_drift and none seeds 1-2); the
estimated drop was found and its drifted-inputs rule fired in 3 (covariate_shift seeds 1, 5,
6), each already right without it; no other rule fired, no verdict changed (26 of 30 right
with and without; bad_release undetermined, concept_drift none). With 24 h of labels
(bad_release and calibration_collapse seeds 1-2): the head-calibrated estimate finds the
bad release's drop (2 of 2) beside the realised one (903 and 1,177 labels), the rules stay
silent (their gate is fewer than 100 incident labels), verdicts right 4 of 4.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import numpy as np
import pandas as pd

MODES = ("covariate_shift", "bad_release", "calibration_collapse", "concept_drift")
#: Tuning seeds of the classic world (the report seeds 1001-1003 are never used to tune).
TUNING = range(1, 16)
WITHIN = 0.02
Z = 1.959964
#: Regression (``--task regression``): the estimated MAE within 5% of the realized one.
WITHIN_RELATIVE = 0.05
REGRESSION_MODES = ("covariate_shift", "bad_release", "calibration_collapse", "concept_drift",
                    "none")


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def windows(mode: str, seed: int, rows: int, calendar: bool, min_labels: int,
            variants: tuple[bool, ...], task: str = "binary", labels_after: float = 0.0
            ) -> list[dict]:
    """The weekly windows of one simulated case: estimate (labels hidden) vs realized, per
    variant (``False``: plain CBPE; ``True``: the reference reweighted to the incident).

    ``labels_after``: the estimate is made that many hours after the incident's start, with
    the labels that had arrived by then (``as_of``); 0 hides every incident label."""
    from toolkit.evaluate import _ingest  # loads a task's endpoints catalog, as evaluate does
    from toolkit.simulate import make_case
    from toolkit.types import Window

    est = import_module("toolkit.diagnose.model.estimation")
    case = make_case(mode, seed=seed, rows=rows, task=task)
    truth = case.truth()
    b, i = Window(*truth["baseline"]), Window(*truth["incident"])
    week = timedelta(days=7)
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        con = _ingest(case, folder)
        try:
            for reweight in variants:
                runs[reweight] = (
                    est.estimation(con, b, i, bucket=week, reweight=reweight,
                                   as_of=i.start + timedelta(hours=labels_after)),
                    est.estimation(con, b, i, bucket=week, reweight=reweight))
        finally:
            con.close()
    out = []
    for reweight, (hidden, later) in runs.items():
        variant = {"variant": "reweighted" if reweight else "plain"}
        out += [w | variant for w in _compare(hidden, later, i, calendar, min_labels)]
    return [w | {"mode": mode, "seed": seed, "days": i.duration.total_seconds() / 86400}
            for w in out]


def _compare(hidden, later, i, calendar: bool, min_labels: int) -> list[dict]:
    """Windows of one estimate (labels hidden) against the realized accuracy (``later``)."""
    m = "mae" if hidden.task == "regression" else "accuracy"
    rw = hidden.reference.get("reweighting", {})
    heads = hidden.reference.get("versions") or {}
    base = {"drift_once_labelled": any("concept drift" in g.reason for g in later.not_assessed),
            "own_version_labels": sum(int(h["labelled"]) for h in heads.values()
                                      if h.get("calibrated")),
            "reweighted": bool(rw.get("applied")),
            # the stand-in model's fit (a new version with no labelled head; NaN otherwise)
            "proxy_applied": bool(hidden.reference.get("proxy", {}).get("applied")),
            "proxy_auc": hidden.reference.get("proxy", {}).get("auc", np.nan),
            "proxy_ece": hidden.reference.get("proxy", {}).get("ece", np.nan),
            "proxy_agreement_gap": hidden.reference.get("proxy", {}).get("agreement_gap",
                                                                          np.nan),
            "reweighted_on": " x ".join(rw.get("features", [])) if rw.get("applied") else ""}
    if later.overall.get("labelled", 0) < min_labels:
        return []  # no realized accuracy to compare with (the simulated case has no labels)
    if hidden.table.empty:  # the reference failed its checks: nothing estimated at all
        reason = "; ".join(g.reason for g in hidden.not_assessed)
        return [base | {"window": str(i.start), "abstained": True, "reason": reason,
                        "estimate": np.nan, "lo": np.nan, "hi": np.nan,
                        "realized": later.overall.get(f"realized_{m}", np.nan),
                        "labelled": later.overall.get("labelled", 0)}]
    if calendar:
        h = hidden.table.set_index("bucket_start")
        r = later.table.set_index("bucket_start")
        parts = [(str(k), h.loc[k].to_dict(), r.loc[k].to_dict()) for k in h.index]
    else:
        status = ("estimated" if not hidden.abstained else
                  "; ".join(g.reason for g in hidden.not_assessed if g.check == hidden.id))
        parts = [(str(i.start), hidden.overall | {"status": status}, later.overall)]
    out = []
    for key, h, r in parts:
        if r["labelled"] < min_labels:
            continue
        out.append(base | {"window": key, "abstained": h["status"] != "estimated",
                           "reason": "" if h["status"] == "estimated" else h["status"],
                           "estimate": h[m], "lo": h[f"{m}_lo"],
                           "hi": h[f"{m}_hi"], "realized": r[f"realized_{m}"],
                           # the band before the bootstrap term (sampling and the two folds)
                           "old_half": Z * float(np.hypot(h.get(f"{m}_se_sampling", np.nan),
                                                           h.get(f"{m}_se_folds", np.nan))),
                           "own_version_share": h.get("own_version_share", 0.0),
                           "method": getattr(hidden, "method", "cbpe"),
                           "labelled": int(r["labelled"])})
    return out


def rule_effect(mode: str, seed: int, rows: int, labels_after: float) -> dict:
    """Classify one simulated case with the incident's labels delayed (issue 25 item 4).

    The labels that had not arrived ``labels_after`` hours after the incident's start are
    deleted from the case (as if it were diagnosed then); the case is classified on its true
    windows with the packaged rules, then rescored without ``rules_estimation.toml``'s rules
    (the same findings). Returns the truth, both verdicts, the estimation rules that fired and
    the estimate's state (finding, abstention, incident labels)."""
    import tomllib
    from dataclasses import replace
    from importlib import resources

    from toolkit.classify.api import _abstain_without_evidence, classify_incident
    from toolkit.classify.engine import Evidence, score
    from toolkit.classify.rules import load_rules
    from toolkit.diagnose._case import case_view
    from toolkit.evaluate import _ingest
    from toolkit.simulate import make_case
    from toolkit.types import Window

    names = {r["name"] for r in tomllib.loads(
        (resources.files("toolkit.classify") / "rules_estimation.toml").read_text("utf-8"))
        ["rules"]}
    case = make_case(mode, seed=seed, rows=rows)
    truth = case.truth()
    b, i = Window(*truth["baseline"]), Window(*truth["incident"])
    as_of = i.start + timedelta(hours=labels_after)
    with tempfile.TemporaryDirectory() as folder:
        con = _ingest(case, folder)
        try:
            if "labels" in {t[0] for t in con.execute("SHOW TABLES").fetchall()}:
                con.execute("DELETE FROM labels WHERE labeled_at IS NULL OR labeled_at >= ?",
                            [as_of])
            view = case_view(con)
            got = classify_incident(con, incident=i, baseline=b, case=view)
            table = load_rules()
            without = replace(table, rules=tuple(r for r in table.rules if r.name not in names))
            evidence = Evidence(tuple(got.diagnosis.findings()),
                                tuple(got.diagnosis.not_assessed()), view.events, b, i,
                                got.serving_mode)
            other = _abstain_without_evidence(score(evidence, without), got.diagnosis)
        finally:
            con.close()
    result = got.diagnosis.results.get("model.estimation")
    ids = {f.id for f in got.diagnosis.findings()}
    return {"mode": mode, "seed": seed, "truth": truth.get("failure_mode", mode),
            "with": got.failure_mode, "without": other.failure_mode,
            "fired": "; ".join(h.name for h in got.verdict.hits if h.name in names),
            "estimated_drop": "model.estimated_accuracy_drop" in ids,
            "realized_drop": "model.accuracy_drop" in ids,
            "estimate_abstained": bool(result is not None and result.abstained),
            "incident_labels": int(result.overall.get("labelled", 0))
            if result is not None and result.overall else 0}


def summarize(frame: pd.DataFrame, relative: bool = False) -> pd.DataFrame:
    """Per mode: windows, abstentions, share within 2 points, MAE, band coverage, bias.

    ``relative`` (regression): errors relative to the realized MAE, "within" 5%."""
    rows = []
    for mode, g in frame.groupby("mode", sort=False):
        ok = g[~g["abstained"]]
        scale = ok["realized"] if relative else 1.0
        err = (ok["estimate"] - ok["realized"]) / scale
        ab = g[g["abstained"]]
        off = ((ab["estimate"] - ab["realized"]) / (ab["realized"] if relative else 1.0)).abs()
        rows.append({
            "mode": mode, "windows": len(g), "abstained": int(g["abstained"].sum()),
            "estimated": len(ok),
            "within": float((err.abs() <= (WITHIN_RELATIVE if relative else WITHIN)).mean())
            if len(ok) else np.nan,
            "mae": float(err.abs().mean()) if len(ok) else np.nan,
            "bias": float(err.mean()) if len(ok) else np.nan,
            "band_coverage": float(((ok["realized"] >= ok["lo"]) &
                                    (ok["realized"] <= ok["hi"])).mean()) if len(ok) else np.nan,
            "old_band_coverage": float(((ok["realized"] - ok["estimate"]).abs() <=
                                        ok["old_half"]).mean())
            if len(ok) and "old_half" in ok and ok["old_half"].notna().any() else np.nan,
            "abstained_share": float(g["abstained"].mean()),
            "by_proxy": int((ok.get("method", pd.Series(dtype=str)) == "proxy").sum()),
            "abstained_would_be_off": float(off.mean()) if off.notna().any() else np.nan,
            "drift_once_labelled": int(g.drop_duplicates("seed")["drift_once_labelled"].sum()),
            "seeds": g["seed"].nunique(),
        })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-15", help="tuning seeds, e.g. 1-15 or 1,2,5")
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--calendar-weeks", action="store_true",
                        help="epoch-aligned 7-day buckets instead of one window per incident")
    parser.add_argument("--min-labels", type=int, default=200)
    parser.add_argument("--task", default="binary", choices=("binary", "regression"),
                        help="regression: the error model's MAE (errors relative, within 5%%)")
    parser.add_argument("--plain", action="store_true",
                        help="plain CBPE only (no reweighting of the reference to the "
                             "incident's inputs); by default both are run and printed")
    parser.add_argument("--reweighted", action="store_true",
                        help="the reweighted estimate only (the default one)")
    parser.add_argument("--labels-after", type=float, default=0.0, metavar="HOURS",
                        help="estimate HOURS after the incident's start with the labels that "
                             "had arrived by then (a new model version calibrates on its own "
                             "labelled head); default 0: every incident label hidden")
    parser.add_argument("--json", type=Path, help="write every window as JSON lines")
    parser.add_argument("--rules", action="store_true",
                        help="classify each case with its labels delayed (--labels-after), with "
                             "and without rules_estimation.toml's rules (issue 25 item 4)")
    args = parser.parse_args(argv)
    seeds = _seeds(args.seeds)
    if any(s not in TUNING for s in seeds):
        parser.error("tuning seeds only (classic world 1-15): report seeds are never tuned on")
    if args.rules:
        return _rules_main(args, seeds)
    variants = ((False,) if args.plain or args.task == "regression" else
                (True,) if args.reweighted else (False, True))
    found = []
    for mode in args.modes.split(","):
        for seed in seeds:
            tick = time.perf_counter()
            got = windows(mode, seed, args.rows, args.calendar_weeks, args.min_labels, variants,
                          args.task, args.labels_after)
            found += got
            for w in got:
                print(f"{mode:22s} seed {seed:2d} {w['variant'][:5]:5s} {w['window'][:16]} "
                      f"est {w['estimate']:.4f} [{w['lo']:.4f}, {w['hi']:.4f}] realized "
                      f"{w['realized']:.4f} ({w['labelled']} labels, {w['days']:.1f} d) "
                      f"{w['reweighted_on']} {w.get('method', '')} "
                      f"{'ABSTAINED: ' + w['reason'][:90] if w['abstained'] else ''}"
                      f" [{time.perf_counter() - tick:.0f}s]", file=sys.stderr, flush=True)
    frame = pd.DataFrame(found)
    if args.json:
        frame.to_json(args.json, orient="records", lines=True)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        for variant, part in frame.groupby("variant", sort=False):
            print(f"--- {variant} {'error model' if args.task == 'regression' else 'CBPE'} ---")
            print(summarize(part, relative=args.task == "regression").to_string(index=False))
    return 0


def _rules_main(args: argparse.Namespace, seeds: list[int]) -> int:
    """``--rules``: the verdicts with and without the estimation rules, per case and mode."""
    found = []
    for mode in args.modes.split(","):
        for seed in seeds:
            tick = time.perf_counter()
            r = rule_effect(mode, seed, args.rows, args.labels_after)
            found.append(r)
            print(f"{mode:22s} seed {seed:2d} with {r['with']:22s} without {r['without']:22s} "
                  f"est.drop {r['estimated_drop']!s:5s} drop {r['realized_drop']!s:5s} "
                  f"labels {r['incident_labels']:5d} fired: {r['fired'] or '-'} "
                  f"[{time.perf_counter() - tick:.0f}s]", file=sys.stderr, flush=True)
    frame = pd.DataFrame(found)
    if args.json:
        frame.to_json(args.json, orient="records", lines=True)
    rows = []
    for mode, g in frame.groupby("mode", sort=False):
        rows.append({"mode": mode, "cases": len(g), "estimated_drop": int(g["estimated_drop"].sum()),
                     "fired": int((g["fired"] != "").sum()),
                     "right_with": int((g["with"] == g["truth"]).sum()),
                     "right_without": int((g["without"] == g["truth"]).sum()),
                     "changed": int((g["with"] != g["without"]).sum())})
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
