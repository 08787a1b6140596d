"""Find the files behind a path and the canonical table each one belongs to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import LoadError
from toolkit.store.schema import DATA_TABLES, check_table

__all__ = ["SourceFile", "discover", "file_format", "LOAD_ORDER"]

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
)
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
    told get ``table=None``; platform formats are recognised later by their content.

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
    if table is not None:
        check_table(table)
    root = Path(path).expanduser()
    if not root.exists():
        raise LoadError(f"{root}: no such file or folder.", path=str(root))
    root = root.resolve()
    if root.is_file():
        candidates = [root]
    else:
        candidates = sorted(
            p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root))
        )
    found = []
    for candidate in candidates:
        fmt = file_format(candidate)
        if fmt is None:
            continue
        hive = any("=" in part for part in candidate.parent.parts)
        found.append(
            SourceFile(candidate, table or _table_from_path(candidate), fmt, hive)
        )
    if not found:
        raise LoadError(
            f"{root}: no CSV, CSV.gz, Parquet, JSON, JSONL or log text file found.",
            path=str(root),
        )
    order = {name: i for i, name in enumerate(LOAD_ORDER)}
    return sorted(found, key=lambda f: (order.get(f.table or "", len(order)), str(f.path)))


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


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)
