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
from toolkit.errors import EmptyWindowError
from toolkit.report.format import (
    fmt_change,
    fmt_ms,
    fmt_number,
    fmt_percent,
    fmt_time,
    fmt_value,
    is_missing,
    missing,
)
from toolkit.report.html import Html, figure_html, heading, key_values, note, table
from toolkit.report.postmortem import STYLE
from toolkit.report.trend import ECE_BINS, trend_figure, weekly_measures
from toolkit.store import connect
from toolkit.types import Window

__all__ = ["WeeklyReport", "TREND_WEEKS", "check_week_has_data"]

#: Weeks in the report's trend.
TREND_WEEKS = 6

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
    #: One row per week, the last :data:`TREND_WEEKS` weeks (see :mod:`toolkit.report.trend`).
    trend_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def open(cls, db: str | os.PathLike[str], week: str, *, weeks: int = TREND_WEEKS
             ) -> WeeklyReport:
        """Open the case read-only and measure ``week`` against the week before.

        Raises
        ------
        EmptyWindowError
            The week has no requests and no metrics: there is nothing to report (a scheduler
            must notice, not receive an empty page).
        """
        con = connect(Path(db), read_only=True)
        case = case_view(con)
        current = Window.parse(week)
        check_week_has_data(con, current, week, db)
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
        drift = report.diagnosis.results.get("data.drift") if report.diagnosis else None
        known = {current.start: len(drift.drifted) / len(drift.table)} \
            if drift is not None and not drift.table.empty else {}
        report.trend_frame = weekly_measures(con, case, current, weeks=weeks, drift=known)
        return report

    def header(self) -> Html:
        meta = {"week": self.week, "window (UTC)": _window(self.current),
                "compared with": _window(self.previous), "case database": self.db,
                "generated": self.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
                "toolkit": f"inference-forensics {__version__}"}
        return STYLE + heading(f"Weekly model-serving report {self.week}", 1) + key_values(meta)

    def slo(self) -> Html:
        frame = self.slo_frame()
        if frame.empty:
            return note("No requests in this week: SLOs not assessed.")
        caption = "SLO compliance this week"
        if self.diagnosis is None:
            caption += (" (no requests in the week before: this week's own numbers; targets "
                        "derived from the previous week are not assessed)")
        shown = frame.copy().astype(object)
        for column in ("target", "this week"):
            shown[column] = [_slo_value(name, value) for name, value in
                             zip(frame["SLO"], frame[column], strict=True)]
        shown["compliance"] = [fmt_percent(v, 1, reason="latency only")
                               for v in frame["compliance"]]
        return table(shown, caption=caption, reasons={"met": "no target"})

    def slo_frame(self) -> pd.DataFrame:
        if self.diagnosis is None:
            return self._own_slo_frame()
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
        figure = figure_html(self.drift_figure(), "drift per feature")
        return figure + table(frame, caption="Drift per feature vs the previous week")

    def drift_figure(self) -> Any:
        """PSI per feature, this week against the week before."""
        ax = self.diagnosis.results["data.drift"].plot(kind="bar")
        ax.set_title(f"Drift per feature: {self.week} vs the week before")
        return ax.figure

    def trend(self) -> Html:
        """The last weeks' accuracy, ECE, p99, failure rate and drift as small multiples."""
        frame = self.trend_frame
        fig = trend_figure(frame) if not frame.empty else None
        if fig is None:
            return note("No trend: no requests in the last weeks.")
        shown = frame[["week", "requests", "p99_ms", "failure_rate", "labelled", "accuracy",
                       "ece", "drift_share"]]
        weeks = f"{len(frame)} week" + ("s" if len(frame) != 1 else "")
        return figure_html(fig, "trend over the last weeks") + table(
            shown, caption=f"Last {weeks} (ECE on {ECE_BINS} equal-width bins; drift "
                           "against the week before)",
            reasons={"accuracy": "no labels", "ece": "no labels or scores",
                     "drift_share": "no data the week before", "p99_ms": "no requests",
                     "failure_rate": "no requests or status", "labelled": "no labels"})

    def incidents_section(self) -> Html:
        if not self.incidents:
            return note("No incident detected in this week.")
        return table(pd.DataFrame(self.incidents), caption="Incidents detected this week")

    def week_over_week(self) -> Html:
        frame = self.week_over_week_frame()
        if frame.empty:
            return note("No week-over-week comparison: one of the weeks has no requests.")
        shown = pd.DataFrame({
            "measure": frame["measure"], "diagnostic": frame["diagnostic"],
            "previous week": [fmt_value(v, m) for v, m in zip(
                frame["previous week"], frame["measure"], strict=True)],
            "this week": [fmt_value(v, m) for v, m in zip(
                frame["this week"], frame["measure"], strict=True)],
            "change": [_change(m, b, a) for m, b, a in zip(
                frame["measure"], frame["previous week"], frame["this week"], strict=True)]})
        return table(shown, caption="Week over week")

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
            "trend": self.trend_frame.assign(start=self.trend_frame["start"].astype(str))
            .astype(object).where(self.trend_frame.notna(), None).to_dict("records")
            if not self.trend_frame.empty else [],
        }

    def save_results(self, path: str | os.PathLike[str] = "results.json") -> Path:
        from toolkit.report.notebook import write_json

        return write_json(Path(path), self.results())

    def _own_slo_frame(self) -> pd.DataFrame:
        """This week's numbers when the week before has no requests (the first week of a
        case): measured, with the targets that need no previous week (``case_meta`` or the
        fixed defaults)."""
        frame = self.trend_frame
        if frame.empty or not frame["requests"].iloc[-1]:
            return pd.DataFrame()
        row = frame.iloc[-1]
        meta = self.case.meta
        nan = float("nan")
        rows = []

        def add(name: str, value: float, target: float, source: str, higher: bool) -> None:
            if pd.isna(value):
                return
            met = (value >= target if higher else value <= target) if not pd.isna(target) \
                else None
            rows.append({"SLO": name, "target": target, "source": source, "this week": value,
                         "compliance": nan, "met": met})

        latency = float(meta["latency_slo_ms"]) if "latency_slo_ms" in meta else nan
        add("latency p99", row["p99_ms"], latency,
            "case_meta" if "latency_slo_ms" in meta else "not assessed (no previous week)",
            higher=False)
        add("error + timeout rate", row["failure_rate"], float(meta.get("error_rate_slo", 0.01)),
            "case_meta" if "error_rate_slo" in meta else "default 1%", higher=False)
        accuracy = float(meta["accuracy_slo"]) if "accuracy_slo" in meta else nan
        add("accuracy", row["accuracy"], accuracy,
            "case_meta" if "accuracy_slo" in meta else "not assessed (no previous week)",
            higher=True)
        add(f"ECE ({ECE_BINS} bins)", row["ece"], float(meta.get("ece_slo", 0.05)),
            "case_meta" if "ece_slo" in meta else "default 0.05", higher=False)
        return pd.DataFrame(rows)

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


