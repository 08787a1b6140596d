"""Incident forensics for ML inference systems.

The pipeline, one folder per step::

    load -> store -> diagnose -> classify -> report

* :func:`connect` opens a case (a DuckDB database with the canonical schema);
  :func:`connect_lake` a read-only case over the canonical tables in a lake (Spark);
* :func:`load` loads exported logs into it (files, folders or DataFrames);
* :func:`summarize` describes what the case holds.

Examples
--------
>>> import toolkit as tk
>>> con = tk.connect()
>>> tk.summarize(con).loads
0
"""

from importlib import import_module
from typing import Any

from toolkit import errors
from toolkit._version import __version__
from toolkit.load import LoadReport, load, load_many
from toolkit.store import CaseSummary, connect, summarize
from toolkit.types import Window

__all__ = [
    "__version__",
    "errors",
    "connect",
    "connect_lake",
    "load",
    "load_many",
    "LoadReport",
    "summarize",
    "CaseSummary",
    "Window",
    "diagnose",
    "classify",
    "report",
    "simulate",
    "classify_incident",
    "run_diagnostics",
    "render_postmortem",
    "render_weekly",
]

# Later pipeline steps import ibis, scipy and matplotlib: load them on first use, so that
# `import toolkit` (and the CLI) stays quick.
_LAZY_MODULES = {"diagnose", "classify", "report", "simulate", "plotting", "evaluate"}
_LAZY_FUNCTIONS = {
    "connect_lake": "toolkit.store.lake",
    "classify_incident": "toolkit.classify",
    "run_diagnostics": "toolkit.diagnose",
    "render_postmortem": "toolkit.report",
    "render_weekly": "toolkit.report",
}


def __dir__() -> list[str]:
    """The public API, so that completion (``tk.<TAB>``) offers it and not the helpers."""
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return import_module(f"toolkit.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
