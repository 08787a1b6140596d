"""Every diagnostic on 100M request rows, out of core: DuckDB under a memory limit, spilling.

    python bench/bench_scale.py [--rows 100000000] [--seed-rows 10000000]
                                [--workdir /tmp/scale] [--memory-limit 4GB]
                                [--temp-directory WORKDIR/spill]

How the 100M case is built (cheaply, and without a Python loop over rows):

1. ``bench/diagnose.py``'s ``prepare`` simulates a covariate-shift case of ``--seed-rows``
   requests with 20 features (chunked Parquet) and ingests it with ``forensics ingest``
   (reused when ``WORKDIR/diag_<seed rows>`` already holds it).
2. The seed case file is copied and its ``requests`` and ``labels`` are rewritten in DuckDB
   SQL as ``rows / seed-rows`` replicas of the seed traffic: the same hosts, features and
   outcomes at the same times (a fleet that serves the same traffic ``k`` times over), replica
   ``r > 0`` with ``request_id || '.r<r>'`` and ``ts + r`` microseconds, so ids stay unique and
   the truth's windows and onset still hold. ``requests`` is written one hour of the seed at a
   time (``INSERT ... SELECT ... FROM seed, range(k) ... ORDER BY ts``, a Python loop over the
   ~340 hours, not the rows), so the table stays in time order and DuckDB's zone maps still
   skip what a window does not need. ``labels`` is replicated in one statement; the metrics,
   events, lineage and catalog tables are the seed's. The build runs under the same memory
   limit.

Then a fresh process opens the case read-only with ``FORENSICS_MEMORY_LIMIT`` (default 4GB)
and ``FORENSICS_TEMP_DIRECTORY`` and runs every registered diagnostic on the truth's windows,
printing per diagnostic the wall time, CPU time (all DuckDB threads), its peak temp-directory
size (bytes on disk, polled every 50 ms) and the process's peak RSS so far (``VmHWM``, see
``_memory``), then the totals and the load average. A diagnostic that fails (an out-of-memory
error above all) is reported with its error and the run goes on to the next one; the exit
status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from _memory import peak_rss_mib

DEFAULT_ROWS = 100_000_000
DEFAULT_SEED_ROWS = 10_000_000


# -- the case ------------------------------------------------------------------------------

def build_scaled_case(rows: int, seed_rows: int, workdir: Path,
                      memory_limit: str, temp_directory: Path) -> tuple[Path, dict]:
    """The ``rows``-request case, replicated from the seed case (built once, then reused)."""
    from diagnose import prepare

    import toolkit as tk

    if rows % seed_rows:
        raise SystemExit(f"--rows {rows:,} must be a multiple of --seed-rows {seed_rows:,}")
    replicas = rows // seed_rows
    folder = workdir / f"scale_{rows}"
    db = folder / "case.duckdb"
    truth_file = folder / "truth.json"
    if db.exists() and truth_file.exists():
        return db, json.loads(truth_file.read_text())
    seed_db, truth = prepare(seed_rows, workdir)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "case.partial.duckdb"
    partial.unlink(missing_ok=True)
    start = time.perf_counter()
    shutil.copyfile(seed_db, partial)
    con = tk.connect(partial, memory_limit=memory_limit, temp_directory=temp_directory)
    con.execute("ATTACH ? AS seed (READ_ONLY)", [str(seed_db)])
    con.execute("DELETE FROM requests")
    con.execute("DELETE FROM labels")
    con.execute("CHECKPOINT")
    replica = f"range({replicas}) AS replica(r)"
    # replica 0 keeps the seed's ids and times; the others get a suffix and a microsecond shift
    request_id = "CASE WHEN r = 0 THEN request_id ELSE request_id || '.r' || r END"
    hours = [h for (h,) in con.execute(
        "SELECT DISTINCT date_trunc('hour', ts) AS h FROM seed.requests ORDER BY h").fetchall()]
    for number, hour in enumerate(hours, 1):
        con.execute(
            f"INSERT INTO requests SELECT q.* REPLACE ({request_id} AS request_id, "
            f"ts + to_microseconds(r) AS ts) FROM seed.requests AS q, {replica} "
            "WHERE q.ts >= $h AND q.ts < $h + INTERVAL 1 HOUR ORDER BY ts", {"h": hour})
        if number % 24 == 0:
            print(f"   built {number}/{len(hours)} hours "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    con.execute(f"INSERT INTO labels SELECT q.* REPLACE ({request_id} AS request_id) "
                f"FROM seed.labels AS q, {replica}")
    counts = con.execute("SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM labels),"
                         " (SELECT count(*) FROM seed.labels)").fetchone()
    con.execute("DETACH seed")
    con.execute("CHECKPOINT")
    con.close()
    if counts[0] != rows or counts[1] != counts[2] * replicas:
        raise SystemExit(f"the scaled case has {counts[0]:,} requests and {counts[1]:,} labels;"
                         f" expected {rows:,} and {counts[2] * replicas:,}")
    partial.rename(db)
    truth = truth | {"rows": rows, "replicas": replicas, "seed_rows": seed_rows,
                     "build_s": time.perf_counter() - start, "labels": counts[1],
                     "case_bytes": db.stat().st_size}
    truth_file.write_text(json.dumps(truth, default=str))
    return db, truth


# -- the measurement -----------------------------------------------------------------------

class TempGauge:
    """Polls a folder's size on disk (allocated blocks of its files) in a background thread.

    ``mark()`` starts a new interval; ``interval_peak`` and ``peak`` are the largest sizes seen
    since the last mark and since the start, in bytes.
    """

    def __init__(self, folder: Path, every: float = 0.05) -> None:
        self.folder, self.every = folder, every
        self.peak = self.interval_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> TempGauge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self) -> int:
        """Start a new interval; return the peak of the one that ended."""
        self._sample()
        peak, self.interval_peak = self.interval_peak, 0
        return peak

    def _sample(self) -> None:
        size = 0
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    try:
                        size += entry.stat(follow_symlinks=False).st_blocks * 512
                    except FileNotFoundError:  # DuckDB removed it meanwhile
                        pass
        except FileNotFoundError:
            pass
        self.peak = max(self.peak, size)
        self.interval_peak = max(self.interval_peak, size)

    def _poll(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()


def run_diagnostics(db: Path, truth: dict, temp_directory: Path) -> dict:
    """In this (fresh) process: every diagnostic, timed, with the spill folder watched."""
    import toolkit as tk
    from toolkit.diagnose import REGISTRY
    from toolkit.diagnose._case import case_view

    con = tk.connect(db, read_only=True)  # memory limit and temp folder from the environment
    settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                "('memory_limit', 'temp_directory', 'threads')").fetchall())
    baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])
    load = os.getloadavg()
    rows = []
    results = {}
    with TempGauge(temp_directory) as gauge:
        start, cpu_start = time.perf_counter(), time.process_time()
        case = case_view(con)
        getattr(case, "backend", None)  # load ibis's backend once, outside any diagnostic
        rows.append(_row("case view + backend", start, cpu_start, gauge.mark(), None))
        for diagnostic_id, function in REGISTRY.items():
            tick, cpu = time.perf_counter(), time.process_time()
            kwargs = {}
            if diagnostic_id == "model.prediction_shift":
                kwargs = {"drift": results.get("data.drift"),
                          "performance": results.get("model.performance")}
            error = None
            try:
                results[diagnostic_id] = function(con, baseline, incident, case=case, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported, and the next one runs
                error = _error(exc)
            rows.append(_row(diagnostic_id, tick, cpu, gauge.mark(), error))
            print(_line(rows[-1]), file=sys.stderr, flush=True)
        total, cpu_total = time.perf_counter() - start, time.process_time() - cpu_start
    findings = sorted({f.id for r in results.values() for f in r.findings()
                       if f.severity in ("medium", "high")})
    return {"rows": rows, "total_s": total, "cpu_s": cpu_total, "peak_rss_mb": peak_rss_mib(),
            "temp_peak_bytes": gauge.peak, "load_start": load, "load_end": os.getloadavg(),
            "settings": settings, "findings": findings,
            "failed": [r["id"] for r in rows if r["error"]]}


def _row(name: str, wall_start: float, cpu_start: float, temp_peak: int,
         error: str | None) -> dict:
    return {"id": name, "wall_s": time.perf_counter() - wall_start,
            "cpu_s": time.process_time() - cpu_start, "temp_peak_bytes": temp_peak,
            "peak_rss_mb": peak_rss_mib(), "error": error}


def _error(exc: BaseException) -> str:
    """The error, the diagnostic's line that asked for the failing query, and the engine call
    that ran it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/toolkit/" in f.filename]
    engine = [f for f in frames if Path(f.filename).name.startswith(("_engine", "_case"))]
    asking = [f for f in frames if f not in engine]
    where = "".join(f"\n         at {f.filename.split('/toolkit/')[-1]}:{f.lineno}: {f.line}"
                    for f in (asking[-1:] + engine[-1:]))
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}"


