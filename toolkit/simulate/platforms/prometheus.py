"""Prometheus: the metrics as ``query_range`` responses, one file per metric.

``prometheus/<file>.json`` holds the HTTP API's answer to ``/api/v1/query_range`` over the
metrics' window at the case's step (``log_formats.md`` section 4.1), one series per pod::

    {"status":"success","data":{"resultType":"matrix","result":[
      {"metric":{"__name__":"container_memory_working_set_bytes","container":"model-server",
                 "namespace":"ml-serving","pod":"fraud-scorer-...","job":"kubelet", ...},
       "values":[[1770595200,"6012954214.4"], ...]}, ...]}}

===========================  ========================================  ======================
canonical metric             file (query)                              value
===========================  ========================================  ======================
``memory_used_bytes``        ``container_memory_working_set_bytes``    bytes, exact
``memory_limit_bytes``       ``container_spec_memory_limit_bytes``     bytes, exact
``gpu_memory_used_bytes``    ``DCGM_FI_DEV_FB``: ``{__name__=~"DCGM_  whole MiB (DCGM's unit)
``gpu_memory_total_bytes``   FI_DEV_FB_USED|DCGM_FI_DEV_FB_FREE"}``    whole MiB; the loader
                             (both series in one response)             adds used + free: the
                                                                       exact total
``gpu_utilization``          ``DCGM_FI_DEV_GPU_UTIL``                  whole percent
``cpu_utilization``          ``cpu_utilization``: ``sum by (namespace,  fraction, exact
                             pod, container) (rate(container_cpu_
                             usage_seconds_total[1m])) / on (...)
                             kube_pod_container_resource_limits
                             {resource="cpu"}`` (no ``__name__``)
``in_flight``                ``in_flight``: ``sum by (namespace, pod,   count, exact
                             container) (http_requests_inprogress)``
``replicas``                 ``replicas``: ``sum by (namespace,         count, exact
                             deployment) (kube_deployment_status_
                             replicas)`` (no pod: no host)
===========================  ========================================  ======================

A query whose result drops ``__name__`` is named by its file, as the loader expects. Times
are whole seconds (numbers), values Go-formatted strings. The loader also derives
``gpu_memory_free_bytes`` from DCGM's free memory (a metric the generic form does not have).
Everything else of the case stays in the generic files.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.simulate.case import Case
from toolkit.simulate.metrics import metric_chunks
from toolkit.simulate.platforms._common import (
    CONTAINER,
    NAMESPACE,
    Progress,
    connect,
)
from toolkit.simulate.writer import write_tables
from toolkit.store.schema import quote_literal

__all__ = ["write", "FILES", "gpu_model"]

MIB = 1024 * 1024
#: file stem -> its series: (canonical name, ``__name__`` or None, labels kind, value SQL over
#: ``value``); one ``query_range`` response per file
FILES: dict[str, tuple[tuple[str, str | None, str, str], ...]] = {
    "container_memory_working_set_bytes": (
        ("memory_used_bytes", "container_memory_working_set_bytes", "cadvisor", "value"),),
    "container_spec_memory_limit_bytes": (
        ("memory_limit_bytes", "container_spec_memory_limit_bytes", "cadvisor", "value"),),
    # {__name__=~"DCGM_FI_DEV_FB_USED|DCGM_FI_DEV_FB_FREE"}: the loader adds used + free
    "DCGM_FI_DEV_FB": (
        ("gpu_memory_used_bytes", "DCGM_FI_DEV_FB_USED", "dcgm", f"round(value / {MIB})"),
        ("gpu_memory_total_bytes", "DCGM_FI_DEV_FB_FREE", "dcgm",
         f"round(value / {MIB}) - round(_used / {MIB})"),
    ),
    "DCGM_FI_DEV_GPU_UTIL": (
        ("gpu_utilization", "DCGM_FI_DEV_GPU_UTIL", "dcgm", "round(value * 100)"),),
    "cpu_utilization": (("cpu_utilization", None, "pod", "value"),),
    "in_flight": (("in_flight", None, "pod", "value"),),
    "replicas": (("replicas", None, "deployment", "value"),),
}


def gpu_model(total_bytes: float) -> str:
    """DCGM's ``modelName`` of a GPU with that much memory.

    Examples
    --------
    >>> gpu_model(24 * 2**30)
    'NVIDIA A10G'
    """
    gib = round(total_bytes / 2**30)
    return {16: "Tesla T4", 24: "NVIDIA A10G", 40: "NVIDIA A100-SXM4-40GB",
            80: "NVIDIA H100 80GB HBM3"}.get(gib, f"NVIDIA GPU {gib}GB")


def write(case: Case, out: Path, progress: Progress | None = None) -> None:
    """Write the metrics of ``case`` as ``query_range`` files, the rest as generic files."""
    con = connect()
    con.execute("CREATE TABLE m (ts TIMESTAMPTZ, host VARCHAR, name VARCHAR, value DOUBLE)")
    for table in metric_chunks(case.plan):
        con.register("part", table.select(["ts", "host", "name", "value"]))
        con.execute("INSERT INTO m SELECT * FROM part")
        con.unregister("part")
    p = case.plan.platform
    folder = out / "prometheus"
    folder.mkdir()
    present = {name for (name,) in con.execute("SELECT DISTINCT name FROM m").fetchall()}
    for stem, series in FILES.items():
        series = tuple(x for x in series if x[0] in present)
        if not series:
            continue
        sql = _response_sql(series, p.service, gpu_model(p.gpu_memory_total_bytes))
        (folder / f"{stem}.json").write_text(con.execute(sql).fetchall()[0][0] + "\n")
    con.close()
    write_tables(case, out, requests=True, metrics=False, events=case.events(),
                  progress=progress)


def _labels(metric: str | None, kind: str, service: str, gpu: str) -> str:
    """SQL: the series' label set (a JSON object) for ``host``."""
    pairs = [] if metric is None else [("'__name__'", quote_literal(metric))]
    if kind == "deployment":
        pairs += [("'deployment'", quote_literal(service)), ("'namespace'", quote_literal(NAMESPACE))]
    else:
        pairs += [("'container'", quote_literal(CONTAINER))]
        if kind == "dcgm":
            pairs += [("'UUID'", "'GPU-' || substr(md5(host), 1, 8) || '-' || "
                       "substr(md5(host), 9, 4) || '-' || substr(md5(host), 13, 4) || '-' || "
                       "substr(md5(host), 17, 4) || '-' || substr(md5(host), 21, 12)"),
                      ("'device'", "'nvidia0'"), ("'gpu'", "'0'"),
                      ("'modelName'", quote_literal(gpu))]
        if kind == "cadvisor":
            pairs += [("'job'", "'kubelet'"), ("'metrics_path'", "'/metrics/cadvisor'")]
        pairs += [("'namespace'", quote_literal(NAMESPACE)), ("'pod'", "host")]
    return "json_object(" + ", ".join(f"{k}, {v}" for k, v in pairs) + ")"


