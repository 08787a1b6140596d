"""kubectl get events / pods -o json into events."""

from __future__ import annotations

import json

import toolkit as tk
from tests.load.formats._helpers import FIXTURES, at, counts_hold, rejects
from toolkit.load.formats import READERS

K8S = FIXTURES / "kubernetes"


def events(con) -> list[tuple]:
    return con.execute(
        "SELECT ts, kind, artifact, version, host, detail->>'reason' FROM events "
        "ORDER BY ts, kind, host, detail->>'reason'"
    ).fetchall()


def test_core_v1_event_list(con):
    report = tk.load(con, K8S / "events.json")
    (file,) = report.files
    assert (file.table, file.format) == ("events", "kubernetes")
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (9, 9, 0)
    assert file.notes == ("4 routine Normal event(s) not loaded (Pulled, Scheduled, Started)",)
    assert events(con) == [
        (at("2026-03-02T13:59:49Z"), "alert", "infra", None, "coredns-6f6b679f8f-5m7kq",
         "Unhealthy"),
        (at("2026-03-02T14:00:00Z"), "scale", "infra", None, "model", "ScalingReplicaSet"),
        # the ReplicaSet's "Created pod: <pod>": the replica started is the pod
        (at("2026-03-02T14:00:00Z"), "scale", "infra", None, "model-6d8f7c9b5-x2x9z",
         "SuccessfulCreate"),
        # the first pull of a new image is the deploy; "already present" images are not
        (at("2026-03-02T14:00:01Z"), "deploy", "service", "v2", "model-6d8f7c9b5-x2x9z",
         "Pulling"),
        (at("2026-03-02T14:02:00Z"), "restart", "infra", None, "model-7c4b9d8f6-abcde",
         "Killing"),
        # node-level OOM (kubelet) and node-problem-detector's kernel line: host = the node
        (at("2026-03-02T14:09:58Z"), "oom_kill", "infra", None, "node-a", "OOMKilling"),
        (at("2026-03-02T14:09:58Z"), "oom_kill", "infra", None, "node-a", "SystemOOM"),
        (at("2026-03-02T14:10:00Z"), "restart", "infra", None, "model-6d8f7c9b5-x2x9z",
         "BackOff"),
        (at("2026-03-02T14:12:00Z"), "scale", "infra", None, "model", "SuccessfulRescale"),
    ]
    backoff = json.loads(con.execute(
        "SELECT detail FROM events WHERE detail->>'reason' = 'BackOff'").fetchone()[0])
    assert backoff == {
        "reason": "BackOff",
        "message": "Back-off restarting failed container server in pod "
                   "model-6d8f7c9b5-x2x9z_ml(3b1f)",
        "namespace": "ml", "object": "Pod/model-6d8f7c9b5-x2x9z", "type": "Warning",
        "count": 12, "first_timestamp": "2026-03-02T14:10:00Z",
        "last_timestamp": "2026-03-02T14:25:00Z", "source": "kubelet", "container": "server",
    }
    assert con.execute("SELECT detail->>'replicas' FROM events WHERE detail->>'reason' = "
                       "'SuccessfulRescale'").fetchone()[0] == "4"
    counts_hold(con)


def test_scale_events_name_the_pod_and_the_direction(con, tmp_path):
    def event(reason, kind, name, message):
        return {"apiVersion": "v1", "kind": "Event", "count": 1, "type": "Normal",
                "firstTimestamp": "2026-03-02T14:00:00Z", "lastTimestamp": "2026-03-02T14:00:00Z",
                "involvedObject": {"kind": kind, "name": name, "namespace": "ml"},
                "metadata": {"name": f"{name}.1", "namespace": "ml"}, "reason": reason,
                "message": message, "source": {"component": "replicaset-controller"}}

    items = [
        event("SuccessfulCreate", "ReplicaSet", "model-6d8f7c9b5", "Created pod: model-6d8f7c9b5-a1"),
        event("SuccessfulDelete", "ReplicaSet", "model-6d8f7c9b5", "Deleted pod: model-6d8f7c9b5-b2"),
        event("ScalingReplicaSet", "Deployment", "model",
              "Scaled down replica set model-6d8f7c9b5 from 3 to 2"),
        # an unexpected message keeps the ReplicaSet as the host
        event("SuccessfulCreate", "ReplicaSet", "model-6d8f7c9b5", "Created 2 pods"),
    ]
    path = tmp_path / "scaling.json"
    path.write_text(json.dumps({"apiVersion": "v1", "items": items, "kind": "List"}))
    assert tk.load(con, path).rows_loaded == 4
    rows = con.execute(
        "SELECT host, detail->>'direction', detail->>'pod', detail->>'replicas' FROM events "
        "ORDER BY detail->>'reason', host").fetchall()
    assert rows == [
        ("model", "down", None, "2"),
        ("model-6d8f7c9b5", "up", None, None),
        ("model-6d8f7c9b5-a1", "up", "model-6d8f7c9b5-a1", None),
        ("model-6d8f7c9b5-b2", "down", "model-6d8f7c9b5-b2", None),
    ]
    counts_hold(con)


