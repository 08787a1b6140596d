"""Kubernetes: restarts, OOM kills, scaling and image deploys as ``kubectl`` JSON.

Events expire within the hour on a cluster, so what survives is what someone exported
(``log_formats.md`` section 5.2):

``kubernetes/events.json`` (``kubectl get events -A -o json``: a ``List`` of core/v1 Events)
    * a restart that is not an OOM kill (a node drain, a replaced node): ``Killing`` on the
      Pod, "Stopping container model-server", from the kubelet;
    * a replica added or removed by the autoscaler: ``SuccessfulCreate`` / ``SuccessfulDelete``
      on the pod's ReplicaSet, "Created pod: <pod>" / "Deleted pod: <pod>", from the
      replicaset-controller (the loader takes the pod from the message).
``kubernetes/pods.jsonl`` (Pod objects, one per line, as a pods watch keeps them when a
container starts)
    * after each OOM kill, the pod as it restarted: ``lastState.terminated`` (``OOMKilled``,
      exit code 137, ``finishedAt`` = the kill), ``state.running.startedAt`` = the restart,
      ``restartCount``; the only place Kubernetes records a container's OOM kill;
    * the first pod running each service image (the image the case starts with, created
      before the logs begin, and each image deployed later, created at the deploy), so each
      image gives one deploy at the time it started running.

Timestamps have whole seconds, as Kubernetes writes them (``ts`` loses its fraction). The
pod that first runs a deployed image is the deploy's ``host`` (the generic deploy names none),
and the image the case starts with adds one deploy before the case. Rollbacks (an old image
again: nothing new to Kubernetes), model / pipeline / client deploys, configuration changes,
cache flushes and alerts stay in the generic ``events.jsonl``, with every other table.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from toolkit.simulate.case import Case
from toolkit.simulate.platforms._common import (
    CONTAINER,
    NAMESPACE,
    Progress,
    digest_uuid,
)
from toolkit.simulate.writer import write_tables

__all__ = ["write", "split_events", "IMAGE_REPOSITORY", "ROLLOUT_STEP_S"]

#: Where the service image lives (``<repository>/<service>:<version>``).
IMAGE_REPOSITORY = "registry.example.com/ml-serving"
#: A rolling update replaces one pod every this many seconds.
ROLLOUT_STEP_S = 10


def split_events(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kubernetes, generic)``: the events Kubernetes records (restarts, OOM kills, scaling,
    service deploys) and the rest."""
    k8s = events["kind"].isin(["restart", "oom_kill", "scale"]) | (
        (events["kind"] == "deploy") & (events["artifact"] == "service"))
    return events[k8s].reset_index(drop=True), events[~k8s].reset_index(drop=True)


def write(case: Case, out: Path, progress: Progress | None = None) -> None:
    """Write the Kubernetes exports of ``case`` under ``out``, the rest as generic files."""
    k8s, generic = split_events(case.events())
    folder = out / "kubernetes"
    folder.mkdir()
    items = _event_items(case, k8s)
    document = {"apiVersion": "v1", "items": items, "kind": "List",
                "metadata": {"resourceVersion": ""}}
    (folder / "events.json").write_text(json.dumps(document, indent=4) + "\n")
    pods = _pod_objects(case, k8s)
    (folder / "pods.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pods))
    write_tables(case, out, requests=True, events=generic, progress=progress)


def _time(ts: pd.Timestamp | datetime) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(*parts: object, n: int = 16) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()[:n]


def _node(pod: str) -> str:
    h = hashlib.md5(pod.encode()).digest()
    return f"ip-10-0-{h[0]}-{h[1]}.ec2.internal"


def _replica_set(pod: str) -> str:
    return pod.rsplit("-", 1)[0]


def _event_items(case: Case, k8s: pd.DataFrame) -> list[dict]:
    """core/v1 Events for scaling and for restarts that are not OOM kills."""
    items = []
    for i, row in enumerate(k8s.itertuples(index=False)):
        detail = json.loads(row.detail)
        if row.kind == "scale":
            up = detail.get("direction") != "down"
            reason = "SuccessfulCreate" if up else "SuccessfulDelete"
            message = f"{'Created' if up else 'Deleted'} pod: {row.host}"
            obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "name": _replica_set(row.host), "namespace": NAMESPACE}
            source = {"component": "replicaset-controller"}
        elif row.kind == "restart" and detail.get("reason") != "OOMKilled":
            reason, message = "Killing", f"Stopping container {CONTAINER}"
            obj = {"apiVersion": "v1", "kind": "Pod", "name": row.host, "namespace": NAMESPACE,
                   "fieldPath": f"spec.containers{{{CONTAINER}}}"}
            source = {"component": "kubelet", "host": _node(row.host)}
        else:
            continue
        obj["uid"] = digest_uuid(case.seed, obj["kind"], obj["name"])
        when = _time(row.ts)
        name = f"{obj['name']}.{_hex(case.seed, i, row.kind, when)}"
        items.append({
            "apiVersion": "v1", "count": 1, "eventTime": None, "firstTimestamp": when,
            "involvedObject": obj, "kind": "Event", "lastTimestamp": when, "message": message,
            "metadata": {"creationTimestamp": when, "name": name, "namespace": NAMESPACE,
                         "resourceVersion": str(1000 + i), "uid": digest_uuid(name)},
            "reason": reason, "reportingComponent": source["component"],
            "reportingInstance": source.get("host", ""), "source": source, "type": "Normal",
        })
    return items


