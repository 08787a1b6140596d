"""The weekly health report: SLOs, drift, incidents and week-over-week change for an ISO week.

The week is compared with the week before (the baseline). SLO targets come from ``case_meta``
when set (``latency_slo_ms``, ``error_rate_slo``, ``accuracy_slo``, ``ece_slo``); otherwise:
latency 2 x the previous week's p99, error rate 1%, accuracy the previous week's minus 2
points, ECE 0.05 (each stated in the report as its source).

SLOs come in two panels kept apart, as NIST AI RMF MEASURE asks: **model quality** (realised
accuracy with its Wilson band, ECE, the label-free estimated accuracy with its band and the
gap between the two) and **infrastructure** (p99 latency, error + timeout rate, throughput).
An infrastructure SLO that holds says nothing about the model's answers, and the reverse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit._version import __version__
from toolkit.diagnose import Diagnosis, run_diagnostics
from toolkit.diagnose import _stats as st
from toolkit.diagnose._case import CaseView, case_view
from toolkit.diagnose._engines import engine_of
from toolkit.errors import EmptyWindowError, InvalidParameterError
from toolkit.report.estimate import Estimate, estimate, estimate_figure
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
from toolkit.report.html import Html, figure_html, heading, items, key_values, note, table
from toolkit.report.postmortem import STYLE
from toolkit.report.trend import ECE_BINS, trend_figure, weekly_measures
from toolkit.store import connect
from toolkit.store.lake import connect_lake, parse_tables_spec
from toolkit.types import Window

__all__ = ["WeeklyReport", "TREND_WEEKS", "check_week_has_data"]

#: Weeks in the report's trend.
TREND_WEEKS = 6

_IDS = ["case.traffic", "data.drift", "data.quality", "model.performance", "model.calibration",
        "infra.latency", "integration.versions", "integration.client_errors",
        "integration.timeouts", "integration.cache"]
#: Run too when the case serves a generative endpoint (the "Generative serving" section).
_GENERATIVE_IDS = ["infra.token_latency", "infra.kv_cache", "integration.prefix_cache",
                   "integration.generation", "data.prompt_mix"]


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
    #: The label-free estimate of this week's accuracy, calibrated on the week before.
    estimate: Estimate = field(default_factory=lambda: Estimate(None, "not run"))
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def open(cls, db: str | os.PathLike[str], week: str, *, weeks: int = TREND_WEEKS,
             engine: str = "duckdb", tables: str = "") -> WeeklyReport:
        """Open the case read-only and measure ``week`` against the week before.

        ``engine="duckdb"`` reads the case file ``db``; ``engine="spark"`` reads the canonical
        tables where they live (``tables``: ``requests=LOCATION,...``, see
        :func:`toolkit.store.lake.connect_lake`) and ``db`` must be empty.

        Raises
        ------
        EmptyWindowError
            The week has no requests and no metrics: there is nothing to report (a scheduler
            must notice, not receive an empty page).
        InvalidParameterError
            An unknown engine, or ``db`` and ``tables`` mixed up or malformed.
        """
        source, where = _open_source(db, engine, tables)
        case = case_view(source)
        con = case.con  # raw SQL: DuckDB's connection, or Spark's transpiling one
        current = Window.parse(week)
        check_week_has_data(source, current, week, where)
        previous = Window(current.start - timedelta(days=7), current.start)
        diagnosis = None
        if case.has("requests"):
            counts = con.execute(
                "SELECT count_if(ts >= $a AND ts < $b), count_if(ts >= $b AND ts < $c) "
                "FROM requests", {"a": previous.start, "b": current.start, "c": current.end}
            ).fetchall()[0]
            if counts[0] and counts[1]:
                generative = any(t.task == "generative" for t in case.tasks.values())
                ids = _IDS + (_GENERATIVE_IDS if generative else [])
                diagnosis = run_diagnostics(source, previous, current, case=case, ids=ids)
        report = cls(week, current, previous, case, diagnosis, db=where)
        report.incidents = report._incidents(source)
        drift = report.diagnosis.results.get("data.drift") if report.diagnosis else None
        known = {current.start: len(drift.drifted) / len(drift.table)} \
            if drift is not None and not drift.table.empty else {}
        report.trend_frame = weekly_measures(con, case, current, weeks=weeks, drift=known)
        report.estimate = estimate(con, previous, current, case=case, diagnosis=diagnosis) \
            if case.has("requests") else Estimate(None, "no requests in the case")
        return report

    def header(self) -> Html:
        meta = {"week": self.week, "window (UTC)": _window(self.current),
                "compared with": _window(self.previous), "case database": self.db,
                "generated": self.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
                "toolkit": f"inference-forensics {__version__}"}
        return STYLE + heading(f"Weekly model-serving report {self.week}", 1) + key_values(meta)

    def slo(self) -> Html:
        """Both SLO panels, infrastructure then model quality, each under its heading."""
        return (heading("Infrastructure SLOs", 3) + self.slo_infrastructure()
                + heading("Model-quality SLOs", 3) + self.slo_model())

    def slo_infrastructure(self) -> Html:
        """p99 latency, error + timeout rate and throughput against their targets."""
        frame = self.slo_frame()
        frame = frame[frame["panel"] == "infrastructure"] if not frame.empty else frame
        if frame.empty:
            return note("No requests in this week: infrastructure SLOs not assessed.")
        out = self._slo_table(frame, "Infrastructure SLOs this week")
        fig = self._infrastructure_figure()
        return out + (figure_html(fig, "infrastructure this week") if fig is not None
                      else Html(""))

    def slo_model(self) -> Html:
        """Realised accuracy (Wilson band), ECE, and the label-free estimated accuracy with
        its band and its gap to the realised one."""
        frame = self.slo_frame()
        frame = frame[frame["panel"] == "model quality"] if not frame.empty else frame
        parts = []
        if frame.empty:
            parts.append(note("Realized accuracy and ECE not assessed: no labelled request "
                              "with a score this week."))
        else:
            parts.append(self._slo_table(frame, "Model-quality SLOs this week (realized, "
                                                "from the labels)"))
        est = self.estimate
        rows = pd.DataFrame(est.rows(context=False))
        rows["value"] = rows["value"].str.replace("the incident's", "this week's", regex=False)
        parts.append(table(rows.rename(columns={"value": "this week"}),
                           caption="Estimated accuracy (no labels needed; calibrated on the "
                                   "week before)"))
        fig = estimate_figure(est, f"Estimated vs realized accuracy, {self.week}")
        if fig is not None:
            parts.append(figure_html(fig, "estimated vs realized accuracy"))
            if est.not_estimated_buckets():
                parts.append(note(f"{est.not_estimated_buckets():,} time bucket(s) marked x "
                                  "cannot be estimated (scores outside the reference's "
                                  "support, another model version, or concept drift)."))
        return Html("".join(p.fragment for p in parts))

    def _slo_table(self, frame: pd.DataFrame, caption: str) -> Html:
        if self.diagnosis is None:
            caption += (" (no requests in the week before: this week's own numbers; targets "
                        "derived from the previous week are not assessed)")
        shown = pd.DataFrame({"SLO": frame["SLO"]})
        shown["target"] = [_slo_value(n, v, t) for n, v, t in
                           zip(frame["SLO"], frame["target"], frame["source"], strict=True)]
        shown["source"] = frame["source"]
        shown["this week"] = [_slo_value(n, v) for n, v in
                              zip(frame["SLO"], frame["this week"], strict=True)]
        if frame["band_lo"].notna().any():
            shown["95% band"] = [
                f"{fmt_percent(lo, 1)} – {fmt_percent(hi, 1)}" if not is_missing(lo) else
                missing() for lo, hi in zip(frame["band_lo"], frame["band_hi"], strict=True)]
        if frame["compliance"].notna().any():
            shown["compliance"] = [fmt_percent(v, 1, reason="latency only")
                                   for v in frame["compliance"]]
        shown["met"] = frame["met"].astype(object).to_numpy()
        return table(shown, caption=caption, reasons={"met": "no target"})

    def _infrastructure_figure(self) -> Any:
        """p99 against its SLO, error + timeout rate and throughput per time bucket of the
        week (small multiples sharing the time axis)."""
        latency = self.diagnosis.results.get("infra.latency") if self.diagnosis else None
        if latency is None or latency.timeline.empty:
            return None
        import matplotlib.pyplot as plt

        from toolkit.plotting import WINDOW_COLORS, set_theme

        t = latency.timeline
        t = t[pd.to_datetime(t["bucket_start"], utc=True) >= pd.Timestamp(self.current.start)]
        if t.empty:
            return None
        set_theme()
        fig, axes = plt.subplots(1, 3, figsize=(12, 2.8), sharex=True)
        x = pd.to_datetime(t["bucket_start"], utc=True)
        axes[0].plot(x, t["p99_ms"], color="#4C72B0")
        if not is_missing(latency.slo_ms):
            axes[0].axhline(latency.slo_ms, color=WINDOW_COLORS["incident"], ls="--", lw=1,
                            label=f"SLO {fmt_ms(latency.slo_ms)}")
            axes[0].legend(loc="upper left", fontsize=7)
        axes[0].set_title("p99 latency (ms)")
        failures = t["error_rate"].fillna(0) + t["timeout_rate"].fillna(0)
        axes[1].plot(x, failures, color="#4C72B0")
        axes[1].set_title("errors + timeouts")
        axes[2].plot(x, t["requests"], color="#4C72B0")
        axes[2].set_title("requests per bucket")
        for ax in axes:
            ax.set_xlabel("")
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        fig.tight_layout()
        return fig

    def slo_frame(self) -> pd.DataFrame:
        """One row per SLO: ``SLO``, ``panel`` (``infrastructure`` or ``model quality``),
        ``target``, ``source``, ``this week``, ``band_lo``/``band_hi`` (95% Wilson band of
        the accuracy), ``compliance`` (share of time buckets within the latency SLO) and
        ``met`` (None without a target)."""
        if self.diagnosis is None:
            return self._own_slo_frame()
        meta = self.case.meta
        nan = float("nan")
        rows = []
        latency = self.diagnosis.results.get("infra.latency")
        if latency is not None and not latency.table.empty:
            t = latency.timeline
            week = t[t["bucket_start"] >= pd.Timestamp(self.current.start)]
            ok = (week["p99_ms"] <= latency.slo_ms).mean() if len(week) else nan
            rows.append(_row("latency p99", "infrastructure", latency.slo_ms,
                             latency.slo_source, latency.value("incident", "p99_ms"),
                             compliance=ok, higher=False))
            target = float(meta.get("error_rate_slo", 0.01))
            rate = latency.value("incident", "error_rate") + latency.value("incident",
                                                                           "timeout_rate")
            rows.append(_row("error + timeout rate", "infrastructure", target,
                             "case_meta" if "error_rate_slo" in meta else "default 1%", rate,
                             higher=False))
            rows.append(_row(
                "throughput (requests per hour)", "infrastructure", nan,
                f"no target; the week before: "
                f"{fmt_number(latency.value('baseline', 'requests') / _HOURS, 3)}",
                latency.value("incident", "requests") / _HOURS, higher=True))
        performance = self.diagnosis.results.get("model.performance")
        if performance is not None and not performance.table.empty:
            target = float(meta.get("accuracy_slo", performance.value("baseline", "accuracy")
                                    - 0.02))
            rows.append(_row("accuracy", "model quality", target,
                             "case_meta" if "accuracy_slo" in meta else
                             "previous week - 2 points",
                             performance.value("incident", "accuracy"), higher=True,
                             band=(performance.value("incident", "accuracy_lo"),
                                   performance.value("incident", "accuracy_hi"))))
        calibration = self.diagnosis.results.get("model.calibration")
        if calibration is not None and not calibration.table.empty:
            target = float(meta.get("ece_slo", 0.05))
            rows.append(_row("ECE", "model quality", target,
                             "case_meta" if "ece_slo" in meta else "default 0.05",
                             calibration.value("incident", "ece"), higher=False))
        return pd.DataFrame(rows, columns=_SLO_COLUMNS)

    def generative(self) -> Html:
        """Token-level serving this week against the last (generative endpoints only): TTFT,
        TPOT and goodput, KV-cache pressure, prefix-cache reuse, output length and finish
        reasons, prompt mix; each with its headline numbers and findings."""
        if not any(t.task == "generative" for t in self.case.tasks.values()):
            return note("No generative endpoint in this case: no token-level section.")
        if self.diagnosis is None:
            return note("This week or the week before has no requests: token-level serving "
                        "not compared.")
        parts: list[Html] = []
        for diagnostic_id in _GENERATIVE_IDS:
            result = self.diagnosis.results.get(diagnostic_id)
            if result is None:
                continue
            parts.append(heading(result.title, 4))
            if result.table.empty and result.not_assessed:
                parts.append(note(f"Not assessed: {result.not_assessed[0].reason}."))
                continue
            headline = result.headline()
            if headline:
                parts.append(key_values(headline))
            found = result.findings()
            if found:
                parts.append(items([f"[{f.severity}] {f.summary}" for f in found]))
            parts.append(figure_html(result.plot().figure, result.title))
        return Html("".join(p.fragment for p in parts))

    def drift(self) -> Html:
        result = self.diagnosis.results.get("data.drift") if self.diagnosis else None
        if result is None or result.table.empty:
            return note("Feature drift not assessed (no features, or no data last week).")
        columns = ["feature", "kind", "psi", "js", "wasserstein", "pvalue_adjusted", "drifted"]
        frame = result.table[[c for c in columns if c in result.table]].sort_values(
            "psi", ascending=False)
        shown = "psi" in frame and frame["psi"].notna().any()
        figure = figure_html(self.drift_figure(), "drift per feature") if shown else Html("")
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
            "slo_met": _all_met(slo),
            "estimation": self.estimate.to_dict(),
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
            return pd.DataFrame(columns=_SLO_COLUMNS)
        row = frame.iloc[-1]
        meta = self.case.meta
        nan = float("nan")
        rows = []
        latency = float(meta["latency_slo_ms"]) if "latency_slo_ms" in meta else nan
        rows.append(_row("latency p99", "infrastructure", latency,
                         "case_meta" if "latency_slo_ms" in meta else
                         "not assessed (no previous week)", row["p99_ms"], higher=False))
        rows.append(_row("error + timeout rate", "infrastructure",
                         float(meta.get("error_rate_slo", 0.01)),
                         "case_meta" if "error_rate_slo" in meta else "default 1%",
                         row["failure_rate"], higher=False))
        rows.append(_row("throughput (requests per hour)", "infrastructure", nan,
                         "no target", row["requests"] / _HOURS, higher=True))
        accuracy = float(meta["accuracy_slo"]) if "accuracy_slo" in meta else nan
        band = (nan, nan)
        if not is_missing(row["accuracy"]) and row["labelled"]:
            lo, hi = st.wilson_interval(np.array([round(row["accuracy"] * row["labelled"])]),
                                        np.array([row["labelled"]]))
            band = (float(lo[0]), float(hi[0]))
        rows.append(_row("accuracy", "model quality", accuracy,
                         "case_meta" if "accuracy_slo" in meta else
                         "not assessed (no previous week)", row["accuracy"], higher=True,
                         band=band))
        rows.append(_row(f"ECE ({ECE_BINS} bins)", "model quality",
                         float(meta.get("ece_slo", 0.05)),
                         "case_meta" if "ece_slo" in meta else "default 0.05", row["ece"],
                         higher=False))
        return pd.DataFrame([r for r in rows if not is_missing(r["this week"])],
                            columns=_SLO_COLUMNS)

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
    """Raise :class:`EmptyWindowError` when ``window`` has no requests and no metrics.

    ``con`` is any case source (a DuckDB connection, an ibis DuckDB or pyspark backend): the
    engine lists its tables and runs the two probes."""
    engine = engine_of(con)
    found = 0
    for name in ("requests", "metrics"):
        if engine.has_table(name):
            found += engine.execute(
                f'SELECT count(*) FROM (SELECT 1 FROM "{name}" WHERE ts >= $a AND ts < $b '
                "LIMIT 1)", {"a": window.start, "b": window.end}).fetchall()[0][0]
    if not found:
        raise EmptyWindowError(
            f"No requests or metrics in week {week} ({window}) in {db}: nothing to report.")


#: Hours in an ISO week (throughput is a week's average per hour).
_HOURS = 7 * 24.0
_SLO_COLUMNS = ["SLO", "panel", "target", "source", "this week", "band_lo", "band_hi",
                "compliance", "met"]


def _row(name: str, panel: str, target: float, source: str, value: float, *,
         higher: bool, compliance: float = float("nan"),
         band: tuple[float, float] = (float("nan"), float("nan"))) -> dict[str, Any]:
    """One SLO row; ``met`` is None when the target or the value is missing."""
    met = None if is_missing(target) or is_missing(value) else bool(
        value >= target if higher else value <= target)
    return {"SLO": name, "panel": panel, "target": target, "source": source,
            "this week": value, "band_lo": band[0], "band_hi": band[1],
            "compliance": compliance, "met": met}


def _open_source(db: Any, engine: str, tables: str) -> tuple[Any, str]:
    """The case source for ``engine`` and how the header names it (the case file, or the
    lake's tables)."""
    if engine == "spark":
        if str(db or ""):
            raise InvalidParameterError("engine='spark' reads tables, not db: give one of them.")
        spec = parse_tables_spec(tables)
        lake = connect_lake(spec, conf={"spark.ui.showConsoleProgress": "false"})
        return lake, "lake: " + ", ".join(f"{k}={v}" for k, v in spec.items())
    if engine != "duckdb":
        raise InvalidParameterError(f"engine must be duckdb or spark; got {engine!r}.")
    if tables:
        raise InvalidParameterError("tables goes with engine='spark' (a DuckDB case is one "
                                    "file: db).")
    return connect(Path(db), read_only=True), str(db)


def _window(window: Window) -> str:
    return f"{fmt_time(window.start)} to {fmt_time(window.end)}"


def _slo_value(name: str, value: Any, source: str = "") -> str:
    """An SLO target or value in its unit."""
    if is_missing(value):
        if source.startswith("no target"):
            return missing()
        return missing("no previous week to derive it from")
    if name.startswith("throughput"):
        return fmt_number(value, 3)
    if name.startswith("latency"):
        return fmt_ms(value)
    if name.startswith("ECE"):
        return fmt_number(value, 3)
    return fmt_percent(value)


def _all_met(slo: pd.DataFrame) -> bool | None:
    """Whether every SLO with a target is met (None when none has one)."""
    judged = [bool(m) for m in slo["met"] if m is not None and not is_missing(m)] \
        if not slo.empty else []
    return all(judged) if judged else None


def _change(measure: str, before: float, after: float) -> str:
    """The change of ``measure`` in its unit (points for shares, ms for latencies)."""
    unit = fmt_value(0.5, measure)
    kind = "share" if unit.endswith("%") else "ms" if unit.endswith(" ms") else "number"
    return fmt_change(before, after, kind)
