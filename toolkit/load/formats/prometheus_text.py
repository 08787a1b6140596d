"""Prometheus text exposition (``/metrics`` scrapes of vLLM, SGLang, TGI, Triton, ...) into metrics.

An LLM engine's metrics are often saved as what its ``/metrics`` endpoint answered, not as a
Prometheus query: one scrape, or many scrapes appended to one file. Each sample line
``name{label="value",...} value [timestamp]`` becomes a row ``ts, host, name, value, labels``
exactly as a ``query_range`` sample would (:mod:`.prometheus`): the same canonical names and unit
conversions (:mod:`._metric_names`: ``vllm:num_requests_waiting`` is ``requests_waiting``,
``sglang:token_usage`` is ``kv_cache_usage``, ...), the same derived series (histogram quantiles
from ``_bucket`` counters, per-second rates of counters, means of ``_sum / _count``), the
source's name kept in ``labels`` as ``__name__``.

The text format carries no time unless the exporter wrote one per sample, so a sample's time is
the first of:

1. its own timestamp (milliseconds since the epoch in the Prometheus text format; a value below
   1e11 is taken as seconds, as OpenMetrics writes them);
2. the last time marker line above it, ``# time: <ISO 8601 or epoch seconds>`` (also
   ``# scrape_time:`` / ``# timestamp:``). Appending scrapes to one file with a marker each
   keeps them apart::

       while sleep 15; do { echo "# time: $(date -u +%FT%TZ)"; curl -s host:8000/metrics; } \\
           >> vllm-scrapes.prom; done

3. a time in the file's name (``metrics-2026-12-06T10:15:00Z.prom``, ``...-20261206T101500Z``,
   or a 10- or 13-digit epoch such as ``scrape-1733480100.txt``);
4. the run time the caller gives (``run_time=...``, ``forensics ingest --run-time``).

A sample with no time from any of them is rejected with that reason (never dated by the file's
modification time). ``# HELP``, ``# TYPE``, ``# UNIT`` and ``# EOF`` lines are read past; a line
that is neither a comment nor a sample, and a value that is not a number, are rejected with the
line. ``NaN`` is loaded as NULL, ``+Inf`` / ``-Inf`` as infinities. The host is the sample's
``pod``, ``pod_name``, ``hostname``, ``Hostname`` or ``instance`` label.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from toolkit.load.discover import SourceFile
from toolkit.load.formats import FormatOptions, register
from toolkit.load.formats._common import finish, head_text, lines, materialize
from toolkit.load.formats.prometheus import _HOST_LABELS, _final_sql
from toolkit.load.sources import StagedSource
from toolkit.store.schema import quote_literal

__all__ = ["PrometheusTextReader", "time_from_name"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
#: name, optional {labels}, value, optional timestamp, optional OpenMetrics exemplar
_SAMPLE = (rf"^\s*({_NAME})\s*(\{{(.*)\}})?\s+(\S+)(\s+(-?[0-9]+(\.[0-9]+)?))?"
           r"\s*(#.*)?$")
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"'
_MARKER = r"^#\s*(time|scrape_time|timestamp)\s*[:=]\s*(.+?)\s*$"
_SNIFF_SAMPLE = re.compile(_SAMPLE)
_DIRECTIVES = ("# HELP ", "# TYPE ", "# UNIT ", "# EOF")
_SNIFF_MARKER = re.compile(_MARKER, re.IGNORECASE)

_ISO_IN_NAME = re.compile(
    r"(?P<y>\d{4})-?(?P<mo>\d{2})-?(?P<d>\d{2})T(?P<h>\d{2}):?(?P<mi>\d{2}):?(?P<s>\d{2})Z?")
_EPOCH_IN_NAME = re.compile(r"(?<!\d)(?P<n>\d{13}|\d{10})(?!\d)")


def time_from_name(name: str) -> datetime | None:
    """The scrape time written in a file's name, if any (UTC).

    Examples
    --------
    >>> time_from_name("vllm-2026-12-06T10:15:00Z.prom")
    datetime.datetime(2026, 12, 6, 10, 15, tzinfo=datetime.timezone.utc)
    >>> time_from_name("scrape-1733480100.txt")
    datetime.datetime(2024, 12, 6, 10, 15, tzinfo=datetime.timezone.utc)
    >>> time_from_name("metrics.prom") is None
    True
    """
    found = _ISO_IN_NAME.search(name)
    if found:
        try:
            return datetime(*(int(found[k]) for k in ("y", "mo", "d", "h", "mi", "s")), tzinfo=UTC)
        except ValueError:
            return None
    found = _EPOCH_IN_NAME.search(name)
    if found:
        n = int(found["n"])
        return datetime.fromtimestamp(n / 1000 if len(found["n"]) == 13 else n, tz=UTC)
    return None


class PrometheusTextReader:
    """Reader of Prometheus / OpenMetrics text exposition (``/metrics`` scrapes)."""

    name = "prometheus-text"
    tables = ("metrics",)

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``metrics`` when the file starts like a ``/metrics`` answer.

        The first non-blank line must be a ``# HELP`` / ``# TYPE`` directive or a time marker,
        or the first lines must all be samples (``name{labels} value``) with at least one
        ``{labels}`` or ``:`` in a name (so that a two-column text file is not taken for one).

        Examples
        --------
        >>> r = PrometheusTextReader()
        >>> r.sniff(Path("m.prom"), b"# HELP vllm:num_requests_running Running\\n")
        'metrics'
        >>> r.sniff(Path("m.txt"), b'vllm:num_requests_waiting{model_name="m"} 3.0\\n')
        'metrics'
        >>> r.sniff(Path("a.txt"), b"hello world\\n") is None
        True
        """
        text = head_text(head)
        rows = [line for line in text.splitlines()[:20] if line.strip()]
        if len(text) >= len(head) and rows:  # the head may cut the last line
            pass
        elif len(rows) > 1:
            rows = rows[:-1]
        if not rows:
            return None
        first = rows[0].strip()
        if first.startswith(_DIRECTIVES) or _SNIFF_MARKER.match(first):
            return "metrics"
        samples = [r for r in rows if not r.lstrip().startswith("#")]
        if samples and all(_SNIFF_SAMPLE.match(r) for r in samples) and any(
                "{" in r or ":" in r.split()[0] for r in samples):
            return "metrics"
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage the samples with their times, and the derived series."""
        cleanup: list[str] = []
        notes: list[str] = []
        text = lines(con, source.path, cleanup)
        named = time_from_name(source.path.name)
        fallback = named or options.run_time
        if isinstance(fallback, str):
            fallback = datetime.fromisoformat(fallback.replace("Z", "+00:00"))
        if named is not None:
            notes.append(f"samples without a timestamp or time marker are timed by the file's "
                         f"name: {named:%Y-%m-%dT%H:%M:%SZ}")
        elif options.run_time is not None:
            notes.append("samples without a timestamp or time marker are timed by the given "
                         "run time")
        samples = materialize(con, _samples_sql(text, fallback), cleanup=cleanup)
        directives = con.execute(
            f"SELECT count(*) FROM {text} WHERE _perr IS NULL AND starts_with(ltrim(_raw), '#')"
        ).fetchall()[0][0]
        if directives:
            notes.append(f"{directives} comment line(s) (# HELP, # TYPE, time markers) read past")
        responses = materialize(
            con, "SELECT NULL::BIGINT AS _row, NULL::VARCHAR AS _raw, NULL::VARCHAR AS _perr "
                 "WHERE false", cleanup=cleanup)
        final = materialize(con, _final_sql(responses, samples), cleanup=cleanup)
        return finish(con, final, str(source.path), cleanup=cleanup, notes=notes)


def _samples_sql(text: str, fallback: datetime | None) -> str:
    """SQL: the samples in the shape :func:`.prometheus._final_sql` reads."""
    default = ("NULL::DOUBLE" if fallback is None
               else repr(fallback.timestamp()))
    marker = quote_literal(_MARKER)
    parsed = (
        "(SELECT _row, _raw, _perr, starts_with(ltrim(_raw), '#') AS comment, "
        f"CASE WHEN regexp_matches(_raw, {marker}, 'i') THEN "
        f"trim(regexp_extract(_raw, {marker}, 2, 'i')) END AS mark, "
        f"regexp_extract(_raw, {quote_literal(_SAMPLE)}, ['n', 'b', 'l', 'v', 's', 't']) AS m "
        f"FROM {text})"
    )
    mark_time = (
        "coalesce(TRY_CAST(mark AS DOUBLE), epoch(TRY_CAST(mark AS TIMESTAMPTZ)))"
    )
    timed = (
        f"(SELECT *, last_value({mark_time} IGNORE NULLS) OVER (ORDER BY _row ROWS BETWEEN "
        f"UNBOUNDED PRECEDING AND CURRENT ROW) AS scrape_t FROM {parsed})"
    )
    pattern = quote_literal(_LABEL)
    unescape = (rf"replace(replace(replace(regexp_extract(x, {pattern}, 2), '\n', chr(10)), "
                r"""'\"', '"'), '\\', '\')""")
    keys = (f"list_transform(regexp_extract_all(m.l, {quote_literal(_LABEL)}), "
            f"lambda x: regexp_extract(x, {quote_literal(_LABEL)}, 1))")
    # a label named twice cannot be put in one object: NULL labels make the sample a reject
    # (below) instead of keeping one of the two values
    label_pairs = (
        f"CASE WHEN len(list_distinct({keys})) = len({keys}) THEN "
        f"map_from_entries(list_transform(regexp_extract_all(m.l, {quote_literal(_LABEL)}), "
        f"lambda x: {{'k': regexp_extract(x, {quote_literal(_LABEL)}, 1), 'v': {unescape}}})) END"
    )
    labels = ("json_merge_patch(CAST(to_json(pairs) AS JSON), "
              "json_object('__name__', m.n))")
    own_t = ("CASE WHEN TRY_CAST(m.t AS DOUBLE) >= 1e11 THEN TRY_CAST(m.t AS DOUBLE) / 1000 "
             "ELSE TRY_CAST(m.t AS DOUBLE) END")
    rows = (
        f"(SELECT _row, _raw, _perr, m.n AS raw_name, m.v AS vtext, "
        f"CASE WHEN m.n <> '' AND pairs IS NOT NULL THEN {labels} END AS labels, "
        f"coalesce({own_t}, scrape_t, {default}) AS t, "
        "m.t <> '' AS has_own, scrape_t IS NOT NULL AS has_mark "
        f"FROM (SELECT *, {label_pairs} AS pairs FROM {timed}) "
        "WHERE NOT comment OR _perr IS NOT NULL)"
    )
    host = "coalesce(" + ", ".join(f"labels->>'{k}'" for k in _HOST_LABELS) + ")"
    value = ("CASE WHEN lower(vtext) = 'nan' THEN NULL WHEN lower(vtext) IN ('+inf', 'inf') "
             "THEN 'inf'::DOUBLE WHEN lower(vtext) = '-inf' THEN '-inf'::DOUBLE "
             "ELSE TRY_CAST(vtext AS DOUBLE) END")
    return (
        "SELECT _row, _raw, CASE WHEN _perr IS NOT NULL THEN _perr "
        "WHEN raw_name = '' THEN 'not a Prometheus text-format sample (name{labels} value "
        "[timestamp]) nor a # comment' "
        "WHEN labels IS NULL THEN 'a label is named twice in the sample: which value is meant "
        "cannot be told' "
        "WHEN lower(vtext) <> 'nan' AND v IS NULL THEN printf('the sample value %s is not a "
        "number', vtext) "
        "WHEN t IS NULL THEN 'the sample has no time: no timestamp on the line, no "
        "\"# time: ...\" marker above it, no time in the file name and no --run-time' "
        "WHEN ts IS NULL THEN 'the sample time is out of range' END AS _perr, "
        "CASE WHEN raw_name = '' OR labels IS NULL THEN NULL WHEN lower(vtext) <> 'nan' AND v IS NULL THEN 'value' "
        "WHEN t IS NULL OR ts IS NULL THEN 'ts' END AS _pcol, "
        f"raw_name, labels, {host} AS host, t, ts, v FROM (SELECT *, {value} AS v, "
        "CAST(try(make_timestamp(TRY_CAST(round(t * 1e6) AS BIGINT))) AS TIMESTAMPTZ) AS ts "
        f"FROM {rows})"
    )


register(PrometheusTextReader())
