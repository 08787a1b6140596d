"""All eight generative diagnostics on ONE case of 10M requests (issue 23: under 30 s, 2 cores).

    python bench/bench_generative_all.py [--rows 10000000] [--workdir bench/out]
                                         [--repeat 1] [--memory-limit 2GB]

DuckDB writes one generative case into a case file (``tk.connect`` creates the canonical
schema; the rows come from one ``INSERT ... SELECT`` over ``range(n)``, draws from
``hash(k, salt)`` so the case is the same on every run): 24 hours of requests on 8 replicas
with every DESIGN 3a column the generative diagnostics read (host, prompt / output / cached
tokens, TTFT, TPOT, end-to-end latency, status, error type, finish reason, preemptions,
sampling parameters as JSON, template, adapter, client and model versions), a good/bad label on
one request in five, engine metrics every 10 s per replica (``kv_cache_usage``,
``requests_waiting``, ``requests_running`` and the ``preemptions_total`` and
``generation_tokens_total`` counters) and the prefix-cache counters each minute. At hour 12
everything goes wrong at once, so every diagnostic has something to find and the timings
include the findings' work: the KV cache pins near 1, preemptions and the queue climb, TTFT
grows x1-4, prompts beyond 8k tokens fail with an OOM half of the time, a new client ``c2``
arrives with a changed system prompt (cache hit share 70% -> 10%, longer prompts on the
``rag`` adapter), a config change sets ``temperature`` 1.1 and ``max_tokens`` 256, and model
``m2`` takes half the traffic with more bad feedback.

A fresh process opens the case read-only and runs the eight diagnostics through
``run_diagnostics`` with ONE shared case view, as ``forensics diagnose`` does (summaries one
diagnostic computes, e.g. the requests' artifact changes or the TTFT percentiles per window
and bucket, serve the next). Per diagnostic it prints the wall seconds and the process CPU
seconds (user + sys of every DuckDB thread, ``time.process_time``); the total is compared
with the 30 s target (PASS / FAIL). On a shared machine wall time is inflated by the other
jobs: the load average is printed before and after, and CPU seconds / 2 is the floor of the
wall time on 2 cores.

Measured (2026-12-06, 10M rows, 2 cores shared with six other engineers' jobs at a load
average of 18-22, so wall time is 4-5x the CPU floor), old and new code run back to back:

=============================  ==========================  ==========================
diagnostic (CPU s)             before (7635d29), 2 runs    after (ff73808), 2 runs
=============================  ==========================  ==========================
data.prompt_mix                2.71, 2.14                  2.01, 1.79
model.feedback                 2.55, 2.53                  2.68, 2.82
infra.token_latency            4.13, 2.92                  3.59, 3.15
infra.kv_cache                 0.94, 0.94                  0.24, 0.26
infra.prefill_interference     2.51, 2.08                  1.78, 1.87
infra.context_errors           0.89, 0.86                  0.64, 0.65
integration.prefix_cache       0.60, 0.60                  0.46, 0.48
integration.generation         0.58, 0.59                  0.58, 0.61
all eight: CPU s               15.03, 12.77                12.10, 11.78
all eight: wall s              62.54, 55.82 (FAIL)         54.06, 58.05 (FAIL)
load average (1 min)           17.9-20.3, 20.7-20.5        20.4-20.5, 20.4-22.1
=============================  ==========================  ==========================

Once more on 4cfbd55 (the engine seam's changes in, 15:04, load 17.6-18.9): 49.68 s wall,
11.39 s CPU (1.82, 2.55, 3.06, 0.22, 1.86, 0.66, 0.48, 0.61 in the order above).
CPU seconds / 2 cores, the wall time a quiet machine would approach: 7.5 / 6.4 s before,
6.1 / 5.9 / 5.7 s after, peak RSS about 1,070 MiB; every table, timeline and finding identical
(to 1e-12; prefill's ``blocked_log_var`` and ``blocked_pvalue`` differ at 1e-11 between two
runs of the old code alone: a variance from parallel sums of squares). The FAIL lines are the
load's: the machine was never quiet today, so the quiet figure is not measured; the CPU floor
(6 s) plus the single-threaded parts (Python, quantile finalisation) puts it well under the
30 s target, which the lead's quiet re-run of this script settles.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from _case import MachineState, bench_parser, built_case, open_case, run_child
from _generative import BASELINE, DRAWS, EVENTS, INCIDENT, LABELS, START
from _memory import peak_rss_mib

#: The generative diagnostics, by registry id, in the registry's order.
IDS = ("data.prompt_mix", "model.feedback", "infra.token_latency", "infra.kv_cache",
       "infra.prefill_interference", "infra.context_errors", "integration.prefix_cache",
       "integration.generation")
TARGET_S = 30.0
HOSTS = 8

# One row per request k of n over 24 hours (DRAWS), its tokens, timings and outcome.
_REQUESTS = """
INSERT INTO requests (request_id, ts, endpoint, model_name, model_version, client_version,
                      host, adapter, input_tokens, output_tokens, cached_tokens, ttft_ms,
                      tpot_ms, latency_ms, status, error_type, finish_reason, preemptions,
                      params, template_version, load_id)
