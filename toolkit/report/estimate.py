"""Label-free accuracy (``toolkit.diagnose.model.estimation``: CBPE from calibrated scores, or
a stand-in model on the features for a model version no label vouches for) for the reports, or
the estimated MAE (its error model) of a regression endpoint.

The estimate is not in the diagnostic registry: the reports call it directly, guarded, so a
failure or an abstention ("cannot estimate") is shown as ``not assessed: <reason>`` and never
stops a report. :func:`label_gap` says whether the incident's labels are missing or delayed,
the case where the postmortem shows the estimate next to the realised accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.diagnose.model.estimation import METHOD_NAMES
from toolkit.report.format import fmt_count, fmt_number, fmt_percent, is_missing

__all__ = ["Estimate", "estimate", "estimate_figure", "label_gap", "ESTIMATION_ID", "MIN_COVERAGE",
           "MAX_DELAY_H"]

#: The estimate's id (the same as ``toolkit.diagnose.model.estimation.ID``).
ESTIMATION_ID = "model.estimation"
#: Labels cover less of the incident's requests than this: labels are missing.
MIN_COVERAGE = 0.9
#: Half the incident's labels arrived later than this (hours): labels are delayed.
MAX_DELAY_H = 1.0
#: What an estimate with no incident label cannot rule out (said beside it in the reports).
UNCHECKED_DRIFT = ("no concept drift: no incident label has arrived to check the estimate "
                   "against, and a change in P(y | x) shows in neither the scores nor the "
                   "features")
@dataclass(frozen=True)
class Estimate:
    """The estimation result, or why there is none.

    Attributes
    ----------
    result
        The :class:`~toolkit.diagnose.model.estimation.EstimationResult` (``None`` when it failed).
    reason
        Why the window's accuracy is not estimated (an abstention, a failure); ``None`` when
        it is.
    """

    result: Any = None
    reason: str | None = None

    @property
    def estimated(self) -> bool:
        return self.reason is None and self.result is not None and bool(self.result.overall)

    @property
    def regression(self) -> bool:
        """A regression endpoint's estimate: MAE from the error model, not CBPE's accuracy."""
        return self.result is not None and getattr(self.result, "task", "") == "regression"

    @property
    def method(self) -> str:
        """How the accuracy was estimated: ``cbpe`` (calibrated scores) or ``proxy`` (a
        stand-in model fitted on the baseline's features)."""
        return str(getattr(self.result, "method", "cbpe") or "cbpe")

    @property
    def method_name(self) -> str:
        """The method in words, as the finding and the headline name it
        (:data:`~toolkit.diagnose.model.estimation.METHOD_NAMES`)."""
        return METHOD_NAMES.get(self.method, self.method)

    @property
    def has_table(self) -> bool:
        return self.result is not None and not self.result.table.empty

    def not_estimated_buckets(self) -> int:
        """Time buckets marked "cannot estimate"."""
        if not self.has_table:
            return 0
        return int((self.result.table["status"] != "estimated").sum())

    def to_dict(self) -> dict[str, Any]:
        """For ``results.json``: the estimate and its band (``None`` when it abstained), the
        realised accuracy on the labels that exist, their gap and the refusal reason."""
        overall = self.result.overall if self.result is not None else {}

        def number(key: str) -> float | None:
            value = overall.get(key)
            return None if value is None or is_missing(value) else float(value)

        ok = self.estimated
        if self.regression:
            return {
                "status": "estimated" if ok else "not assessed", "reason": self.reason,
                "task": "regression",
                "estimated_mae": number("mae") if ok else None,
                "band": [number("mae_lo"), number("mae_hi")] if ok else None,
                "realized_mae": number("realized_mae"),
                "labelled": int(overall.get("labelled", 0) or 0),
                "gap_realized_minus_estimated": number("gap") if ok else None,
                "reference_mae": _or_none(self.result.reference.get("mae")),
                "buckets_not_estimated": self.not_estimated_buckets(),
            }
        return {
            "status": "estimated" if ok else "not assessed",
            "reason": self.reason,
            "estimated_accuracy": number("accuracy") if ok else None,
            "band": [number("accuracy_lo"), number("accuracy_hi")] if ok else None,
            "realized_accuracy": number("realized_accuracy"),
            "labelled": int(overall.get("labelled", 0) or 0),
            "gap_realized_minus_estimated": number("gap") if ok else None,
            "reference_accuracy": (None if self.result is None else
                                   _or_none(self.result.reference.get("accuracy"))),
            "buckets_not_estimated": self.not_estimated_buckets(),
            "calibrated_on_own_labels": self.own_versions(),
            "method": self.method,
            "old_version_check": self.old_version_check(),
        }

    def _regression_rows(self, context: bool) -> list[dict[str, Any]]:
        """:meth:`rows` of a regression endpoint: MAE in the target's unit."""
        o, ref = self.result.overall, self.result.reference
        out = []
        if context and not is_missing(ref.get("mae", float("nan"))):
            out.append({"measure": "reference MAE (baseline, realized)",
                        "value": fmt_number(ref["mae"], 4), "95% band": "—"})
        name = "estimated MAE (error model, no labels needed)"
        if self.estimated:
            value = fmt_number(o["mae"], 4)
            buckets = self.not_estimated_buckets()
            if buckets:
                value += f" ({buckets:,} time bucket(s) cannot be estimated)"
            out.append({"measure": name, "value": value,
                        "95% band": f"{fmt_number(o['mae_lo'], 4)} – {fmt_number(o['mae_hi'], 4)}"})
        else:
            out.append({"measure": name, "value": f"not assessed: {self.reason}",
                        "95% band": "—"})
        if context and o.get("labelled"):
            out.append({"measure": "realized MAE (the labels that exist)",
                        "value": f"{fmt_number(o['realized_mae'], 4)} on "
                                 f"{fmt_count(o['labelled'])} labels", "95% band": "—"})
        if self.estimated and o.get("labelled"):
            out.append({"measure": "gap: realized − estimated (same labelled requests)",
                        "value": fmt_number(o.get("gap"), 4), "95% band": "—"})
        return out

    def old_version_check(self) -> dict[str, float] | None:
        """Where the stand-in model estimated the window and the baseline's model version still
        served part of it: CBPE's and the stand-in's accuracy of those rows and their gap
        (``rows``, ``cbpe_accuracy``, ``proxy_accuracy``, ``gap``); ``None`` otherwise."""
        if self.result is None or self.method != "proxy":
            return None
        old = (self.result.reference.get("proxy") or {}).get("old_version")
        if not old or not old.get("rows"):
            return None
        return {k: (int(v) if k == "rows" else _or_none(v)) for k, v in old.items()}

    def _old_version_row(self) -> list[dict[str, Any]]:
        old = self.old_version_check()
        if old is None or old.get("cbpe_accuracy") is None or old.get("proxy_accuracy") is None:
            return []
        return [{"measure": "check: the old version's rows, stand-in vs CBPE",
                 "value": f"{fmt_percent(old['proxy_accuracy'], 1)} vs "
                          f"{fmt_percent(old['cbpe_accuracy'], 1)} on "
                          f"{fmt_count(old['rows'])} requests (gap "
                          f"{_points(old['gap'])})", "95% band": "—"}]

    def own_versions(self) -> dict[str, int]:
        """Model versions the baseline did not serve, calibrated on their own labelled head
        instead (version: labels that calibrate it)."""
        heads = self.result.reference.get("versions") if self.result is not None else None
        return {str(v): int(h["labelled"]) for v, h in (heads or {}).items()
                if h.get("calibrated")}

    def _reference_row(self) -> list[dict[str, Any]]:
        accuracy = self.result.reference.get("accuracy") if self.result is not None else None
        if accuracy is None or is_missing(accuracy):
            return []
        out = [{"measure": "reference accuracy (baseline, realized)",
                "value": fmt_percent(accuracy, 1), "95% band": "—"}]
        own = self.own_versions()
        if own:
            out.append({"measure": "new model version(s) calibrated on their own labels",
                        "value": "; ".join(f"{v} on {fmt_count(n)} labels (the labels that "
                                           "calibrate it cannot check it)"
                                           for v, n in own.items()), "95% band": "—"})
        return out

    def rows(self, *, context: bool = True) -> list[dict[str, Any]]:
        """Display rows (``measure``, ``value``, ``95% band``): the estimated accuracy with
        its band (or why it is not assessed) and its gap to the realised accuracy on the
        same labelled requests; with ``context``, the reference's accuracy and the realised
        accuracy of the labels that exist too."""
        if self.regression and self.result.overall:
            return self._regression_rows(context)
        o = self.result.overall if self.result is not None else {}
        out = self._reference_row() if context else []
        name = ("estimated accuracy (stand-in model, no labels needed)" if self.method == "proxy"
                else "estimated accuracy (CBPE, no labels needed)")
        if self.estimated:
            value = fmt_percent(o["accuracy"], 1)
            buckets = self.not_estimated_buckets()
            if buckets:
                value += f" ({buckets:,} time bucket(s) cannot be estimated)"
            out.append({"measure": name, "value": value,
                        "95% band": f"{fmt_percent(o['accuracy_lo'], 1)} – "
                                    f"{fmt_percent(o['accuracy_hi'], 1)}"})
        else:
            out.append({"measure": name, "value": f"not assessed: {self.reason}",
                        "95% band": "—"})
        if context and o.get("labelled"):
            band = (f"{fmt_percent(o['realized_lo'], 1)} – {fmt_percent(o['realized_hi'], 1)}"
                    if not is_missing(o.get("realized_lo")) else "—")
            out.append({"measure": "realized accuracy (the labels that exist)",
                        "value": f"{fmt_percent(o['realized_accuracy'], 1)} on "
                                 f"{fmt_count(o['labelled'])} labels", "95% band": band})
        if self.estimated and o.get("labelled"):
            out.append({"measure": "gap: realized − estimated (same labelled requests)",
                        "value": _points(o.get("gap")), "95% band": "—"})
        if self.estimated and not o.get("labelled"):
            out.append({"measure": "assumption not checked yet", "value": UNCHECKED_DRIFT,
                        "95% band": "—"})
        if context and self.estimated:
            out += self._old_version_row()
        return out


def estimate(con: Any, baseline: Any, incident: Any, *, case: Any = None,
             diagnosis: Any = None) -> Estimate:
    """The label-free estimate of ``incident`` calibrated on ``baseline``, guarded.

    Uses the diagnosis's ``model.estimation`` result when the registry runs it; otherwise
    calls :func:`toolkit.diagnose.model.estimation.estimation`. Any error becomes the reason.
    """
    result = getattr(diagnosis, "results", {}).get(ESTIMATION_ID) if diagnosis is not None \
        else None
    if result is None:
        try:
            from toolkit.diagnose.model.estimation import estimation

            result = estimation(con, baseline, incident, case=case)
        except Exception as error:  # noqa: BLE001 - a report shows why, it never stops
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return Estimate(None, f"the estimate failed ({type(error).__name__}"
                                  + (f": {first}" if first else "") + ")")
    refusal = next((g.reason.removeprefix("cannot estimate: ") for g in result.not_assessed
                    if g.check == ESTIMATION_ID), None)
    if refusal is None and not result.overall:
        refusal = next((g.reason for g in result.not_assessed), "no predictions to estimate")
    return Estimate(result, refusal)


def estimate_figure(est: Estimate, title: str) -> Any:
    """The estimate's chart (estimated accuracy and band, "cannot estimate" buckets as x,
    realised accuracy, reference) titled ``title``, its legend beside the plot so it never
    covers a line; ``None`` without a table."""
    if not est.has_table:
        return None
    ax = est.result.plot()
    ax.set_title(title + (" (cannot estimate: see the table)" if est.reason else ""))
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return ax.figure


def label_gap(performance: Any) -> str | None:
    """Why the incident's labels are missing or delayed (``None`` when they are complete
    and timely): no labelled request, a coverage below :data:`MIN_COVERAGE`, or a median
    label delay above :data:`MAX_DELAY_H` hours."""
    if performance is None:
        return "no labels in the case"
    if performance.table.empty:
        # say what model.performance found ("no labels in the incident window"), not that the
        # case has none: the baseline's labels are what calibrates the estimate
        reason = next((g.reason for g in performance.not_assessed), "")
        return reason or "no labels in the case"
    labelled = performance.value("incident", "labelled")
    if is_missing(labelled) or not labelled:
        return "no labelled request in the incident window"
    reasons = []
    coverage = performance.value("incident", "coverage")
    if not is_missing(coverage) and coverage < MIN_COVERAGE:
        reasons.append(f"labels cover {fmt_percent(coverage, 1)} of the incident's requests")
    delay = _value(performance, "delay_p50_h")
    if not is_missing(delay) and delay > MAX_DELAY_H:
        reasons.append(f"half the labels arrived more than {fmt_number(delay, 2)} h after "
                       "the request")
    return "; ".join(reasons) or None


def _value(result: Any, column: str) -> float:
    try:
        return result.value("incident", column)
    except (KeyError, IndexError):
        return float("nan")


def _or_none(value: Any) -> float | None:
    return None if value is None or is_missing(value) else float(value)


def _points(delta: Any) -> str:
    from toolkit.report.format import fmt_points

    return fmt_points(delta, 1)

