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

    [roles]                            # columns that are not model features
    id = ["customer_id"]               # identifiers: kept out of the feature catalog
    target = "income"                  # the ground truth: loaded as ``label``

    [files."pod_gpu_duty_cycle*"]      # a section for the files whose name matches
    table = "metrics"                  # (fnmatch on the file name; the first match wins)
    columns = { ts = "timestamp_anon", name = { value = "gpu_duty_cycle" } }

Values. ``status = { source = "state", values = { SUCCEED = "ok", FAILED = "error" } }``
rewrites the values of any column before it is converted; a value the table does not list is
kept as it is, and the load's notes count such rows. A ``status`` holding HTTP codes (``200``,
``503``) becomes ``ok`` (1xx-3xx), ``timeout`` (408, 504) or ``error`` (other 4xx/5xx), as
``http_status`` alone does when there is no status column.

Score semantics. ``score = { source = "p", semantics = "p_positive", positive = ">50K" }``
says the score is the probability of the positive class (not the confidence in the
prediction); it is recorded in ``case_meta`` under ``score_semantics`` (``semantics`` is
``confidence`` or ``p_positive``; ``positive`` the positive class) for the calibration and
performance diagnostics.

Task. ``task = "multiclass"`` declares the task (DESIGN section 3a: ``binary``,
``multiclass``, ``regression`` or ``generative``) of every endpoint whose requests the mapping
loads; the table form adds the facts of the task and may name the endpoint::

    task = { task = "binary", positive = "fraud" }
    task = { task = "multiclass", classes = ["ant", "bee", "cat"] }
    task = { task = "regression", interval_coverage = 0.9, endpoint = "price" }

The loader writes the declaration into the ``endpoints`` catalog (:func:`declare_task`), where
it wins over the task the diagnostics would infer. Requests without an endpoint cannot carry a
declaration (map one: ``endpoint = { value = "..." }``); the load's notes say so.

Percent. ``value = { source = "gpu_util", unit = "percent" }`` (any number column that is not a
time or a duration, features included) divides the values by 100: utilisation is stored as a
0..1 fraction.

Coarse times. A timestamp column takes ``year`` (``2019``), ``month`` (``2019-03`` or
``201903``) or ``date`` (``2019-03-07`` or ``20190307``): each row is at the start of its
period, UTC. A relative time (``0``, ``1500`` ms after the start of a trace) takes an
``origin``: ``ts = { source = "timestamp", unit = "ms", origin = "2025-02-21T00:00:00Z" }``.

Units. A timestamp column takes ``s``, ``ms``, ``us`` or ``ns`` (epoch numbers) or ``iso``
(text, with or without offset; naive text is UTC). Without a unit, text is parsed as ISO 8601 and
numbers are read as epoch values whose unit follows from their magnitude (below 1e11: seconds,
below 1e14: milliseconds, below 1e17: microseconds, else nanoseconds); a number below 1e8
(before 1973-03-03 as seconds: a year such as ``2019``, or a time relative to a trace's start)
is refused as a timestamp unless a unit says what it is. A duration column (``latency_ms``,
``ttft_ms``) takes ``ns``, ``us``, ``ms``, ``s`` or ``min``.

Shipped mappings. :func:`shipped_mappings` lists the mappings in
:mod:`toolkit.load.mappings`; a name without a path separator and without ``.toml``
(``alibaba-genai``) is read from there.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from toolkit.errors import MappingError
from toolkit.store.schema import DATA_TABLES, TASKS, canonical_columns

__all__ = ["ColumnSpec", "Mapping", "read_mapping", "shipped_mappings", "declare_task",
           "EPOCH_UNITS", "DURATION_UNITS", "COARSE_UNITS"]

#: Microseconds per unit of an epoch timestamp.
EPOCH_UNITS: dict[str, float] = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}
#: Milliseconds per unit of a duration.
DURATION_UNITS: dict[str, float] = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "min": 6e4}
#: Units of a coarse time column (each row at the start of its period, UTC).
COARSE_UNITS = ("year", "month", "date")
_KINDS = ("numeric", "categorical")
_SEMANTICS = ("confidence", "p_positive")


