"""Prometheus HTTP API responses (``query_range`` matrix, ``query`` vector / scalar) into metrics.

A file holds one response (``curl .../api/v1/query_range?... > gpu_memory.json``, possibly
pretty-printed) or one response per line. Each series becomes samples ``ts, host, name, value,
labels``:

* ``labels`` is the series' label set as JSON (``__name__`` included); ``host`` its ``pod``,
  ``pod_name``, ``hostname``, ``Hostname`` or ``instance`` label, the first present; ``name``
  its ``__name__``, else (a query such as ``rate(...)`` drops it) the file's name without
  suffix, then mapped to a canonical name with its unit converted when known
  (:mod:`._metric_names`: DCGM MiB to bytes, percentages to fractions, ...); unknown names are
  kept.
* Values are strings in the API: ``"NaN"`` is loaded as NULL (Prometheus' "no value", e.g.
  0/0; aggregates then skip it instead of turning NaN), ``"+Inf"`` / ``"-Inf"`` as IEEE
  infinities (a real, if extreme, value: ``isinf(value)`` finds them). A value or time that is
  not a number rejects its sample.
* Derived series are added next to the raw ones: quantiles (p50, p95, p99) of histograms
  (``_bucket`` series with ``le``): per step, the increase of each cumulative bucket counter
  since the previous sample (a decrease is a counter reset: the new value is the increase), then
  ``histogram_quantile``'s linear interpolation inside the bucket holding the rank (a series
  without ``__name__`` is taken as already a rate); the mean over each step of Triton's and
  TorchServe's cumulative microsecond counters (increase of the duration over increase of the
  request count, in ms) and of histograms' ``_sum / _count``; per-second rates of request
  counters; ``gpu_memory_total_bytes`` as DCGM's used + free. Derived rows carry
  ``histogram``/``quantile``, ``numerator``/``denominator`` or ``counter`` in ``labels``.
* An error response (``{"status": "error", "errorType": ..., "error": ...}``), a ``string``
  result (text, not a sample) and an unknown ``resultType`` are one rejected record each (file,
  line, the reason); a file holding nothing else is refused with that reason. An empty result
  is noted on the load.
* A sample whose time is not a number or is out of DuckDB's timestamp range (``1e20``) is
  rejected; the reason names the series (its position in ``data.result``) and the sample
  (its position in ``values``).

``_row`` is the line of the response in a JSON-lines file; in a file holding one (multi-line)
response it is the series' position in ``data.result``.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from toolkit.errors import FileParseError
from toolkit.load.discover import SourceFile, strip_suffix
from toolkit.load.formats import FormatOptions, register
from toolkit.load.formats._common import finish, head_text, json_records, materialize
from toolkit.load.formats._metric_names import (
    COUNT_HISTOGRAMS,
    GAUGES,
    HISTOGRAMS,
    MIB,
    QUANTILES,
    RATES,
    RATIOS,
    SUMMARIES,
)
from toolkit.load.sources import StagedSource
from toolkit.store.schema import quote_ident, quote_literal

__all__ = ["PrometheusReader"]

_STATUS = re.compile(r'"status"\s*:\s*"(?:success|error)"')
_HOST_LABELS = ("pod", "pod_name", "hostname", "Hostname", "instance")


def _values(rows: list[tuple]) -> str:
    """A VALUES list of literals (text quoted, numbers as is, None as NULL)."""
    def lit(value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, str):
            return quote_literal(value)
        return repr(float(value))
    return ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows)


class PrometheusReader:
    """Reader of Prometheus HTTP API query responses."""

    name = "prometheus"
    tables = ("metrics",)

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``metrics`` for a Prometheus API response.

        Examples
        --------
        >>> PrometheusReader().sniff(Path("m.json"), b'{"status":"success","data":'
        ...                          b'{"resultType":"matrix","result":[]}}')
        'metrics'
        """
        text = head_text(head)
        if not text.lstrip().startswith("{"):
            return None
        if _STATUS.search(text) and ('"resultType"' in text or '"errorType"' in text):
            return "metrics"
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage samples, derived quantiles, averages and rates, and error responses."""
        cleanup: list[str] = []
        notes: list[str] = []
        mode, records = json_records(con, source.path, cleanup)
        responses = materialize(con, _responses_sql(records), cleanup=cleanup)
        self._check_errors(con, responses, source.path, mode)
        stem = strip_suffix(source.path.name)
        samples = materialize(con, _samples_sql(responses, mode, stem), cleanup=cleanup)
        native = con.execute(
            f"SELECT count(*) FROM {quote_ident(responses)}, "
            "unnest(CAST(r->'data'->'result' AS JSON[])) AS u(s) "
            "WHERE _perr IS NULL AND json_exists(s, '$.histograms')"
        ).fetchall()[0][0]
        if native:
            notes.append(f"{native} native-histogram series (\"histograms\") not loaded")
        empty = con.execute(
            f"SELECT count(*) FROM {quote_ident(responses)} WHERE _perr IS NULL AND "
            "json_type(r->'data'->'result') = 'ARRAY' AND json_array_length(r->'data'->'result') "
            "= 0"
        ).fetchall()[0][0]
        if empty:
            notes.append(f"{empty} response(s) with an empty result (no series): nothing to load")
        final = materialize(con, _final_sql(responses, samples), cleanup=cleanup)
        return finish(con, final, str(source.path), cleanup=cleanup, notes=notes)

    @staticmethod
    def _check_errors(con, responses: str, path: Path, mode: str) -> None:
        total, bad, first_row, first = con.execute(
            f"SELECT count(*), count(_perr), min(_row) FILTER (WHERE _perr IS NOT NULL), "
            f"arg_min(_perr, _row) FILTER (WHERE _perr IS NOT NULL) FROM {quote_ident(responses)}"
        ).fetchall()[0]
        if total and bad == total:
            where = f"line {first_row}" if mode == "lines" else None
            raise FileParseError(
                f"{path}{' (' + where + ')' if where else ''}: {first}"
                + (f" (and {bad - 1} more)" if bad > 1 else ""),
                path=str(path),
                position=where,
            )


def _responses_sql(records: str) -> str:
    return (
        "SELECT _row, _raw, coalesce(_perr, CASE WHEN r->>'status' = 'error' THEN "
        "printf('Prometheus error response (%s): %s', coalesce(r->>'errorType', 'unknown'), "
        "coalesce(r->>'error', '')) WHEN json_type(r->'data'->'result') IS NULL THEN "
        "'not a Prometheus query response (no data.result)' "
        "WHEN r->'data'->>'resultType' = 'string' THEN 'a Prometheus string result (resultType "
        "string) holds text, not metric samples: nothing to load' "
        "WHEN coalesce(r->'data'->>'resultType', '') NOT IN ('matrix', 'vector', 'scalar') THEN "
        "printf('unknown Prometheus resultType %s (expected matrix, vector or scalar)', "
        "coalesce(r->'data'->>'resultType', '(missing)')) END) AS _perr, r FROM "
        "(SELECT _row, _raw, _perr, CASE WHEN _perr IS NULL AND json_type(_raw) = 'OBJECT' "
        f"THEN CAST(_raw AS JSON) END AS r FROM {records})"
    )


def _samples_sql(responses: str, mode: str, stem: str) -> str:
    series = (
        "(SELECT _row, unnest(ser) AS s, generate_subscripts(ser, 1) AS _series FROM "
        "(SELECT _row, CASE WHEN r->'data'->>'resultType' IN ('matrix', 'vector') THEN "
        "CAST(r->'data'->'result' AS JSON[]) WHEN r->'data'->>'resultType' = 'scalar' THEN "
        "[json_object('metric', json('{}'), 'values', json_array(r->'data'->'result'))] "
        f"ELSE []::JSON[] END AS ser FROM {quote_ident(responses)} WHERE _perr IS NULL))"
    )
    row = "_series" if mode == "document" else "_row"
    # the label set is taken once per series, before the samples are unnested (taken after,
    # it is re-read from the whole series for every sample: quadratic in the series length)
    samples = (
        f"(SELECT {row} AS _row, _series, labels, unnest(vals) AS sample, "
        "generate_subscripts(vals, 1) AS _sample FROM (SELECT *, "
        "coalesce(s->'metric', json('{}')) AS labels, CASE "
        "WHEN json_type(s->'values') = 'ARRAY' THEN CAST(s->'values' AS JSON[]) "
        "WHEN json_type(s->'value') = 'ARRAY' THEN [s->'value'] ELSE []::JSON[] END AS vals "
        f"FROM {series}))"
    )
    host = "coalesce(" + ", ".join(f"labels->>'{k}'" for k in _HOST_LABELS) + ")"
    # a time DuckDB cannot represent (1e20 s) rejects its sample, named by series and index
    where = "printf(' (series %d, sample %d)', _series, _sample)"
    return (
        "SELECT _row, CAST(json_object('metric', labels, 'sample', sample) AS VARCHAR) AS _raw, "
        "CASE WHEN json_type(sample) <> 'ARRAY' OR json_array_length(sample) > 2 THEN "
        "printf('the sample %s is not a [time, value] pair', left(CAST(sample AS VARCHAR), "
        "200)) || " + where + " "
        "WHEN t IS NULL THEN 'the sample time is not a number' || " + where + " "
        "WHEN ts IS NULL THEN printf('the sample time %s is out of range', sample->>0) || "
        + where + " "
        "WHEN vtext IS NULL THEN 'the sample has no value' || " + where + " "
        "WHEN lower(vtext) <> 'nan' AND v IS NULL THEN printf('the sample value %s is not a "
        "number', vtext) END AS _perr, CASE WHEN json_type(sample) <> 'ARRAY' OR "
        "json_array_length(sample) > 2 THEN 'value' WHEN t IS NULL OR ts IS NULL "
        "THEN 'ts' WHEN vtext IS NULL OR (lower(vtext) <> 'nan' AND v IS NULL) THEN 'value' "
        "END AS _pcol, "
        f"raw_name, labels, host, t, ts, v FROM (SELECT *, "
        "CASE WHEN lower(vtext) = 'nan' THEN NULL ELSE TRY_CAST(vtext AS DOUBLE) END AS v, "
        "CAST(try(make_timestamp(TRY_CAST(round(t * 1e6) AS BIGINT))) AS TIMESTAMPTZ) AS ts "
        f"FROM (SELECT _row, _series, _sample, labels, sample, "
        f"coalesce(labels->>'__name__', {quote_literal(stem)}) AS raw_name, {host} AS host, "
        "TRY_CAST(sample->>0 AS DOUBLE) AS t, "
        f"sample->>1 AS vtext FROM {samples}))"
    )


def _final_sql(responses: str, samples: str) -> str:
    s = quote_ident(samples)
    gauges = _values([(src, key, val, name, factor) for src, key, val, name, factor in GAUGES])
    summaries = _values([(src, prefix, factor) for src, (prefix, factor) in SUMMARIES.items()])
    histograms = _values([(base, prefix, factor, "_ms") for base, (prefix, factor)
                          in HISTOGRAMS.items()]
                         + [(base, prefix, 1.0, "") for base, prefix in COUNT_HISTOGRAMS.items()])
    ratios = _values(list(RATIOS))
    rates = _values(list(RATES))
    quantiles = ", ".join(repr(q) for q in QUANTILES)
    counter_names = sorted({n for num, den, *_ in RATIOS for n in (num, den)} |
                           {name for name, _ in RATES})
    counter_list = ", ".join(quote_literal(n) for n in counter_names)
    errors = (
        "SELECT _row, _raw, _perr AS _parse_error, NULL::VARCHAR AS _parse_column, "
        "NULL::TIMESTAMPTZ AS ts, NULL::VARCHAR AS host, "
        "NULL::VARCHAR AS name, NULL::DOUBLE AS value, NULL::JSON AS labels "
        f"FROM {quote_ident(responses)} WHERE _perr IS NOT NULL"
    )
    plain = (
        "SELECT s._row, s._raw, s._perr AS _parse_error, s._pcol, s.ts, s.host, CASE "
        "WHEN g.name IS NOT NULL THEN g.name "
        "WHEN m.prefix IS NOT NULL THEN m.prefix || '_p' || format('{:g}', "
        "TRY_CAST(s.labels->>'quantile' AS DOUBLE) * 100) || '_ms' "
        "ELSE s.raw_name END AS name, s.v * coalesce(g.factor, m.factor, 1.0) AS value, s.labels "
        f"FROM {s} s LEFT JOIN (VALUES {gauges}) g(src, key, val, name, factor) "
        "ON s.raw_name = g.src AND (g.key IS NULL OR s.labels->>g.key = g.val) "
        f"LEFT JOIN (VALUES {summaries}) m(src, prefix, factor) ON s.raw_name = m.src "
        "AND TRY_CAST(s.labels->>'quantile' AS DOUBLE) IS NOT NULL"
    )
    buckets = (
        "(SELECT _row, ts, t, host, v, regexp_replace(raw_name, '_bucket$', '') AS base, "
        "json_merge_patch(labels, '{\"le\": null, \"__name__\": null}') AS g, "
        "CASE WHEN lower(labels->>'le') IN ('+inf', 'inf') THEN 'inf'::DOUBLE "
        "ELSE TRY_CAST(labels->>'le' AS DOUBLE) END AS le, "
        "labels->>'__name__' IS NOT NULL AS cumulative "
        f"FROM {s} WHERE _perr IS NULL AND json_exists(labels, '$.le') AND "
        "(labels->>'__name__' IS NULL OR ends_with(raw_name, '_bucket')))"
    )
    increases = (
        "(SELECT *, CASE WHEN NOT cumulative THEN v WHEN v < lag(v) OVER w THEN v "
        "ELSE v - lag(v) OVER w END AS c FROM (SELECT *, CAST(g AS VARCHAR) AS gk FROM "
        f"{buckets} WHERE le IS NOT NULL) WINDOW w AS (PARTITION BY base, gk, le ORDER BY t))"
    )
    ranked = (
        "(SELECT *, lag(le) OVER w AS lo_le, lag(cc) OVER w AS lo_c FROM "
        "(SELECT *, max(c) OVER (PARTITION BY base, gk, t ORDER BY le "
        f"ROWS UNBOUNDED PRECEDING) AS cc FROM {increases} WHERE c IS NOT NULL) "
        "WINDOW w AS (PARTITION BY base, gk, t ORDER BY le))"
    )
    totals = (
        f"(SELECT base, gk, t, max(cc) FILTER (WHERE le = 'inf'::DOUBLE) AS total FROM {ranked} "
        "GROUP BY ALL)"
    )
    hits = (
        "(SELECT r.base, r.gk, r.t, q.q, tot.total, min(r._row) AS _row, any_value(r.g) AS g, "
        "any_value(r.ts) AS ts, any_value(r.host) AS host, arg_min({'le': r.le, 'cc': r.cc, "
        "'lo_le': r.lo_le, 'lo_c': r.lo_c}, r.le) FILTER (WHERE r.cc >= q.q * tot.total) AS b "
        f"FROM {ranked} r JOIN {totals} tot USING (base, gk, t) "
        f"CROSS JOIN (SELECT unnest([{quantiles}]) AS q) q WHERE tot.total > 0 "
        "GROUP BY r.base, r.gk, r.t, q.q, tot.total)"
    )
    quantile_value = (
        "CASE WHEN b.le = 'inf'::DOUBLE THEN b.lo_le WHEN b.lo_le IS NULL AND b.le <= 0 "
        "THEN b.le ELSE coalesce(b.lo_le, 0) + (b.le - coalesce(b.lo_le, 0)) * "
        "(q * total - coalesce(b.lo_c, 0)) / (b.cc - coalesce(b.lo_c, 0)) END"
    )
    quantile_rows = (
        "SELECT _row, NULL AS _raw, NULL AS _parse_error, NULL, ts, host, CASE WHEN h.prefix IS NOT "
        "NULL THEN h.prefix || '_p' || format('{:g}', q * 100) || h.unit ELSE base || '_p' || "
        "format('{:g}', q * 100) END AS name, value * coalesce(h.factor, 1.0) AS value, "
        "json_merge_patch(g, json_object('histogram', base, 'quantile', q)) AS labels FROM "
        f"(SELECT *, {quantile_value} AS value FROM {hits}) "
        f"LEFT JOIN (VALUES {histograms}) h(hbase, prefix, factor, unit) ON base = h.hbase "
        "WHERE value IS NOT NULL"
    )
    counters = (
        "(SELECT *, CASE WHEN v < lag(v) OVER w THEN v ELSE v - lag(v) OVER w END AS dv, "
        "t - lag(t) OVER w AS dt FROM (SELECT _row, ts, t, host, raw_name, v, "
        "json_merge_patch(labels, '{\"__name__\": null}') AS g, CAST(json_merge_patch(labels, "
        f"'{{\"__name__\": null}}') AS VARCHAR) AS gk FROM {s} WHERE _perr IS NULL AND "
        f"v IS NOT NULL AND raw_name IN ({counter_list})) "
        "WINDOW w AS (PARTITION BY raw_name, gk ORDER BY t))"
    )
    ratio_rows = (
        "SELECT n._row, NULL, NULL, NULL, n.ts, n.host, m.name, n.dv / d.dv * m.factor, "
        "json_merge_patch(n.g, json_object('numerator', n.raw_name, 'denominator', d.raw_name)) "
        f"FROM {counters} n JOIN (VALUES {ratios}) m(num, den, name, factor) ON n.raw_name = m.num "
        f"JOIN {counters} d ON d.raw_name = m.den AND d.gk = n.gk AND d.t = n.t "
        "WHERE d.dv > 0 AND n.dv IS NOT NULL"
    )
    rate_rows = (
        "SELECT c._row, NULL, NULL, NULL, c.ts, c.host, m.name, c.dv / c.dt, "
        "json_merge_patch(c.g, json_object('counter', c.raw_name)) "
        f"FROM {counters} c JOIN (VALUES {rates}) m(counter, name) ON c.raw_name = m.counter "
        "WHERE c.dt > 0 AND c.dv IS NOT NULL"
    )
    framebuffer = (
        "(SELECT _row, ts, t, host, raw_name, v, json_merge_patch(labels, "
        "'{\"__name__\": null}') AS g, CAST(json_merge_patch(labels, '{\"__name__\": null}') "
        f"AS VARCHAR) AS gk FROM {s} WHERE _perr IS NULL AND raw_name IN "
        "('DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_FREE'))"
    )
    total_rows = (
        f"SELECT u._row, NULL, NULL, NULL, u.ts, u.host, 'gpu_memory_total_bytes', "
        f"(u.v + f.v) * {MIB!r}, "
        "json_merge_patch(u.g, json_object('derived', 'DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE')) "
        f"FROM {framebuffer} u JOIN {framebuffer} f ON u.raw_name = 'DCGM_FI_DEV_FB_USED' AND "
        "f.raw_name = 'DCGM_FI_DEV_FB_FREE' AND u.gk = f.gk AND u.t = f.t "
        f"WHERE u.v IS NOT NULL AND f.v IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {s} WHERE raw_name = 'DCGM_FI_DEV_FB_TOTAL')"
    )
    return " UNION ALL ".join(
        f"({part})" for part in (errors, plain, quantile_rows, ratio_rows, rate_rows, total_rows)
    )


register(PrometheusReader())
