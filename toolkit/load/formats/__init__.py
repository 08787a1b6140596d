"""Platform export formats, recognised by content.

Each platform reader (SageMaker data capture, KServe/Seldon CloudEvents, Prometheus
``query_range``, Kubernetes, OTLP, Vertex AI) is a :class:`FormatReader` registered in
:data:`READERS`. :func:`resolve` looks at the head of a file and, when a reader recognises it,
returns the file re-labelled with the reader's name and target table; otherwise the file stays a
generic table file.

A reader stages its file as a :class:`~toolkit.load.sources.StagedSource` whose columns already
carry canonical names (``request_id``, ``ts``, ``latency_ms``, feature columns, and ``label`` /
``labeled_at`` for ground truth logged inline), so conversion, rejects and provenance are the
same for every format.

==============  ============================================================  ==================
reader          recognises                                                    table
==============  ============================================================  ==================
``sagemaker``   Model Monitor data capture, ground-truth uploads, merged      requests / labels
                monitor records, batch-transform capture (JSON lines; one
                batch run per file, timed as :mod:`._batch` says)
``kserve``      KServe / Seldon payload-logger CloudEvents: event_display     requests
                and HTTP echo dumps, structured JSON, blob-sink objects
``prometheus``  HTTP API ``query_range`` / ``query`` responses                metrics
``prometheus-   text exposition (``/metrics`` scrapes of vLLM, SGLang, TGI,     metrics
text``          Triton; times from the lines, ``# time:`` markers or the name)
``kubernetes``  ``kubectl get events|pods -o json``                           events
``otlp``        OTLP/JSON trace exports (server spans)                        requests
``vertex``      Vertex AI request-response logging (NDJSON / Parquet)         requests
``openai``      OpenAI-compatible request/response logs (chat / completions,   requests
                proxy logs, Batch API output; usage tokens, finish reasons)
==============  ============================================================  ==================

Content is recognised before a file's name is believed (:func:`resolve`): a KServe dump called
``events.jsonl`` loads into ``requests``. A record a reader cannot read is a reject with its
reason (never a silently half-filled row); a file with no readable record is refused.

Each reader module documents what it maps to which canonical column; shared pieces live in
``_common`` (reading JSON records, temp tables), ``_payload`` (request / response bodies as SQL,
prediction and score rules), ``_instances`` (one row per instance, features spread into
columns), ``_cloudevents`` (text dumps), ``_batch`` (batch jobs' run times) and
``_metric_names`` (serving-stack metric names).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from toolkit.errors import FileParseError, InvalidParameterError
from toolkit.load.discover import SourceFile, _table_from_path

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from toolkit.load.mapping import Mapping
    from toolkit.load.sources import StagedSource

__all__ = ["FormatOptions", "FormatReader", "READERS", "register", "get", "resolve", "head"]

#: Bytes read from the start of a file to recognise its format.
HEAD_BYTES = 1 << 16


@dataclass(frozen=True)
class FormatOptions:
    """Options some formats need.

    Attributes
    ----------
    features
        Names for positional feature values (SageMaker CSV capture has no header).
    mapping
        The user's column mapping, if any.
    run_time
        When a batch job ran (ISO 8601; UTC when it has no offset), for batch records that
        carry no time and whose path tells none (SageMaker batch transform; see
        :mod:`._batch`).
    """

    features: tuple[str, ...] = ()
    mapping: Mapping | None = None
    run_time: str | datetime | None = None

    def __post_init__(self) -> None:
        if self.run_time is not None:  # refused before any file is read
            from toolkit.load.formats._batch import parse_run_time

            object.__setattr__(self, "run_time", parse_run_time(self.run_time))


class FormatReader(Protocol):
    """What a platform reader provides."""

    #: Stable name, used by ``--format`` and recorded in ``loads.format``.
    name: str
    #: The tables the reader can stage its files into (the first is its default).
    tables: tuple[str, ...]

    def sniff(self, path: Path, head: bytes) -> str | None:
        """Return the target table when the file is in this format, else ``None``."""

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage the file with canonical column names."""


