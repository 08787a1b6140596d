"""A stand-in for a diagnostics scan (``run_diagnostics``'s result) in window-detection tests:
the findings given, and no timelines."""

from __future__ import annotations

import pandas as pd


class FakeScan:
    """A scan that answers ``findings`` and an empty signal table."""

    def __init__(self, findings):
        self._findings = findings

    def findings(self):
        return self._findings

    def signals(self):
        return pd.DataFrame(columns=["bucket_start", "signal", "value"])
