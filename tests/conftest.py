"""Shared fixtures: a fresh case database, real data locations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import toolkit as tk

# Property-based tests: a small fixed budget in `make test` (derandomized, so CI is
# repeatable), a long random search in `make fuzz` (HYPOTHESIS_PROFILE=fuzz). A test may ask
# for more or fewer examples with @settings(max_examples=...) on top of the profile.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW_OK, print_blob=True)
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")),
                          deadline=None, suppress_health_check=_SLOW_OK, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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