@dataclass(frozen=True)
class ColumnSpec:
    """Where a canonical column comes from (a source column, or a constant), and its unit."""

    source: str | None
    unit: str | None = None
    value: str | None = None
    values: dict[str, str] | None = None
    origin: str | None = None


@dataclass(frozen=True)
class Mapping:
    """A parsed column mapping (see the module docstring for the file format).

    Examples
    --------
    >>> m = Mapping.from_dict({"columns": {"ts": {"source": "t", "unit": "ms"}}})
    >>> m.columns_for("requests")["ts"]
    ColumnSpec(source='t', unit='ms', value=None, values=None, origin=None)
    """

    table: str | None = None
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    tables: dict[str, dict[str, ColumnSpec]] = field(default_factory=dict)
    features: dict[str, dict[str, str]] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    origin: str = "<mapping>"
    ids: tuple[str, ...] = ()
    score: dict[str, str] | None = None
    files: tuple[tuple[str, Mapping], ...] = ()
    #: the declared task: ``task`` and, when given, ``endpoint``, ``positive``, ``classes``,
    #: ``interval_coverage`` (see the module documentation)
    task: dict[str, Any] | None = None

    def for_file(self, name: str) -> Mapping:
        """This mapping with the first ``[files."pattern"]`` section matching ``name`` laid
        over it (its table, columns, drop, features and roles win); itself when none does."""
        for pattern, section in self.files:
            if fnmatch.fnmatchcase(name, pattern):
                columns = {**self.columns, **section.columns}
                tables = {t: {**self.tables.get(t, {}), **section.tables.get(t, {})}
                          for t in {*self.tables, *section.tables}}
                return Mapping(
                    section.table or self.table, columns, tables,
                    {**self.features, **section.features}, (*self.drop, *section.drop),
                    f"{self.origin} [files.{pattern!r}]", (*self.ids, *section.ids),
                    section.score or self.score, (), section.task or self.task,
                )
        return self

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
        known = {"table", "columns", "features", "drop", "tables", "roles", "files", "task"}
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
        ids, target = _parse_roles(data.get("roles", {}), origin)
        if target is not None:
            columns.setdefault("label", ColumnSpec(target))
        score = None
        for spec in (columns, *tables.values()):
            if "score" in spec and spec["score"].values is not None:
                score = spec["score"].values
                spec["score"] = ColumnSpec(spec["score"].source, spec["score"].unit)
        files = []
        for pattern, section in data.get("files", {}).items():
            if not isinstance(section, dict) or "files" in section:
                raise MappingError(
                    f"{origin}: [files.{pattern!r}] must be a table (without its own [files]).",
                    path=origin,
                )
            files.append((pattern, cls.from_dict(section, origin=f"{origin} [files.{pattern!r}]")))
        task = _parse_task(data["task"], origin) if "task" in data else None
        return cls(table, columns, tables, features, tuple(drop), origin, ids, score,
                   tuple(files), task)


