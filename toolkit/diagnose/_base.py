"""What every diagnostic returns: a frozen result with findings, and what it could not assess."""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd

from toolkit.errors import InvalidParameterError
from toolkit.types import Window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "Severity",
    "SEVERITIES",
    "PATHWAYS",
    "Finding",
    "NotAssessed",
    "DiagnosticResult",
    "SIGNAL_COLUMNS",
    "timeline_signals",
]

Severity = Literal["info", "low", "medium", "high"]
#: Severities from least to most serious.
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high")
PATHWAYS: tuple[str, ...] = ("data", "model", "infrastructure", "integration")
#: The columns of :meth:`DiagnosticResult.signals` (see :func:`timeline_signals`).
SIGNAL_COLUMNS: tuple[str, ...] = ("bucket_start", "signal", "value")
#: Rows of a result's detail table shown in its HTML view.
MAX_HTML_ROWS = 20
_HTML_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
               "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
               "th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
               "code{background:#f4f4f4;padding:0 3px}")


@dataclass(frozen=True)
class Finding:
    """One measured signal, as evidence for the classifier and the postmortem.

    A finding says what was measured and how strongly it departs from normal; it does not
    decide the incident's cause (``classify`` does).

    Attributes
    ----------
    id
        Stable id of the signal, ``<pathway>.<signal>`` (e.g. ``data.feature_drift``).
    pathway
        The pathway this signal points to when taken alone.
    severity
        ``info``, ``low``, ``medium`` or ``high``.
    statistic, threshold
        The measured value and the threshold it was judged against.
    summary
        One sentence for humans.
    evidence
        JSON-friendly details (features, versions, hosts, counts).
    onset
        When the signal started, when the diagnostic can tell.
    diagnostic
        Id of the diagnostic that produced it.
    """

    id: str
    pathway: str
    severity: Severity
    statistic: float
    threshold: float
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    onset: datetime | None = None
    diagnostic: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The finding in the classification JSON contract (DESIGN section 4)."""
        out = {
            "id": self.id,
            "pathway": self.pathway,
            "severity": self.severity,
            "statistic": _json_number(self.statistic),
            "threshold": _json_number(self.threshold),
            "summary": self.summary,
            "evidence": _jsonable(self.evidence),
        }
        if self.onset is not None:
            out["onset"] = pd.Timestamp(self.onset).strftime("%Y-%m-%dT%H:%M:%SZ")
        return out

    @property
    def rank(self) -> int:
        """Position of the severity in :data:`SEVERITIES` (higher is worse)."""
        return SEVERITIES.index(self.severity)


@dataclass(frozen=True)
class NotAssessed:
    """A check that could not run, and why (e.g. no labels in the incident window)."""

    check: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "reason": self.reason}


@dataclass(frozen=True, kw_only=True, repr=False)
class DiagnosticResult:
    """Base of every diagnostic result.

    Attributes
    ----------
    baseline, incident
        The windows compared.
    table
        Tidy detail, one row per unit (feature, host, version, bin, time bucket, ...).
    sql
        The SQL the diagnostic ran, in order (ibis-compiled; rerunnable in the DuckDB CLI).
    not_assessed
        Checks that could not run, with the reason; empty when everything ran.
    refined_onsets
        For findings that fired, their onset located on the raw rows (see ``_onset``).
    approximate
        The statistics of :attr:`sql` that come from an approximate primitive on the engine the
        diagnostic ran on, as ``"<statistic>: <engine function>"`` (e.g. ``"latency_q (p50,
        p95, p99 of latency_ms): approx_quantile"`` on DuckDB, ``...: approx_percentile`` on
        Spark; an internal column is named by what it measures, ``"distinct values of country:
        approx_count_distinct"``, see :func:`~toolkit.diagnose._engine.approximate_outputs`);
        empty when every statistic is exact. Filled from the Recorder's record of each statement it
        compiled (:func:`declare_approximate`), so a diagnostic never lists them by hand; the
        numbers derived from such a column in :attr:`table` are approximate too.
    """

    #: Stable id of the diagnostic (``data.drift``, ``infra.latency``, ...).
    id: ClassVar[str] = ""
    #: Short human title.
    title: ClassVar[str] = ""

    baseline: Window
    incident: Window
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    sql: tuple[str, ...] = ()
    not_assessed: tuple[NotAssessed, ...] = ()
    #: Onsets located on the raw rows (finer than the timeline), per finding id.
    refined_onsets: dict[str, datetime] = field(default_factory=dict)
    approximate: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # what the caller lists (or ``dataclasses.replace`` carries over), then what the SQL
        # declares: a result rebuilt with more statements lists their outputs too
        if self.sql:
            found = tuple(dict.fromkeys((*self.approximate, *approximate_in(self.sql))))
            object.__setattr__(self, "approximate", found)

    @property
    def assessed(self) -> bool:
        """Whether the diagnostic had what it needed (it may still have partial gaps)."""
        return not self.not_assessed or not self.table.empty

    def headline(self) -> dict[str, Any]:
        """The few numbers that summarise the result (shown in reprs and reports)."""
        return {}

    def findings(self) -> list[Finding]:
        """Signals worth the classifier's attention (empty when nothing departs from normal)."""
        return []

    def signals(self) -> pd.DataFrame:
        """Time series for onset detection: ``bucket_start``, ``signal``, ``value``."""
        return pd.DataFrame(columns=list(SIGNAL_COLUMNS))

    def to_frame(self) -> pd.DataFrame:
        """The detail table, with a ``diagnostic`` column naming this diagnostic; its
        ``attrs["approximate"]`` is :attr:`approximate`."""
        frame = self.table.copy()
        frame.insert(0, "diagnostic", self.id)
        frame.attrs["approximate"] = self.approximate
        return frame

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw the result on ``ax`` (a new themed Axes when ``None``); returns the Axes."""
        from toolkit.plotting import axes

        ax = axes(ax)
        _no_data(ax, self.title, self.not_assessed)
        return ax

    def to_html(self, *, max_rows: int = MAX_HTML_ROWS, figure: bool = True) -> str:
        """The result as a self-contained HTML fragment, to paste into a page or a ticket.

        The fragment holds the title and windows, the headline numbers, the findings, the
        not-assessed checks with their reasons, the first ``max_rows`` rows of :attr:`table`
        (and how many were left out) and, with ``figure``, :meth:`plot` embedded as a base64
        PNG (the figure is closed afterwards). Every value is HTML-escaped: they come from logs.

        Parameters
        ----------
        max_rows
            Rows of the detail table shown (at least 1).
        figure
            Whether to draw and embed :meth:`plot` (``False`` is fast: what notebooks show).

        Returns
        -------
        str
            An HTML fragment (no ``<html>`` element; see :meth:`save_html` for a document).
        """
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise InvalidParameterError(f"max_rows must be a positive integer, not {max_rows!r}")
        parts = [
            f"<h4>{html.escape(self.title or self.id)} <code>{html.escape(self.id)}</code></h4>",
            f"<p>baseline {html.escape(str(self.baseline))} &middot; incident "
            f"{html.escape(str(self.incident))}</p>",
        ]
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td>{html.escape(_fmt(v))}</td></tr>"
            for k, v in self.headline().items()
        )
        if rows:
            parts.append(f"<table>{rows}</table>")
        found = self.findings()
        if found:
            parts.append("<ul class='findings'>" + "".join(
                f"<li><b>{html.escape(f.severity)}</b> <code>{html.escape(f.id)}</code> "
                f"{html.escape(f.summary)}</li>" for f in found) + "</ul>")
        else:
            parts.append("<p>No finding.</p>")
        if self.not_assessed:
            parts.append("<ul class='not-assessed'>" + "".join(
                f"<li><i>not assessed: {html.escape(gap.check)}: "
                f"{html.escape(gap.reason)}</i></li>" for gap in self.not_assessed) + "</ul>")
        if self.approximate:
            parts.append("<p class='approximate'><i>approximate (engine primitive): "
                         + html.escape(", ".join(self.approximate)) + "</i></p>")
        if figure:
            parts.append(self._figure_html())
        if not self.table.empty:
            shown = self.table.head(max_rows).to_html(
                index=False, escape=True, na_rep="n/a", border=0,
                float_format=lambda v: f"{v:.4g}")
            parts.append(f"<div style='overflow-x:auto'>{shown}</div>")
            hidden = len(self.table) - max_rows
            if hidden > 0:
                parts.append(f"<p><i>{hidden:,} more rows not shown (of {len(self.table):,}; "
                             "the whole table is <code>result.table</code>).</i></p>")
        return f"<div class='forensics-result'>{''.join(parts)}</div>"

    def save_html(self, path: str | os.PathLike[str], *, max_rows: int = MAX_HTML_ROWS
                  ) -> Path:
        """Write :meth:`to_html` (with the figure) as a standalone HTML document.

        Parameters
        ----------
        path
            Where to write; its folder must exist and its suffix be ``.html`` or ``.htm``.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        InvalidParameterError
            The suffix is not ``.html``/``.htm`` or the folder does not exist.
        """
        target = Path(path)
        if target.suffix.lower() not in (".html", ".htm"):
            raise InvalidParameterError(
                f"{target}: an HTML snippet is saved to a .html or .htm file, not "
                f"{target.suffix or 'a file without suffix'!r}")
        if not target.parent.is_dir():
            raise InvalidParameterError(f"{target}: the folder {target.parent} does not exist")
        title = html.escape(f"{self.title or self.id} ({self.id})")
        document = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                    f"<title>{title}</title><style>{_HTML_STYLE}</style></head><body>"
                    f"{self.to_html(max_rows=max_rows)}</body></html>\n")
        target.write_text(document, encoding="utf-8")
        return target

    def _figure_html(self) -> str:
        """:meth:`plot` as an ``<img>`` with a base64 PNG; the figure is closed afterwards."""
        import matplotlib.pyplot as plt

        from toolkit.plotting import polish

        ax = self.plot()
        fig = ax.figure
        try:
            polish(fig)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", bbox_inches="tight")
        finally:
            plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        alt = html.escape(f"{self.title or self.id} figure", quote=True)
        return f"<img alt='{alt}' style='max-width:100%' src=\"data:image/png;base64,{data}\">"

    def _repr_html_(self) -> str:
        return self.to_html(figure=False)

    def __repr__(self) -> str:
        head = ", ".join(f"{k}={_fmt(v)}" for k, v in self.headline().items())
        gaps = f", not_assessed={len(self.not_assessed)}" if self.not_assessed else ""
        return f"{type(self).__name__}({head}{gaps})"


def timeline_signals(timeline: pd.DataFrame, columns: Sequence[str] | Mapping[str, str],
                     prefix: str = "", *, dropna: bool = False) -> pd.DataFrame:
    """Columns of a per-bucket ``timeline`` as the long frame :meth:`DiagnosticResult.signals`
    returns: one row per bucket and column, ``bucket_start``, ``signal``, ``value``.

    Parameters
    ----------
    timeline
        One row per time bucket, with a ``bucket_start`` column; empty gives no signals.
    columns
        The columns to emit, each named ``prefix + column``; or a mapping from column to its
        signal name (``prefix`` then unused).
    prefix
        The signal names' prefix, the diagnostic's short name and a dot (``"cache."``).
    dropna
        Leave out the buckets where a column has no value (NaN).

    Examples
    --------
    >>> tl = pd.DataFrame({"bucket_start": [1, 2], "a": [0.5, None], "b": [3.0, 4.0]})
    >>> timeline_signals(tl, ["a", "b"], "x.", dropna=True)
       bucket_start signal  value
    0             1    x.a    0.5
    2             1    x.b    3.0
    3             2    x.b    4.0
    """
    if timeline.empty:
        return pd.DataFrame(columns=list(SIGNAL_COLUMNS))
    names = dict(columns) if isinstance(columns, Mapping) else None
    frame = timeline.melt(id_vars="bucket_start", value_vars=list(columns),
                          var_name="signal", value_name="value")
    frame["signal"] = frame["signal"].map(names) if names is not None else prefix + frame[
        "signal"]
    return frame.dropna(subset=["value"]) if dropna else frame


#: Approximate outputs by compiled statement (:func:`declare_approximate`); only statements
#: holding one are kept, the oldest dropped past :data:`_MAX_DECLARED`.
_DECLARED: dict[str, tuple[str, ...]] = {}
_MAX_DECLARED = 4096


def declare_approximate(sql: str, outputs: tuple[str, ...]) -> None:
    """Record that the statement ``sql`` computes ``outputs`` (``"<column>: <function>"``) with
    an approximate primitive. The Recorder calls it for every statement it compiles."""
    if not outputs:
        return
    if len(_DECLARED) >= _MAX_DECLARED:
        _DECLARED.pop(next(iter(_DECLARED)))
    _DECLARED[sql] = tuple(outputs)


def approximate_in(statements: tuple[str, ...]) -> tuple[str, ...]:
    """The approximate outputs declared for any of ``statements``, each once, in order."""
    found = (o for sql in statements for o in _DECLARED.get(sql, ()))
    return tuple(dict.fromkeys(found))


def _no_data(ax: Axes, title: str, gaps: tuple[NotAssessed, ...]) -> None:
    reason = gaps[0].reason if gaps else "no data"
    ax.text(0.5, 0.5, f"not assessed: {reason}", ha="center", va="center",
            transform=ax.transAxes, wrap=True)
    ax.set_axis_off()
    ax.set_title(title)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _json_number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _jsonable(value: Any) -> Any:
    """Make evidence JSON-serialisable (numpy scalars, timestamps, NaN)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _json_number(value)
    if isinstance(value, (datetime, pd.Timestamp)):
        return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, np.bool_):
        return bool(value)
    return value
