"""Shared by the platform-format tests: fixture paths and the bookkeeping invariants."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats"
UTC = UTC


def at(text: str) -> datetime:
    """An aware UTC datetime from ISO text."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def counts_hold(con) -> None:
    """rows read = loaded + rejected for every load, and each reject is in `rejects`."""
    rows = con.execute(
        "SELECT l.load_id, l.rows_read, l.rows_loaded, l.rows_rejected, count(r.load_id) "
        "FROM loads l LEFT JOIN rejects r USING (load_id) WHERE NOT l.replaced GROUP BY ALL"
    ).fetchall()
    for load_id, read, loaded, rejected, kept in rows:
        assert read == loaded + rejected, load_id
        assert rejected == kept, load_id


def rejects(con) -> list[tuple]:
    """(row_number, column_name, reason) of every reject, in file order."""
    return con.execute(
        "SELECT row_number, column_name, reason FROM rejects ORDER BY file, row_number"
    ).fetchall()