""" + DRAWS + """), tokens AS (
  SELECT *, (CASE WHEN adapter = 'rag' THEN 3000 ELSE 600 END * (0.3 + 1.4 * u4)
             * CASE WHEN u5 < 0.02 THEN 8 ELSE 1 END)::INTEGER AS input_tokens,
         (50 + 400 * u2 * u3)::INTEGER AS wanted,
         CASE WHEN after THEN 256 ELSE 512 END AS max_tokens
  FROM drawn
), served AS (
  SELECT *, least(wanted * CASE WHEN after THEN 1.3 ELSE 1.0 END, max_tokens)::INTEGER
              AS output_tokens,
         (40 + 0.05 * input_tokens * CASE WHEN client = 'c2' THEN 0.9 ELSE 0.3 END
          + 60 * u6) * CASE WHEN after THEN 1 + 3 * u7 ELSE 1 END AS ttft_ms,
         15 + 10 * u5 AS tpot,
         after AND input_tokens > 8000 AND u6 < 0.5 AS oom,
         u7 < 0.002 AS internal
  FROM tokens
)
SELECT 'r' || k, ts, 'chat-api', 'llm-14b', model, client, 'gpu-' || (k % {hosts}), adapter,
       input_tokens, output_tokens,
       (input_tokens * CASE WHEN client = 'c2' THEN 0.1 ELSE 0.7 END)::INTEGER, ttft_ms,
       CASE WHEN output_tokens > 1 THEN tpot END, ttft_ms + tpot * (output_tokens - 1),
       CASE WHEN oom OR internal THEN 'error' ELSE 'ok' END,
       CASE WHEN oom THEN 'oom' WHEN internal THEN 'internal' END,
       CASE WHEN oom OR internal THEN 'error'
            WHEN u1 < 0.01 THEN 'content_filter'
            WHEN wanted * CASE WHEN after THEN 1.3 ELSE 1.0 END >= max_tokens THEN 'length'
            ELSE 'stop' END,
       CASE WHEN u3 < CASE WHEN after THEN 0.3 ELSE 0.01 END THEN 1 + (u4 * 3)::INTEGER
            ELSE 0 END,
       json_object('temperature', CASE WHEN after THEN 1.1 ELSE 0.7 END,
                   'top_p', 0.9, 'max_tokens', max_tokens),
       't1', 0
FROM served
"""
# engine gauges every 10 s per replica, counters cumulated in time order
_ENGINE = """
INSERT INTO metrics (ts, host, name, value, load_id)
WITH steps AS (
  SELECT s, h, s >= 4320 AS after, (hash(s, h, 11) % 1000000) / 1e6 AS u
  FROM range(8640) t(s), range({hosts}) r(h)
), series AS (
  SELECT s, h, 'kv_cache_usage' AS name,
         CASE WHEN after THEN 0.93 + 0.07 * u ELSE 0.3 + 0.55 * u END AS x FROM steps
  UNION ALL SELECT s, h, 'requests_waiting', floor(CASE WHEN after THEN 24 ELSE 1 END * u)
  FROM steps
  UNION ALL SELECT s, h, 'requests_running', 20 + floor(20 * u) FROM steps
  UNION ALL SELECT s, h, 'preemptions_total', floor(CASE WHEN after THEN 6 ELSE 1.02 END * u)
  FROM steps
  UNION ALL SELECT s, h, 'generation_tokens_total',
                   CASE WHEN after THEN 1000 ELSE 2000 END + floor(1000 * u) FROM steps
)
SELECT TIMESTAMPTZ '{start}' + to_seconds(10 * s), 'gpu-' || h, name,
       CASE WHEN name LIKE '%_total' THEN sum(x) OVER (PARTITION BY h, name ORDER BY s)
            ELSE x END, 0
