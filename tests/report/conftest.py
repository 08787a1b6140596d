"""Shared set-up of the report tests: a simulated case, written as files and ingested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import toolkit as tk
from toolkit.simulate import make_case, write_case


def ingested_case(folder: Path, mode: str, *, seed: int, rows: int,
                  **options: Any) -> tuple[Path, dict]:
    """Simulate ``mode`` (``options`` such as ``task=`` go to :func:`make_case`), write it
    under ``folder/raw``, ingest it into ``folder/case.duckdb`` through the real loader;
    return the case path and the simulation's truth."""
    simulated = make_case(mode, seed=seed, rows=rows, **options)
    write_case(simulated, folder / "raw")
    db = folder / "case.duckdb"
    con = tk.connect(db)
    tk.load(con, folder / "raw")
    con.close()
    return db, simulated.truth()
