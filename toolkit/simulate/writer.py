"""``write_case``: a case as generic export files that ``forensics ingest`` reads as they are.

Layout of ``out_dir``::

    requests/part-00000.parquet ...   about 1M rows per part, 250k-row row groups
    labels/part-00000.parquet ...     (when the platform exports labels)
    reference.parquet                 (when it exports a training sample)
    features.csv                      name, kind, position, unit
    metrics/part-00000.parquet ...    hosts' series gathered into parts of about 1M rows
    events.jsonl
    lineage.csv                       (when it exports lineage)
    truth.json                        the answer (not a table: the loader skips it)

Parts are written as they are generated, so memory stays bounded whatever the row count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.errors import InvalidParameterError
from toolkit.simulate.case import Case
from toolkit.simulate.metrics import metric_chunks
from toolkit.simulate.rows import CHUNK_ROWS

__all__ = ["write_case", "write_tables", "PART_ROWS"]

#: Requests per Parquet part file.
PART_ROWS = 1_000_000
_CHUNKS_PER_PART = PART_ROWS // CHUNK_ROWS

#: Called after each chunk with (rows written so far, total rows).
Progress = Callable[[int, int], None]


def write_case(
    case: Case,
    out_dir: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    format: str = "generic",
) -> Path:
    """Write ``case`` as export files under ``out_dir`` (created; must be empty if it exists).

    Parameters
    ----------
    case
        From :func:`~toolkit.simulate.make_case`.
    out_dir
        Target folder.
    progress
        Optional callback ``progress(rows_done, rows_total)`` after each chunk.
    format
        ``generic`` (the layout above), or a serving platform's export
        (``sagemaker``, ``kserve``, ``prometheus``, ``kubernetes``, ``otlp``, ``vertex``):
        see :mod:`toolkit.simulate.platforms`.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InvalidParameterError
        ``out_dir`` is a file, or a folder that is not empty; an unknown ``format``.

    Examples
    --------
    >>> import tempfile, toolkit as tk
    >>> from toolkit.simulate import make_case, write_case
    >>> out = write_case(make_case("none", seed=2, rows=2_000), tempfile.mkdtemp() + "/case")
    >>> sorted(p.name for p in out.iterdir())[:4]
    ['events.jsonl', 'features.csv', 'labels', 'metrics']
    >>> report = tk.load(tk.connect(), out)
    >>> report.rows_rejected
    0
    """
    if format != "generic":
        from toolkit.simulate.platforms import write_platform_case

        return write_platform_case(case, out_dir, format, progress=progress)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidParameterError(f"{out} exists and is not an empty folder.")
    out.mkdir(parents=True, exist_ok=True)
    write_tables(case, out, requests=True, events=case.events(), progress=progress)
    return out


def write_tables(
    case: Case,
    out: Path,
    *,
    requests: bool = True,
    metrics: bool = True,
    events: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> None:
    """Write the generic files of ``case`` into the existing folder ``out``, and ``truth.json``.

    :func:`write_case` writes them all; a platform writer (:mod:`toolkit.simulate.platforms`)
    writes those its export does not carry.

    Parameters
    ----------
    case
        The case.
    out
        Its folder.
    requests
        Write ``requests/`` (and ``labels/``).
    metrics
        Write ``metrics/``.
    events
        The events to write to ``events.jsonl`` (none are written when empty: an empty JSONL
        file has no columns to load).
    progress
        Passed to the request writer.
    """
    if requests:
        _write_requests(case, out, progress)
    reference = case.reference()
    if reference is not None:
        pq.write_table(pa.Table.from_pandas(reference, preserve_index=False),
                       out / "reference.parquet")
    case.features().to_csv(out / "features.csv", index=False)
    if metrics and case.plan.platform.metrics:
        _write_metrics(case, out)
    if events is not None and len(events) and case.plan.platform.events:
        _write_events(events, out / "events.jsonl")
    endpoints = case.endpoints()
    if endpoints is not None:  # multiclass and regression cases declare their task
        endpoints.to_csv(out / "endpoints.csv", index=False)
    lineage = case.lineage()
    if lineage is not None:
        frame = lineage.copy()
        frame["created_at"] = frame["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame.to_csv(out / "lineage.csv", index=False)
    (out / "truth.json").write_text(json.dumps(case.truth(), indent=2) + "\n")


def _write_requests(case: Case, out: Path, progress: Progress | None) -> None:
    requests_dir = out / "requests"
    requests_dir.mkdir()
    labels_dir = None
    if case.plan.platform.labels:
        labels_dir = out / "labels"
        labels_dir.mkdir()
    writers: dict[str, pq.ParquetWriter] = {}
    done = 0
    try:
        for c, (requests, labels) in enumerate(case.arrow_chunks()):
            part = c // _CHUNKS_PER_PART
            if c % _CHUNKS_PER_PART == 0:
                for w in writers.values():
                    w.close()
                writers = {"requests": pq.ParquetWriter(
                    requests_dir / f"part-{part:05d}.parquet", requests.schema)}
                if labels_dir is not None:
                    writers["labels"] = pq.ParquetWriter(
                        labels_dir / f"part-{part:05d}.parquet", labels.schema)
            writers["requests"].write_table(requests, row_group_size=CHUNK_ROWS)
            if labels_dir is not None:
                writers["labels"].write_table(labels, row_group_size=CHUNK_ROWS)
            done += requests.num_rows
            if progress is not None:
                progress(done, case.rows)
    finally:
        for w in writers.values():
            w.close()


def _write_metrics(case: Case, out: Path) -> None:
    """Per-host tables gathered into parts of about ``PART_ROWS`` rows."""
    folder = out / "metrics"
    folder.mkdir()
    pending: list[pa.Table] = []
    size = part = 0
    # a generative case models its engine metrics itself (KV cache, scheduler, counters)
    chunks = case.metric_tables() if hasattr(case, "metric_tables") else metric_chunks(case.plan)
    for table in chunks:
        pending.append(table)
        size += table.num_rows
        if size >= PART_ROWS:
            pq.write_table(pa.concat_tables(pending), folder / f"part-{part:05d}.parquet")
            pending, size, part = [], 0, part + 1
    if pending:
        pq.write_table(pa.concat_tables(pending), folder / f"part-{part:05d}.parquet")


def _write_events(events: pd.DataFrame, path: Path) -> None:
    with path.open("w") as handle:
        for row in events.itertuples(index=False):
            record = {
                "ts": row.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "kind": row.kind,
                "artifact": row.artifact,
                "version": row.version,
                "host": row.host,
                "detail": json.loads(row.detail),
            }
            handle.write(json.dumps(record) + "\n")
