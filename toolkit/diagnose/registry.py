"""The diagnostics by stable id, and running them together on one case."""

from __future__ import annotations

import difflib
import html
import inspect
import typing
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import MIN_WINDOW_ROWS, CaseView, case_view
from toolkit.diagnose._engines import CaseSource
from toolkit.errors import UnknownDiagnosticError
from toolkit.types import Window

__all__ = ["REGISTRY", "Diagnosis", "run_diagnostics", "register", "Progress",
           "REQUEST_WINDOWS", "UnknownDiagnosticError"]

#: Every diagnostic by its stable id, in the order they run (data, model, infra, integration).
REGISTRY: dict[str, Callable[..., DiagnosticResult]] = {}

#: ``progress(diagnostic_id, done, total)``: called before each diagnostic runs, ``done`` of
#: ``total`` having run already.
Progress = Callable[[str, int, int], None]

#: Which windows of ``requests`` each diagnostic's findings rest on, for the minimum-size guard
#: of :func:`run_diagnostics`: ``"both"`` compares the incident with the baseline window (a
#: distribution, a rate, the versions the baseline used), ``"incident"`` judges the incident's
#: requests among themselves (hosts against each other, latency against concurrency, timeouts
#: against the latency tail). Below :data:`~toolkit.diagnose._case.MIN_WINDOW_ROWS` requests in
#: such a window the diagnostic does not run and says ``not_assessed`` with the counts. The
#: others read metrics and events, which are evidence in any number, or test their own counts:
#: ``integration.cache`` fires on a few stale hits only when Fisher's exact test carries their
#: rise over the baseline and the episode outlasts the grace (varied tuning cache_staleness s1,
#: s10 and s12, true windows of 12 to 24 logged requests, read undetermined under the guard).
REQUEST_WINDOWS: dict[str, str] = {
    "data.drift": "both", "data.quality": "both", "data.units": "both",
    "data.permutation": "both", "model.performance": "both", "model.calibration": "both",
    "model.prediction_shift": "both", "model.ood": "both", "infra.latency": "both",
    "integration.versions": "both", "integration.client_errors": "both",
    "data.prompt_mix": "both", "integration.generation": "both",
    "model.feedback": "both", "infra.token_latency": "both",
    "infra.prefill_interference": "both", "infra.context_errors": "incident",
    "infra.capacity": "incident", "infra.cold_start": "incident", "infra.hosts": "incident",
    "integration.timeouts": "incident", "case.segments": "incident",
    "model.estimation": "incident",
}


def register(diagnostic_id: str, function: Callable[..., DiagnosticResult]) -> None:
    REGISTRY[diagnostic_id] = function


