"""Column mappings: rename source columns to canonical ones and say what unit they are in.

A mapping is a TOML file (or the equivalent ``dict``)::

    table = "requests"                 # optional: the target table for every file
    drop = ["internal_debug"]          # source columns to leave out

    [columns]                          # canonical = source, for whichever table is loaded
    request_id = "req_id"
    ts = { source = "timestamp", unit = "s" }        # epoch seconds
    latency_ms = { source = "duration", unit = "us" } # microseconds, converted to ms
    model_version = { value = "v3" }                  # a constant for every row

    [features]                         # optional facts for the feature catalog
    amount = { kind = "numeric", unit = "EUR" }
    zip_code = { kind = "categorical" }

    [tables.labels.columns]            # per-table entries override the shared ones
    label = "y_true"

Units. A timestamp column takes ``s``, ``ms``, ``us`` or ``ns`` (epoch numbers) or ``iso``
(text, with or without offset; naive text is UTC). Without a unit, text is parsed as ISO 8601 and
numbers are read as epoch values whose unit follows from their magnitude (below 1e11: seconds,
below 1e14: milliseconds, below 1e17: microseconds, else nanoseconds). A duration column
(``latency_ms``, ``ttft_ms``) takes ``ns``, ``us``, ``ms``, ``s`` or ``min``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import MappingError
from toolkit.store.schema import DATA_TABLES, canonical_columns

__all__ = ["ColumnSpec", "Mapping", "read_mapping", "EPOCH_UNITS", "DURATION_UNITS"]

#: Microseconds per unit of an epoch timestamp.
EPOCH_UNITS: dict[str, float] = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}
#: Milliseconds per unit of a duration.
DURATION_UNITS: dict[str, float] = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "min": 6e4}
_KINDS = ("numeric", "categorical")


@dataclass(frozen=True)
class ColumnSpec:
    """Where a canonical column comes from (a source column, or a constant), and its unit."""

    source: str | None
    unit: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Mapping:
    """A parsed column mapping (see the module docstring for the file format).

    Examples
    --------
    >>> m = Mapping.from_dict({"columns": {"ts": {"source": "t", "unit": "ms"}}})
    >>> m.columns_for("requests")["ts"]
    ColumnSpec(source='t', unit='ms', value=None)
    """

    table: str | None = None
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    tables: dict[str, dict[str, ColumnSpec]] = field(default_factory=dict)
    features: dict[str, dict[str, str]] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    origin: str = "<mapping>"

    def columns_for(self, table: str) -> dict[str, ColumnSpec]:
        """Shared entries overlaid with the entries for ``table``."""
        merged = dict(self.columns)
        merged.update(self.tables.get(table, {}))
        return merged

    def strict_columns_for(self, table: str) -> set[str]:
        """Canonical names whose source must exist (the per-table ones)."""
        return set(self.tables.get(table, {}))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "<mapping>") -> Mapping:
        """Build and validate a mapping from parsed TOML.

        Raises
        ------
        MappingError
            On unknown sections, tables, units or kinds; the message names ``origin``.
        """
        known = {"table", "columns", "features", "drop", "tables"}
        unknown = set(data) - known
        if unknown:
            raise MappingError(
                f"{origin}: unknown key(s) {sorted(unknown)}; expected {sorted(known)}.",
                path=origin,
            )
        table = data.get("table")
        if table is not None and table not in DATA_TABLES:
            raise MappingError(
                f"{origin}: table = {table!r} is not a case table ({', '.join(DATA_TABLES)}).",
                path=origin,
            )
        columns = _parse_columns(data.get("columns", {}), origin, "columns", table)
        tables = {}
        for name, section in data.get("tables", {}).items():
            if name not in DATA_TABLES:
                raise MappingError(
                    f"{origin}: [tables.{name}] is not a case table ({', '.join(DATA_TABLES)}).",
                    path=origin,
                )
            extra = set(section) - {"columns"}
            if extra:
                raise MappingError(
                    f"{origin}: [tables.{name}] takes only a 'columns' table; got {sorted(extra)}.",
                    path=origin,
                )
            tables[name] = _parse_columns(
                section.get("columns", {}), origin, f"tables.{name}.columns", name
            )
        features = {}
        for name, spec in data.get("features", {}).items():
            if not isinstance(spec, dict) or set(spec) - {"kind", "unit"}:
                raise MappingError(
                    f"{origin}: [features] {name} must be a table with 'kind' and/or 'unit'.",
                    path=origin,
                )
            if "kind" in spec and spec["kind"] not in _KINDS:
                raise MappingError(
                    f"{origin}: feature {name!r} has kind {spec['kind']!r}; use one of {_KINDS}.",
                    path=origin,
                )
            features[name] = {k: str(v) for k, v in spec.items()}
        drop = data.get("drop", [])
        if not isinstance(drop, list) or not all(isinstance(d, str) for d in drop):
            raise MappingError(f"{origin}: drop must be a list of column names.", path=origin)
        return cls(table, columns, tables, features, tuple(drop), origin)


def read_mapping(mapping: str | os.PathLike[str] | dict | Mapping | None) -> Mapping | None:
    """Read a mapping from a TOML file, a ``dict`` or an existing :class:`Mapping`."""
    if mapping is None or isinstance(mapping, Mapping):
        return mapping
    if isinstance(mapping, dict):
        return Mapping.from_dict(mapping)
    path = Path(mapping)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MappingError(f"{path}: mapping file not found.", path=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"{path} (byte {exc.start}): not a UTF-8 text file, so not a TOML mapping "
            "(is it binary?).",
            path=str(path),
        ) from exc
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file: {exc.strerror or exc}.",
                           path=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}.", path=str(path)) from exc
    return Mapping.from_dict(data, origin=str(path))


def _parse_columns(
    section: Any, origin: str, where: str, table: str | None
) -> dict[str, ColumnSpec]:
    if not isinstance(section, dict):
        raise MappingError(f"{origin}: [{where}] must be a table.", path=origin)
    parsed = {}
    for target, spec in section.items():
        if isinstance(spec, str):
            parsed[target] = ColumnSpec(spec)
            continue
        if isinstance(spec, dict) and set(spec) == {"value"}:
            parsed[target] = ColumnSpec(None, value=str(spec["value"]))
            continue
        if not isinstance(spec, dict) or "source" not in spec or set(spec) - {"source", "unit"}:
            raise MappingError(
                f"{origin}: [{where}] {target} must be a column name, "
                "{ source = \"...\", unit = \"...\" } or { value = \"...\" }.",
                path=origin,
            )
        unit = spec.get("unit")
        if unit is not None:
            _check_unit(target, unit, origin, table)
        parsed[target] = ColumnSpec(str(spec["source"]), unit)
    return parsed


def _check_unit(target: str, unit: str, origin: str, table: str | None) -> None:
    tables = [table] if table else list(DATA_TABLES)
    types = {canonical_columns(t).get(target) for t in tables} - {None}
    if any(t.startswith("TIMESTAMP") for t in types):
        allowed = (*EPOCH_UNITS, "iso")
    elif target.endswith("_ms"):
        allowed = tuple(DURATION_UNITS)
    else:
        raise MappingError(
            f"{origin}: {target} takes no unit (units apply to timestamps and *_ms durations).",
            path=origin,
        )
    if unit not in allowed:
        raise MappingError(
            f"{origin}: unit {unit!r} of {target} is not one of {', '.join(allowed)}.",
            path=origin,
        )