FROM series
"""
_PREFIX = """
INSERT INTO metrics (ts, host, name, value, load_id)
SELECT TIMESTAMPTZ '{start}' + to_minutes(m), 'gpu-' || h, name,
       sum(CASE WHEN name = 'prefix_cache_hits_total'
                THEN 1000 * CASE WHEN m >= 720 THEN 0.25 ELSE 0.7 END ELSE 1000 END)
         OVER (PARTITION BY h, name ORDER BY m), 0
FROM range(1440) t(m), range({hosts}) r(h),
     (VALUES ('prefix_cache_hits_total'), ('prefix_cache_queries_total')) c(name)
"""


def prepare(rows: int, workdir: Path) -> Path:
    """Write (once) the case of ``rows`` requests; returns its path."""

    def build(con: Any) -> dict:
        start = time.perf_counter()
        con.execute(_REQUESTS.format(start=START, hosts=HOSTS), {"n": rows})
        con.execute(LABELS)
        con.execute(_ENGINE.format(start=START, hosts=HOSTS))
        con.execute(_PREFIX.format(start=START, hosts=HOSTS))
        con.execute(EVENTS)
        print(f"   wrote {rows:,} requests in {time.perf_counter() - start:.0f} s")
        return {}

    return built_case(workdir / f"generative_all_{rows}", build)[0]


def run(db: Path, memory_limit: str | None) -> dict:
    """In this (fresh) process: the eight diagnostics on one case view, timed."""
    from toolkit.diagnose import run_diagnostics

    con, case = open_case(db, memory_limit)
    marks: list[tuple[str, float, float]] = []

    def progress(diagnostic_id: str, done: int, total: int) -> None:
        marks.append((diagnostic_id, time.perf_counter(), time.process_time()))

    wall, cpu = time.perf_counter(), time.process_time()
    diagnosis = run_diagnostics(con, BASELINE, INCIDENT, ids=list(IDS), case=case,
                                progress=progress)
    marks.append(("", time.perf_counter(), time.process_time()))
    times = {name: (w1 - w0, c1 - c0)
             for (name, w0, c0), (_, w1, c1) in zip(marks, marks[1:], strict=False)}
    findings = {i: sorted(f.id for f in r.findings()) for i, r in diagnosis.results.items()}
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "times": times, "peak_rss_mb": peak_rss_mib(), "findings": findings}


def main() -> None:
    args = bench_parser(__doc__, rows=10_000_000, child={"action": "store_true"}).parse_args()
    if args.child:
        print(json.dumps(run(args.db, args.memory_limit)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"== {args.rows:,} generative requests on {HOSTS} replicas, all eight generative "
          f"diagnostics on one case view")
    db = prepare(args.rows, args.workdir)
    machine = MachineState()
    runs = machine.repeat(args.repeat, run_child, __file__, "--db", db,
                          memory_limit=args.memory_limit)
    machine.read(gauge=False)
    for diagnostic_id in IDS:
        wall = statistics.median(r["times"][diagnostic_id][0] for r in runs)
        cpu = statistics.median(r["times"][diagnostic_id][1] for r in runs)
        print(f"   {diagnostic_id:28s} {wall:7.2f} s wall {cpu:7.2f} s CPU   findings: "
              f"{', '.join(runs[0]['findings'][diagnostic_id]) or '-'}")
    wall = statistics.median(r["wall_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    print(f"   {'all generative diagnostics':28s} {wall:7.2f} s wall {cpu:7.2f} s CPU "
          f"(runs: {', '.join(format(r['wall_s'], '.2f') for r in runs)} s)   peak RSS "
          f"{max(r['peak_rss_mb'] for r in runs):,.0f} MiB")
    print(f"   {'PASS' if wall < TARGET_S else 'FAIL'}: {wall:.2f} s against the target of "
          f"{TARGET_S:.0f} s on 2 cores (CPU floor on 2 cores: {cpu / 2:.2f} s)")
    print(machine.line(load_digits=2))


if __name__ == "__main__":
    main()
