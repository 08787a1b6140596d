"""Incident forensics for ML inference systems.

The pipeline, one folder per step::

    load -> store -> diagnose -> classify -> report

* :func:`connect` opens a case (a DuckDB database with the canonical schema);
* :func:`load` loads exported logs into it (files, folders or DataFrames);
* :func:`summarize` describes what the case holds.

Examples
--------
>>> import toolkit as tk
>>> con = tk.connect()
>>> tk.summarize(con).loads
0
"""

from toolkit import errors
from toolkit._version import __version__
from toolkit.load import LoadReport, load, load_many
from toolkit.store import CaseSummary, connect, summarize
from toolkit.types import Window

__all__ = [
    "__version__",
    "errors",
    "connect",
    "load",
    "load_many",
    "LoadReport",
    "summarize",
    "CaseSummary",
    "Window",
]