def _parse_task(spec: Any, origin: str) -> dict[str, Any]:
    """``task = "..."`` or ``task = { task = "...", endpoint, positive, classes,
    interval_coverage }``, each fact allowed only for the task it belongs to."""
    if isinstance(spec, str):
        spec = {"task": spec}
    allowed = {"task", "endpoint", "positive", "classes", "interval_coverage"}
    if not isinstance(spec, dict) or "task" not in spec or set(spec) - allowed:
        raise MappingError(f"{origin}: task must be one of {', '.join(TASKS)} or "
                           "{ task = \"...\", endpoint = \"...\", positive = \"...\", "
                           "classes = [...], interval_coverage = 0.9 }.", path=origin)
    task = spec["task"]
    if task not in TASKS:
        raise MappingError(f"{origin}: task {task!r} is not one of {', '.join(TASKS)}.",
                           path=origin)
    for fact, owner in (("positive", "binary"), ("classes", "multiclass"),
                        ("interval_coverage", "regression")):
        if fact in spec and task != owner:
            raise MappingError(f"{origin}: task.{fact} belongs to a {owner} task, not "
                               f"{task}.", path=origin)
    out: dict[str, Any] = {"task": task}
    if "endpoint" in spec:
        out["endpoint"] = str(spec["endpoint"])
    if "positive" in spec:
        out["positive"] = str(spec["positive"])
    if "classes" in spec:
        classes = spec["classes"]
        if not isinstance(classes, list) or len(classes) < 2 or not all(
                isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes):
            raise MappingError(f"{origin}: task.classes must list at least two class names.",
                               path=origin)
        out["classes"] = [str(c) for c in classes]
    if "interval_coverage" in spec:
        coverage = spec["interval_coverage"]
        if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or \
                not 0 < coverage < 1:
            raise MappingError(f"{origin}: task.interval_coverage must be a number between 0 "
                               f"and 1 (the nominal coverage, e.g. 0.9); got {coverage!r}.",
                               path=origin)
        out["interval_coverage"] = float(coverage)
    return out


def declare_task(con: Any, mapping: Mapping, load_id: int) -> tuple[str, ...]:
    """Write ``mapping``'s task declaration into the ``endpoints`` catalog for the endpoints
    of the requests load ``load_id`` (or the endpoint the declaration names); returns notes
    for the load (requests without an endpoint cannot carry it).

    One row per endpoint, replaced when declared again (the catalog's ``INSERT OR
    REPLACE``); values are bound parameters.
    """
    spec = mapping.task
    if not spec:
        return ()
    if "endpoint" in spec:
        endpoints, unnamed = [spec["endpoint"]], 0
    else:
        rows = con.execute("SELECT endpoint, count(*) FROM requests WHERE load_id = ? "
                           "GROUP BY endpoint ORDER BY endpoint", [load_id]).fetchall()
        endpoints = [e for e, _ in rows if e is not None]
        unnamed = sum(int(n) for e, n in rows if e is None)
    import json

    classes = json.dumps(spec["classes"]) if "classes" in spec else None
    for endpoint in endpoints:
        con.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?, ?::JSON, ?)",
                    [endpoint, spec["task"], spec.get("positive"), classes,
                     spec.get("interval_coverage")])
    if unnamed:
        return (f"task {spec['task']!r} not declared for {unnamed} request(s) without an "
                "endpoint: map one (endpoint = { value = \"...\" }) or name it "
                "(task = { endpoint = \"...\" }); their task is inferred",)
    return ()


def _parse_roles(section: Any, origin: str) -> tuple[tuple[str, ...], str | None]:
    """``[roles] id = [...]`` (identifiers, not features) and ``target = "..."`` (the label)."""
    if not isinstance(section, dict) or set(section) - {"id", "target"}:
        raise MappingError(f"{origin}: [roles] takes 'id' (a list of columns) and 'target' "
                           "(a column).", path=origin)
    ids = section.get("id", [])
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MappingError(f"{origin}: [roles] id must be a list of column names.", path=origin)
    target = section.get("target")
    if target is not None and not isinstance(target, str):
        raise MappingError(f"{origin}: [roles] target must be a column name.", path=origin)
    return tuple(ids), target


def shipped_mappings() -> list[str]:
    """Names of the mappings shipped in :mod:`toolkit.load.mappings` (``alibaba-genai``, ...).

    Examples
    --------
    >>> "azure-llm" in shipped_mappings()
    True
    """
    folder = resources.files("toolkit.load.mappings")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _shipped_path(name: str) -> Path | None:
    """The shipped mapping called ``name``, when ``name`` is a bare name (no separator, no
    ``.toml``) and no file of that name exists."""
    if os.sep in name or "/" in name or name.endswith(".toml") or Path(name).exists():
        return None
    path = Path(str(resources.files("toolkit.load.mappings").joinpath(f"{name}.toml")))
    if not path.is_file():
        raise MappingError(
            f"{name}: no mapping file of that name, and no shipped mapping called {name!r} "
            f"(shipped: {', '.join(shipped_mappings())}).",
            path=name,
        )
    return path


