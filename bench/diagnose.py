"""Diagnostics at scale, and drift against Evidently's DataDriftPreset.

    python bench/diagnose.py [--rows 1000000 10000000] [--workdir bench/out]
                             [--memory-limit 1GB] [--evidently-rows 1000000] [--repeat 3]

For each size: the simulator writes a covariate-shift case with 20 features (chunked Parquet,
bounded memory), `forensics ingest` loads it into a case file, then a fresh process opens the
case read-only and runs every registered diagnostic on the true windows, timing each one and
reading its peak RSS (``VmHWM``: see ``_memory`` for why not ``ru_maxrss``). At the Evidently
size, a further process pulls the same windows' 20 feature columns into pandas and runs
Evidently's DataDriftPreset on them; the ratio compares it with our `data.drift` on the same rows
(library imports excluded on both sides; Evidently's clock starts once the rows are in pandas,
ours includes reading them from the case file).

Every measurement is repeated ``--repeat`` times, each in a fresh process, ours and Evidently's
taking turns so that a busy spell on the machine hits both; times are the medians (the range is
printed too), peak RSS the largest seen. A fixed Python loop is timed before each run and after
the last (``_gauge``): on a shared machine its time says which state each figure was taken in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _gauge import speed_gauge
from _memory import peak_rss_mib

N_FEATURES = 20


def prepare(rows: int, workdir: Path) -> tuple[Path, dict]:
    """Simulate (once) and ingest (once) a case of ``rows`` requests with 20 features."""
    import toolkit as tk
    from toolkit.simulate import make_case, write_case

    folder = workdir / f"diag_{rows}"
    db = folder / "case.duckdb"
    truth_file = folder / "truth.json"
    if db.exists() and truth_file.exists():
        return db, json.loads(truth_file.read_text())
    named = len(make_case("covariate_shift", seed=0, rows=10_000).features())
    case = make_case("covariate_shift", seed=0, rows=rows, extra_features=N_FEATURES - named)
    start = time.perf_counter()
    write_case(case, folder / "raw")
    simulated = time.perf_counter() - start
    start = time.perf_counter()
    con = tk.connect(db)
    tk.load(con, folder / "raw")
    features = con.execute("SELECT count(*) FROM features").fetchall()[0][0]
    con.close()
    truth = case.truth() | {"simulate_s": simulated, "ingest_s": time.perf_counter() - start,
                            "n_features": features}
    truth_file.write_text(json.dumps(truth, default=str))
    return db, truth


def run_diagnostics(db: Path, truth: dict, memory_limit: str | None) -> dict:
    """In this (fresh) process: every diagnostic, timed."""
    import toolkit as tk
    from toolkit.diagnose import REGISTRY
    from toolkit.diagnose._case import case_view

    con = tk.connect(db, read_only=True, memory_limit=memory_limit)
    baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])
    start = time.perf_counter()
    case = case_view(con)
    case.backend  # noqa: B018 - load ibis's DuckDB backend once, outside any diagnostic's time
    times = {"case view + ibis backend": time.perf_counter() - start}
    results = {}
    for diagnostic_id, function in REGISTRY.items():
        tick = time.perf_counter()
        kwargs = {}
        if diagnostic_id == "model.prediction_shift":
            kwargs = {"drift": results.get("data.drift"),
                      "performance": results.get("model.performance")}
        results[diagnostic_id] = function(con, baseline, incident, case=case, **kwargs)
        times[diagnostic_id] = time.perf_counter() - tick
    total = time.perf_counter() - start
    findings = sorted({f.id for r in results.values() for f in r.findings()
                       if f.severity in ("medium", "high")})
    return {"total_s": total, "times": times, "peak_rss_mb":
            peak_rss_mib(), "findings": findings,
            "drifted": results["data.drift"].drifted}


def run_evidently(db: Path, truth: dict) -> dict:
    """In this (fresh) process: Evidently's DataDriftPreset on the same rows."""
    import toolkit as tk
    from toolkit.diagnose._case import case_view
    from toolkit.diagnose._evidently import evidently_drift
    from toolkit.store.schema import quote_ident

    con = tk.connect(db, read_only=True)
    catalog = case_view(con).features
    numerical = catalog.loc[catalog["kind"] == "numeric", "name"].tolist()
    categorical = catalog.loc[catalog["kind"] == "categorical", "name"].tolist()
    columns = ", ".join(quote_ident(c) for c in numerical + categorical)
    frames = []
    for start, end in (truth["baseline"], truth["incident"]):
        frames.append(con.execute(f"SELECT {columns} FROM requests WHERE ts >= $s AND ts < $e",
                                  {"s": start, "e": end}).df())
    rows = sum(len(f) for f in frames)
    # import Evidently outside the timed part, as ours is (toolkit, ibis and its DuckDB backend
    # are loaded before any diagnostic runs): the import alone takes ~3.6 s
    tick = time.perf_counter()
    import evidently.presets  # noqa: F401
    imported = time.perf_counter() - tick
    tick = time.perf_counter()
    verdicts = evidently_drift(frames[0], frames[1], numerical=numerical,
                               categorical=categorical)
    elapsed = time.perf_counter() - tick
    return {"evidently_s": elapsed, "import_s": imported, "rows": rows,
            "peak_rss_mb": peak_rss_mib(),
            "drifted": sorted(verdicts.loc[verdicts["drifted"], "feature"])}