def _pod_objects(case: Case, k8s: pd.DataFrame) -> list[dict]:
    """Pod objects: the first pod of each image, and each pod restarted after an OOM kill."""
    plan, p = case.plan, case.plan.platform
    start = pd.Timestamp(case.start)
    fleet = plan.fleet
    created = {name: start + timedelta(seconds=float(fleet.starts[j][0]))
               for j, name in enumerate(fleet.names)}
    index = {name: j for j, name in enumerate(fleet.names)}
    rollouts = [(pd.Timestamp(t), v) for t, v in _service_timeline(case)]
    deploys = k8s[k8s["kind"] == "deploy"]
    first = fleet.names[0]
    objects = [_pod(case, first, created[first], p.service_version, 0, created[first])]
    for row in deploys.itertuples(index=False):
        objects.append(_pod(case, first, row.ts, row.version, 0, row.ts))

    def running(pod: str, t: pd.Timestamp) -> tuple[pd.Timestamp, str]:
        """When the pod started running the image in force at ``t``, and that image."""
        since, image = created[pod], p.service_version
        for when, version in rollouts:
            if when <= t:
                image = version
                since = max(created[pod],
                            when + timedelta(seconds=ROLLOUT_STEP_S * index.get(pod, 0)))
        return since, image

    restarts = k8s[(k8s["kind"] == "restart")]
    for host, kills in k8s[k8s["kind"] == "oom_kill"].groupby("host", sort=True):
        again = restarts[(restarts["host"] == host) & restarts["detail"].str.contains(
            '"OOMKilled"')].sort_values("ts")
        previous = created[host]
        for n, kill in enumerate(kills.sort_values("ts").itertuples(index=False)):
            later = again[again["ts"] >= kill.ts]
            if not len(later):
                continue
            restart = later.iloc[0]
            count = json.loads(restart["detail"]).get("restart_count", n + 1)
            since, image = running(host, kill.ts)
            terminated = {"containerID": f"containerd://{_hex(case.seed, host, n, n=64)}",
                          "exitCode": 137, "finishedAt": _time(kill.ts), "reason": "OOMKilled",
                          "startedAt": _time(max(previous, since))}
            objects.append(_pod(case, host, since, image, int(count), restart["ts"],
                                terminated))
            previous = restart["ts"]
            again = again[again["ts"] > restart["ts"]]
    return objects


def _service_timeline(case: Case) -> list[tuple[pd.Timestamp, str]]:
    """Times the service image changed (deploys and rollbacks), with the new version."""
    events = case.events()
    changes = events[events["kind"].isin(["deploy", "rollback"]) &
                     (events["artifact"] == "service")].sort_values("ts")
    return [(row.ts, row.version) for row in changes.itertuples(index=False)]


def _pod(case: Case, pod: str, created, version: str, restarts: int, started,
         terminated: dict | None = None) -> dict:
    image = f"{IMAGE_REPOSITORY}/{case.plan.platform.service}:{version}"
    memory = f"{case.plan.platform.memory_limit_bytes // 2**30}Gi"
    status = {
        "containerID": f"containerd://{_hex(case.seed, pod, _time(started), n=64)}",
        "image": image, "imageID": f"{image.rsplit(':', 1)[0]}@sha256:{_hex(image, n=64)}",
        "lastState": {"terminated": terminated} if terminated else {},
        "name": CONTAINER, "ready": True, "restartCount": restarts, "started": True,
        "state": {"running": {"startedAt": _time(started)}},
    }
    rs = _replica_set(pod)
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "creationTimestamp": _time(created),
            "labels": {"app": case.plan.platform.service,
                       "pod-template-hash": rs.rsplit("-", 1)[-1]},
            "name": pod, "namespace": NAMESPACE,
            "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": True,
                                 "controller": True, "kind": "ReplicaSet", "name": rs,
                                 "uid": digest_uuid(case.seed, "ReplicaSet", rs)}],
            "uid": digest_uuid(case.seed, "Pod", pod),
        },
        "spec": {"containers": [{"image": image, "name": CONTAINER,
                                 "resources": {"limits": {"memory": memory}}}],
                 "nodeName": _node(pod)},
        "status": {"containerStatuses": [status], "phase": "Running",
                   "startTime": _time(created)},
    }

