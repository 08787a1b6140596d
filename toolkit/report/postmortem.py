"""The postmortem: every section of the notebook, computed from one classification.

The template (``notebooks/templates/postmortem.py``) is thin: each cell calls one method of
:class:`Postmortem`. Sections follow the best postmortem practice (Google SRE, PagerDuty,
Atlassian, plus the ML additions; see DESIGN section 5). A section whose data is missing says so
in one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from toolkit._version import __version__
from toolkit.classify import Classification, classify_incident
from toolkit.classify.api import ANCHORED, FOCUSED, NO_CHANGE_FOUND
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view
from toolkit.diagnose._format import times
from toolkit.errors import InvalidParameterError
from toolkit.report import distributions, figures
from toolkit.report.estimate import Estimate, estimate, estimate_figure, label_gap
from toolkit.report.events import bursts, select_bursts
from toolkit.report.format import (
    fmt_change,
    fmt_count,
    fmt_ms,
    fmt_number,
    fmt_percent,
    fmt_time,
    fmt_value,
    is_missing,
)
from toolkit.report.html import (
    Html,
    escape,
    figure_html,
    heading,
    items,
    key_values,
    note,
    paragraph,
    table,
)
from toolkit.report.slices import slice_actions, slices_section
from toolkit.store import connect
from toolkit.store.lake import LakeSource, connect_lake, parse_tables_spec

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["Postmortem", "MODE_DESCRIPTIONS", "STYLE"]

#: What each failure mode means, for the summary and the root-cause section.
MODE_DESCRIPTIONS = {
    "covariate_shift": "the input distribution moved away from what the model was built for",
    "schema_mismatch": "an upstream change removed, renamed or retyped model inputs",
    "null_injection": "null or default values flooded one or more inputs",
    "unit_change": "an input started arriving in a different unit",
    "concept_drift": "the relation between inputs and outcomes changed while inputs stayed put",
    "calibration_collapse": "a new model artifact kept its accuracy but lost its calibration",
    "bad_release": "a new model version is less accurate than the one it replaced",
    "adversarial_inputs": "a narrow source sent out-of-distribution inputs",
    "memory_exhaustion": "replicas ran out of memory above a concurrency level",
    "memory_leak": "memory grew steadily on replicas until they restarted",
    "cold_start": "requests served by freshly started replicas were slow",
    "accelerator_fault": "one host or accelerator failed or slowed down",
    "version_skew": "the model and preprocessing versions in production were never released "
                    "together",
    "api_contract_mismatch": "a client version broke the API contract",
    "timeout_misconfiguration": "the client timeout was set below the server's latency tail",
    "cache_staleness": "the prediction cache kept serving the previous model's outputs",
    "prompt_shift": "the prompt population moved (lengths, tenants, adapters) with no release",
    "kv_cache_exhaustion": "the KV cache filled up: requests queued and were preempted, time "
                           "to first token exploded",
    "prefill_interference": "short prompts waited behind the prefill of very long ones",
    "prefix_cache_regression": "a client or template change broke prompt-prefix reuse, so "
                               "prefill work and time to first token rose",
    "sampling_config_drift": "the effective sampling parameters changed with a deploy and the "
                             "outputs followed",
    "template_mismatch": "the model was served with a chat template or tokenizer it was not "
                         "released with",
    "none": "no incident pattern was found",
    "undetermined": "the evidence does not decide between pathways",
}

#: Evidence keys of findings that say where a slow change began, before it became visible (the
#: finding's onset), and how that was measured. When one dates the verdict, Detection says so:
#: otherwise the onset reads hours before the first signal that moved, unexplained.
SLOW_STARTS = {
    "climb_began": "a broken line (flat, then rising) fitted to each leaking host's memory "
                   "before its first OOM kill or reset, the median over hosts",
    "ramp_began": "a broken line (flat, then falling) fitted to the accuracy per time bucket, "
                  "weighted by the labels in each, up to where the fall ended",
    "fall_from_window_start": "the labels cannot place the fall after the start of the "
                              "incident window given: a linear fall of accuracy from there "
                              "explains them about as well as the later step",
}

#: Diagnostic sections: (diagnostic id, title, plot keyword arguments).
DIAGNOSTIC_SECTIONS = (
    ("data.drift", "Data drift over time", {"kind": "heatmap"}),
    ("data.quality", "Input data quality", {}),
    ("data.units", "Unit changes", {}),
    ("data.permutation", "Feature positions", {}),
    ("model.performance", "Accuracy and precision over time", {}),
    ("model.calibration", "Reliability: baseline vs incident", {}),
    ("model.prediction_shift", "Model outputs", {}),
    ("model.ood", "Out-of-distribution inputs", {}),
    ("infra.latency", "Latency percentiles and SLO", {}),
    ("infra.capacity", "Latency against concurrency", {}),
    ("infra.memory", "Memory per host against its limit", {}),
    ("infra.cold_start", "Cold starts", {}),
    ("infra.hosts", "Hosts", {}),
    ("infra.accelerators", "GPU utilisation and GPU error alerts", {}),
    ("integration.versions", "Version matrix", {}),
    ("integration.client_errors", "Errors by client version", {}),
    ("integration.timeouts", "Client timeout against the latency tail", {}),
    ("integration.cache", "Cache staleness over time", {}),
)

#: Token-level sections of a generative endpoint (DESIGN 3a), in reading order: (diagnostic id,
#: title). Shown by :meth:`Postmortem.generative` only when the case serves one.
GENERATIVE_SECTIONS = (
    ("infra.token_latency", "Time to first token, time per output token and goodput"),
    ("infra.kv_cache", "KV-cache pressure, waiting requests and preemptions"),
    ("infra.prefill_interference", "Short prompts behind long prefills"),
    ("infra.context_errors", "Errors against prompt length"),
    ("integration.prefix_cache", "Prefix-cache hit share"),
    ("integration.generation", "Output length, finish reasons and sampling parameters"),
    ("data.prompt_mix", "Prompt length and tenant / adapter mix"),
    ("model.feedback", "Feedback per model version"),
)

#: Injected once at the top of the report: readable tables and notes.
STYLE = Html("""<style>
.jp-RenderedHTMLCommon table.forensics-table {border-collapse: collapse; font-size: 0.85em;
  margin: 0.4em 0 1em 0; table-layout: auto;}
.jp-RenderedHTMLCommon table.forensics-table th,
.jp-RenderedHTMLCommon table.forensics-table td {padding: 3px 10px;
  border-bottom: 1px solid #e3e3e8; text-align: left !important; vertical-align: top;
  max-width: 48em;}
