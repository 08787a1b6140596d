"""One request row per instance: batched payloads exploded, features spread into columns.

Readers of prediction logs (SageMaker, KServe / Seldon, Vertex AI) first build a temp table with
one row per logged request (or per record of the file) and these columns:

``_row``, ``_raw`` (optional), ``_perr``, ``_pcol`` (optional)
    where the record is, why it cannot be read (NULL when it can) and the source field that
    reason is about;
``_id``
    the request id; a request holding several instances gives ``<_id>:<i>`` (0-based ``i``);
``_xs``, ``_ys``, ``_gts``
    the instances (JSON[]), the outputs (JSON[]) and the ground-truth labels (VARCHAR[]);
    each may be NULL (not logged), and those present must have the same length;
any other column
    canonical values for every instance of the request (``ts``, ``endpoint``, ...).

:func:`explode` turns it into the staged source: one row per instance with ``prediction`` and
``score`` (see :mod:`._payload`), ``label``, and one column per feature. Array instances are
positional (names from ``features=[...]``, else ``f0``, ``f1``, ...; a record with another
number of values is rejected); object instances give one column per key.
"""

from __future__ import annotations

import duckdb

from toolkit.load.formats import FormatOptions
from toolkit.load.formats._common import finish, materialize
from toolkit.load.formats._payload import with_predictions
from toolkit.load.sources import StagedSource
from toolkit.store.schema import canonical_columns, quote_ident, quote_literal

__all__ = ["explode", "MAX_POSITIONAL"]

#: Inputs with more values (images, embeddings) or keys than this are not spread into columns.
MAX_POSITIONAL = 1000
_RESERVED = set(canonical_columns("requests")) | {"label", "labeled_at", "load_id"}
#: Columns of the staged relation and of the writer's working table (not feature names).
_INTERNAL = {"_row", "_raw", "_parse_error", "_parse_column", "_errors"}


