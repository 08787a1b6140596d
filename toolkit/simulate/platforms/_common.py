"""Shared by the platform writers: a DuckDB connection, SQL snippets, line files, generic tables.

Every platform writer builds its records in DuckDB, one request chunk at a time, from the
chunk's Arrow table (never row by row in Python), and writes them with :func:`write_lines`
(JSON lines or text blocks) or DuckDB's ``COPY``. What a platform cannot carry is written as
the generic files of :func:`toolkit.simulate.write_case`
(:func:`toolkit.simulate.writer.write_tables`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.simulate.case import Case
from toolkit.store.schema import canonical_columns, quote_ident, quote_literal

__all__ = [
    "NAMESPACE",
    "CONTAINER",
    "Progress",
    "connect",
    "feature_columns",
    "features_json",
    "positive_probability",
    "seconds_text",
    "rfc3339_ns",
    "epoch_ns",
    "write_lines",
    "run_starts",
    "digest_uuid",
    "LabelParts",
    "write_request_files",
]

#: Kubernetes namespace and container of the simulated service (the metrics' labels say so).
NAMESPACE = "ml-serving"
CONTAINER = "model-server"

#: Called after each chunk with (rows written so far, total rows).
Progress = Callable[[int, int], None]

_CANONICAL = set(canonical_columns("requests"))


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose session time zone is UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def feature_columns(schema: pa.Schema) -> list[str]:
    """The model-input columns of a requests chunk (every non-canonical column), in order."""
    return [name for name in schema.names if name not in _CANONICAL]


def features_json(schema: pa.Schema) -> str:
    """SQL: the request's features as one JSON object text (``{"amount_usd": 12.5, ...}``).

    Missing values are JSON ``null``; numbers keep every digit (DuckDB writes the shortest
    text that reads back to the same double).
    """
    pairs = ", ".join(f"{quote_literal(c)}, {quote_ident(c)}" for c in feature_columns(schema))
    return f"CAST(json_object({pairs}) AS VARCHAR)"


def positive_probability() -> str:
    """SQL: the probability of class "1" from ``prediction`` and ``score`` (the confidence in
    the prediction), rounded as the score is (6 decimals)."""
    return "CASE WHEN prediction = '1' THEN score ELSE round(1.0 - score, 6) END"


def seconds_text(us: str, fmt: str = "%Y-%m-%dT%H:%M:%S") -> str:
    """SQL: whole seconds of epoch microseconds ``us`` (BIGINT) formatted with ``fmt``."""
    return f"strftime(make_timestamp(({us}) // 1000000 * 1000000), '{fmt}')"


def rfc3339_ns(ns: str) -> str:
    """SQL: RFC 3339 UTC text of epoch nanoseconds ``ns`` as Go prints it (``RFC3339Nano``:
    trailing zeros of the fraction dropped, no fraction for a whole second)."""
    fraction = f"(({ns}) % 1000000000)"
    return (
        f"{seconds_text(f'CAST(({ns}) // 1000 AS BIGINT)')} || CASE WHEN {fraction} = 0 "
        f"THEN '' ELSE '.' || rtrim(lpad(CAST({fraction} AS VARCHAR), 9, '0'), '0') END || 'Z'"
    )


def epoch_ns(ts: str) -> str:
    """SQL: epoch nanoseconds (HUGEINT) of a TIMESTAMPTZ column."""
    return f"(epoch_us({ts})::HUGEINT * 1000)"


def write_lines(path: Path, lines: pa.Array, start: int = 0, stop: int | None = None) -> None:
    """Write rows ``start:stop`` of a string array whose values end with a newline.

    The bytes are those of the array's data buffer: no Python string per row.
    """
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    stop = len(lines) if stop is None else stop
    if stop <= start:
        return
    if pa.types.is_string(lines.type):
        lines = lines.cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64,
                            count=len(lines) + 1 + lines.offset)[lines.offset:]
    data = lines.buffers()[2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(memoryview(data)[int(offsets[start]):int(offsets[stop])])


def run_starts(keys: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal values in ``keys`` (sorted), with the end appended.

    Examples
    --------
    >>> run_starts(np.array([3, 3, 4, 7, 7])).tolist()
    [0, 2, 3, 5]
    """
    keys = np.asarray(keys)
    if not len(keys):
        return np.array([0], dtype=np.int64)
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.concatenate([[0], change, [len(keys)]]).astype(np.int64)


def digest_uuid(*parts: object) -> str:
    """A version-4-shaped UUID text derived from ``parts`` (deterministic).

    Examples
    --------
    >>> digest_uuid("a", 1) == digest_uuid("a", 1), len(digest_uuid("a", 1))
    (True, 36)
    """
    h = hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


class LabelParts:
    """The labels as generic Parquet parts (``labels/part-<chunk>.parquet``), chunk by chunk.

    Used by the formats whose requests are in a platform export but whose ground truth is
    not (KServe, OTLP, Vertex AI): a label table keyed by the request id the export carries.
    """

    def __init__(self, case: Case, out: Path) -> None:
        self.folder = out / "labels" if case.plan.platform.labels else None
        if self.folder is not None:
            self.folder.mkdir()

    def write(self, chunk: int, labels: pa.Table | None) -> None:
        if self.folder is None or labels is None:
            return
        pq.write_table(labels, self.folder / f"part-{chunk:05d}.parquet")


def write_request_files(
    case: Case,
    out: Path,
    folder: Path,
    *,
    sql: Callable[[pa.Schema], str],
    column: str,
    file_rows: int,
    file_name: Callable[[int], str],
    progress: Progress | None = None,
) -> None:
    """Render the requests of ``case`` into line files of ``file_rows`` requests each.

    Each slice of a request chunk is registered as ``chunk`` and ``sql(schema)`` turns it into
    one string per request in ``column`` (values ending with a newline), written to
    ``folder / file_name(k)``; the labels go to generic parts (:class:`LabelParts`).
    """
    con = connect()
    labels_out = LabelParts(case, out)
    done = part = 0
    for c, (requests, labels) in enumerate(case.arrow_chunks()):
        query = sql(requests.schema)
        for lo in range(0, requests.num_rows, file_rows):
            con.register("chunk", requests.slice(lo, file_rows))
            lines = con.sql(query).to_arrow_table().column(column)
            con.unregister("chunk")
            write_lines(folder / file_name(part), lines)
            part += 1
        labels_out.write(c, labels)
        done += requests.num_rows
        if progress is not None:
            progress(done, case.rows)
    con.close()
