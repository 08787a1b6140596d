"""The reports' generative sections (issue 23 item 6): shown for a generative case only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

import toolkit as tk
from toolkit.report.postmortem import GENERATIVE_SECTIONS, Postmortem
from toolkit.report.weekly import WeeklyReport

START = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday: ISO weeks 2026-W48 and W49


def _generative_requests(n: int = 6_000) -> pd.DataFrame:
    """Two weeks of LLM requests; in the second, TTFT jumps tenfold while TPOT holds."""
    rng = np.random.default_rng(7)
    ts = [START + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 14 * 86400, n))]
    second = np.array([t >= START + timedelta(days=7) for t in ts])
    ttft = rng.lognormal(np.log(120), 0.3, n) * np.where(second, 10.0, 1.0)
    tpot = rng.lognormal(np.log(25), 0.2, n)
    output = rng.integers(50, 400, n)
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "ts": ts, "endpoint": "chat",
        "model_version": "llama-1", "host": rng.choice(["gpu-0", "gpu-1"], n),
        "status": "ok", "input_tokens": rng.integers(100, 2000, n), "output_tokens": output,
        "ttft_ms": ttft, "tpot_ms": tpot, "latency_ms": ttft + tpot * output,
        "finish_reason": np.where(rng.random(n) < 0.05, "length", "stop"),
    })


def _case(tmp_path, requests: pd.DataFrame):
    db = tmp_path / "case.duckdb"
    con = tk.connect(db)
    tk.load(con, requests, table="requests")
    con.close()
    return db


def test_postmortem_and_weekly_show_the_token_sections_of_a_generative_case(tmp_path):
    db = _case(tmp_path, _generative_requests())
    pm = Postmortem.open(db, baseline="2026-11-23/2026-11-30", incident="2026-11-30/2026-12-07")
    html = pm.generative().fragment
    for _, title in GENERATIVE_SECTIONS:
        assert title in html
    # the TTFT section has its figure and its finding: TTFT up tenfold, decode speed held
    ttft_part = html.split(GENERATIVE_SECTIONS[1][1])[0]
    assert "<img" in ttft_part
    assert "time to first token" in ttft_part.lower()
    assert "decode speed" in ttft_part.lower()
    # sections whose columns the case lacks say so instead of drawing an empty chart
    kv_part = html.split(GENERATIVE_SECTIONS[1][1])[1].split(GENERATIVE_SECTIONS[2][1])[0]
    assert "not assessed" in kv_part

    weekly = WeeklyReport.open(db, "2026-W49")
    section = weekly.generative().fragment
    assert "<img" in section and "Not assessed" in section
    assert "time to first token" in section.lower()


def test_the_token_sections_say_why_they_do_not_apply_to_a_classifier(tmp_path):
    requests = _generative_requests(3_000).drop(
        columns=["input_tokens", "output_tokens", "ttft_ms", "tpot_ms", "finish_reason"])
    requests["prediction"] = np.where(np.arange(len(requests)) % 3 == 0, "1", "0")
    requests["score"] = 0.8
    db = _case(tmp_path, requests)
    pm = Postmortem.open(db, baseline="2026-11-23/2026-11-30", incident="2026-11-30/2026-12-07")
    html = pm.generative().fragment
    assert "No generative endpoint in this case (task: binary)" in html
    assert "<img" not in html
    assert "No generative endpoint" in WeeklyReport.open(db, "2026-W49").generative().fragment


def test_every_failure_mode_has_a_description_for_the_summary():
    from toolkit.classify.taxonomy import PATHWAY_OF
    from toolkit.report.postmortem import MODE_DESCRIPTIONS

    assert set(PATHWAY_OF) <= set(MODE_DESCRIPTIONS)
