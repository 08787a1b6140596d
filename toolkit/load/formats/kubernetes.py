"""Kubernetes ``kubectl get events -o json`` and ``kubectl get pods -o json`` into events.

Events expire after an hour on most clusters, so exported snapshots are the evidence. A file
holds a ``List`` / ``EventList`` / ``PodList`` (``items``), a single object, or one object per
line. What becomes an event (``ts, kind, artifact, version, host, detail``):

core/v1 and events.k8s.io/v1 Events, by ``reason``:

========================================================  ==========  ===================
reason                                                    kind        host
========================================================  ==========  ===================
``OOMKilling`` (node-problem-detector), ``SystemOOM``     oom_kill    the node
``Evicted`` with a memory message                         oom_kill    the pod
``BackOff`` "restarting failed container", ``Killing``    restart     the pod
``ScalingReplicaSet``, ``SuccessfulRescale`` (HPA)         scale       the object
``SuccessfulCreate`` / ``SuccessfulDelete`` of a pod       scale       the pod created
(ReplicaSet: "Created pod: <pod>")                                     or deleted
``Pulling`` / ``Pulled`` of an image first seen for a     deploy      the pod
container (not "already present on machine")
any other ``Warning`` (``Unhealthy``, ``FailedScheduling``)  alert     the object
========================================================  ==========  ===================

Other ``Normal`` events (``Scheduled``, ``Created``, ``Started``...) are counted in a note, not
loaded. ``ts`` is the first occurrence (``firstTimestamp``, else ``eventTime``): the onset
matters for a timeline, and ``detail`` keeps ``count``, ``first_timestamp`` and
``last_timestamp`` of the de-duplicated event.

Pods (the only place a container's OOM kill is recorded): a container whose ``lastState`` or
``state`` is ``terminated`` with reason ``OOMKilled`` gives an ``oom_kill`` at ``finishedAt``; a
``restartCount`` above 0 gives a ``restart`` at the current run's ``startedAt``
(``detail.restart_count`` says how many); an evicted pod gives ``oom_kill`` (memory) or
``alert``; each image of a container gives a ``deploy`` at the creation of the oldest pod
running it, ``version`` = the image tag.

``detail`` (JSON) keeps reason, message, namespace, object (``Kind/name``), count and the
container, image, exit code or replica count when there is one; a scale event says whether it
added or removed replicas (``direction``: ``up`` / ``down``, and ``pod`` when it names one), so
a replica removed is not taken for one started. ``artifact`` is ``service``
for deploys and ``infra`` otherwise. ``_row`` is the item's position in ``items`` (its line
in a JSON-lines file).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from toolkit.load.discover import SourceFile
from toolkit.load.formats import FormatOptions, register
from toolkit.load.formats._common import finish, head_text, json_records, materialize
from toolkit.load.sources import StagedSource
from toolkit.store.schema import quote_ident

__all__ = ["KubernetesReader", "image_tag"]

_SNIFF = re.compile(
    r'"involvedObject"\s*:|"regarding"\s*:|"containerStatuses"\s*:|'
    r'"kind"\s*:\s*"(?:EventList|PodList|Event|Pod)"|'
    r'^\s*\{\s*"apiVersion"\s*:\s*"v1",\s*"items"\s*:\s*\[\s*\],\s*"kind"\s*:\s*"List"'
)


def image_tag(image: str) -> str:
    """SQL: the version part of an image reference (tag, digest, or ``latest``).

    Examples
    --------
    >>> import duckdb
    >>> duckdb.sql("SELECT " + image_tag("'registry:5000/team/model:v2.1'") + ", "
    ...            + image_tag("'model'") + ", " + image_tag("'m@sha256:ab12'")).fetchall()
    [('v2.1', 'latest', 'sha256:ab12')]
    """
    return (
        f"CASE WHEN {image} IS NULL THEN NULL WHEN contains({image}, '@') THEN "
        f"split_part({image}, '@', 2) WHEN regexp_matches({image}, ':[^/:]+$') THEN "
        f"regexp_extract({image}, ':([^/:]+)$', 1) ELSE 'latest' END"
    )


class KubernetesReader:
    """Reader of kubectl JSON exports of events and pods."""

    name = "kubernetes"
    tables = ("events",)

    def sniff(self, path: Path, head: bytes) -> str | None:
        """``events`` for kubectl event or pod JSON.

        Examples
        --------
        >>> KubernetesReader().sniff(Path("e.json"), b'{"apiVersion": "v1", "items": '
        ...                          b'[{"involvedObject": {"kind": "Pod"}}], "kind": "List"}')
        'events'
        """
        text = head_text(head)
        if text.lstrip().startswith(("{", "[")) and _SNIFF.search(text):
            return "events"
        return None

    def stage(
        self, con: duckdb.DuckDBPyConnection, source: SourceFile, options: FormatOptions
    ) -> StagedSource:
        """Stage the events derived from the file's Event and Pod objects."""
        cleanup: list[str] = []
        notes: list[str] = []
        mode, records = json_records(con, source.path, cleanup)
        items = materialize(con, _items_sql(records, mode), cleanup=cleanup)
        name = quote_ident(items)
        events = materialize(con, _events_sql(name), cleanup=cleanup)
        pods = materialize(con, _pods_sql(name), cleanup=cleanup)
        other, skipped = con.execute(
            f"SELECT (SELECT count(*) FROM {name} WHERE _perr IS NULL AND kind = 'other'), "
            f"(SELECT count(*) FROM {quote_ident(events)} WHERE kind IS NULL)"
        ).fetchall()[0]
        if skipped:
            reasons = con.execute(
                f"SELECT string_agg(DISTINCT reason, ', ' ORDER BY reason) FROM "
                f"{quote_ident(events)} WHERE kind IS NULL"
            ).fetchall()[0][0]
            notes.append(f"{skipped} routine Normal event(s) not loaded ({reasons})")
        if other:
            notes.append(f"{other} item(s) neither Event nor Pod not loaded")
        columns = "_row, _raw, _parse_error, ts, kind, artifact, version, host, detail"
        final = materialize(
            con,
            f"SELECT {columns} FROM {quote_ident(events)} WHERE kind IS NOT NULL OR "
            f"_parse_error IS NOT NULL UNION ALL SELECT {columns} FROM {quote_ident(pods)}",
            cleanup=cleanup,
        )
        return finish(con, final, str(source.path), cleanup=cleanup, notes=notes)


