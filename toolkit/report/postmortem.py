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
from typing import Any

import duckdb
import pandas as pd

from toolkit._version import __version__
from toolkit.classify import Classification, classify_incident
from toolkit.diagnose._case import CaseView, case_view
from toolkit.report import figures
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
from toolkit.store import connect

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
    "none": "no incident pattern was found",
    "undetermined": "the evidence does not decide between pathways",
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
    """

    result: Classification
    case: CaseView
    db: str = ""
    incident_id: str = "incident"
    title: str = ""
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def open(
        cls,
        db: str | os.PathLike[str],
        *,
        incident: str | None = None,
        baseline: str | None = None,
        incident_id: str = "incident",
        title: str = "",
    ) -> Postmortem:
        """Open the case read-only and classify the incident (windows detected when omitted)."""
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
            "incident window (UTC)": str(self.result.incident),
            "baseline window (UTC)": str(self.result.baseline),
            "windows": self.result.window_source,
            "case database": self.db or "(in memory)",
            "generated": self.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
            "toolkit": f"inference-forensics {__version__}",
            "authors / owner": "to fill in",
        }
        return STYLE + heading(title, 1) + key_values(meta)

    def summary(self) -> Html:
        """Two to four sentences: what, when, impact, headline cause."""
        v = self.result.verdict
        impact = self._impact_numbers()
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
        if impact:
            lines.append("Impact: " + "; ".join(impact) + ".")
        return Html(f"<div class='verdict'>{'<br>'.join(escape(x) for x in lines)}</div>")

    def impact(self) -> Html:
        """Requests, errors, latency, accuracy and calibration, and the affected slices."""
        rows = []
        diagnosis = self.result.diagnosis
        latency = diagnosis.results.get("infra.latency")
        if latency is not None and not latency.table.empty:
            for column, label in (("requests", "requests"), ("error_rate", "error rate"),
                                  ("timeout_rate", "timeout rate"), ("p50_ms", "p50 latency ms"),
                                  ("p99_ms", "p99 latency ms")):
                rows.append((label, latency.value("baseline", column),
                             latency.value("incident", column)))
        performance = diagnosis.results.get("model.performance")
        if performance is not None and not performance.table.empty:
            for column in ("accuracy", "precision", "recall", "coverage"):
                rows.append((column if column != "coverage" else "label coverage",
                             performance.value("baseline", column),
                             performance.value("incident", column)))
        calibration = diagnosis.results.get("model.calibration")
        if calibration is not None and not calibration.table.empty:
            rows.append(("ECE", calibration.value("baseline", "ece"),
                         calibration.value("incident", "ece")))
            rows.append(("wrong with confidence >= 0.85",
                         calibration.value("baseline", "confident_error_share"),
                         calibration.value("incident", "confident_error_share")))
        if not rows:
            return note("No latency, error or quality data to measure the impact.")
        frame = pd.DataFrame([
            {"measure": label, "baseline": _impact_value(label, b),
             "incident": _impact_value(label, i), "change": _impact_change(label, b, i)}
            for label, b, i in rows])
        out = table(frame, caption="Impact: baseline vs incident window")
        slices = self._affected_slices()
        return out + (slices if slices is not None else note("No affected slice stands out."))

    def timeline(self) -> Html:
        """Events and detected change points in UTC, around the incident."""
        events = self.case.events
        start = pd.Timestamp(self.result.baseline.end) - pd.Timedelta(hours=24)
        end = pd.Timestamp(self.result.incident.end)
        rows = []
        if not events.empty:
            shown = events[(events["ts"] >= start) & (events["ts"] <= end)]
            for row in shown.itertuples():
                detail = ", ".join(f"{k}={v}" for k, v in (row.detail or {}).items()) \
                    if isinstance(row.detail, dict) else str(row.detail or "")
                rows.append((row.ts, "event", f"{row.kind} {row.artifact or ''} "
                             f"{row.version or ''}".strip(), row.host, detail[:120]))
        for finding in self.result.diagnosis.findings():
            if finding.onset is not None and finding.severity in ("medium", "high"):
                rows.append((pd.Timestamp(finding.onset), "signal change", finding.id, None,
                             finding.summary[:120]))
        if self.result.detected is not None:
            for change in self.result.detected.changes:
                rows.append((pd.Timestamp(change.at), "change point", change.signal, None,
                             f"strength {change.strength:.1f}"))
        rows.append((pd.Timestamp(self.result.onset), "onset", "estimated onset", None,
                     self.result.failure_mode))
        rows.append((pd.Timestamp(self.result.incident.start), "window", "incident start",
                     None, self.result.window_source))
        frame = pd.DataFrame(rows, columns=["time (UTC)", "type", "what", "host", "detail"])
        frame = frame.sort_values("time (UTC)", kind="stable")
        frame["time (UTC)"] = frame["time (UTC)"].map(lambda t: pd.Timestamp(t).strftime(
            "%Y-%m-%d %H:%M:%S"))
        return table(frame, max_rows=60, caption="Timeline (UTC): events, signal changes, "
                                                 "change points")

    def timeline_figure(self) -> Html:
        fig = figures.incident_timeline(self.result, self.case.events)
        return figure_html(fig, "Incident timeline") if fig is not None else note(
            "No timeline signals (latency, accuracy, drift) in this case.")

    def detection(self) -> Html:
        """What changed first, and prompts for how the incident was actually detected."""
        findings = [f for f in self.result.diagnosis.findings() if f.onset is not None]
        first = min(findings, key=lambda f: f.onset) if findings else None
        parts = []
        if first is not None:
            lag = (pd.Timestamp(first.onset) - pd.Timestamp(self.result.onset))
            parts.append(paragraph(
                f"The first signal to move was {first.id} at {_fmt(first.onset)} UTC "
                f"({lag.total_seconds() / 60:+.0f} min from the estimated onset): "
                f"{first.summary}"))
        latency = self.result.diagnosis.results.get("infra.latency")
        if latency is not None and not latency.breaches.empty:
            breach = latency.breaches.iloc[0]
            parts.append(paragraph(
                f"The latency SLO ({latency.slo_ms:.0f} ms, {latency.slo_source}) was first "
                f"breached at {_fmt(breach['start'])} UTC; {len(latency.breaches)} breach "
                "window(s) in all."))
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
                          "serving mode": self.result.serving_mode})
        hits = pd.DataFrame([{"rule": h.name, "adds": ", ".join(
            f"{m} +{w:.1f}" for m, w in h.add.items()), "findings": ", ".join(h.findings)}
            for h in v.hits])
        out = out + table(hits, caption="Rationale: the rules that fired") if not hits.empty \
            else out + note("No rule fired: no finding departs from the baseline.")
        alternatives = pd.DataFrame(list(v.alternatives))
        if not alternatives.empty:
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
        return figure_html(figures.pathway_scores(self.result), "Pathway scores")

    def root_cause(self) -> Html:
        """Root cause (what must change) versus trigger (what set it off), to confirm."""
        v = self.result.verdict
        trigger = self._trigger()
        parts = [
            paragraph(f"Root cause (to confirm): {MODE_DESCRIPTIONS.get(v.failure_mode, '')}."),
            paragraph(f"Trigger: {trigger}" if trigger else
                      "Trigger: no deploy, rollback or configuration change was logged near "
                      "the onset; look for upstream or traffic changes."),
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
        kwargs = dict(next((k for i, _, k in DIAGNOSTIC_SECTIONS if i == diagnostic_id), {}))
        ax = result.plot(**kwargs)
        return figure_html(ax.figure, result.title)

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
        """Actions from the remediation rules; owner and due date are for the author."""
        rows = [{"action": action, "type": _action_type(action), "owner": "", "due": "",
                 "tracking": ""} for action in self.result.verdict.remediation]
        if not rows:
            return note("No remediation rule applies.")
        return table(pd.DataFrame(rows), caption=f"Action items ({self.result.serving_mode} "
                                                 "serving)")

    def lessons(self) -> Html:
        return items(["What went well?", "What went wrong?", "Where did we get lucky?",
                      "Which monitor, test or release gate would have prevented it?"])

    def appendix_sql(self) -> Html:
        """The SQL every diagnostic ran, rerunnable in the DuckDB CLI on the case."""
        parts = []
        for diagnostic_id, statements in self.result.diagnosis.sql().items():
            if not statements:
                continue
            body = "\n\n".join(f"-- {diagnostic_id} [{k + 1}]\n{s};" for k, s in
                               enumerate(statements))
            parts.append(f"<details><summary>{escape(diagnostic_id)} ({len(statements)} "
                         f"queries)</summary><pre>{escape(body)}</pre></details>")
        return Html("".join(parts)) if parts else note("No SQL recorded.")

    def appendix_provenance(self) -> Html:
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
            out.append(f"{latency.value('incident', 'requests'):,.0f} requests in the window, "
                       f"error rate {latency.value('baseline', 'error_rate'):.2%} -> "
                       f"{latency.value('incident', 'error_rate'):.2%}, p99 "
                       f"{latency.value('baseline', 'p99_ms'):.0f} -> "
                       f"{latency.value('incident', 'p99_ms'):.0f} ms")
        performance = self.result.diagnosis.results.get("model.performance")
        if performance is not None and not performance.table.empty:
            out.append(f"accuracy {performance.value('baseline', 'accuracy'):.1%} -> "
                       f"{performance.value('incident', 'accuracy'):.1%}")
        return out

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
            for row in inc.itertuples():
                frames.append({"slice": f"model_version={row.model_version}",
                               "severity": "info",
                               "summary": f"accuracy {row.accuracy:.1%} on {row.labelled:,} "
                                          "labels"})
        if not frames:
            return None
        return table(pd.DataFrame(frames), caption="Affected slices")

    def _trigger(self) -> str | None:
        events = self.case.events
        if events.empty:
            return None
        trigger = self.result.verdict.trigger
        if trigger:
            detail = trigger.get("detail") if isinstance(trigger.get("detail"), dict) else {}
            extra = ", ".join(f"{k}={v}" for k, v in detail.items())
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
        detail = row["detail"] if isinstance(row["detail"], dict) else {}
        extra = ", ".join(f"{k}={v}" for k, v in detail.items())
        return (f"{row['kind']} of {row['artifact'] or 'an artifact'} "
                f"{row['version'] or ''} at {_fmt(row['ts'])} UTC"
                + (f" ({extra})" if extra else "")).replace("  ", " ")


def _fmt(value: Any) -> str:
    if value is None:
        return "?"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M")


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


def _impact_value(label: str, value: float) -> str:
    if value is None or pd.isna(value):
        return "—"
    if label == "requests":
        return f"{value:,.0f}"
    if "ms" in label:
        return f"{value:,.0f} ms"
    if label == "ECE":
        return f"{value:.4f}"
    return f"{value:.2%}"


def _impact_change(label: str, before: float, after: float) -> str:
    if before is None or after is None or pd.isna(before) or pd.isna(after):
        return "—"
    if label == "requests":
        return f"{after - before:+,.0f}"
    if "ms" in label:
        ratio = f" (x{after / before:.1f})" if before else ""
        return f"{after - before:+,.0f} ms{ratio}"
    if label == "ECE":
        return f"{after - before:+.4f}"
    return f"{(after - before) * 100:+.2f} points"


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
