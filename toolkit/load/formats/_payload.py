"""Inference payloads as SQL: request bodies into instances, responses into predictions.

The same bodies travel through SageMaker capture, KServe / Seldon payload logs and Vertex AI
exports: V1 ``{"instances": [...]}`` / ``{"predictions": [...]}``, V2 (Open Inference Protocol)
tensors, Seldon ``{"data": {"names", "ndarray" | "tensor"}}``, SageMaker JSON lines and CSV.
Each function here returns a DuckDB SQL expression (text) over column names, so that DuckDB
interprets every payload itself.

Conventions
-----------
* An *instance* is one JSON value: an array (positional feature values), an object (named
  feature values) or a scalar.
* An *output* is one JSON value too; :func:`prediction_levels` turns it into ``prediction``
  (text) and ``score``: the model's confidence in ``prediction``, 0..1. The rules:

  - an integer, a string or a boolean is a class label (no score);
  - a fraction in [0, 1] is the probability of the positive class "1": ``prediction`` is "1"
    when it is at least 0.5, else "0", and ``score`` is the probability of that prediction,
    ``max(p, 1 - p)`` (so ``p`` is recoverable: ``score`` if prediction is "1", else
    ``1 - score``);
  - a number outside [0, 1] is a regression value: ``prediction`` is its text, no score;
  - an array of probabilities summing to 1 gives the arg-max index and its probability;
  - an object is read by its keys: a label from ``predicted_label``, ``prediction``,
    ``predicted_class``, ``class``, ``label``, ``predict``; probabilities from
    ``probabilities``, ``predict_proba``, ``scores``, ``confidences`` (with class names from
    ``classes``, ``labels`` or ``displayNames``); a scalar ``score`` / ``probability`` is
    the positive-class probability when the label is 0/1 (so a 0 prediction scores
    ``1 - score``) and the label's own probability otherwise; ``confidence`` is taken as is;
    ``value`` is a regression value.
"""

from __future__ import annotations

__all__ = [
    "text_lines",
    "csv_fields",
    "csv_value_json",
    "csv_outputs",
    "request_instances",
    "response_outputs",
    "v2_tensors",
    "label_of",
    "prediction_levels",
    "LABEL_KEYS",
    "PROBABILITY_KEYS",
    "CLASS_KEYS",
]

LABEL_KEYS = ("predicted_label", "prediction", "predicted_class", "class", "label", "predict")
PROBABILITY_KEYS = ("probabilities", "predict_proba", "scores", "confidences", "score",
                    "probability")
CLASS_KEYS = ("classes", "labels", "displayNames")
_NUMBER_TYPES = "('DOUBLE', 'UBIGINT', 'BIGINT')"
_ARRAY = "('ARRAY')"


def text_lines(text: str) -> str:
    """SQL: the non-empty lines of a text (VARCHAR[]), carriage returns dropped."""
    return (
        f"list_filter(string_split(replace({text}, chr(13), ''), chr(10)), "
        "lambda l: trim(l) <> '')"
    )


def csv_fields(line: str) -> str:
    """SQL: the fields of one CSV line (VARCHAR[]); double-quoted fields may hold commas."""
    return (
        f"CASE WHEN contains({line}, '\"') THEN list_transform(regexp_extract_all({line}, "
        "'(?:^|,)(\"(?:[^\"]|\"\")*\"|[^,]*)', 1), lambda f: CASE WHEN f LIKE '\"%' "
        f"THEN replace(f[2:-2], '\"\"', '\"') ELSE f END) ELSE string_split({line}, ',') END"
    )


def csv_value_json(field: str) -> str:
    """SQL: a CSV field as a JSON value: integer, number, or string."""
    value = f"TRY_CAST(trim({field}) AS DOUBLE)"
    return (
        f"CASE WHEN regexp_full_match(trim({field}), '-?(0|[1-9][0-9]{{0,17}})') "
        f"THEN CAST(trim({field}) AS JSON) WHEN {value} IS NOT NULL AND isfinite({value}) "
        f"THEN to_json({value}) ELSE to_json({field}) END"
    )