#: Registered readers, tried in registration order.
READERS: dict[str, FormatReader] = {}


def register(reader: FormatReader) -> FormatReader:
    """Add a reader to :data:`READERS` (usable as a class decorator on an instance factory)."""
    READERS[reader.name] = reader
    return reader


def get(name: str) -> FormatReader:
    """The reader called ``name``."""
    try:
        return READERS[name]
    except KeyError:
        choices = ", ".join(["generic", *READERS])
        raise InvalidParameterError(f"Unknown format {name!r}; choose one of {choices}.") from None


def head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a file (decompressed when it is gzip).

    Raises
    ------
    FileParseError
        The file starts like gzip but its data is corrupt or truncated.
    """
    with open(path, "rb") as handle:
        start = handle.read(size)
    if start[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise FileParseError(f"{path}: corrupt gzip data: {exc}.", path=str(path),
                                 position="byte 0") from None
    return start


def resolve(
    file: SourceFile, *, format: str | None = None, options: FormatOptions | None = None,
    table: str | None = None,
) -> SourceFile:
    """Recognise a platform format by content (or force one), and set the target table.

    ``format="generic"`` keeps the file a generic table file. The content is recognised
    before the file's name is believed: a table named by the file or its folder
    (``events.jsonl``) is kept only when the reader can load into it, else the reader's own
    table wins (a KServe dump called ``events.jsonl`` is requests). A table the caller gave
    (``--table``) that the reader cannot load into is refused with the reason: pass it as
    ``table`` so that it is told apart from a table the file's name suggests (without it, a
    ``--table events`` on a file named ``events.jsonl`` reads as the name's).

    Raises
    ------
    InvalidParameterError
        ``format`` is unknown, or the recognised format cannot load into the caller's table.
    """
    forced = table
    if format == "generic":
        return file
    if format is not None:
        reader = get(format)
        # the reader's default table when the head does not say (e.g. a truncated first line)
        detected = reader.sniff(file.path, head(file.path)) or reader.tables[0]
        return replace(file, format=reader.name,
                       table=_target(file, reader, detected, forced))
    if file.format == "parquet" and not READERS:
        return file
    start = head(file.path)
    for reader in READERS.values():
        detected = reader.sniff(file.path, start)
        if detected is not None:
            return replace(file, format=reader.name,
                           table=_target(file, reader, detected, forced))
    return file


def _target(
    file: SourceFile, reader: FormatReader, detected: str, forced: str | None = None
) -> str:
    """The table a recognised file loads into: the named one if the reader can fill it.

    A table named by the file or its folder (``requests.jsonl``, ``reference/x.jsonl``) is
    kept when the reader loads into it; a name that says another table (``events.jsonl``
    holding KServe CloudEvents) gives way to the content. A table the caller forced
    (``--table``) that the reader cannot fill is an error, not a silent switch.
    """
    if file.table is None or file.table in reader.tables:
        return file.table or detected
    if forced is None and file.table == _table_from_path(file.path):
        return detected
    raise InvalidParameterError(
        f"{file.path}: holds {reader.name} records, which load into "
        f"{' or '.join(reader.tables)}, not {file.table}; drop --table (or pass --format "
        "generic to read it as a plain table file)."
    )


# Readers register themselves on import; the order is the order `resolve` tries them in.
from toolkit.load.formats import sagemaker  # noqa: E402,F401  isort: skip
from toolkit.load.formats import kserve  # noqa: E402,F401  isort: skip
from toolkit.load.formats import prometheus  # noqa: E402,F401  isort: skip
from toolkit.load.formats import kubernetes  # noqa: E402,F401  isort: skip
from toolkit.load.formats import otlp  # noqa: E402,F401  isort: skip
from toolkit.load.formats import vertex  # noqa: E402,F401  isort: skip
from toolkit.load.formats import openai_log  # noqa: E402,F401  isort: skip
from toolkit.load.formats import prometheus_text  # noqa: E402,F401  isort: skip