.jp-RenderedHTMLCommon table.forensics-table th {background: #f4f4f6;}
.jp-RenderedHTMLCommon table.forensics-table td.num {text-align: right !important;
  font-variant-numeric: tabular-nums;}
.jp-RenderedHTMLCommon table.forensics-kv th {text-align: left !important; padding-right: 1.2em;
  color: #444; font-weight: 600;}
.jp-RenderedHTMLCommon table.forensics-kv td {text-align: left !important;}
.muted {color: #666;}
.verdict {font-size: 1.1em; line-height: 1.5; padding: 0.6em 0.9em;
  border-left: 5px solid #8172B3; background: #f7f6fb; max-width: 60em;}
.caption {font-weight: 600; margin: 0.8em 0 0.2em 0;}
img.forensics-figure {display: block; margin: 0.4em 0 0.8em 0;}
</style>""")


@dataclass
class Postmortem:
    """Sections of a postmortem for one incident in one case.

    Parameters
    ----------
    result
        The classification (with its diagnosis).
    case
        A view of the case (events, loads, schema facts).
    db
        Path of the case database (for the appendix).
    incident_id
        Free-form id (e.g. ``INC-042``).
    tables
        A case in a lake: canonical table -> location (the provenance appendix lists them; a
        lake case has no ``loads`` table). Empty for a DuckDB case.
    """

    result: Classification
    case: CaseView
    db: str = ""
    incident_id: str = "incident"
    title: str = ""
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    tables: dict[str, str] = field(default_factory=dict)
    _estimate: Estimate | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(
        cls,
        db: str | os.PathLike[str],
        *,
        incident: str | None = None,
        baseline: str | None = None,
        incident_id: str = "incident",
        title: str = "",
        engine: str = "duckdb",
        tables: str = "",
    ) -> Postmortem:
        """Open the case read-only and classify the incident (windows detected when omitted).

        ``engine="duckdb"`` reads the case file ``db``; ``engine="spark"`` reads the canonical
        tables where they live (``tables``: ``requests=LOCATION,labels=LOCATION,...``, see
        :func:`toolkit.store.lake.connect_lake`) and ``db`` must be empty.

        Raises
        ------
        InvalidParameterError
            An unknown engine, ``db`` with spark, no ``tables`` with spark or ``tables`` with
            duckdb, or a malformed ``tables``.
        """
        if engine == "spark":
            if str(db or ""):
                raise InvalidParameterError("engine='spark' reads tables, not db: give one of "
                                            "them.")
            spec = parse_tables_spec(tables)
            lake = connect_lake(spec, conf={"spark.ui.showConsoleProgress": "false"})
            case = case_view(lake)
            result = classify_incident(lake, incident=incident or None,
                                       baseline=baseline or None, case=case)
            return cls(result, case, "", incident_id, title, tables=spec)
        if engine != "duckdb":
            raise InvalidParameterError(f"engine must be duckdb or spark; got {engine!r}.")
        if tables:
            raise InvalidParameterError("tables goes with engine='spark' (a DuckDB case is one "
                                        "file: db).")
        path = Path(db)
        con = connect(path, read_only=True)
        case = case_view(con)
        result = classify_incident(con, incident=incident or None, baseline=baseline or None,
                                   case=case)
        return cls(result, case, str(path), incident_id, title)

    @classmethod
    def from_connection(cls, con: duckdb.DuckDBPyConnection, *, incident: str | None = None,
                        baseline: str | None = None, incident_id: str = "incident"
                        ) -> Postmortem:
        case = case_view(con)
        result = classify_incident(con, incident=incident, baseline=baseline, case=case)
        return cls(result, case, "", incident_id)

    # ------------------------------------------------------------------ sections
    def header(self) -> Html:
        """Title, metadata and the style of the report."""
        title = self.title or f"Postmortem {self.incident_id}: {self._mode_title()}"
        meta = {
            "incident id": self.incident_id,
            "status": "draft (generated; to be reviewed by the author)",
            "incident window (UTC)": _window_text(self.result.incident),
            "estimated onset (UTC)": self._onset_text(),
            "baseline window (UTC)": _window_text(self.result.baseline),
            "windows": self.result.window_source,
            "case database": self.db or (
                f"none: {len(self.tables)} lake table(s) read on {self.case.engine.name} "
                "(see the provenance appendix)" if self.tables else "(in memory)"),
            "generated": self.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
            "toolkit": f"inference-forensics {__version__}",
            "authors / owner": "to fill in",
        }
        return STYLE + heading(title, 1) + key_values(meta)

    def summary(self) -> Html:
        """Two to five sentences: what, when, the evidence that matters for the failure mode,
        and the impact."""
        v = self.result.verdict
        if v.pathway in ("none", "undetermined"):
            verdict = (f"The evidence points to no single cause ({v.pathway}, confidence "
                       f"{v.confidence:.2f}).")
        else:
            verdict = (f"Classified as {v.pathway} / {v.failure_mode} (confidence "
                       f"{v.confidence:.2f}): {MODE_DESCRIPTIONS.get(v.failure_mode, '')}.")
        lines = [
            f"Between {_fmt(self.result.incident.start)} and {_fmt(self.result.incident.end)} "
            f"UTC, onset at {_fmt(v.onset)}.",
            verdict,
        ]
        if self._undated():
            # no incident, or nothing dated one: the window is only what was compared (varied
            # tuning none s3 read "onset at" the start of a fallback window)
            fallback = (", a fallback: the detector found no change" if str(
                self.result.window_source).startswith(NO_CHANGE_FOUND) else "")
            found = "No incident found" if v.pathway == "none" else "No onset dated"
            lines[0] = (f"{found} in the window analysed, "
                        f"{_fmt(self.result.incident.start)} to "
                        f"{_fmt(self.result.incident.end)} UTC{fallback}.")
        before = self.onset_before_window()
        if before is not None:
            lines.insert(1, before)
        small = self._small_windows()
        if small:
            # a window of a few requests: say it is too small to judge, before the verdict
            # with a large enough incident window, the diagnostics that judge its requests
            # among themselves (hosts, concurrency, timeouts) still ran
            basis = "metrics and events alone" if any(
                name == "incident" for name, _ in small) else (
                "metrics, events and the incident's requests among themselves")
            rest = ", so the verdict abstains." if v.pathway == "undetermined" else \
                f"; the {'none ' if v.pathway == 'none' else ''}verdict rests on {basis}."
            lines.insert(1, f"Too few requests to judge: {_small_text(small)}. The "
                            f"diagnostics that compare requests did not run{rest}")
            if v.pathway == "undetermined":
                lines[lines.index(verdict)] = ("No cause could be weighed (undetermined): no "
                                               "comparison of requests was made.")
        lines.extend(self._key_evidence())
        impact = self._impact_numbers()
        if impact:
            lines.append("Impact: " + "; ".join(impact) + ".")
        return Html(f"<div class='verdict'>{'<br>'.join(escape(x) for x in lines)}</div>")

    def impact(self) -> Html:
        """Traffic and failures per hour, error rates, latency, accuracy and calibration, and
        the affected slices. Counts are rates per hour: the windows differ in length."""
        rows = []
        diagnosis = self.result.diagnosis
        hours = {w: _hours(getattr(self.result, w)) for w in ("baseline", "incident")}
        latency = diagnosis.results.get("infra.latency")
        if latency is not None and not latency.table.empty:
            per_hour = {w: _safe_div(latency.value(w, "requests"), hours[w])
                        for w in hours}
            failed = {w: _safe_div(latency.value(w, "requests") * (
                _nan0(latency.value(w, "error_rate")) + _nan0(latency.value(w, "timeout_rate"))),
                hours[w]) for w in hours}
            rows.append(("requests per hour", "rate", per_hour["baseline"],
                         per_hour["incident"]))
            rows.append(("failed requests per hour", "rate", failed["baseline"],
                         failed["incident"]))
            for column, label in (("error_rate", "error rate"), ("timeout_rate", "timeout rate")):
                rows.append((label, "share", latency.value("baseline", column),
                             latency.value("incident", column)))
            for column, label in (("p50_ms", "p50 latency"), ("p99_ms", "p99 latency")):
                rows.append((label, "ms", latency.value("baseline", column),
                             latency.value("incident", column)))
        performance = diagnosis.results.get("model.performance")
        if performance is not None and not performance.table.empty:
            for column in ("accuracy", "precision", "recall", "coverage"):
                rows.append((column if column != "coverage" else "label coverage", "share",
                             performance.value("baseline", column),
                             performance.value("incident", column)))
            for column, label in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC")):
                if column in performance.table:
                    rows.append((label, "auc", performance.value("baseline", column),
                                 performance.value("incident", column)))
        calibration = diagnosis.results.get("model.calibration")
        if calibration is not None and not calibration.table.empty:
            rows.append(("ECE", "number", calibration.value("baseline", "ece"),
                         calibration.value("incident", "ece")))
            rows.append((f"wrong with confidence >= {getattr(calibration, 'threshold', 0.85)}",
                         "share", calibration.value("baseline", "confident_error_share"),
                         calibration.value("incident", "confident_error_share")))
        small = self._small_windows()
        if not rows and small:
            return note(f"Impact not measured: {_small_text(small)}; rates and percentages of "
                        "so few requests would mislead.")
        if not rows:
            return note("No latency, error or quality data to measure the impact.")
        frame = pd.DataFrame([
            {"measure": label, "baseline": _impact_value(kind, b),
             "incident": _impact_value(kind, i), "change": _impact_change(kind, b, i)}
            for label, kind, b, i in rows])
        caption = (f"Impact: baseline ({fmt_number(hours['baseline'], 3)} h) vs incident "
                   f"({fmt_number(hours['incident'], 3)} h); counts per hour")
        out = table(frame, caption=caption)
        if small:
            text = _small_text(small)
            out = out + note(f"{text[0].upper()}{text[1:]}: the figures above come from "
                             "metrics, not from the requests.")
        return out

    def affected_slices(self) -> Html:
        """The slices that fail more than the rest of the traffic (``case.segments``): a
        table, the figure, the actions for each slice's role, what was not tested; then the
        slices other diagnostics name."""
        segments = self.result.diagnosis.results.get("case.segments")
        out = slices_section(segments, self.result.serving_mode) if segments is not None \
            else note("Affected slices: case.segments was not run.")
        others = self._affected_slices()
        return out + others if others is not None else out

    def timeline(self) -> Html:
        """Events and detected change points in UTC, around the incident.

        Bursts of events of one kind (hundreds of OOM kills in minutes) are one row with a
        count; the events near the onset and the largest bursts are listed, the rest counted.
        """
        events = self.case.events
        start = pd.Timestamp(self.result.baseline.end) - pd.Timedelta(hours=24)
        end = pd.Timestamp(self.result.incident.end)
        onset = pd.Timestamp(self.result.onset)
        rows = []
        rest = pd.DataFrame()
        if not events.empty:
            shown = events[(events["ts"] >= start) & (events["ts"] <= end)]
            marks = bursts(shown, figures.burst_gap(end - start))
            near = max((end - pd.Timestamp(self.result.incident.start)) / 20,
                       pd.Timedelta(minutes=30))
            kept, rest = select_bursts(marks, onset, near=near)
            for row in kept.itertuples():
                what = " ".join(str(x) for x in (row.kind, row.artifact, row.version)
                                if x is not None and not pd.isna(x))
                if row.count > 1:
                    what += f" x{row.count:,}"
                detail = _detail_text(row.detail)
                if row.count > 1:
                    span = f"until {pd.Timestamp(row.last).strftime('%H:%M:%S')}"
                    hosts = f"{row.hosts:,} host(s)" if row.hosts > 1 else ""
                    detail = ", ".join(x for x in (span, hosts, detail) if x)
                rows.append((row.first, "event", what, row.host, _clip(detail)))
        for finding in self.result.diagnosis.findings():
            if finding.onset is not None and finding.severity in ("medium", "high") and \
                    start <= pd.Timestamp(finding.onset) <= end:
                rows.append((pd.Timestamp(finding.onset), "signal change", finding.id, None,
                             _clip(finding.summary)))
        if self.result.detected is not None:
            for change in self.result.detected.changes:
                if not start <= pd.Timestamp(change.at) <= end:
                    continue
                rows.append((pd.Timestamp(change.at), "change point", change.signal, None,
                             f"strength {fmt_number(change.strength, 2)}"))
        if not self._undated():
            # a report with no onset draws none: a none verdict's "onset" is only the
            # window's start (varied tuning none s3 listed "estimated onset: none" there)
            rows.append((onset, "onset", "estimated onset", None, self.result.failure_mode))
        rows.append((pd.Timestamp(self.result.incident.start), "window", "incident start",
                     None, self.result.window_source))
        frame = pd.DataFrame(rows, columns=["time (UTC)", "type", "what", "host", "detail"])
        frame = frame.sort_values("time (UTC)", kind="stable")
        frame["time (UTC)"] = frame["time (UTC)"].map(lambda t: pd.Timestamp(t).strftime(
            "%Y\u2011%m\u2011%d\u00a0%H:%M:%S"))  # non-breaking hyphens and space: one line
        out = table(frame, max_rows=60, caption="Timeline (UTC): events, signal changes, "
                                                "change points")
        if not rest.empty:
            kinds = rest.groupby("kind")["count"].sum().sort_values(ascending=False)
            out = out + note(f"{int(rest['count'].sum()):,} more events in "
                             f"{len(rest):,} bursts not listed: " + ", ".join(
                                 f"{k} x{n:,}" for k, n in kinds.items()) + ".")
        return out

    def timeline_figure(self) -> Html:
        """The timeline figure, and under it why the onset precedes the window's start when
        it does (:meth:`onset_before_window`)."""
        fig = figures.incident_timeline(self.result, self.case.events,
                                        dated=not self._undated())
        small = self._small_windows()
        quiet = (f"No timeline: the diagnostics that draw one did not run ({_small_text(small)})."
                 if small else "No timeline signals (latency, accuracy, drift, time to first "
                 "token, prompt length) in this case.")
        out = figure_html(fig, "Incident timeline") if fig is not None else note(quiet)
        before = self.onset_before_window()
        return out + note(before) if before is not None else out

    def onset_before_window(self) -> str | None:
        """Why the estimated onset lies before the incident window's start, in one or two
        sentences; ``None`` when it does not (by a minute or more).

        The window and the onset come from different evidence: the window starts where the
        scan that placed it dated its first change (``result.detected``), or where it was
        given, or at a fallback; the onset is the verdict's (a logged change the rules take
        as the failure mode's start, a slow change's start, or a finding of the diagnosis).
        Varied tuning bad_release s21 (30,000 rows): the onset is the model deploy at 16:56,
        the window, anchored at that deploy, opens at its first signal at 17:51; the timeline
        drew the onset 55 min before the shaded window with no word why.
        """
        onset = pd.Timestamp(self.result.onset)
        start = pd.Timestamp(self.result.incident.start)
        if start - onset < pd.Timedelta(minutes=1) or self._undated():
            return None
        text = (f"The estimated onset ({_fmt(onset)} UTC) precedes the incident window's start "
                f"({_fmt(start)} UTC) by {fmt_value(start - onset)}: the onset is "
                f"{self._onset_dated_by()}, while {self._window_opened_by()}. The diagnostics "
                f"compare the window with the baseline, so their figures leave out the first "
                f"{fmt_value(start - onset)} after the onset.")
        base = self.result.baseline
        if pd.Timestamp(base.start) <= onset < pd.Timestamp(base.end):
            text += (f" The baseline window ends {fmt_value(pd.Timestamp(base.end) - onset)} "
                     "after the onset: it holds the incident's beginning, which weakens every "
                     "comparison against it.")
        return text

    def detection(self) -> Html:
        """What changed first, and prompts for how the incident was actually detected.

        Times are told against the estimated onset, or, when the report has none to state
        (:meth:`_undated`: a ``none`` verdict, a fallback window), against the incident
        window's start: a none verdict read "after the estimated onset" (varied tuning none s3).
        """
        mark = "the incident window's start" if self._undated() else "the estimated onset"
        findings = [f for f in self.result.diagnosis.findings() if f.onset is not None]
        first = min(findings, key=lambda f: f.onset) if findings else None
        parts = []
        if first is not None:
            lag = (pd.Timestamp(first.onset) - pd.Timestamp(self.result.onset))
            if lag < -self._near():
                near = [f for f in findings
                        if pd.Timestamp(f.onset) >= pd.Timestamp(self.result.onset) - self._near()]
                first = min(near, key=lambda f: f.onset) if near else first
                lag = (pd.Timestamp(first.onset) - pd.Timestamp(self.result.onset))
            parts.append(paragraph(
                f"The first signal to move was {first.id} at {_fmt(first.onset)} UTC "
                f"({_lag_text(lag)} {mark}): {first.summary}"))
        slow = self._slow_start()
        if slow is not None:
            parts.append(paragraph(slow))
        latency = self.result.diagnosis.results.get("infra.latency")
        if latency is not None and not latency.breaches.empty:
            breaches = latency.breaches
            since = pd.Timestamp(self.result.onset) - self._near()
            relevant = breaches[pd.to_datetime(breaches["end"], utc=True) > since]
            earlier = len(breaches) - len(relevant)
            slo = f"The latency SLO ({fmt_ms(latency.slo_ms)}, {latency.slo_source})"
            if len(relevant):
                breach = relevant.iloc[0]
                began = pd.Timestamp(breach["start"])
                onset = pd.Timestamp(self.result.onset)
                # a breach window that began before the onset and lasted into it is not
                # "after the onset" (varied tuning memory_exhaustion s11: a breach from 09:00,
                # onset 11:44, read "first breached after the onset at 09:00")
                ended = pd.Timestamp(breach["end"])
                if began >= onset:
                    when = f"first breached after {mark} at {_fmt(began)} UTC"
                elif ended > onset:
                    when = (f"already breached from {_fmt(began)} UTC, "
                            f"{fmt_value(onset - began)} before {mark}, into it")
                else:
                    when = (f"breached from {_fmt(began)} to {_fmt(ended)} UTC, just before "
                            f"{mark}")
                text = (f"{slo} was {when} (worst p99 {fmt_ms(breach['worst_p99_ms'])}); "
                        f"{len(relevant):,} breach window(s) from then on.")
            else:
                text = f"{slo} was not breached near or after {mark}."
            if earlier:
                text += (f" {earlier:,} earlier breach window(s), before {mark}, are not "
                         "part of this incident.")
            parts.append(paragraph(text))
        parts.append(items([
            "How was the incident detected (alert, user report, dashboard)? When?",
            "Which monitor would have caught it earlier, and how could time to detect be "
            "halved?",
            "Was quality (accuracy, calibration) monitored, or only infrastructure SLOs?",
        ]))
        return Html("".join(p.fragment for p in parts))

    def classification(self) -> Html:
        """Verdict, rationale (the rules that fired), alternatives and evidence."""
        v = self.result.verdict
        out = key_values({"pathway": v.pathway, "failure mode": v.failure_mode,
                          "confidence": round(v.confidence, 3),
                          "serving mode": self._serving_mode_text()})
        # a rule's weight signed once: "concept_drift -0.8", never "+-0.8" (varied tuning
        # bad_release s21)
        hits = pd.DataFrame([{"rule": h.name, "adds": ", ".join(
            f"{m} {w:+.1f}" for m, w in h.add.items()), "findings": ", ".join(h.findings)}
            for h in v.hits])
        small = self._small_windows()
        quiet = (f"No rule fired: the windows were not compared ({_small_text(small)})."
                 if small else "No rule fired: no finding departs from the baseline.")
        out = out + table(hits, caption="Rationale: the rules that fired") if not hits.empty \
            else out + note(quiet)
        alternatives = pd.DataFrame(list(v.alternatives))
        if not alternatives.empty and not v.hits:
            # with no rule fired, the "alternatives" are the rule table's priors (four data
            # modes at 0.0277 on a window of 11 requests): nothing was weighed
            out = out + note("Alternatives: none weighed (no rule fired; every failure mode "
                             "holds its prior probability).")
        elif not alternatives.empty:
            out = out + table(alternatives, caption="Alternatives considered")
        findings = self.result.diagnosis.to_frame()
        if not findings.empty:
            findings = findings[["severity", "id", "pathway", "summary", "diagnostic"]]
            out = out + table(findings, caption="Evidence: findings of the diagnostics")
        gaps = self.result.diagnosis.not_assessed()
        if gaps:
            out = out + table(pd.DataFrame([g.to_dict() for g in gaps]),
                              caption="Not assessed")
        return out

    def pathway_figure(self) -> Html:
        """The pathway probabilities, with what they mean for this verdict.

        A decided verdict: each pathway's probability given an incident, and how the
        verdict's confidence relates to it. ``none`` or ``undetermined``: the no-incident share
        beside each pathway's, as the verdict compared them (:func:`figures.verdict_scores`),
        with the reason no cause was decided; they were drawn as a ranking of a found cause
        (varied tuning none s3: infrastructure 0.30 ahead, no incident at 0.54 not shown). No
        rule fired (every probability the rule table's prior), or windows too small to
        compare: no chart, one line why.
        """
        from toolkit.classify.rules import load_rules

        v = self.result.verdict
        small = self._small_windows()
        if v.pathway not in ("none", "undetermined"):
            p_none = float(v.mode_scores.get("none", 0.0))
            share = v.scores.get(v.pathway)
            text = ("Each bar is a pathway's probability given that there is an incident (the "
                    "four add to 1).")
            if share is not None and p_none >= 0.005:
                text += (f" The evidence gave no incident {p_none:.2f}; with that counted in, "
                         f"{v.pathway}'s is {v.confidence:.2f}, the verdict's confidence.")
            return figure_html(figures.pathway_scores(self.result), "Pathway scores") + \
                note(text)
        if small and not v.hits:
            return note(f"No pathway chart: no rule fired ({_small_text(small)}), so every "
                        "probability is the rule table's prior, not evidence.")
        if not v.hits:
            return note("No pathway chart: no rule fired, so every probability is the rule "
                        "table's prior, not evidence.")
        scoring = load_rules().scoring
        needed = float(scoring.get("min_confidence", 0.5))
        margin = float(scoring.get("min_margin", 0.15))
        shares = figures.undecided_shares(self.result)
        ranked = sorted(((p, x) for p, x in shares.items() if p != "no incident"),
                        key=lambda kv: -kv[1])
        (first, top), (second, runner) = ranked[0], ranked[1]
        p_none = shares["no incident"]
        if v.pathway == "none":
            why = (f"Verdict none: no incident ({p_none:.2f}) weighs at least as much as any "
                   f"pathway (the largest, {first}, {top:.2f}).")
        elif p_none >= top:
            why = (f"Verdict undetermined: no incident ({p_none:.2f}) weighs as much as any "
                   f"pathway, but too little could be examined to call the case healthy.")
        elif top < needed:
            why = (f"Verdict undetermined: the leading pathway, {first}, has {top:.2f}, below "
                   f"the {needed:g} a verdict needs.")
        elif top - runner < margin:
            why = (f"Verdict undetermined: the leading pathway, {first} ({top:.2f}), is "
                   f"{top - runner:.2f} ahead of {second} ({runner:.2f}); a verdict needs a "
                   f"lead of {margin:g}.")
        else:  # not from the scores (another rule table, or an abstention afterwards)
            why = (f"Verdict undetermined, though {first} ({top:.2f}) leads {second} "
                   f"({runner:.2f}): the classifier abstained for a reason other than these "
                   "scores (see Not assessed below).")
        text = (why + " The bars are the shares the verdict compared (no incident and each "
                "pathway, adding to 1), not a ranking of a found cause.")
        return figure_html(figures.verdict_scores(self.result, needed), "Verdict scores") + \
            note(text)

    def root_cause(self) -> Html:
        """Root cause (what must change) versus trigger (what set it off), to confirm."""
        v = self.result.verdict
        trigger = self._trigger()
        if trigger:
            trigger_text = f"Trigger: {trigger}"
        elif v.pathway == "none":
            trigger_text = "Trigger: none looked for: no incident was found, so no onset is dated."
        elif self._undated():
            trigger_text = ("Trigger: no onset is dated, so no logged change could be matched "
                            "to one; look for deploys, rollbacks or configuration changes in "
                            "the incident window.")
        else:
            trigger_text = ("Trigger: no deploy, rollback or configuration change was logged "
                            "near the onset; look for upstream or traffic changes.")
        parts = [
            paragraph(f"Root cause (to confirm): {MODE_DESCRIPTIONS.get(v.failure_mode, '')}."),
            paragraph(trigger_text),
            items(["Why did it happen? (five whys, starting from the trigger)",
                   "What made it worse or slower to detect (contributing factors)?",
                   "Was a fix for this class of incident already on the backlog?"]),
        ]
        return Html("".join(p.fragment for p in parts))

    def diagnostic(self, diagnostic_id: str) -> Html:
        """The figure of one diagnostic, or one line saying why it has no data."""
        result = self.result.diagnosis.results.get(diagnostic_id)
        if result is None:
            return note(f"{diagnostic_id}: not run.")
        if result.table.empty and result.not_assessed:
            return note(f"{result.title}: not assessed ({result.not_assessed[0].reason}).")
        return figure_html(self.diagnostic_figure(diagnostic_id), result.title)

    def diagnostic_figure(self, diagnostic_id: str) -> Figure:
        """The figure the report shows for one diagnostic (polished by ``figure_html``).

        The score distribution is drawn here by bin position (see
        :func:`figures.score_distribution`); the memory chart shows the series its finding is
        about (GPU memory when the finding is about GPU memory); host outliers are marked in
        the outlier colour, not the incident's red.
        """
        result = self.result.diagnosis.results[diagnostic_id]
        kwargs = dict(next((k for i, _, k in DIAGNOSTIC_SECTIONS if i == diagnostic_id), {}))
        if diagnostic_id == "model.prediction_shift":
            fig = figures.score_distribution(result)
            if fig is not None:
                return fig
        if diagnostic_id == "infra.memory":
            kinds = [f.evidence.get("kind") for f in result.findings()
                     if f.evidence.get("kind") in ("memory", "gpu")]
            if kinds:
                kwargs["kind"] = kinds[0]
        if diagnostic_id == "model.calibration" and not result.reliability_bins.empty:
            return distributions.reliability_with_counts(result)
        ax = result.plot(**kwargs)
        if diagnostic_id == "infra.memory" and ax.get_legend() is not None:
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=7)  # beside the plot, off the lines and the OOM marks
        if diagnostic_id == "infra.hosts":
            figures.recolor_outliers(ax)
        return figures.mark_lone_points(ax.figure)

    @property
    def estimate(self) -> Estimate:
        """The label-free estimate of the incident's accuracy (computed once, guarded: a
        failure or an abstention is its ``reason``)."""
        if self._estimate is None:
            self._estimate = estimate(getattr(self.case, "con", None), self.result.baseline,
                                      self.result.incident, case=self.case,
                                      diagnosis=self.result.diagnosis)
        return self._estimate

    def estimated_accuracy(self) -> Html:
        """Estimated (label-free) against realised accuracy, when the incident's labels are
        missing or delayed; one line otherwise."""
        gap = label_gap(self.result.diagnosis.results.get("model.performance"))
        if gap is None:
            return note("Labels cover the incident window and arrived on time: the realized "
                        "accuracy above needs no label-free estimate.")
        est = self.estimate
        if est.reason and not est.has_table:
            return note(f"Label-free estimate of the accuracy ({gap}): not assessed: "
                        f"{est.reason}.")
        parts = [paragraph(
            f"Labels are missing or delayed in the incident window ({gap}). The accuracy "
            f"estimated without them ({est.method_name}; fitted to the baseline's labels)"
            " stands in for them; an estimated drop is weaker evidence than a realized one.")]
        fig = estimate_figure(est, "Estimated vs realized accuracy")
        if fig is not None:
            parts.append(figure_html(fig, "Estimated vs realized accuracy"))
        frame = pd.DataFrame(est.rows())
        parts.append(table(frame.rename(columns={"value": "incident"}),
                           caption="Label-free estimate of the incident's accuracy"))
        return Html("".join(p.fragment for p in parts))

    def drift_distributions(self) -> Html:
        """Reference vs current distributions of the most drifted features."""
        drift = self.result.diagnosis.results.get("data.drift")
        frame = distributions.feature_distributions(self.case.con, self.case, drift)
        fig = distributions.distributions_figure(frame)
        if fig is None:
            return note("No drifted feature to show.")
        return figure_html(fig, "Drifted features: reference vs current")

    def task_details(self) -> Html:
        """What the model sections cannot show for every task: for a multiclass endpoint, where
        each true class's rows went (the confusion change, heatmap and largest moves); for a
        regression endpoint, the residual distribution per window. One line otherwise. A
        multiclass endpoint logging per-class ``scores`` also gets its reliability diagram per
        class (the classes whose calibration moved most first)."""
        from toolkit.report.tasks import (
            class_reliability_figure,
            confusion_change_figure,
            residuals_figure,
        )

        task = self.case.task.task
        results = self.result.diagnosis.results
        if task == "multiclass":
            performance = results.get("model.performance")
            fig = confusion_change_figure(performance) if performance is not None else None
            if fig is None:
                return note("Multiclass endpoint, but no labelled requests in both windows: "
                            "the confusion change is not assessed.")
            moves = performance.confusion_change
            moves = moves[moves["label"] != moves["prediction"]].head(8)
            shown = moves[["label", "prediction", "baseline_share", "incident_share", "change",
                           "pvalue"]].rename(columns={"label": "true class",
                                                      "prediction": "predicted as",
                                                      "change": "share change"})
            out = (figure_html(fig, "confusion change")
                   + table(shown, caption="Largest moves between classes"))
            calibration = results.get("model.calibration")
            reliability = (class_reliability_figure(calibration)
                           if calibration is not None else None)
            if reliability is not None:
                out = out + figure_html(reliability, "reliability per class")
            return out
        if task == "regression":
            calibration = results.get("model.calibration")
            fig = residuals_figure(calibration) if calibration is not None else None
            if fig is None:
                return note("Regression endpoint, but no labelled requests in both windows: "
                            "the residuals are not compared.")
            return figure_html(fig, "residual distribution")
        return note(f"A {task} endpoint: the accuracy and calibration sections above are its "
                    "model detail.")

    def generative(self) -> Html:
        """The token-level sections (TTFT / TPOT / goodput, KV cache, prefill, prompt-length
        errors, prefix cache, outputs, prompt mix, feedback) when the case serves a generative
        endpoint; one line saying why they do not apply otherwise."""
        tasks = sorted({info.task for info in self.case.tasks.values()})
        if "generative" not in tasks:
            shown = ", ".join(tasks) if tasks else "no requests"
            return note(f"No generative endpoint in this case (task: {shown}): the token-level "
                        "sections do not apply.")
        parts = []
        for diagnostic_id, title in GENERATIVE_SECTIONS:
            parts.append(heading(title, 4))
            parts.append(self.diagnostic(diagnostic_id))
            parts.append(self.diagnostic_details(diagnostic_id))
        return Html("".join(p.fragment for p in parts))

    def diagnostic_details(self, diagnostic_id: str) -> Html:
        """Headline numbers and the findings of one diagnostic."""
        result = self.result.diagnosis.results.get(diagnostic_id)
        if result is None or (result.table.empty and result.not_assessed):
            return Html("")
        parts = [Html(f"<p class='caption'>{escape(result.title)}</p>"),
                 key_values(result.headline())] if result.headline() else []
        found = result.findings()
        if found:
            parts.append(items([f"[{f.severity}] {f.summary}" for f in found]))
        detail = _detail_table(result)
        if detail is not None:
            parts.append(detail)
        return Html("".join(p.fragment for p in parts))

    def action_items(self) -> Html:
        """Actions from the remediation rules; owner and due date are for the author.

        An ``undetermined`` verdict decides no failure mode: it gets generic first steps, then
        each candidate's remediation under a heading that names it as a candidate.
        """
        v = self.result.verdict
        if v.pathway == "undetermined":
            return self._undetermined_actions()
        rows = [{"action": action, "type": _action_type(action), "owner": "", "due": "",
                 "tracking": ""} for action in v.remediation]
        slices = self._slice_actions()
        if not rows:
            return note("No remediation rule applies to the failure mode.") + slices
        return table(pd.DataFrame(rows), caption=f"Action items ({self.result.serving_mode} "
                                                 "serving)") + slices

    def _slice_actions(self) -> Html:
        """The remediation rules for the role of each affected slice (a host, a model
        version, a client version...) whose pathway the verdict's remediation does not
        already cover."""
        segments = self.result.diagnosis.results.get("case.segments")
        if segments is None:
            return Html("")
        out = Html("")
        v = self.result.verdict
        covered = v.pathway if v.pathway not in ("none", "undetermined") else None
        for what, actions in slice_actions(segments, self.result.serving_mode,
                                           skip_pathway=covered):
            out = out + Html(f"<p class='caption'>For the affected slice "
                             f"{escape(what)}:</p>") + items(actions)
        return out

    def _undetermined_actions(self) -> Html:
        from toolkit.classify import remediation_for

        gaps = ", ".join(g.check for g in self.result.diagnosis.not_assessed()[:6])
        first = [
            "Confirm the incident and baseline windows (rerun with explicit --incident and "
            "--baseline if the detected ones are off).",
            "Load what is missing and classify again" + (f" (not assessed: {gaps})." if gaps
                                                         else "."),
            "Check the candidates below against the timeline: a deploy, rollback or config "
            "change near the onset usually decides between them.",
        ]
        out = paragraph("The verdict is undetermined: no failure mode is decided, so no "
                        "remediation is recommended as such. First steps:") + items(first)
        candidates = sorted(((m, p) for m, p in self.result.verdict.mode_scores.items()
                             if m not in ("none", "undetermined")),
                            key=lambda mp: -mp[1])[:3]
        for mode, probability in candidates:
            actions = remediation_for(mode, self.result.serving_mode)
            if not actions:
                continue
            out = out + Html(
                f"<p class='caption'>If it is {escape(mode.replace('_', ' '))} (candidate, "
                f"probability {escape(fmt_number(probability, 2))}):</p>") + items(actions)
        return out + self._slice_actions()

    def lessons(self) -> Html:
        return items(["What went well?", "What went wrong?", "Where did we get lucky?",
                      "Which monitor, test or release gate would have prevented it?"])

    def appendix_sql(self) -> Html:
        """The SQL every diagnostic ran, rerunnable in the DuckDB CLI on the case."""
        parts = []
        recorded = dict(self.result.diagnosis.sql())
        if self._estimate is not None and self._estimate.result is not None and \
                self._estimate.result.id not in recorded:
            recorded[self._estimate.result.id] = list(self._estimate.result.sql)
        approximate = {k: r.approximate for k, r in self.result.diagnosis.results.items()}
        for diagnostic_id, statements in recorded.items():
            if not statements:
                continue
            body = "\n\n".join(f"-- {diagnostic_id} [{k + 1}]\n{s};" for k, s in
                               enumerate(statements))
            # the statistics from an approximate primitive of the engine (result.approximate)
            approx = (f"; approximate on {self.case.engine.name}: "
                      + ", ".join(approximate[diagnostic_id])
                      if approximate.get(diagnostic_id) else "")
            parts.append(f"<details><summary>{escape(diagnostic_id)} ({len(statements)} "
                         f"queries{escape(approx)})</summary><pre>{escape(body)}</pre>"
                         "</details>")
        return Html("".join(parts)) if parts else note("No SQL recorded.")

    def appendix_provenance(self) -> Html:
        """Where the case's rows come from: the files loaded into a DuckDB case, or the
        locations of a lake case's tables (a lake case loads nothing: no ``loads`` table)."""
        if self.tables:
            sources = [LakeSource.parse(name, location)
                       for name, location in self.tables.items()]
            frame = pd.DataFrame({"table": [s.table for s in sources],
                                  "format": [s.format or "catalog table" for s in sources],
                                  "location": [s.location for s in sources]})
            return table(frame, caption=f"Tables read in place on {self.case.engine.name} "
                         "(provenance)", max_rows=50)
        loads = self.case.con.execute(
            "SELECT path, table_name, format, rows_read, rows_loaded, rows_rejected, "
            "left(sha256, 16) AS sha256_16, loaded_at FROM loads WHERE NOT replaced "
            "ORDER BY load_id").df()
        return table(loads, caption="Files loaded into the case (provenance)", max_rows=50)

    # ------------------------------------------------------------------ results.json
    def save_results(self, path: str | os.PathLike[str] = "results.json") -> Path:
        """Write :meth:`results` as JSON (the executed notebook's folder by default)."""
        from toolkit.report.notebook import write_json

        return write_json(Path(path), self.results())

    def results(self) -> dict[str, Any]:
        """The classification and headline numbers, for schedulers and tests."""
        headlines = {k: {name: _jsonable(value) for name, value in r.headline().items()}
                     for k, r in self.result.diagnosis.results.items()}
        return {
            "incident_id": self.incident_id,
            "generated_at": self.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "toolkit_version": __version__,
            "classification": self.result.to_dict(),
            "headline": headlines,
            "estimation": self.estimate.to_dict(),
        }

    # ------------------------------------------------------------------ helpers
    def _mode_title(self) -> str:
        v = self.result.verdict
        if v.pathway in ("none", "undetermined"):
            return v.pathway
        return f"{v.failure_mode.replace('_', ' ')} ({v.pathway})"

    def _impact_numbers(self) -> list[str]:
        out = []
        latency = self.result.diagnosis.results.get("infra.latency")
        if latency is not None and not latency.table.empty:
            value = latency.value
            rate = _safe_div(value("incident", "requests"), _hours(self.result.incident))
            out.append(f"{fmt_count(value('incident', 'requests'))} requests in the window "
                       f"({fmt_number(rate, 3)} per hour), error rate "
                       f"{fmt_percent(value('baseline', 'error_rate'))} -> "
                       f"{fmt_percent(value('incident', 'error_rate'))}, p99 "
                       f"{fmt_ms(value('baseline', 'p99_ms'))} -> "
                       f"{fmt_ms(value('incident', 'p99_ms'))}")
        performance = self.result.diagnosis.results.get("model.performance")
        if performance is not None and not performance.table.empty:
            before = performance.value("baseline", "accuracy")
            after = performance.value("incident", "accuracy")
            if not (is_missing(before) and is_missing(after)):
                out.append(f"accuracy {fmt_percent(before, 1)} -> {fmt_percent(after, 1)}")
        return out

    def _key_evidence(self) -> list[str]:
        """What matters for the failure mode, first: the numbers that decide it."""
        v = self.result.verdict
        results = self.result.diagnosis.results
        out: list[str] = []
        mode = v.failure_mode
        calibration = results.get("model.calibration")
        if mode == "calibration_collapse" and calibration is not None \
                and not calibration.table.empty:
            threshold = getattr(calibration, "threshold", 0.85)
            out.append(
                f"Calibration: ECE {fmt_number(calibration.value('baseline', 'ece'), 2)} -> "
                f"{fmt_number(calibration.value('incident', 'ece'), 2)}; wrong answers with "
                f"confidence >= {threshold}: "
                f"{fmt_percent(calibration.value('baseline', 'confident_error_share'), 1)} -> "
                f"{fmt_percent(calibration.value('incident', 'confident_error_share'), 1)} of "
                "labelled requests.")
        units = results.get("data.units")
        if mode == "unit_change" and units is not None:
            for finding in units.findings()[:3]:
                ev = finding.evidence
                factor, matched = ev.get("factor"), ev.get("matched")
                measured = (f"measured x{fmt_number(factor, 4)}; "
                            if matched and factor and abs(factor / matched - 1) > 1e-3 else "")
                out.append(f"Unit change: {ev.get('feature')} arrives multiplied by "
                           f"{fmt_number(matched or factor, 4)} ({measured}"
                           f"{ev.get('meaning')}).")
        if not out and v.pathway not in ("none", "undetermined"):
            finding = self._deciding_finding()
            if finding is not None:
                out.append(f"Key evidence: {finding.summary}")
        return out

    def _deciding_finding(self) -> Any:
        """The finding of the rule that added most to the chosen failure mode."""
        v = self.result.verdict
        ranked = sorted((h for h in v.hits if v.failure_mode in h.add),
                        key=lambda h: -h.add[v.failure_mode])
        by_id = {f.id: f for f in self.result.diagnosis.findings()}
        for hit in ranked:
            for finding_id in hit.findings:
                if finding_id in by_id:
                    return by_id[finding_id]
        return None

    def _slow_start(self) -> str | None:
        """Why the estimated onset lies before every signal that moved, when a slow change's
        start dates it: a finding whose evidence says where its change began, before it became
        visible (:data:`SLOW_STARTS`), within a minute of the verdict's onset; else ``None``."""
        onset = pd.Timestamp(self.result.onset)
        for finding in self.result.diagnosis.findings():
            for key, how in SLOW_STARTS.items():
                began = (finding.evidence or {}).get(key)
                if began is None:
                    continue
                began = pd.Timestamp(began)
                if abs(began - onset) <= pd.Timedelta(minutes=1):
                    # a finding over the whole window (no onset of its own) became visible
                    # with the window
                    visible = pd.Timestamp(finding.onset if finding.onset is not None
                                           else self.result.incident.start)
                    ahead = round((visible - began).total_seconds() / 60)
                    return (f"The onset is where the change behind {finding.id} began, at "
                            f"{_fmt(began)} UTC, {ahead:,} min before it became visible "
                            f"({_fmt(visible)} UTC): {how}.")
        return None

    def _undated(self) -> bool:
        """Whether the report has no onset to state: a ``none`` verdict, or a fallback window
        (the detector found no change) whose onset is only its start (no finding dated one;
        the SageMaker export in the real data read "estimated onset" at such a start)."""
        if self.result.verdict.pathway == "none":
            return True
        at_start = abs(pd.Timestamp(self.result.onset) - pd.Timestamp(
            self.result.incident.start)) <= pd.Timedelta(seconds=1)
        if str(self.result.window_source).startswith(NO_CHANGE_FOUND):
            return at_start
        # an undetermined verdict's onset is the first medium or high finding's, else the
        # window's start: then nothing dated it (a given window of 11 requests, varied tuning
        # concept_drift s2, listed "estimated onset: undetermined" at its start)
        return self.result.verdict.pathway == "undetermined" and at_start and \
            not self._dated_at(pd.Timestamp(self.result.onset))

    def _dated_at(self, onset: pd.Timestamp) -> bool:
        """Whether a logged trigger or a finding's onset lies within a second of ``onset``."""
        second = pd.Timedelta(seconds=1)
        trigger = self.result.verdict.trigger
        if trigger and abs(pd.Timestamp(trigger["ts"]) - onset) <= second:
            return True
        return any(f.onset is not None and abs(pd.Timestamp(f.onset) - onset) <= second
                   for f in self.result.diagnosis.findings())

    def _small_windows(self) -> list[tuple[str, int]]:
        """The windows holding fewer than :data:`MIN_WINDOW_ROWS` logged requests, with their
        counts (counted in the engine; cached by the case view). Empty for a case without a
        request log (its diagnostics read metrics and say so themselves)."""
        has = getattr(self.case, "has", None)
        rows = getattr(self.case, "window_rows", None)
        if has is None or rows is None or not has("requests"):
            return []
        out = []
        for name in ("incident", "baseline"):
            n = int(rows(getattr(self.result, name)))
            if n < MIN_WINDOW_ROWS:
                out.append((name, n))
        return out

    def _serving_mode_text(self) -> str:
        """The serving mode and where it comes from: a mode inferred from the traffic's
        shape (idle minutes, bursts) says so, since a sparsely logged real-time service
        reads as batch (varied tuning none s3: 1,797 requests over 16 days, "batch" beside
        case.batch_runs' "not a batch case")."""
        traffic = self.result.diagnosis.results.get("case.traffic")
        source = getattr(traffic, "serving_mode_source", None)
        how = {"inferred": "inferred from the traffic's shape",
               "case_meta": "declared in case_meta"}.get(str(source))
        if source == "inferred" and self.result.serving_mode == "batch":
            # traffic.py's rule: in both windows half the minutes or more without a request
            # and 90% of the requests in the busiest tenth of the minutes
            how += (": at least half the minutes without a request and 90% of the requests "
                    "in the busiest tenth of them; a sparse log of a real-time service "
                    "looks the same")
        return f"{self.result.serving_mode} ({how})" if how else str(self.result.serving_mode)

    def _onset_text(self) -> str:
        """The onset for the header, with its distance from the window's start when before
        it."""
        if self.result.verdict.pathway == "none":
            return "none (no incident found)"
        if self._undated():
            if str(self.result.window_source).startswith(NO_CHANGE_FOUND):
                return "none dated (a fallback window: no change found, no finding dated one)"
            return "none dated (undetermined: no finding or logged change dated one)"
        onset = pd.Timestamp(self.result.onset)
        ahead = pd.Timestamp(self.result.incident.start) - onset
        if ahead < pd.Timedelta(minutes=1):
            return _fmt(onset)
        return (f"{_fmt(onset)} ({fmt_value(ahead)} before the incident window opens: "
                "see the Summary)")

    def _onset_dated_by(self) -> str:
        """What dated the verdict's onset, for :meth:`onset_before_window`: the trigger, a
        slow change's start, a finding, or (none of them exactly) the findings at large."""
        v = self.result.verdict
        onset = pd.Timestamp(self.result.onset)
        second = pd.Timedelta(seconds=1)
        trigger = v.trigger
        if trigger and abs(pd.Timestamp(trigger["ts"]) - onset) <= second:
            what = " ".join(str(x) for x in (trigger.get("kind"), "of",
                                             trigger.get("artifact") or "an artifact",
                                             trigger.get("version")) if x)
            return (f"the logged {what}, which the rules take as the start of a "
                    f"{v.failure_mode.replace('_', ' ')} (their onset events)")
        for finding in self.result.diagnosis.findings():
            for key in SLOW_STARTS:
                began = (finding.evidence or {}).get(key)
                if began is not None and \
                        abs(pd.Timestamp(began) - onset) <= pd.Timedelta(minutes=1):
                    return (f"where the slow change behind {finding.id} began, before it "
                            "became visible (see Detection)")
        for finding in self.result.diagnosis.findings():
            if finding.onset is not None and abs(pd.Timestamp(finding.onset) - onset) <= second:
                return (f"the date the diagnosis gives the finding {finding.id} "
                        f"({finding.diagnostic})")
        return "dated by the findings of the diagnosis"

    def _window_opened_by(self) -> str:
        """Where the incident window's start comes from, for :meth:`onset_before_window`."""
        source = str(self.result.window_source)
        detected = self.result.detected
        if source == "given":
            return "the incident window was given, not detected"
        if source.startswith(NO_CHANGE_FOUND):
            return ("the window is a fallback (the detector found no change to date), so its "
                    "start marks no change")
        scan = ("a scan anchored at a logged change" if source.startswith(ANCHORED) else
                "a focused scan of a later slice" if source.startswith(FOCUSED) else
                "the detector's scan")
        if detected is not None and abs(pd.Timestamp(detected.incident.start) - pd.Timestamp(
                self.result.incident.start)) <= pd.Timedelta(seconds=1):
            signals = ", ".join(detected.supporting[:6]) or "its signals"
            return f"the window opens where {scan} dated the change in its signals ({signals})"
        return f"the window's start comes from {scan}, not from what dated the onset"

    def _near(self) -> pd.Timedelta:
        """How close to the onset a signal must be to count as this incident's: a twentieth
        of the incident window, at least 30 minutes."""
        length = pd.Timestamp(self.result.incident.end) - pd.Timestamp(
            self.result.incident.start)
        return max(length / 20, pd.Timedelta(minutes=30))

    def _affected_slices(self) -> Html | None:
        diagnosis = self.result.diagnosis
        frames = []
        for diagnostic_id in ("integration.client_errors", "integration.versions",
                              "infra.hosts", "infra.accelerators"):
            result = diagnosis.results.get(diagnostic_id)
            if result is None:
                continue
            for finding in result.findings():
                frames.append({"slice": diagnostic_id, "severity": finding.severity,
                               "summary": finding.summary})
        performance = diagnosis.results.get("model.performance")
        if performance is not None and not performance.by_version.empty:
            inc = performance.by_version[(performance.by_version["window"] == "incident") &
                                         (performance.by_version["labelled"] >= 30)]
            regression = getattr(performance, "task", None) == "regression"
            for row in inc.itertuples():
                quality = (f"MAE {fmt_number(row.mae)}" if regression
                           else f"accuracy {fmt_percent(row.accuracy, 1)}")
                frames.append({"slice": f"model_version={fmt_value(row.model_version)}",
                               "severity": "info",
                               "summary": f"{quality} on {fmt_count(row.labelled)} labels"})
        if not frames:
            return None
        return table(pd.DataFrame(frames), caption="Slices named by other diagnostics")

    def _trigger(self) -> str | None:
        events = self.case.events
        if events.empty:
            return None
        trigger = self.result.verdict.trigger
        if trigger:
            extra = _detail_text(trigger.get("detail") if isinstance(trigger.get("detail"),
                                                                       dict) else {})
            return (f"{trigger['kind']} of {trigger.get('artifact') or 'an artifact'} "
                    f"{trigger.get('version') or ''} at {_fmt(trigger['ts'])} UTC"
                    + (f" ({extra})" if extra else "")).replace("  ", " ")
        onset = pd.Timestamp(self.result.onset)
        near = events[(events["ts"] <= onset + pd.Timedelta(minutes=30)) &
                      (events["ts"] >= onset - pd.Timedelta(hours=12)) &
                      events["kind"].isin(["deploy", "rollback", "config_change", "scale",
                                           "cache_flush"])]
        if near.empty:
            return None
        row = near.iloc[-1]
        extra = _detail_text(row["detail"] if isinstance(row["detail"], dict) else {})
        return (f"{row['kind']} of {row['artifact'] or 'an artifact'} "
                f"{row['version'] or ''} at {_fmt(row['ts'])} UTC"
                + (f" ({extra})" if extra else "")).replace("  ", " ")


def _small_text(small: list[tuple[str, int]]) -> str:
    """``the incident window holds 11 logged requests, fewer than the 30 a comparison of the
    windows needs``."""
    held = " and ".join(f"the {name} window holds {n or 'no'} logged request"
                        f"{'' if n == 1 else 's'}" for name, n in small)
    return f"{held}, fewer than the {MIN_WINDOW_ROWS} a comparison of the windows needs"


def _clip(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters at a word, with an ellipsis when cut (varied
    tuning memory_leak s2's timeline row ended "...; 30 ended i")."""
    text = str(text)
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def _lag_text(lag: pd.Timedelta) -> str:
    """``+12 min from`` / ``5.7 days after`` / ``2 h before``: a signal's distance from the
    onset, in minutes up to two hours, then in the unit :func:`fmt_value` picks (a
    ``+8210 min`` lag on varied tuning none s3 was 5.7 days)."""
    minutes = round(lag.total_seconds() / 60)
    if abs(minutes) <= 120:
        return f"{minutes:+d} min from"
    return f"{fmt_value(abs(lag))} {'after' if minutes > 0 else 'before'}"


def _fmt(value: Any) -> str:
    """A time in UTC without the zone (the sentence says UTC)."""
    return fmt_time(value).removesuffix(" UTC")


def _window_text(window: Any) -> str:
    """``2026-02-11 12:02 to 2026-02-15 23:58 (4.5 days)``."""
    length = fmt_value(pd.Timestamp(window.end) - pd.Timestamp(window.start))
    return f"{_fmt(window.start)} to {_fmt(window.end)} ({length})"


def _detail_text(detail: Any) -> str:
    """An event's detail as ``key=value`` pairs (missing values as an em dash)."""
    if isinstance(detail, dict):
        return ", ".join(f"{k}={fmt_value(v, str(k))}" for k, v in detail.items())
    return "" if is_missing(detail) else str(detail)


def _detail_table(result: Any) -> Html | None:
    """The few rows of a diagnostic's detail a reader needs next to its figure."""
    if result.id == "data.drift" and not result.table.empty:
        columns = [c for c in ("feature", "kind", "psi", "ks", "wasserstein", "js",
                               "unseen_share", "unseen", "severity") if c in result.table]
        top = result.table.sort_values("psi", ascending=False)[columns].head(12).copy()
        if "unseen" in top:
            top["unseen"] = top["unseen"].map(
                lambda v: ", ".join(map(str, v)) if isinstance(v, list) else "")
        return table(top, caption="Most drifted features")
    if result.id == "infra.latency" and not result.error_types.empty:
        types = result.error_types.sort_values(["window", "requests"], ascending=[True, False])
        return table(types, caption="Failed requests by error type")
    return None


def _impact_value(kind: str, value: float) -> str:
    if is_missing(value):
        return fmt_value(None)
    if kind == "rate":
        return fmt_number(value, 3)
    if kind == "ms":
        return fmt_ms(value)
    if kind == "share":
        return fmt_percent(value)
    if kind == "auc":
        return fmt_number(value, 3)
    return fmt_number(value)


def _impact_change(kind: str, before: float, after: float) -> str:
    if kind == "rate":
        if is_missing(before) or is_missing(after):
            return fmt_value(None)
        # the impact table's ratio form, as fmt_change writes the latency's ("x1.5")
        ratio = f" (x{times(after / before, 2).removesuffix('x')})" if before else ""
        delta = fmt_number(after - before, 3)
        return (delta if delta.startswith("-") or delta == "0" else f"+{delta}") + ratio
    if kind == "auc":
        if is_missing(before) or is_missing(after):
            return fmt_value(None)
        delta = fmt_number(round(after - before, 3), 3)
        return delta if delta.startswith("-") or delta == "0" else f"+{delta}"
    return fmt_change(before, after, kind)


def _hours(window: Any) -> float:
    return (pd.Timestamp(window.end) - pd.Timestamp(window.start)).total_seconds() / 3600


def _safe_div(numerator: float, denominator: float) -> float:
    if is_missing(numerator) or is_missing(denominator) or not denominator:
        return float("nan")
    return float(numerator) / float(denominator)


def _nan0(value: float) -> float:
    return 0.0 if is_missing(value) else float(value)


def _action_type(action: str) -> str:
    text = action.lower()
    if any(w in text for w in ("roll back", "rollback", "flush", "restore", "drain", "shed",
                               "hotfix", "eject", "until")):
        return "mitigate"
    if any(w in text for w in ("monitor", "alert", "check", "detect")):
        return "detect"
    return "prevent"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and pd.isna(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    return value