def _line(row: dict) -> str:
    text = (f"   {row['id']:28s} {row['wall_s']:8.2f} s wall {row['cpu_s']:8.2f} s CPU  "
            f"temp peak {_size(row['temp_peak_bytes']):>9s}  RSS peak so far "
            f"{row['peak_rss_mb']:,.0f} MiB")
    return text + (f"\n      FAILED: {row['error']}" if row["error"] else "")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed-rows", type=int, default=DEFAULT_SEED_ROWS)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--temp-directory", type=Path, default=None,
                        help="where DuckDB spills (default WORKDIR/spill)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    temp_directory = (args.temp_directory or workdir / "spill").resolve()
    if args.child:
        truth = json.loads((args.db.parent / "truth.json").read_text())
        print(json.dumps(run_diagnostics(args.db, truth, temp_directory), default=str))
        return
    workdir.mkdir(parents=True, exist_ok=True)
    db, truth = build_scaled_case(args.rows, args.seed_rows, workdir, args.memory_limit,
                                  temp_directory)
    print(f"== {truth['rows']:,} requests x {truth['n_features']} features "
          f"({truth['replicas']} replicas of a {truth['seed_rows']:,}-request simulated case; "
          f"built in {truth['build_s']:.0f} s, case file {_size(truth['case_bytes'])})")
    env = os.environ | {"PYTHONWARNINGS": "ignore", "FORENSICS_MEMORY_LIMIT": args.memory_limit,
                        "FORENSICS_TEMP_DIRECTORY": str(temp_directory)}
    command = [sys.executable, __file__, "--child", "--db", str(db), "--workdir", str(workdir),
               "--temp-directory", str(temp_directory)]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"the diagnostics process failed (exit {out.returncode})")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"   DuckDB settings: {result['settings']}")
    for row in result["rows"]:
        print(_line(row))
    load = "/".join(f"{x:.1f}" for x in result["load_start"])
    print(f"   {'all diagnostics':28s} {result['total_s']:8.2f} s wall "
          f"{result['cpu_s']:8.2f} s CPU  temp peak {_size(result['temp_peak_bytes'])}  "
          f"peak RSS {result['peak_rss_mb']:,.0f} MiB")
    print(f"   load average at start {load} (1/5/15 min), at end "
          f"{'/'.join(f'{x:.1f}' for x in result['load_end'])}")
    print(f"   findings: {', '.join(result['findings'])}")
    if result["failed"]:
        print(f"   FAILED: {', '.join(result['failed'])}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
