"""A tiny two-version case (baseline m1, candidate m2 on shadow traffic) built by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import toolkit as tk

T0 = pd.Timestamp("2026-03-02", tz="UTC")
N = 3000


def baseline_rows(seed: int = 0) -> dict[str, np.ndarray]:
    """Confidence uniform on [0.6, 1), right with that probability (calibrated), latency
    uniform on [100, 200) ms."""
    rng = np.random.default_rng(seed)
    conf = np.round(rng.uniform(0.6, 1.0, N), 4)
    right = rng.uniform(size=N) < conf
    latency = 100.0 + 100.0 * (np.arange(N) % 1000) / 1000
    return {"conf": conf, "right": right, "latency": latency}


def build_case(path=None, *, cand_conf=None, cand_right=None, cand_latency=None,
               cand_pipeline="p2", lineage=(("r1", "m1", "p1", "c1"), ("r2", "m2", "p2", "c1")),
               cache_detail=None, extra_events=(), endpoint="score-rt", seed=0):
    """Baseline m1 and candidate m2 answer the same 3,000 inputs (a shadow pair each), every
    answer labelled. The candidate copies the baseline unless told otherwise."""
    b = baseline_rows(seed)
    cand = {"conf": b["conf"] if cand_conf is None else cand_conf,
            "right": b["right"] if cand_right is None else cand_right,
            "latency": b["latency"] if cand_latency is None else cand_latency}
    ts = T0 + pd.to_timedelta(np.arange(N) * 30, unit="s")
    frames, labels = [], []
    for version, rows, pipeline in (("m1", b, "p1"), ("m2", cand, cand_pipeline)):
        ids = [f"{version}-{i}" for i in range(N)]
        frames.append(pd.DataFrame({
            "request_id": ids, "ts": ts, "endpoint": endpoint, "model_version": version,
            "pipeline_version": pipeline, "client_version": "c1",
            "latency_ms": rows["latency"], "status": "ok", "prediction": "1",
            "score": rows["conf"], "cache_hit": np.arange(N) % 10 == 0}))
        labels.append(pd.DataFrame({"request_id": ids,
                                    "label": np.where(rows["right"], "1", "0")}))
    con = tk.connect(path) if path is not None else tk.connect()
    tables = {"requests": pd.concat(frames, ignore_index=True),
              "labels": pd.concat(labels, ignore_index=True)}
    if lineage:
        tables["lineage"] = pd.DataFrame(
            [{"release": r, "model_version": m, "pipeline_version": p, "client_version": c,
              "created_at": T0 - pd.Timedelta(days=1)} for r, m, p, c in lineage])
    detail = {"cache_key": "request_hash+model_version", "cache_ttl_s": 3600} \
        if cache_detail is None else cache_detail
    events = [(T0 - pd.Timedelta(hours=1), "config_change", "cache", None, detail),
              *extra_events]
    tables["events"] = pd.DataFrame({
        "ts": [e[0] for e in events], "kind": [e[1] for e in events],
        "artifact": [e[2] for e in events], "version": [e[3] for e in events],
        "detail": [json.dumps(e[4]) for e in events]})
    for name, frame in tables.items():
        report = tk.load(con, frame, table=name)
        assert report.rows_rejected == 0, name
    return con