def test_events_k8s_io_v1_shape(con):
    report = tk.load(con, K8S / "events_v1.json")
    assert (report.rows_read, report.rows_loaded) == (2, 2)
    assert events(con) == [
        (at("2026-03-02T14:19:00Z"), "oom_kill", "infra", None, "llm-1", "Evicted"),
        (at("2026-03-02T14:20:00.123456Z"), "restart", "infra", None, "llm-0", "Killing"),
    ]
    count, last = con.execute("SELECT detail->>'count', detail->>'last_timestamp' FROM events "
                              "WHERE host = 'llm-0'").fetchone()
    assert (count, last) == ("3", "2026-03-02T14:30:00.000000Z")


def test_pods_oom_killed_restarts_evictions_and_images(con):
    report = tk.load(con, K8S / "pods.json")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (6, 6, 0)
    assert events(con) == [
        # each image: deployed when the oldest pod running it was created
        (at("2026-02-20T09:00:00Z"), "deploy", "service", "v1", "model-7c4b9d8f6-abcde",
         "ImageRunning"),
        (at("2026-03-02T14:00:00Z"), "deploy", "service", "v2", "model-6d8f7c9b5-x2x9z",
         "ImageRunning"),
        # lastState.terminated OOMKilled (exit 137) at finishedAt, and the restart it caused
        (at("2026-03-02T14:09:58Z"), "oom_kill", "infra", None, "model-6d8f7c9b5-x2x9z",
         "OOMKilled"),
        (at("2026-03-02T14:09:58Z"), "restart", "infra", None, "model-6d8f7c9b5-x2x9z",
         "CrashLoopBackOff"),
        (at("2026-03-02T14:12:31Z"), "restart", "infra", None, "model-6d8f7c9b5-q7w8e",
         "Restarted"),
        (at("2026-03-02T14:15:00Z"), "oom_kill", "infra", None, "model-6d8f7c9b5-evict",
         "Evicted"),
    ]
    oom = json.loads(con.execute("SELECT detail FROM events WHERE kind = 'oom_kill' AND "
                                 "detail->>'reason' = 'OOMKilled'").fetchone()[0])
    assert (oom["exit_code"], oom["restart_count"], oom["container"], oom["node"]) == \
        (137, 3, "server", "node-a")
    deploy = json.loads(con.execute("SELECT detail FROM events WHERE version = 'v2'"
                                    ).fetchone()[0])
    assert (deploy["image"], deploy["pods"]) == ("registry.example.com/fraud/model:v2", 3)
    assert rejects(con) == []


def test_sniff_claims_events_and_pods_only():
    reader = READERS["kubernetes"]
    for name in ("events.json", "events_v1.json", "pods.json"):
        assert reader.sniff(K8S / name, (K8S / name).read_bytes()[:65536]) == "events"
    deployments = b'{"apiVersion": "v1", "items": [{"kind": "Deployment", "spec": {}}], "kind": "List"}'
    assert reader.sniff(K8S / "d.json", deployments) is None


def test_an_empty_event_list_loads_nothing(con, tmp_path):
    path = tmp_path / "events.json"
    path.write_text('{\n    "apiVersion": "v1",\n    "items": [],\n    "kind": "List",\n'
                    '    "metadata": {"resourceVersion": ""}\n}\n')
    report = tk.load(con, path)
    assert [(f.format, f.rows_read) for f in report.files] == [("kubernetes", 0)]