def csv_outputs(text: str, n_inputs: str) -> str:
    """SQL: the outputs (JSON[]) of a CSV response: one per line, a line's fields an array.

    A single line with as many fields as there are input records is one value per record
    (XGBoost answers a multi-line CSV request that way).
    """
    lines = text_lines(text)
    return (
        f"CASE WHEN len({lines}) = 1 AND coalesce({n_inputs}, 1) > 1 AND "
        f"len({csv_fields(lines + '[1]')}) = {n_inputs} "
        f"THEN list_transform({csv_fields(lines + '[1]')}, lambda f: {csv_value_json('f')}) "
        f"ELSE list_transform({lines}, lambda l: CASE WHEN len({csv_fields('l')}) = 1 "
        f"THEN {csv_value_json('l')} ELSE to_json(list_transform({csv_fields('l')}, "
        f"lambda f: {csv_value_json('f')})) END) END"
    )


def _is_tensor_list(value: str) -> str:
    return (
        f"(json_type({value}) = 'ARRAY' AND json_type({value}->0) = 'OBJECT' "
        f"AND json_exists({value}->0, '$.data'))"
    )


def v2_tensors(body: str, key: str) -> str:
    """SQL: the V2 tensors under ``key`` (``inputs`` / ``outputs``) as a list of structs.

    Each struct has ``name``, ``n`` (rows: the first dimension of ``shape``), ``k`` (values per
    row: the product of the other dimensions) and ``flat`` (row-major values, nested ``data``
    flattened). NULL when the body is not a V2 body.
    """
    body = f"({body})"
    tensors = f"{body}->'{key}'"
    flat_numbers = (
        "CAST(CAST('[' || regexp_replace(CAST(t->'data' AS VARCHAR), '[\\[\\]]', '', 'g') "
        "|| ']' AS JSON) AS JSON[])"
    )
    flat = (
        "CASE WHEN json_type(t->'data'->0) <> 'ARRAY' THEN CAST(t->'data' AS JSON[]) "
        "WHEN upper(t->>'datatype') = 'BYTES' THEN CAST(json_extract(t->'data', '$[*][*]') "
        f"AS JSON[]) ELSE {flat_numbers} END"
    )
    shape = "TRY_CAST(t->'shape' AS BIGINT[])"
    return (
        f"CASE WHEN json_type({body}) = 'OBJECT' AND {_is_tensor_list(tensors)} THEN "
        f"list_transform(CAST({tensors} AS JSON[]), lambda t: {{'name': t->>'name', "
        f"'n': coalesce({shape}[1], 1), "
        f"'k': coalesce(CAST(list_aggregate({shape}[2:], 'product') AS BIGINT), 1), "
        f"'flat': {flat}}}) END"
    )


def _v2_rows(tensors: str, *, name_single: bool) -> str:
    """SQL: one JSON value per row of V2 tensors (see :func:`v2_tensors`)."""
    def value(t: str) -> str:
        return (
            f"CASE WHEN {t}.k = 1 THEN {t}.flat[i + 1] "
            f"ELSE to_json({t}.flat[i * {t}.k + 1:(i + 1) * {t}.k]) END"
        )

    single = (
        f"to_json(map([{tensors}[1].name], [{value(tensors + '[1]')}]))" if name_single
        else value(tensors + "[1]")
    )
    named = (
        f"to_json(map(list_transform({tensors}, lambda t: t.name), "
        f"list_transform({tensors}, lambda t: {value('t')})))"
    )
    return (
        f"list_transform(range({tensors}[1].n), lambda i: CASE WHEN len({tensors}) = 1 "
        f"AND ({tensors}[1].k > 1 OR {'false' if name_single else 'true'}) "
        f"THEN {value(tensors + '[1]')} WHEN len({tensors}) = 1 THEN {single} "
        f"ELSE {named} END)"
    )