def _series_sql(name: str, metric: str | None, kind: str, value: str, service: str,
                gpu: str) -> str:
    """SQL: one row per pod (``s``: the series object) of canonical metric ``name``."""
    source = f"(SELECT * FROM m WHERE name = {quote_literal(name)})"
    if name == "gpu_memory_total_bytes":  # free = total - used, both in whole MiB as DCGM
        source = ("(SELECT t.ts, t.host, t.name, t.value, u.value AS _used FROM m t JOIN m u "
                  "ON u.name = 'gpu_memory_used_bytes' AND u.host = t.host AND u.ts = t.ts "
                  "WHERE t.name = 'gpu_memory_total_bytes')")
    t = ("CASE WHEN epoch_us(ts) % 1000000 = 0 THEN to_json(epoch_us(ts) // 1000000) "
         "ELSE to_json(round(epoch_us(ts) / 1e6, 3)) END")
    v = ("CASE WHEN isnan(_v) THEN 'NaN' WHEN _v = trunc(_v) AND abs(_v) < 1e15 "
         "THEN CAST(CAST(_v AS BIGINT) AS VARCHAR) ELSE CAST(_v AS VARCHAR) END")
    return (
        f"SELECT {quote_literal(metric or name)} AS _name, host, json_object('metric', "
        f"{_labels(metric, kind, service, gpu)}, 'values', to_json(list(json_array({t}, {v}) "
        f"ORDER BY ts))) AS s FROM (SELECT *, CAST({value} AS DOUBLE) AS _v FROM {source}) "
        "GROUP BY host"
    )


def _response_sql(series: tuple[tuple[str, str | None, str, str], ...], service: str,
                  gpu: str) -> str:
    """SQL: the ``query_range`` response (text) holding ``series``."""
    parts = " UNION ALL ".join(_series_sql(*x, service, gpu) for x in series)
    return (
        "SELECT CAST(json_object('status', 'success', 'data', json_object('resultType', "
        "'matrix', 'result', to_json(coalesce(list(s ORDER BY _name, host), [])))) AS VARCHAR) "
        f"FROM ({parts})"
    )