def child(kind: str, db: Path, workdir: Path, memory_limit: str | None) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--db", str(db), "--workdir",
               str(workdir)] + (["--memory-limit", memory_limit] if memory_limit else [])
    out = subprocess.run(command, check=True, capture_output=True, text=True,
                         env=os.environ | {"PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--evidently-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="fresh-process runs per measurement (medians are reported)")
    parser.add_argument("--child", choices=["diagnose", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        truth = json.loads((args.db.parent / "truth.json").read_text())
        result = (run_diagnostics(args.db, truth, args.memory_limit) if args.child == "diagnose"
                  else run_evidently(args.db, truth))
        print(json.dumps(result, default=str))
        return
    for rows in args.rows:
        db, truth = prepare(rows, args.workdir)
        print(f"\n== {rows:,} requests x {truth['n_features']} features "
              f"(simulated in {truth['simulate_s']:.0f} s, ingested in {truth['ingest_s']:.0f} s)")
        compare = rows == args.evidently_rows
        ours, theirs, gauges = [], [], []
        for _ in range(max(1, args.repeat)):
            gauges.append(speed_gauge())
            ours.append(child("diagnose", db, args.workdir, args.memory_limit))
            if compare:
                theirs.append(child("evidently", db, args.workdir, None))
        gauges.append(speed_gauge())
        times = {name: statistics.median(r["times"][name] for r in ours)
                 for name in ours[0]["times"]}
        for name, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
            print(f"   {name:28s} {seconds:7.2f} s")
        totals = [r["total_s"] for r in ours]
        print(f"   {'all diagnostics':28s} {statistics.median(totals):7.2f} s "
              f"({_spread(totals)})   peak RSS {max(r['peak_rss_mb'] for r in ours):,.0f} MiB")
        print(f"   findings: {', '.join(ours[0]['findings'])}")
        print(f"   machine gauge (1M-step Python loop, before each run and after the last): "
              f"{', '.join(f'{g:.2f}' for g in gauges)} s")
        if compare:
            drift = [r["times"]["data.drift"] for r in ours]
            evidently = [r["evidently_s"] for r in theirs]
            print(f"   Evidently DataDriftPreset on the same {theirs[0]['rows']:,} rows: "
                  f"{statistics.median(evidently):.1f} s ({_spread(evidently)}; its import, "
                  f"{statistics.median(r['import_s'] for r in theirs):.1f} s, not counted), "
                  f"peak RSS {max(r['peak_rss_mb'] for r in theirs):,.0f} MiB")
            print(f"   drift: toolkit {statistics.median(drift):.2f} s ({_spread(drift)}) vs "
                  f"Evidently {statistics.median(evidently):.1f} s -> "
                  f"{statistics.median(evidently) / statistics.median(drift):.0f}x faster "
                  f"(run by run: {', '.join(f'{e / d:.0f}x' for d, e in zip(drift, evidently, strict=True))})")
            print(f"   drifted features: toolkit {ours[0]['drifted']}; Evidently "
                  f"{theirs[0]['drifted']}")


def _spread(values: list[float]) -> str:
    """``min-max over n runs`` for a list of timings."""
    return f"{min(values):.2f}-{max(values):.2f} s over {len(values)} runs"

if __name__ == "__main__":
    main()