def _seldon_rows(data: str, *, outputs: bool) -> str:
    """SQL: rows (JSON[]) of a Seldon ``data`` object (``ndarray`` or ``tensor``)."""
    names = f"TRY_CAST({data}->'names' AS VARCHAR[])"
    shape = f"TRY_CAST({data}->'tensor'->'shape' AS BIGINT[])"
    k = f"coalesce(CAST(list_aggregate({shape}[2:], 'product') AS BIGINT), 1)"
    values = f"CAST({data}->'tensor'->'values' AS JSON[])"
    rows = (
        f"CASE WHEN json_exists({data}, '$.ndarray') THEN CASE WHEN json_type({data}->'ndarray'->0) "
        f"= 'ARRAY' THEN CAST({data}->'ndarray' AS JSON[]) ELSE [{data}->'ndarray'] END "
        f"ELSE list_transform(range(coalesce({shape}[1], 1)), lambda i: "
        f"to_json({values}[i * {k} + 1:(i + 1) * {k}])) END"
    )
    if outputs:
        # class probabilities with real class names (Seldon's default names are t:0, t:1, ...)
        named = (
            f"{names} IS NOT NULL AND NOT list_bool_and(list_transform({names}, "
            "lambda n: regexp_full_match(n, 't:[0-9]+')))"
        )
        return (
            f"list_transform({rows}, lambda r: CASE WHEN {named} AND json_type(r) = 'ARRAY' "
            f"AND json_array_length(r) = len({names}) AND json_array_length(r) > 1 THEN "
            f"json_object('probabilities', r, 'labels', to_json({names})) ELSE r END)"
        )
    return (
        f"list_transform({rows}, lambda r: CASE WHEN {names} IS NOT NULL AND json_type(r) = "
        f"'ARRAY' AND json_array_length(r) = len({names}) THEN to_json(map({names}, "
        "CAST(r AS JSON[]))) ELSE r END)"
    )


def _is_seldon(body: str) -> str:
    return (
        f"(json_type({body}) = 'OBJECT' AND json_type({body}->'data') = 'OBJECT' AND "
        f"(json_exists({body}->'data', '$.ndarray') OR json_exists({body}->'data', '$.tensor')))"
    )


def request_instances(body: str, tensors: str | None) -> str:
    """SQL: the instances (JSON[]) of a request body (JSON), given its V2 ``inputs`` tensors.

    ``{"instances": [...]}`` and ``{"inputs": [...]}`` (V1), V2 tensors, Seldon ``data``, a
    list of rows, or one instance (an object such as SageMaker's ``{"features": [...]}``).
    """
    body = f"({body})"
    elements = f"CAST({body} AS JSON[])"
    data = f"{body}->'data'"
    return (
        f"CASE WHEN {body} IS NULL THEN NULL "
        + (f"WHEN {tensors} IS NOT NULL THEN {_v2_rows(tensors, name_single=True)} "
           if tensors else "") +
        f"WHEN json_type({body}) = 'OBJECT' AND json_type({body}->'instances') = 'ARRAY' "
        f"THEN CAST({body}->'instances' AS JSON[]) "
        f"WHEN json_type({body}) = 'OBJECT' AND json_type({body}->'inputs') = 'ARRAY' "
        f"THEN CAST({body}->'inputs' AS JSON[]) "
        f"WHEN {_is_seldon(body)} THEN {_seldon_rows(data, outputs=False)} "
        f"WHEN json_type({body}) = 'OBJECT' AND json_exists({body}, '$.jsonData') "
        f"THEN [{body}->'jsonData'] "
        f"WHEN json_type({body}) = 'ARRAY' AND json_array_length({body}) = 0 THEN []::JSON[] "
        f"WHEN json_type({body}) = 'ARRAY' AND list_bool_and(list_transform({elements}, "
        f"lambda e: json_type(e) IN ('ARRAY', 'OBJECT'))) THEN {elements} "
        f"ELSE [{body}] END"
    )


