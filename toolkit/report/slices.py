"""The postmortem's "Affected slices": the slices ``case.segments`` flagged, for a reader.

One row per flagged value (``attribute=value``), incident values first: its scope, whether it
is new in the incident or chronic, its failures out of its requests, its failure rate against
the rest of the traffic, its share of the failures, the Holm-adjusted p-value (``< 1e-12``
below the floor), when it started failing (a new slice: its first failure in the incident; a
chronic one: its first failure in the case) and its last failure, and its p99 latency. The findings' summaries are the caption; the actions come from the remediation
rules for the attribute's role (``remediation_for_slice``); the attributes that were not
tested and what could not be assessed are listed, so a reader knows what was not looked at.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from toolkit.report.format import (
    fmt_count,
    fmt_ms,
    fmt_percent,
    fmt_pvalue,
    fmt_pvalues_in_text,
    fmt_time,
)
from toolkit.report.html import Html, escape, figure_html, items, note, table

__all__ = ["slices_frame", "slice_actions", "skipped_text", "slices_section"]

#: Skip reasons too ordinary to list one by one (a column with one value, or never logged).
_QUIET = ("one value", "never logged")


def slices_frame(result: Any) -> pd.DataFrame:
    """The flagged slices of a :class:`~toolkit.diagnose.case.segments.SegmentsResult` as display
    text, one row per slice (see :meth:`SegmentsResult.affected_slices`)."""
    rows = result.affected_slices()
    columns = ["slice", "scope", "status", "failures / requests", "failure rate vs rest",
               "share of failures", "adjusted p", "failing since (UTC)", "last failure (UTC)",
               "p99"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame({
        "slice": [f"{a}={v}" for a, v in zip(rows["attribute"], rows["value"], strict=True)],
        "scope": rows["scope"].astype(str),
        "status": [str(s) if isinstance(s, str) else "—" for s in rows["status"]],
        "failures / requests": [_nowrap(f"{fmt_count(k)} / {fmt_count(n)}") for k, n in
                                zip(rows["failures"], rows["requests"], strict=True)],
        "failure rate vs rest": [_nowrap(f"{fmt_percent(r, 1)} vs {fmt_percent(q, 2)}")
                                 for r, q in zip(rows["failure_rate"], rows["rest_rate"],
                                                 strict=True)],
        "share of failures": [fmt_percent(s, 1) for s in rows["failure_share"]],
        "adjusted p": [fmt_pvalue(p) for p in rows["p_adjusted"]],
        "failing since (UTC)": [_nowrap(fmt_time(t).removesuffix(" UTC"))
                                for t in _since(rows)],
        "last failure (UTC)": [_nowrap(fmt_time(t).removesuffix(" UTC"))
                               for t in rows["last_failure"]],
        "p99": [_nowrap(fmt_ms(v, reason="not measured")) for v in rows["p99_ms"]],
    })
    return out[columns]


def slice_actions(result: Any, serving_mode: str, *, skip_pathway: str | None = None
                  ) -> list[tuple[str, list[str]]]:
    """``(what, actions)`` per finding of ``result`` whose attribute's role has remediation
    rules: ``what`` names the attribute, its flagged values and the role. Findings of
    ``skip_pathway`` are left out (the verdict's own remediation covers them)."""
    from toolkit.classify.remediation import remediation_for_slice

    out: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, str]] = set()
    for finding in result.findings():
        role = finding.evidence.get("role")
        attribute = finding.evidence.get("attribute")
        if not role or (attribute, role) in seen or finding.pathway == skip_pathway:
            continue
        actions = remediation_for_slice(str(role), serving_mode)
        if not actions:
            continue
        seen.add((attribute, role))
        values = finding.evidence.get("values") or [finding.evidence.get("value")]
        if len(values) == 1:
            what = f"{attribute}={values[0]} ({role})"
        else:
            shown = ", ".join(str(v) for v in values[:4])
            if len(values) > 4:
                shown += f" and {len(values) - 4:,} more"
            what = f"{attribute} ({role}): {shown}"
        out.append((what, actions))
    return out


def _since(rows: pd.DataFrame) -> list[Any]:
    """When a slice started failing: for a slice new in the incident, its first failure in
    the incident (a stray failure weeks before is not when it broke; the finding's onset
    is the same); otherwise its first failure over the whole case."""
    return [first if status == "new" and scope == "incident" else since
            for first, since, status, scope in zip(rows["first_failure"], rows["failing_since"],
                                                   rows["status"], rows["scope"], strict=True)]


def _nowrap(text: str) -> str:
    """Keep a cell on one line: non-breaking spaces and hyphens (``2024-11-17 04:44``)."""
    return text.replace(" ", "\u00a0").replace("-", "\u2011")


def skipped_text(result: Any) -> str | None:
    """One sentence naming the attributes that were not tested, and why."""
    skipped = result.skipped
    if skipped is None or skipped.empty:
        return None
    loud = skipped[~skipped["reason"].isin(_QUIET)]
    quiet = skipped[skipped["reason"].isin(_QUIET)]
    parts = [f"{row.attribute} ({row.reason})" for row in loud.itertuples()]
    if len(quiet):
        parts.append(", ".join(quiet["attribute"]) + " (" + " or ".join(
            sorted(set(quiet["reason"]))) + ")")
    return "Not tested: " + "; ".join(parts) + "."


def slices_section(result: Any, serving_mode: str) -> Html:
    """The whole "Affected slices" section for a ``case.segments`` result."""
    parts: list[Html] = []
    frame = slices_frame(result)
    findings = result.findings()
    if result.table.empty and result.not_assessed:
        parts.append(note(f"Affected slices: not assessed ({result.not_assessed[0].reason})."))
    elif frame.empty:
        tested = result.tested.get("case", 0) if result.tested else 0
        parts.append(note(f"No slice fails more than the rest of the traffic "
                          f"({tested:,} attribute values tested, Holm-adjusted p < "
                          f"{result.alpha:g})."))
    else:
        caption = " ".join(fmt_pvalues_in_text(f.summary) for f in findings
                           if f.id.endswith(".failure_segment")) or "Affected slices"
        parts.append(table(frame, caption=caption, max_rows=20))
    latency = [fmt_pvalues_in_text(f.summary) for f in findings if f.id.endswith(".latency_segment")]
    if latency:
        parts.append(Html("<p class='caption'>Slow slices</p>") + items(latency))
    if not frame.empty:
        parts.append(figure_html(result.plot().figure, "Failures by slice"))
    actions = slice_actions(result, serving_mode)
    for what, todo in actions:
        parts.append(Html(f"<p class='caption'>Actions for {escape(what)}</p>") + items(todo))
    skipped = skipped_text(result)
    gaps = [g.reason for g in result.not_assessed
            if not (result.table.empty and g is result.not_assessed[0])
            and not g.reason.startswith("not tested: ")]
    if skipped:
        parts.append(note(skipped))
    if gaps:
        parts.append(Html("<p class='caption'>Not assessed</p>") + items(gaps))
    return Html("".join(p.fragment for p in parts))
