"""Provenance: content hashes and the ``loads`` bookkeeping table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

__all__ = ["sha256_file", "sha256_table", "previous_load", "next_load_id", "PreviousLoad"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _HashSink:
    """A write-only file object that hashes what is written to it."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        return view.nbytes

    def flush(self) -> None:  # pragma: no cover - required by the protocol
        pass

    def close(self) -> None:
        self.closed = True


def sha256_table(table: pa.Table) -> str:
    """SHA-256 of an Arrow table's IPC stream (schema and data), streamed, not copied."""
    sink = _HashSink()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema) as writer:
        writer.write_table(table)
    return sink.digest.hexdigest()


@dataclass(frozen=True)
class PreviousLoad:
    load_id: int
    path: str
    sha256: str
    table: str


def previous_load(
    con: duckdb.DuckDBPyConnection, *, path: str | None = None, sha256: str | None = None,
    table: str | None = None,
) -> PreviousLoad | None:
    """The newest live (not replaced) load of ``path``, or of ``sha256`` into ``table``."""
    if path is not None:
        row = next(iter(con.execute(
            "SELECT load_id, path, sha256, table_name FROM loads WHERE path = ? AND NOT replaced "
            "ORDER BY load_id DESC LIMIT 1",
            [path],
        ).fetchall()), None)
    else:
        row = next(iter(con.execute(
            "SELECT load_id, path, sha256, table_name FROM loads WHERE sha256 = ? "
            "AND table_name = ? AND NOT replaced ORDER BY load_id DESC LIMIT 1",
            [sha256, table],
        ).fetchall()), None)
    return PreviousLoad(*row) if row else None


def next_load_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM loads").fetchall()[0][0])