def _items_sql(records: str, mode: str) -> str:
    row = "CASE WHEN n > 1 OR json_type(_doc) = 'ARRAY' THEN i ELSE _row END" \
        if mode == "document" else "_row"
    return (
        f"SELECT {row} AS _row, CAST(item AS VARCHAR) AS _raw, coalesce(_perr, CASE WHEN "
        "json_type(item) <> 'OBJECT' THEN 'not a JSON object' END) AS _perr, item, CASE "
        "WHEN json_type(item) <> 'OBJECT' THEN NULL "
        "WHEN json_exists(item, '$.involvedObject') OR json_exists(item, '$.regarding') "
        "THEN 'event' WHEN item->>'kind' = 'Pod' OR json_exists(item, '$.status.containerStatuses') "
        "OR (json_exists(item, '$.spec.containers') AND json_exists(item, '$.status')) "
        "THEN 'pod' ELSE 'other' END AS kind FROM "
        "(SELECT _row, _perr, _doc, unnest(items) AS item, generate_subscripts(items, 1) AS i, "
        "len(items) AS n FROM (SELECT _row, _perr, _doc, CASE WHEN _perr IS NOT NULL THEN "
        "[NULL::JSON] WHEN json_type(_doc->'items') = 'ARRAY' THEN CAST(_doc->'items' AS JSON[]) "
        "WHEN json_type(_doc) = 'ARRAY' THEN CAST(_doc AS JSON[]) ELSE [_doc] END AS items FROM "
        "(SELECT _row, _perr, CASE WHEN _perr IS NULL THEN CAST(_raw AS JSON) END AS _doc "
        f"FROM {records})))"
    )