def read_mapping(mapping: str | os.PathLike[str] | dict | Mapping | None) -> Mapping | None:
    """Read a mapping from a TOML file, a ``dict`` or an existing :class:`Mapping`."""
    if mapping is None or isinstance(mapping, Mapping):
        return mapping
    if isinstance(mapping, dict):
        return Mapping.from_dict(mapping)
    path = _shipped_path(str(mapping)) or Path(mapping)
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
        keys = {"source", "unit", "values", "origin"}
        if target == "score":
            keys |= {"semantics", "positive"}
        if not isinstance(spec, dict) or "source" not in spec or set(spec) - keys:
            raise MappingError(
                f"{origin}: [{where}] {target} must be a column name, "
                "{ source = \"...\", unit = \"...\", values = { ... }, origin = \"...\" } "
                "or { value = \"...\" }.",
                path=origin,
            )
        unit = spec.get("unit")
        if unit is not None:
            _check_unit(target, unit, origin, table)
        values = spec.get("values")
        if values is not None and (not isinstance(values, dict) or not all(
                isinstance(v, (str, int, float, bool)) for v in values.values())):
            raise MappingError(f"{origin}: [{where}] {target}.values must map source values "
                               "to values.", path=origin)
        start = spec.get("origin")
        if start is not None:
            if unit not in EPOCH_UNITS:
                raise MappingError(f"{origin}: [{where}] {target} has an origin, which needs "
                                   f"a unit of {', '.join(EPOCH_UNITS)}.", path=origin)
            from datetime import UTC, datetime

            try:
                moment = datetime.fromisoformat(str(start))
            except ValueError:
                raise MappingError(f"{origin}: [{where}] {target}.origin {start!r} is not an "
                                   "ISO 8601 time.", path=origin) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            start = moment.astimezone(UTC).isoformat()
        mapped = {str(k): str(v) for k, v in values.items()} if values is not None else None
        if target == "score" and ("semantics" in spec or "positive" in spec):
            semantics = spec.get("semantics", "confidence")
            if semantics not in _SEMANTICS:
                raise MappingError(f"{origin}: score semantics {semantics!r} is not one of "
                                   f"{', '.join(_SEMANTICS)}.", path=origin)
            if semantics == "p_positive" and "positive" not in spec:
                raise MappingError(f"{origin}: score semantics 'p_positive' needs "
                                   "positive = \"<the positive class>\".", path=origin)
            # carried in `values` until from_dict lifts it out (a score has no value map)
            mapped = {"score_is": semantics, "source": str(spec["source"]),
                      **({"positive": str(spec["positive"])} if "positive" in spec else {})}
        parsed[target] = ColumnSpec(str(spec["source"]), unit, values=mapped, origin=start)
    return parsed


def _check_unit(target: str, unit: str, origin: str, table: str | None) -> None:
    tables = [table] if table else list(DATA_TABLES)
    types = {canonical_columns(t).get(target) for t in tables} - {None}
    if any(t.startswith("TIMESTAMP") for t in types):
        allowed = (*EPOCH_UNITS, "iso", *COARSE_UNITS)
    elif target.endswith("_ms"):
        allowed = tuple(DURATION_UNITS)
    elif not types or types & {"DOUBLE", "FLOAT"}:
        allowed = ("percent",)
    else:
        raise MappingError(
            f"{origin}: {target} takes no unit (units apply to timestamps, *_ms durations and "
            "percent numbers).",
            path=origin,
        )
    if unit not in allowed:
        raise MappingError(
            f"{origin}: unit {unit!r} of {target} is not one of {', '.join(allowed)}.",
            path=origin,
        )
