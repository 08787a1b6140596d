"""Simulate-and-load in one call: a case's files and its case database side by side."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb

from toolkit.simulate.case import Case
from toolkit.simulate.writer import write_case

__all__ = ["ingest_case", "ingest_written"]


def ingest_case(case: Case, folder: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """Write ``case`` to ``folder/raw`` and load it into a fresh ``folder/case.duckdb``.

    What the example notebooks, ``forensics evaluate`` and tests do before diagnosing. A case
    simulated there before (``raw/`` holding a ``truth.json``) and its database are replaced,
    so a notebook can be run again; any other content of ``raw/`` is refused by
    :func:`write_case`.

    Returns
    -------
    duckdb.DuckDBPyConnection
        The open case database (read-write).

    Examples
    --------
    >>> import tempfile
    >>> from toolkit.simulate import ingest_case, make_case
    >>> case = make_case("none", seed=2, rows=2_000)
    >>> folder = tempfile.mkdtemp()
    >>> con = ingest_case(case, folder)
    >>> con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
    2000
    >>> con.close()
    >>> ingest_case(case, folder).execute("SELECT count(*) FROM loads").fetchall()[0][0] > 0
    True
    """
    return ingest_written(lambda raw: write_case(case, raw), folder)


def ingest_written(write: Callable[[Path], object], folder: str | os.PathLike[str]
                   ) -> duckdb.DuckDBPyConnection:
    """``write(folder / "raw")`` writes a case's files, which are loaded into a fresh
    ``folder/case.duckdb``: :func:`ingest_case` for any simulator's ``write_case`` (the
    generative one's too). A case simulated there before (``raw/`` holding a ``truth.json``)
    and its database are replaced first.

    Returns
    -------
    duckdb.DuckDBPyConnection
        The open case database (read-write).
    """
    from toolkit.load import load
    from toolkit.store import connect

    out = Path(folder)
    raw, db = out / "raw", out / "case.duckdb"
    if (raw / "truth.json").is_file():
        shutil.rmtree(raw)
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    write(raw)
    con = connect(db)
    load(con, raw)
    return con