def _events_sql(items: str) -> str:
    fields = (
        "SELECT _row, _raw, _perr, reason, message, type, "
        "coalesce(item->'metadata'->>'namespace', obj->>'namespace') AS namespace, "
        "obj->>'kind' AS obj_kind, obj->>'name' AS obj_name, "
        "nullif(regexp_extract(obj->>'fieldPath', 'ontainers\\{([^}]+)\\}', 1), '') AS container, "
        "TRY_CAST(coalesce(item->>'count', item->'series'->>'count', item->>'deprecatedCount') "
        "AS INTEGER) AS count, first_ts, coalesce(item->>'lastTimestamp', "
        "item->>'deprecatedLastTimestamp', item->'series'->>'lastObservedTime', first_ts) "
        "AS last_ts, coalesce(item->'source'->>'component', item->'deprecatedSource'->>"
        "'component', item->>'reportingController', item->>'reportingComponent') AS component, "
        "coalesce(item->'source'->>'host', item->'deprecatedSource'->>'host', "
        "item->>'reportingInstance') AS source_host, "
        "nullif(regexp_extract(message, 'image \"([^\"]+)\"', 1), '') AS image, "
        "CASE WHEN reason IN ('SuccessfulCreate', 'SuccessfulDelete') THEN nullif("
        "regexp_extract(message, '^(?:Created|Deleted) pod: *(\\S+)', 1), '') END "
        "AS scaled_pod FROM "
        "(SELECT *, coalesce(item->'involvedObject', item->'regarding') AS obj, "
        "item->>'reason' AS reason, coalesce(item->>'message', item->>'note') AS message, "
        "item->>'type' AS type, coalesce(item->>'firstTimestamp', "
        "item->>'deprecatedFirstTimestamp', item->>'eventTime', "
        "item->'metadata'->>'creationTimestamp') AS first_ts "
        f"FROM {items} WHERE kind = 'event' OR _perr IS NOT NULL)"
    )
    first_pull = (
        "row_number() OVER (PARTITION BY namespace, container, image, reason IN ('Pulling', "
        "'Pulled') ORDER BY TRY_CAST(first_ts AS TIMESTAMPTZ), _row) = 1"
    )
    kind = (
        "CASE WHEN _perr IS NOT NULL THEN NULL "
        "WHEN reason IN ('OOMKilling', 'SystemOOM', 'OOMKilled') THEN 'oom_kill' "
        "WHEN reason = 'Evicted' AND message ILIKE '%memory%' THEN 'oom_kill' "
        "WHEN reason = 'BackOff' AND message ILIKE '%restarting%' THEN 'restart' "
        "WHEN reason = 'Killing' THEN 'restart' "
        "WHEN reason IN ('ScalingReplicaSet', 'SuccessfulCreate', 'SuccessfulDelete', "
        "'SuccessfulRescale') THEN 'scale' "
        "WHEN reason IN ('Pulling', 'Pulled') AND image IS NOT NULL AND _first_pull AND "
        "NOT message ILIKE '%already present%' THEN 'deploy' "
        "WHEN type = 'Warning' THEN 'alert' END"
    )
    host = (
        "CASE WHEN obj_kind = 'Node' THEN obj_name "
        "WHEN reason IN ('OOMKilling', 'SystemOOM') THEN coalesce(source_host, obj_name) "
        "WHEN scaled_pod IS NOT NULL THEN scaled_pod "
        "ELSE coalesce(obj_name, source_host) END"
    )
    detail = (
        "json_merge_patch('{}', json_object('reason', reason, 'message', message, 'namespace', "
        "namespace, 'object', obj_kind || '/' || obj_name, 'type', type, 'count', count, "
        "'first_timestamp', first_ts, 'last_timestamp', last_ts, 'source', component, "
        "'container', container, 'image', image, 'replicas', TRY_CAST(nullif(regexp_extract("
        "message, '(?:to|New size:) *([0-9]+)', 1), '') AS INTEGER), 'direction', CASE "
        "WHEN reason = 'SuccessfulCreate' OR message ILIKE 'Scaled up%' THEN 'up' "
        "WHEN reason = 'SuccessfulDelete' OR message ILIKE 'Scaled down%' THEN 'down' END, "
        "'pod', scaled_pod))"
    )
    return (
        f"SELECT _row, _raw, _perr AS _parse_error, reason, first_ts AS ts, kind, "
        "CASE WHEN kind = 'deploy' THEN 'service' WHEN kind IS NOT NULL THEN 'infra' END "
        f"AS artifact, CASE WHEN kind = 'deploy' THEN {image_tag('image')} END AS version, "
        f"CASE WHEN kind IS NOT NULL THEN {host} END AS host, "
        f"CASE WHEN kind IS NOT NULL THEN {detail} END AS detail "
        f"FROM (SELECT *, {kind} AS kind FROM (SELECT *, {first_pull} AS _first_pull "
        f"FROM ({fields})))"
    )