def explode(
    con: duckdb.DuckDBPyConnection,
    records: str,
    *,
    label: str,
    options: FormatOptions,
    cleanup: list[str],
    registered: list[str] | None = None,
    notes: list[str] | None = None,
    table: str = "requests",
    fields: tuple[str, str, str] = ("input", "output", "labels"),
) -> StagedSource:
    """Stage ``records`` (see the module docstring) as one row per instance of ``table``.

    Parameters
    ----------
    con
        The case connection (in the loader's transaction).
    records
        Temp table of one row per logged request, with the columns of the module docstring.
    label
        How rejects name the source (the file path).
    options
        ``options.features`` names positional inputs.
    cleanup, registered, notes
        Temp tables to drop, Python objects to unregister, and notes for ``loads.note``; the
        ones of the caller, extended here.
    table
        ``requests`` (features, prediction, score, inline ``label``) or ``labels``
        (``request_id``, ``label`` and the pass-through columns, e.g. ``labeled_at``).
    fields
        The source fields of the instances, outputs and labels, named in the rejects of records
        whose parts do not match (e.g. ``captureData.endpointInput.data``).

    Returns
    -------
    StagedSource
        One row per instance; a record that cannot be read is one row with ``_parse_error``.
    """
    notes = list(notes or [])
    columns = [name for name, *_ in con.execute(f"DESCRIBE {quote_ident(records)}").fetchall()]
    has_raw = "_raw" in columns
    internal = {"_row", "_raw", "_perr", "_pcol", "_id", "_xs", "_ys", "_gts"}
    passthrough = [c for c in columns if c not in internal]
    keep = ", ".join(quote_ident(c) for c in passthrough)
    x_field, y_field, gt_field = (quote_literal(f) for f in fields)
    pcol = "_pcol" if "_pcol" in columns else "NULL::VARCHAR"
    counted = (
        f"(SELECT *, CASE WHEN _perr IS NULL AND _n > 0 THEN _n ELSE 1 END AS _k FROM "
        f"(SELECT * EXCLUDE ({'_perr, _pcol' if '_pcol' in columns else '_perr'}), "
        "CASE WHEN _perr IS NOT NULL THEN _perr "
        "WHEN _n = 0 THEN 'the payload holds no record' "
        "WHEN _xs IS NOT NULL AND _ys IS NOT NULL AND len(_xs) <> len(_ys) THEN "
        "printf('the request holds %d record(s) but the response %d', len(_xs), len(_ys)) "
        "WHEN _gts IS NOT NULL AND len(_gts) <> _n THEN "
        "printf('the ground truth holds %d label(s) for %d record(s)', len(_gts), _n) "
        f"END AS _perr, CASE WHEN _perr IS NOT NULL THEN {pcol} "
        f"WHEN _n = 0 THEN {x_field} "
        f"WHEN _xs IS NOT NULL AND _ys IS NOT NULL AND len(_xs) <> len(_ys) THEN {y_field} "
        f"WHEN _gts IS NOT NULL AND len(_gts) <> _n THEN {gt_field} END AS _pcol FROM "
        f"(SELECT *, coalesce(len(_xs), len(_ys), len(_gts), 1) AS _n "
        f"FROM {quote_ident(records)})))"
    )
    x = "_xs[_i + 1]"
    rows = (
        f"(SELECT _row, {'_raw, ' if has_raw else ''}_perr, _pcol, "
        f"CASE WHEN _n > 1 THEN _id || ':' || _i ELSE _id END AS request_id, "
        f"{keep + ', ' if keep else ''}"
        f"CASE WHEN json_type({x}) = 'OBJECT' AND json_type({x}->'features') = 'ARRAY' "
        f"THEN {x}->'features' WHEN json_type({x}) IN ('ARRAY', 'OBJECT') THEN {x} "
        f"WHEN {x} IS NULL OR json_type({x}) = 'NULL' THEN NULL ELSE to_json([{x}]) END AS _x, "
        "_ys[_i + 1] AS _y, _gts[_i + 1] AS label "
        f"FROM (SELECT *, unnest(range(_k)) AS _i FROM {counted}))"
    )
    if table == "labels":
        final = materialize(
            con,
            f"SELECT _row, {'_raw, ' if has_raw else ''}_perr AS _parse_error, "
            f"_pcol AS _parse_column, request_id, label{', ' + keep if keep else ''} FROM {rows}",
            cleanup=cleanup,
        )
        return finish(con, final, label, cleanup=cleanup, registered=registered, notes=notes)

    instances = materialize(con, f"SELECT * FROM {with_predictions(rows, '_y')}",
                            cleanup=cleanup)
    name = quote_ident(instances)
    mode = next(iter(con.execute(
        f"SELECT json_array_length(_x) AS k FROM {name} WHERE _perr IS NULL AND "
        "json_type(_x) = 'ARRAY' GROUP BY k ORDER BY count(*) DESC, k DESC LIMIT 1"
    ).fetchall()), None)
    keys = [k for (k,) in con.execute(
        "SELECT key FROM (SELECT _row, unnest(json_keys(_x)) AS key, "
        f"generate_subscripts(json_keys(_x), 1) AS idx FROM {name} WHERE _perr IS NULL "
        "AND json_type(_x) = 'OBJECT') GROUP BY key ORDER BY min(_row), min(idx)"
    ).fetchall()]

    sources: dict[str, list[str]] = {}
    checks = []
    literal = {str(k) for k in keys} | set(options.features)
    renamed: dict[str, str] = {}

    def column(name: str) -> str:
        target = _column(name)
        while target != name and target in literal:  # `ts` beside a real `ts_input` key
            target += "_input"
        if target != name:
            renamed[name] = target
        return target

    if mode is not None:
        expected = len(options.features) if options.features else int(mode[0])
        why = "one per name in features" if options.features else "as most records of the file"
        if expected > MAX_POSITIONAL:
            notes.append(f"inputs of {expected} values not spread into feature columns "
                         f"(more than {MAX_POSITIONAL})")
        else:
            names = list(options.features) or [f"f{i}" for i in range(expected)]
            if not options.features:
                notes.append(f"positional inputs named f0..f{expected - 1} (no feature names "
                             "given: pass features=[...] / --features, or a mapping)")
            checks.append((
                f"json_type(_x) = 'ARRAY' AND json_array_length(_x) <> {expected}",
                f"printf('the input record has %d value(s); expected {expected} ({why})', "
                "json_array_length(_x))",
            ))
            for i, feature in enumerate(names):
                sources.setdefault(column(feature), []).append(f"_fv[{i + 1}]")
            paths = ", ".join(f"'$[{i}]'" for i in range(expected))
    if len(keys) > MAX_POSITIONAL:
        notes.append(f"inputs with {len(keys)} distinct keys not spread into feature columns "
                     f"(more than {MAX_POSITIONAL})")
        keys = []
    for i, key in enumerate(keys):
        sources.setdefault(column(key), []).append(f"_fo[{i + 1}]")
    if keys:
        key_paths = ", ".join(quote_literal("$." + _json_key(k)) for k in keys)
    if renamed:
        notes.append("input keys named like canonical or internal columns loaded as: " + ", ".join(
            f"{name} -> {target}" for name, target in renamed.items()))

    features = ", ".join(
        f"{values[0] if len(values) == 1 else 'coalesce(' + ', '.join(values) + ')'} "
        f"AS {quote_ident(feature)}"
        for feature, values in sources.items()
    )
    error = "CASE WHEN _perr IS NOT NULL THEN _perr " + " ".join(
        f"WHEN {condition} THEN {message}" for condition, message in checks) + " END"
    error_column = "CASE WHEN _perr IS NOT NULL THEN _pcol " + " ".join(
        f"WHEN {condition} THEN {x_field}" for condition, _ in checks) + " END"
    spread = []
    if any("_fv[" in v for vs in sources.values() for v in vs):
        spread.append(f"CASE WHEN json_type(_x) = 'ARRAY' THEN json_extract_string(_x, "
                      f"[{paths}]) END AS _fv")
    if keys:
        spread.append(f"CASE WHEN json_type(_x) = 'OBJECT' THEN json_extract_string(_x, "
                      f"[{key_paths}]) END AS _fo")
    inner = f"(SELECT *{', ' + ', '.join(spread) if spread else ''} FROM {name})"
    final = materialize(
        con,
        f"SELECT _row, {'_raw, ' if has_raw else ''}{error} AS _parse_error, "
        f"{error_column} AS _parse_column, request_id, "
        f"{keep + ', ' if keep else ''}prediction, score, label"
        f"{', ' + features if features else ''} FROM {inner}",
        cleanup=cleanup,
    )
    return finish(con, final, label, cleanup=cleanup, registered=registered, notes=notes)


def _column(name: str) -> str:
    """A feature's column name: the key itself, unless a canonical or internal column has it.

    Only those names get ``_input`` appended (``ts`` -> ``ts_input``, ``_row`` ->
    ``_row_input``); any other key, ``__x`` or ``_x`` included, keeps its name.

    Examples
    --------
    >>> [_column(k) for k in ("age", "__x", "_x", "ts", "_row", "_errors")]
    ['age', '__x', '_x', 'ts_input', '_row_input', '_errors_input']
    """
    name = str(name)
    if name in _RESERVED or name in _INTERNAL:
        return f"{name}_input"
    return name


def _json_key(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
