"""Shared fixtures: a fresh case database, real data locations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import toolkit as tk

REALDATA = Path(os.environ.get("FORENSICS_REALDATA", Path(__file__).resolve().parents[2] /
                               "shared" / "realdata"))


@pytest.fixture
def con():
    """An empty in-memory case."""
    connection = tk.connect()
    yield connection
    connection.close()


@pytest.fixture
def case_path(tmp_path):
    """Path of a (not yet created) case database file."""
    return tmp_path / "case.duckdb"


def realdata(*parts: str) -> Path:
    """A file under ../shared/realdata, or skip the test when it is absent."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test's plots opened (pyplot keeps them, and warns past 20)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