@dataclass(frozen=True, repr=False)
class Diagnosis(Mapping[str, DiagnosticResult]):
    """The results of several diagnostics on one pair of windows.

    A read-only mapping from diagnostic id to result (``diagnosis["data.drift"]``,
    ``diagnosis.keys()``, ``"infra.latency" in diagnosis``, ``len(diagnosis)``), in the order
    the diagnostics ran. A notebook shows it as a table of the diagnostics (assessed or not,
    findings, the most severe one).

    Attributes
    ----------
    results
        Result per diagnostic id.
    gaps
        What the case as a whole could not tell (e.g. rows dated outside the analysed span),
        listed before the diagnostics' own gaps by :meth:`not_assessed`.
    """

    baseline: Window
    incident: Window
    results: dict[str, DiagnosticResult] = field(default_factory=dict)
    gaps: tuple[NotAssessed, ...] = ()

    def __getitem__(self, diagnostic_id: str) -> DiagnosticResult:
        try:
            return self.results[diagnostic_id]
        except (KeyError, TypeError):
            raise UnknownDiagnosticError(self._unknown(diagnostic_id)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __contains__(self, diagnostic_id: object) -> bool:
        try:
            return diagnostic_id in self.results
        except TypeError:  # an unhashable key is no diagnostic id
            return False

    def keys(self) -> KeysView[str]:
        """The diagnostic ids, in the order they ran."""
        return self.results.keys()

    def values(self) -> ValuesView[DiagnosticResult]:
        return self.results.values()

    def items(self) -> ItemsView[str, DiagnosticResult]:
        return self.results.items()

    def _unknown(self, diagnostic_id: object) -> str:
        valid = list(self.results)
        message = f"No diagnostic {diagnostic_id!r} in this diagnosis."
        if isinstance(diagnostic_id, str):
            close = difflib.get_close_matches(diagnostic_id, valid, n=1, cutoff=0.5)
            if close:
                message += f" Did you mean {close[0]!r}?"
        if not valid:
            return message + " It holds no result (no diagnostic ran)."
        return message + " Valid ids: " + ", ".join(valid) + "."

    def __repr__(self) -> str:
        found = self.findings()
        high = sum(f.severity == "high" for f in found)
        skipped = sum(not r.assessed for r in self.results.values())
        return (f"Diagnosis(baseline={self.baseline}, incident={self.incident}, "
                f"{len(self.results)} diagnostics, {len(found)} findings ({high} high), "
                f"{skipped} not assessed)")

    def _repr_html_(self) -> str:
        rows = []
        for diagnostic_id, result in self.results.items():
            found = sorted(result.findings(), key=lambda f: -f.rank)
            if result.assessed:
                state = "yes" if not result.not_assessed else \
                    f"partly: {result.not_assessed[0].reason}"
            else:
                state = "no: " + (result.not_assessed[0].reason if result.not_assessed
                                  else "nothing to assess")
            top = f"[{found[0].severity}] {found[0].summary}" if found else "\u2014"
            rows.append(f"<tr><td style='text-align:left'><code>{html.escape(diagnostic_id)}"
                        "</code></td>"
                        f"<td style='text-align:left'>{html.escape(state)}</td>"
                        f"<td>{len(found)}</td>"
                        f"<td style='text-align:left'>{html.escape(top)}</td></tr>")
        head = ("<tr><th style='text-align:left'>diagnostic</th>"
                "<th style='text-align:left'>assessed</th><th>findings</th>"
                "<th style='text-align:left'>most severe finding</th></tr>")
        gaps = "".join(f"<li>{html.escape(g.check)}: {html.escape(g.reason)}</li>"
                       for g in self.gaps)
        return (f"<div><p><b>Diagnosis</b> &middot; baseline "
                f"{html.escape(str(self.baseline))} &middot; incident "
                f"{html.escape(str(self.incident))}</p>"
                + (f"<ul>{gaps}</ul>" if gaps else "")
                + f"<table>{head}{''.join(rows)}</table></div>")

    def findings(self) -> list[Finding]:
        """Every finding, most severe first."""
        found = [f for r in self.results.values() for f in r.findings()]
        return sorted(found, key=lambda f: -f.rank)

    def not_assessed(self) -> list[NotAssessed]:
        return [*self.gaps, *(gap for r in self.results.values() for gap in r.not_assessed)]

    def signals(self) -> pd.DataFrame:
        """All time series the diagnostics expose, long format."""
        frames = [r.signals() for r in self.results.values()]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=["bucket_start", "signal", "value"])
        return pd.concat(frames, ignore_index=True)

    def sql(self) -> dict[str, tuple[str, ...]]:
        """The SQL each diagnostic ran."""
        return {k: r.sql for k, r in self.results.items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per finding."""
        rows = [f.to_dict() | {"diagnostic": f.diagnostic} for f in self.findings()]
        return pd.DataFrame(rows)


def run_diagnostics(
    con: CaseSource,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    ids: list[str] | None = None,
    case: CaseView | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> Diagnosis:
    """Run the registered diagnostics (all, or ``ids``) on one pair of windows.

    Diagnostics share one :class:`CaseView`, so summaries such as feature profiles are computed
    once. A diagnostic that takes earlier results (``drift=``, ``performance=``) gets them.
    ``options`` passes keyword arguments per diagnostic id (those a diagnostic does not take,
    such as ``bucket`` for one without a timeline, are left out).

    A diagnostic whose findings rest on the requests of a window (:data:`REQUEST_WINDOWS`) does
    not run when that window holds fewer than
    :data:`~toolkit.diagnose._case.MIN_WINDOW_ROWS` requests: its result is empty and says
    ``not_assessed`` with the counts, so that no finding comes from an empty or tiny window.

    Parameters
    ----------
    progress
        Called as ``progress(diagnostic_id, done, total)`` before each diagnostic runs
        (``done`` of the ``total`` selected have run); ``None`` (the default) reports nothing.
        A command line shows which diagnostic runs with it.
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    options = options or {}
    results: dict[str, DiagnosticResult] = {}
    selected = [i for i in REGISTRY if ids is None or i in ids]
    for done, diagnostic_id in enumerate(selected):
        function = REGISTRY[diagnostic_id]
        if progress is not None:
            progress(diagnostic_id, done, len(selected))
        gaps = _too_few_requests(case, diagnostic_id, baseline, incident)
        if gaps:
            results[diagnostic_id] = _result_type(function)(baseline=baseline,
                                                            incident=incident, not_assessed=gaps)
            continue
        parameters = inspect.signature(function).parameters
        kwargs = {k: v for k, v in options.get(diagnostic_id, {}).items() if k in parameters}
        for name, earlier in (("drift", "data.drift"), ("performance", "model.performance"),
                              ("latency", "infra.latency")):
            if name in parameters and earlier in results:
                kwargs.setdefault(name, results[earlier])
        results[diagnostic_id] = function(con, baseline, incident, case=case, **kwargs)
    return Diagnosis(baseline, incident, results)


def _too_few_requests(case: CaseView, diagnostic_id: str, baseline: Window,
                      incident: Window) -> tuple[NotAssessed, ...]:
    """The minimum-size guard (see :data:`REQUEST_WINDOWS`). A case without requests is left to
    the diagnostic itself (it may read metrics instead, and says so)."""
    needs = REQUEST_WINDOWS.get(diagnostic_id)
    if needs is None or not case.has("requests"):
        return ()
    if diagnostic_id == "infra.latency" and not case.has("requests", "latency_ms"):
        return ()  # it reads a latency metric instead, and counts its samples itself
    if diagnostic_id == "integration.versions" and case.has("lineage"):
        needs = "incident"  # the releases in lineage are the known-good pairs, not the baseline
    if needs == "both":
        return case.window_gaps(diagnostic_id, baseline, incident)
    n = case.window_rows(incident)
    if n >= MIN_WINDOW_ROWS:
        return ()
    return (NotAssessed(diagnostic_id, f"{n or 'no'} requests in the incident window "
                                       f"{incident}: fewer than {MIN_WINDOW_ROWS} are too few "
                                       "to assess"),)


def _result_type(function: Callable[..., DiagnosticResult]) -> type[DiagnosticResult]:
    """The result class a diagnostic returns (from its annotation), for an empty result."""
    try:
        kind = typing.get_type_hints(function).get("return")
    except (NameError, TypeError):  # pragma: no cover - an unresolvable annotation
        kind = None
    return kind if isinstance(kind, type) and issubclass(kind, DiagnosticResult) else \
        DiagnosticResult