def check_week_has_data(con: Any, window: Window, week: str, db: Any) -> None:
    """Raise :class:`EmptyWindowError` when ``window`` has no requests and no metrics."""
    found = 0
    for name in ("requests", "metrics"):
        exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                             [name]).fetchall()[0][0]
        if exists:
            found += con.execute(
                f'SELECT count(*) FROM (SELECT 1 FROM "{name}" WHERE ts >= $a AND ts < $b '
                "LIMIT 1)", {"a": window.start, "b": window.end}).fetchall()[0][0]
    if not found:
        raise EmptyWindowError(
            f"No requests or metrics in week {week} ({window}) in {db}: nothing to report.")


def _window(window: Window) -> str:
    return f"{fmt_time(window.start)} to {fmt_time(window.end)}"


def _slo_value(name: str, value: Any) -> str:
    """An SLO target or value in its unit."""
    if is_missing(value):
        return missing("no previous week to derive it from")
    if name.startswith("latency"):
        return fmt_ms(value)
    if name.startswith("ECE"):
        return fmt_number(value, 3)
    return fmt_percent(value)


def _change(measure: str, before: float, after: float) -> str:
    """The change of ``measure`` in its unit (points for shares, ms for latencies)."""
    unit = fmt_value(0.5, measure)
    kind = "share" if unit.endswith("%") else "ms" if unit.endswith(" ms") else "number"
    return fmt_change(before, after, kind)
