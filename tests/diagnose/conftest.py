"""Tiny hand-built cases for diagnostic tests."""

from __future__ import annotations

import pandas as pd
import pytest

import toolkit as tk


def make_case(**tables: pd.DataFrame):
    """An in-memory case with the given tables loaded through the real loader."""
    con = tk.connect()
    for name, frame in tables.items():
        report = tk.load(con, frame, table=name)
        assert report.rows_rejected == 0, con.execute("SELECT * FROM rejects").fetchall()
    return con


@pytest.fixture
def case_factory():
    return make_case