def response_outputs(body: str, tensors: str | None, n_inputs: str) -> str:
    """SQL: the outputs (JSON[]) of a response body, given its V2 ``outputs`` and input count.

    ``{"predictions": [...]}`` (V1, SageMaker JSON), V2 tensors, Seldon ``data``, a list (one
    element per input, or the single input's output when there is one input), or one object.
    """
    body = f"({body})"
    elements = f"CAST({body} AS JSON[])"
    data = f"{body}->'data'"
    return (
        f"CASE WHEN {body} IS NULL THEN NULL "
        + (f"WHEN {tensors} IS NOT NULL THEN {_v2_rows(tensors, name_single=False)} "
           if tensors else "") +
        f"WHEN json_type({body}) = 'OBJECT' AND json_type({body}->'predictions') = 'ARRAY' "
        f"THEN CAST({body}->'predictions' AS JSON[]) "
        f"WHEN {_is_seldon(body)} THEN {_seldon_rows(data, outputs=True)} "
        f"WHEN json_type({body}) = 'OBJECT' AND json_type({body}->'outputs') = 'ARRAY' "
        f"THEN CAST({body}->'outputs' AS JSON[]) "
        f"WHEN json_type({body}) = 'ARRAY' AND {n_inputs} = 1 AND json_array_length({body}) <> 1 "
        f"THEN [{body}] "
        f"WHEN json_type({body}) = 'ARRAY' THEN {elements} "
        f"ELSE [{body}] END"
    )


def label_of(value: str) -> str:
    """SQL: the ground-truth label in a JSON value (``{"label": 1}`` or a bare value)."""
    value = f"({value})"
    return (
        f"CASE WHEN json_type({value}) = 'OBJECT' THEN coalesce({value}->>'label', "
        f"{value}->>'groundTruthLabel', {value}->>'ground_truth') "
        f"WHEN json_type({value}) = 'NULL' THEN NULL ELSE {value}->>'$' END"
    )


def _first_of(obj: str, keys: tuple[str, ...], types: str) -> str:
    parts = ", ".join(
        f"CASE WHEN json_type({obj}->'{k}') IN {types} THEN {obj}->'{k}' END" for k in keys
    )
    return f"coalesce({parts})"