def _pods_sql(items: str) -> str:
    pods = (
        "(SELECT _row, item, item->'metadata'->>'name' AS pod, "
        "item->'metadata'->>'namespace' AS namespace, "
        "item->'metadata'->>'creationTimestamp' AS created, item->'spec'->>'nodeName' AS node "
        f"FROM {items} WHERE kind = 'pod' AND _perr IS NULL)"
    )
    statuses = (
        "(SELECT _row, pod, namespace, node, unnest(CAST(coalesce(item->'status'->"
        "'containerStatuses', '[]') AS JSON[])) AS cs FROM " + pods + ")"
    )
    base = (
        "json_object('namespace', namespace, 'object', 'Pod/' || pod, 'node', node, "
        "'container', cs->>'name', 'image', cs->>'image', 'restart_count', "
        "TRY_CAST(cs->>'restartCount' AS INTEGER)"
    )
    oom_last = (
        "SELECT _row, CAST(cs AS VARCHAR) AS _raw, NULL AS _parse_error, "
        "coalesce(cs->'lastState'->'terminated'->>'finishedAt', "
        "cs->'lastState'->'terminated'->>'startedAt') AS ts, 'oom_kill' AS kind, 'infra' AS "
        f"artifact, NULL AS version, pod AS host, json_merge_patch('{{}}', {base}, 'reason', "
        "'OOMKilled', 'exit_code', TRY_CAST(cs->'lastState'->'terminated'->>'exitCode' AS INTEGER), "
        "'state', 'lastState')) AS detail "
        f"FROM {statuses} WHERE cs->'lastState'->'terminated'->>'reason' = 'OOMKilled'"
    )
    oom_now = (
        "SELECT _row, CAST(cs AS VARCHAR), NULL, coalesce(cs->'state'->'terminated'->>"
        "'finishedAt', cs->'state'->'terminated'->>'startedAt'), 'oom_kill', 'infra', NULL, pod, "
        f"json_merge_patch('{{}}', {base}, 'reason', 'OOMKilled', 'exit_code', "
        "TRY_CAST(cs->'state'->'terminated'->>'exitCode' AS INTEGER), 'state', 'state')) "
        f"FROM {statuses} WHERE cs->'state'->'terminated'->>'reason' = 'OOMKilled'"
    )
    restarts = (
        "SELECT _row, CAST(cs AS VARCHAR), NULL, coalesce(cs->'state'->'running'->>'startedAt', "
        "cs->'lastState'->'terminated'->>'finishedAt'), 'restart', 'infra', NULL, pod, "
        f"json_merge_patch('{{}}', {base}, 'reason', coalesce(cs->'state'->'waiting'->>'reason', "
        "'Restarted'), 'last_reason', cs->'lastState'->'terminated'->>'reason', 'exit_code', "
        "TRY_CAST(cs->'lastState'->'terminated'->>'exitCode' AS INTEGER))) "
        f"FROM {statuses} WHERE TRY_CAST(cs->>'restartCount' AS INTEGER) > 0"
    )
    evictions = (
        "SELECT _row, CAST(item AS VARCHAR), NULL, coalesce(list_max(CAST(json_extract_string("
        "item, '$.status.conditions[*].lastTransitionTime') AS VARCHAR[])), "
        "item->'status'->>'startTime', created), CASE WHEN item->'status'->>'message' ILIKE "
        "'%memory%' THEN 'oom_kill' ELSE 'alert' END, 'infra', NULL, pod, json_merge_patch('{}', "
        "json_object('reason', 'Evicted', 'message', item->'status'->>'message', 'namespace', "
        "namespace, 'object', 'Pod/' || pod, 'node', node)) "
        f"FROM {pods} WHERE item->'status'->>'reason' = 'Evicted'"
    )
    containers = (
        "(SELECT _row, pod, namespace, created, unnest(CAST(coalesce(item->'spec'->'containers', "
        f"'[]') AS JSON[])) AS c FROM {pods})"
    )
    deploys = (
        "SELECT min(_row), NULL, NULL, min(created), 'deploy', 'service', "
        f"{image_tag('image')}, arg_min(pod, created), json_object('reason', 'ImageRunning', "
        "'namespace', namespace, 'container', container, 'image', image, 'pods', count(*), "
        "'first_pod', arg_min(pod, created)) "
        "FROM (SELECT _row, pod, namespace, created, c->>'name' AS container, c->>'image' AS image "
        f"FROM {containers}) WHERE image IS NOT NULL GROUP BY namespace, container, image"
    )
    return " UNION ALL ".join(
        f"({part})" for part in (oom_last, oom_now, restarts, evictions, deploys)
    )


register(KubernetesReader())
