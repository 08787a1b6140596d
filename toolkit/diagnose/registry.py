"""The diagnostics by stable id, and running them together on one case."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._base import DiagnosticResult, Finding, NotAssessed
from toolkit.diagnose._case import CaseView, case_view
from toolkit.types import Window

__all__ = ["REGISTRY", "Diagnosis", "run_diagnostics", "register"]

#: Every diagnostic by its stable id, in the order they run (data, model, infra, integration).
REGISTRY: dict[str, Callable[..., DiagnosticResult]] = {}


def register(diagnostic_id: str, function: Callable[..., DiagnosticResult]) -> None:
    REGISTRY[diagnostic_id] = function


@dataclass(frozen=True)
class Diagnosis:
    """The results of several diagnostics on one pair of windows.

    Attributes
    ----------
    results
        Result per diagnostic id.
    """

    baseline: Window
    incident: Window
    results: dict[str, DiagnosticResult] = field(default_factory=dict)

    def __getitem__(self, diagnostic_id: str) -> DiagnosticResult:
        return self.results[diagnostic_id]

    def findings(self) -> list[Finding]:
        """Every finding, most severe first."""
        found = [f for r in self.results.values() for f in r.findings()]
        return sorted(found, key=lambda f: -f.rank)

    def not_assessed(self) -> list[NotAssessed]:
        return [gap for r in self.results.values() for gap in r.not_assessed]

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
    con: duckdb.DuckDBPyConnection,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    ids: list[str] | None = None,
    case: CaseView | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> Diagnosis:
    """Run the registered diagnostics (all, or ``ids``) on one pair of windows.

    Diagnostics share one :class:`CaseView`, so summaries such as feature profiles are computed
    once. A diagnostic that takes earlier results (``drift=``, ``performance=``) gets them.
    ``options`` passes keyword arguments per diagnostic id (those a diagnostic does not take,
    such as ``bucket`` for one without a timeline, are left out).
    """
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    options = options or {}
    results: dict[str, DiagnosticResult] = {}
    for diagnostic_id, function in REGISTRY.items():
        if ids is not None and diagnostic_id not in ids:
            continue
        parameters = inspect.signature(function).parameters
        kwargs = {k: v for k, v in options.get(diagnostic_id, {}).items() if k in parameters}
        for name, earlier in (("drift", "data.drift"), ("performance", "model.performance"),
                              ("latency", "infra.latency")):
            if name in parameters and earlier in results:
                kwargs.setdefault(name, results[earlier])
        results[diagnostic_id] = function(con, baseline, incident, case=case, **kwargs)
    return Diagnosis(baseline, incident, results)