def prediction_levels(y: str) -> list[str]:
    """SQL select lists, applied one over the other, that add ``prediction`` and ``score``.

    ``y`` names a JSON column holding one output. Each level is a select list to be used as
    ``SELECT *, <level> FROM (previous)``; the helper columns start with ``_p`` and are to be
    excluded at the end (see :data:`PREDICTION_HELPERS`). The rules are in the module docstring.
    """
    unwrap = (
        "CASE WHEN json_type({v}) = 'ARRAY' AND json_array_length({v}) = 1 THEN {v}->0 "
        "ELSE {v} END"
    )
    level1 = f"{unwrap.format(v=y)} AS _p1"
    level2 = f"{unwrap.format(v='_p1')} AS _p"
    label_parts = ", ".join(
        f"CASE WHEN json_type(_p->'{k}') IN ('VARCHAR', 'UBIGINT', 'BIGINT', 'DOUBLE', "
        f"'BOOLEAN') THEN _p->>'{k}' END"
        for k in LABEL_KEYS
    )
    level3 = ", ".join([
        "json_type(_p) AS _pt",
        f"CASE WHEN json_type(_p) = 'OBJECT' THEN coalesce({label_parts}) END AS _plab",
        "CASE WHEN json_type(_p) = 'ARRAY' THEN TRY_CAST(_p AS DOUBLE[]) "
        "WHEN json_type(_p) = 'OBJECT' THEN TRY_CAST("
        f"{_first_of('_p', PROBABILITY_KEYS, _ARRAY)} "
        "AS DOUBLE[]) END AS _pprobs",
        "CASE WHEN json_type(_p) = 'OBJECT' THEN TRY_CAST("
        f"{_first_of('_p', CLASS_KEYS, _ARRAY)} "
        "AS VARCHAR[]) END AS _pcls",
        "CASE WHEN json_type(_p) = 'DOUBLE' THEN CAST(_p AS DOUBLE) "
        "WHEN json_type(_p) = 'OBJECT' THEN TRY_CAST("
        f"{_first_of('_p', ('score', 'probability'), _NUMBER_TYPES)} AS DOUBLE) END AS _ps",
        "CASE WHEN json_type(_p) = 'OBJECT' THEN TRY_CAST("
        f"{_first_of('_p', ('confidence',), _NUMBER_TYPES)} AS DOUBLE) END AS _pconf",
        "CASE WHEN json_type(_p) = 'OBJECT' THEN _p->>'value' END AS _pval",
    ])
    level4 = ", ".join([
        "(_pprobs IS NOT NULL AND len(_pprobs) > 1 AND list_count(_pprobs) = len(_pprobs)) "
        "AS _pok",
    ])
    level5 = ", ".join([
        "(_pok AND list_min(_pprobs) >= 0 AND list_max(_pprobs) <= 1 AND "
        "abs(list_sum(_pprobs) - 1) <= 0.01) AS _pdist",
        "CASE WHEN _pok THEN list_position(_pprobs, list_max(_pprobs)) END AS _pam",
    ])
    prediction = (
        "CASE WHEN _p IS NULL OR _pt = 'NULL' THEN NULL "
        "WHEN _plab IS NOT NULL THEN _plab "
        "WHEN _pt = 'OBJECT' AND _pok AND len(_pcls) = len(_pprobs) THEN _pcls[_pam] "
        "WHEN (_pt = 'OBJECT' AND _pok) OR (_pt = 'ARRAY' AND _pdist) "
        "THEN CAST(_pam - 1 AS VARCHAR) "
        "WHEN _ps BETWEEN 0 AND 1 THEN CASE WHEN _ps >= 0.5 THEN '1' ELSE '0' END "
        "WHEN _pt = 'OBJECT' AND _ps IS NOT NULL THEN _p->>'score' "
        "WHEN _pval IS NOT NULL THEN _pval "
        "WHEN _pt IN ('UBIGINT', 'BIGINT', 'VARCHAR', 'BOOLEAN', 'DOUBLE') THEN _p->>'$' "
        "WHEN _pt = 'ARRAY' THEN CAST(_p AS VARCHAR) END AS prediction"
    )
    score = (
        "CASE WHEN _pconf IS NOT NULL THEN _pconf "
        "WHEN (_pt = 'OBJECT' AND _pok) OR (_pt = 'ARRAY' AND _pdist) THEN CASE "
        "WHEN _plab IS NOT NULL AND list_position(_pcls, _plab) IS NOT NULL "
        "THEN _pprobs[list_position(_pcls, _plab)] "
        "WHEN _plab IS NOT NULL AND _pcls IS NULL AND TRY_CAST(_plab AS BIGINT) "
        "BETWEEN 0 AND len(_pprobs) - 1 THEN _pprobs[TRY_CAST(_plab AS BIGINT) + 1] "
        "ELSE list_max(_pprobs) END "
        "WHEN _ps BETWEEN 0 AND 1 THEN CASE WHEN _plab IS NULL THEN greatest(_ps, 1 - _ps) "
        "WHEN lower(_plab) IN ('1', '1.0', 'true') THEN _ps "
        "WHEN lower(_plab) IN ('0', '0.0', 'false') THEN 1 - _ps ELSE _ps END END AS score"
    )
    return [level1, level2, level3, level4, level5, f"{prediction}, {score}"]


#: Helper columns added by :func:`prediction_levels`, to exclude once prediction and score exist.
PREDICTION_HELPERS = ("_p1", "_p", "_pt", "_plab", "_pprobs", "_pcls", "_ps", "_pconf", "_pval",
                      "_pok", "_pdist", "_pam")


def with_predictions(relation: str, y: str) -> str:
    """SQL: ``relation`` plus ``prediction`` and ``score`` read from its JSON column ``y``.

    Examples
    --------
    >>> import duckdb
    >>> rows = "(SELECT * FROM (VALUES ('0.25'::JSON), ('{\\"predicted_label\\": 0, \\"score\\": 0.1}'::JSON), ('[0.2, 0.8]'::JSON), ('2'::JSON)) t(_y))"
    >>> duckdb.sql(f"SELECT prediction, round(score, 2) FROM {with_predictions(rows, '_y')}").fetchall()
    [('0', 0.75), ('0', 0.9), ('1', 0.8), ('2', None)]
    """
    sql = relation
    for level in prediction_levels(y):
        sql = f"(SELECT *, {level} FROM {sql})"
    helpers = ", ".join(PREDICTION_HELPERS)
    return f"(SELECT * EXCLUDE ({helpers}) FROM {sql})"
