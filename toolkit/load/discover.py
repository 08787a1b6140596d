"""Find the files behind a path and the canonical table each one belongs to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import LoadError
from toolkit.store.schema import DATA_TABLES, check_table

__all__ = ["SourceFile", "Skipped", "discover", "survey", "file_format", "skip_reason",
           "LOAD_ORDER"]

#: Suffixes of the generic formats, longest first.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".csv.gz", "csv"),
    (".tsv.gz", "csv"),
    (".jsonl.gz", "jsonl"),
    (".ndjson.gz", "jsonl"),
    (".json.gz", "json"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".csv", "csv"),
    (".tsv", "csv"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".json", "json"),
    (".txt", "text"),
    (".log", "text"),
    (".prom", "text"),
)
#: Compressions and containers the loader does not read, with what to do about them.
_UNREAD: tuple[tuple[str, str], ...] = (
    (".bz2", "compressed with bzip2"),
    (".zst", "compressed with zstd"),
    (".zstd", "compressed with zstd"),
    (".xz", "compressed with xz"),
    (".lz4", "compressed with lz4"),
    (".snappy", "compressed with snappy"),
    (".zip", "a ZIP archive"),
    (".tar", "a tar archive"),
    (".tgz", "a tar archive"),
    (".7z", "a 7-Zip archive"),
)
_SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
#: Tables are loaded in this order, so that the feature catalog and the reference sample are
#: known before requests arrive.
LOAD_ORDER: tuple[str, ...] = (
    "features",
    "lineage",
    "reference",
    "requests",
    "labels",
    "metrics",
    "events",
)


@dataclass(frozen=True)
class SourceFile:
    """One file to load.

    Attributes
    ----------
    path
        Absolute path of the file.
    table
        Canonical table it loads into (``None`` when only its content can tell).
    format
        ``csv``, ``jsonl``, ``json``, ``parquet`` or ``text`` from the suffix; after
        :func:`toolkit.load.formats.resolve`, the name of a platform format when the content
        is one.
    hive
        Whether the path carries ``key=value`` folders (hive partitions).
    """

    path: Path
    table: str | None
    format: str
    hive: bool = False

    @property
    def stem(self) -> str:
        """File name without its format suffixes."""
        return strip_suffix(self.path.name)


@dataclass(frozen=True)
class Skipped:
    """A file under a folder that is not loaded, and why."""

    path: Path
    reason: str


def skip_reason(path: Path) -> str:
    """Why a file whose suffix is not a format we read is not loaded, and what to do about it.

    Examples
    --------
    >>> skip_reason(Path("requests.csv.bz2"))
    'compressed with bzip2, which the loader does not read: decompress it, or recompress it with gzip (.gz)'
    """
    name = path.name.lower()
    for suffix, what in _UNREAD:
        if name.endswith(suffix):
            return (f"{what}, which the loader does not read: decompress it, or recompress it "
                    "with gzip (.gz)")
    if name.endswith(_SPREADSHEETS):
        return "a spreadsheet, which the loader does not read: export it as CSV"
    if name.endswith(".gz"):
        return ("a gzip file of a format the loader does not read (it reads .csv.gz, .tsv.gz, "
                ".jsonl.gz, .ndjson.gz and .json.gz)")
    suffix = path.suffix.lower() or "no suffix"
    return (f"not a format the loader reads ({suffix}; it reads CSV, TSV, Parquet, JSON, JSON "
            "lines, gzip of these, and .txt/.log text)")


def file_format(path: Path) -> str | None:
    """Generic format of ``path`` from its suffix, or ``None`` when it is not one we read."""
    name = path.name.lower()
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return None


def strip_suffix(name: str) -> str:
    """``requests.csv.gz`` -> ``requests``."""
    lower = name.lower()
    for suffix, _ in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def discover(path: str | os.PathLike[str], *, table: str | None = None) -> list[SourceFile]:
    """List the loadable files under ``path`` with their target tables.

    A file's table is, in order: ``table`` when given; its own name (``requests.parquet``); the
    nearest enclosing folder named after a table (``metrics/part-0.csv``, also through hive
    folders such as ``requests/date=2026-03-01/part-0.parquet``). Files whose table cannot be
    told get ``table=None``; platform formats are recognised later by their content. The files
    that are not loaded, and why, are what :func:`survey` adds.

    Raises
    ------
    LoadError
        If ``path`` does not exist or holds no file in a format we read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "metrics").mkdir()
    >>> _ = (root / "metrics" / "part-0.csv").write_text("ts,name,value\\n")
    >>> [(f.table, f.format) for f in discover(root)]
    [('metrics', 'csv')]
    """
    return survey(path, table=table)[0]


def survey(
    path: str | os.PathLike[str], *, table: str | None = None
) -> tuple[list[SourceFile], list[Skipped]]:
    """Every file under ``path``: the loadable ones (as :func:`discover`), and the others with
    the reason they are not loaded (an unread compression, a spreadsheet, a hidden or
    underscore folder such as ``_backup/`` or ``.old/``, an unknown suffix).

    Raises
    ------
    LoadError
        If ``path`` does not exist or holds no file in a format we read.
    """
    if table is not None:
        check_table(table)
    root = Path(path).expanduser()
    if not root.exists():
        raise LoadError(f"{root}: no such file or folder.", path=str(root))
    root = root.resolve()
    skipped: list[Skipped] = []
    if root.is_file():
        candidates = [root]
    else:
        candidates = []
        for p in sorted(root.rglob("*")):
            if not p.is_file():
                continue
            hidden = _hidden(p.relative_to(root))
            if hidden is None:
                candidates.append(p)
            else:
                skipped.append(Skipped(p, hidden))
    found = []
    for candidate in candidates:
        fmt = file_format(candidate)
        if fmt is None:
            skipped.append(Skipped(candidate, skip_reason(candidate)))
            continue
        hive = any("=" in part for part in candidate.parent.parts)
        found.append(
            SourceFile(candidate, table or _table_from_path(candidate), fmt, hive)
        )
    if not found:
        detail = f" ({skipped[0].path.name}: {skipped[0].reason})" if len(skipped) == 1 else (
            f" ({len(skipped)} file(s) skipped, e.g. {skipped[0].path.name}: {skipped[0].reason})"
            if skipped else "")
        raise LoadError(
            f"{root}: no CSV, CSV.gz, Parquet, JSON, JSONL or log text file found{detail}.",
            path=str(root),
        )
    order = {name: i for i, name in enumerate(LOAD_ORDER)}
    found = sorted(found, key=lambda f: (order.get(f.table or "", len(order)), str(f.path)))
    return found, sorted(skipped, key=lambda s: str(s.path))


def _table_from_path(path: Path) -> str | None:
    stem = strip_suffix(path.name).lower()
    if stem in DATA_TABLES:
        return stem
    for folder in reversed(path.parent.parts):
        if "=" in folder:
            continue
        name = folder.lower()
        if name in DATA_TABLES:
            return name
        break
    return None


def _hidden(relative: Path) -> str | None:
    """Why a file is left out as hidden (``.old/``, ``_backup/``, ``.DS_Store``), or None."""
    *folders, name = relative.parts
    for folder in folders:
        if folder.startswith((".", "_")):
            return (f"in the hidden or underscore folder {folder}/, which a folder ingest leaves "
                    "out; load that folder or file explicitly to include it")
    if name.startswith((".", "_")):
        return ("a hidden or underscore file, which a folder ingest leaves out; load it "
                "explicitly to include it")
    return None
