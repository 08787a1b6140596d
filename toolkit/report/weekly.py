"""The weekly health report: SLOs, drift, incidents and week-over-week change for an ISO week.

The week is compared with the week before (the baseline). SLO targets come from ``case_meta``
when set (``latency_slo_ms``, ``error_rate_slo``, ``accuracy_slo``, ``ece_slo``); otherwise:
latency 2 x the previous week's p99, error rate 1%, accuracy the previous week's minus 2
points, ECE 0.05 (each stated in the report as its source).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit._version import __version__
from toolkit.diagnose import Diagnosis, run_diagnostics
from toolkit.diagnose._case import CaseView, case_view
from toolkit.report.html import Html, figure_html, heading, key_values, note, table
from toolkit.report.postmortem import STYLE
from toolkit.store import connect
from toolkit.types import Window

__all__ = ["WeeklyReport"]

_IDS = ["case.traffic", "data.drift", "data.quality", "model.performance", "model.calibration",
        "infra.latency", "integration.versions", "integration.client_errors",
        "integration.timeouts", "integration.cache"]


@dataclass
class WeeklyReport:
    """Sections of the weekly report for one ISO week."""

    week: str
    current: Window
    previous: Window
    case: CaseView
    diagnosis: Diagnosis | None
    incidents: list[dict[str, Any]] = field(default_factory=list)
    db: str = ""
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def open(cls, db: str | os.PathLike[str], week: str) -> WeeklyReport:
        """Open the case read-only and measure ``week`` against the week before."""
        con = connect(Path(db), read_only=True)
        case = case_view(con)
        current = Window.parse(week)
        previous = Window(current.start - timedelta(days=7), current.start)
        diagnosis = None
        if case.has("requests"):
            counts = con.execute(
                "SELECT count_if(ts >= $a AND ts < $b), count_if(ts >= $b AND ts < $c) "
                "FROM requests", {"a": previous.start, "b": current.start, "c": current.end}
            ).fetchall()[0]
            if counts[0] and counts[1]:
                diagnosis = run_diagnostics(con, previous, current, case=case, ids=_IDS)
        report = cls(week, current, previous, case, diagnosis, db=str(db))
        report.incidents = report._incidents(con)
        return report

    def header(self) -> Html:
        meta = {"week": self.week, "window (UTC)": str(self.current),
                "compared with": str(self.previous), "case database": self.db,
                "generated": self.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
                "toolkit": f"inference-forensics {__version__}"}
        return STYLE + heading(f"Weekly model-serving report {self.week}", 1) + key_values(meta)

    def slo(self) -> Html:
        frame = self.slo_frame()
        if frame.empty:
            return note("No requests in this week or the week before: SLOs not assessed.")
        return table(frame, caption="SLO compliance this week")

    def slo_frame(self) -> pd.DataFrame:
        if self.diagnosis is None:
            return pd.DataFrame()
        meta = self.case.meta
        rows = []
        latency = self.diagnosis.results.get("infra.latency")
        if latency is not None and not latency.table.empty:
            t = latency.timeline
            week = t[t["bucket_start"] >= pd.Timestamp(self.current.start)]
            ok = (week["p99_ms"] <= latency.slo_ms).mean() if len(week) else float("nan")
            rows.append({"SLO": "latency p99", "target": latency.slo_ms,
                         "source": latency.slo_source,
                         "this week": latency.value("incident", "p99_ms"),
                         "compliance": ok,
                         "met": bool(latency.value("incident", "p99_ms") <= latency.slo_ms)})
            target = float(meta.get("error_rate_slo", 0.01))
            rate = latency.value("incident", "error_rate") + latency.value("incident",
                                                                           "timeout_rate")
            rows.append({"SLO": "error + timeout rate", "target": target,
                         "source": "case_meta" if "error_rate_slo" in meta else "default 1%",
                         "this week": rate, "compliance": float("nan"),
                         "met": bool(rate <= target)})
        performance = self.diagnosis.results.get("model.performance")
        if performance is not None and not performance.table.empty:
            target = float(meta.get("accuracy_slo", performance.value("baseline", "accuracy")
                                    - 0.02))
            value = performance.value("incident", "accuracy")
            rows.append({"SLO": "accuracy", "target": target,
                         "source": "case_meta" if "accuracy_slo" in meta else
                         "previous week - 2 points", "this week": value,
                         "compliance": float("nan"), "met": bool(value >= target)})
        calibration = self.diagnosis.results.get("model.calibration")
        if calibration is not None and not calibration.table.empty:
            target = float(meta.get("ece_slo", 0.05))
            value = calibration.value("incident", "ece")
            rows.append({"SLO": "ECE", "target": target,
                         "source": "case_meta" if "ece_slo" in meta else "default 0.05",
                         "this week": value, "compliance": float("nan"),
                         "met": bool(value <= target)})
        return pd.DataFrame(rows)

    def drift(self) -> Html:
        result = self.diagnosis.results.get("data.drift") if self.diagnosis else None
        if result is None or result.table.empty:
            return note("Feature drift not assessed (no features, or no data last week).")
        columns = ["feature", "kind", "psi", "js", "wasserstein", "pvalue_adjusted", "drifted"]
        frame = result.table[[c for c in columns if c in result.table]].sort_values(
            "psi", ascending=False)
        figure = figure_html(result.plot(kind="bar").figure, "drift per feature")
        return figure + table(frame, caption="Drift per feature vs the previous week")

    def incidents_section(self) -> Html:
        if not self.incidents:
            return note("No incident detected in this week.")
        return table(pd.DataFrame(self.incidents), caption="Incidents detected this week")

    def week_over_week(self) -> Html:
        frame = self.week_over_week_frame()
        if frame.empty:
            return note("No week-over-week comparison: one of the weeks has no requests.")
        return table(frame, caption="Week over week")

    def week_over_week_frame(self) -> pd.DataFrame:
        if self.diagnosis is None:
            return pd.DataFrame()
        rows = []
        for diagnostic_id, result in self.diagnosis.results.items():
            for name, value in result.headline().items():
                if "baseline" in name and isinstance(value, (int, float)):
                    current = result.headline().get(name.replace("baseline", "incident"))
                    if isinstance(current, (int, float)):
                        rows.append({"measure": name.replace(" baseline", ""),
                                     "diagnostic": diagnostic_id, "previous week": value,
                                     "this week": current, "change": current - value})
        return pd.DataFrame(rows)

    def results(self) -> dict[str, Any]:
        slo = self.slo_frame()
        drift = self.diagnosis.results.get("data.drift") if self.diagnosis else None
        return {
            "week": self.week,
            "window": self.current.as_list(),
            "previous": self.previous.as_list(),
            "generated_at": self.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "toolkit_version": __version__,
            "slo": slo.astype(object).where(slo.notna(), None).to_dict("records"),
            "slo_met": bool(slo["met"].all()) if not slo.empty else None,
            "drifted_features": drift.drifted if drift is not None else [],
            "incidents": self.incidents,
            "week_over_week": self.week_over_week_frame().to_dict("records"),
        }

    def save_results(self, path: str | os.PathLike[str] = "results.json") -> Path:
        from toolkit.report.notebook import write_json

        return write_json(Path(path), self.results())

    def _incidents(self, con) -> list[dict[str, Any]]:
        """Change points inside the week, classified with the detected window."""
        if self.diagnosis is None:
            return []
        from toolkit.classify.api import classify_incident
        from toolkit.errors import EmptyWindowError

        try:
            result = classify_incident(con, baseline=self.previous, case=self.case)
        except EmptyWindowError:
            return []
        if result.detected is None or not (self.current.start <= result.onset <
                                           self.current.end):
            return []
        return [{"onset": pd.Timestamp(result.onset).strftime("%Y-%m-%d %H:%M UTC"),
                 "window": str(result.incident), "pathway": result.pathway,
                 "failure_mode": result.failure_mode,
                 "confidence": round(result.confidence, 3),
                 "signals": ", ".join(result.detected.supporting)}]
