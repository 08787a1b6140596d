"""Every diagnostic on 100M request rows, out of core: DuckDB under a memory limit, spilling.

    python bench/bench_scale.py [--rows 100000000] [--seed-rows 10000000]
                                [--workdir /tmp/scale] [--memory-limit 4GB]
                                [--temp-directory WORKDIR/spill]
    python bench/bench_scale.py --engine spark [--rows 10000000] [--workdir /tmp/scale]

How the 100M case is built (cheaply, and without a Python loop over rows):

1. ``bench/diagnose.py``'s ``prepare`` simulates a covariate-shift case of ``--seed-rows``
   requests with 20 features (chunked Parquet) and ingests it with ``forensics ingest``
   (reused when ``WORKDIR/diag_<seed rows>`` already holds it).
2. The seed case file is copied and its ``requests`` and ``labels`` are rewritten in DuckDB
   SQL as ``rows / seed-rows`` replicas of the seed traffic: the same hosts, features and
   outcomes at the same times (a fleet that serves the same traffic ``k`` times over), replica
   ``r > 0`` with ``request_id || '.r<r>'`` and ``ts + r`` microseconds, so ids stay unique and
   the truth's windows and onset still hold. ``requests`` is written one hour of the seed at a
   time (``INSERT ... SELECT ... FROM seed.requests, range(k) WHERE ts in the hour``, a Python
   loop over the ~340 hours, not the rows), so the table stays in time order hour by hour and
   DuckDB's zone maps still skip what a window does not need, as in an ingested case.
   ``labels`` is replicated in one statement; the metrics, events, lineage and catalog tables
   are the seed's. The build runs under the same memory limit. With ``--rows`` equal to
   ``--seed-rows`` the simulated case is used as it is: e.g. 10M rows under ``400MB``, the
   rows per MB of memory of 100M under 4GB, at a tenth of the cost.

Then a fresh process opens the case read-only with ``FORENSICS_MEMORY_LIMIT`` (default 4GB)
and ``FORENSICS_TEMP_DIRECTORY`` and runs every registered diagnostic on the truth's windows,
printing per diagnostic the wall time, the CPU time (all DuckDB threads; on Spark the JVM's
too), the temp directory's peak size (bytes on disk, polled every 50 ms; DuckDB keeps its
temp files allocated, so a later figure can carry an earlier diagnostic's) and the process's
peak RSS so far (``VmHWM``, see ``_memory``), then the totals and the load average. A
diagnostic that fails (an out-of-memory error above all) is reported with its error, the
diagnostic's line that asked for the query, and the query's SQL and DuckDB plan written beside
the spill folder (``failed_<id>.sql``, ``failed_<id>.plan.txt``); the run goes on to the next
diagnostic and the exit status is then 1.

Measured on 2026-12-06, on a shared 2-core machine at load 16-19 (wall times ~6x CPU time):

* 10M rows under ``--memory-limit 400MB`` (the 100M/4GB ratio): every diagnostic but one
  completes, 399 s wall, 62.6 s CPU, peak RSS 722 MiB, temp directory peak 793 MiB
  (``case.segments``; ``model.performance`` 457 MiB). ``model.estimation`` runs out of memory
  in its reweighting bins (``_binner``): one ``Ungrouped Aggregate`` of 153 exact
  ``QUANTILE_CONT`` (9 levels x 17 numeric features) over the baseline's scored rows; a
  holistic aggregate keeps every value in memory and cannot spill (without a limit it takes
  ~10 GB of RSS at 10M rows). It will fail at 100M under 4GB as well until it reads its edges
  from a sample (as ``_profile`` does) or from the shared profile's quantiles.
* 100M rows under ``--memory-limit 4GB`` (DuckDB reports 3.7 GiB), measured 2026-12-06
  17:19-18:54 at load 26 falling to 10 (other engineers' runs; the diagnostics' process
  started at 17:42 on the tree of that moment, before cdf4b19 made model.estimation's
  bootstrap cheaper): the build took 1,386 s (case file 6.8 GiB). **Every diagnostic
  completed**: 4,330 s wall, 1,142 s CPU, peak RSS 4,470 MiB (the whole process: DuckDB's
  limit covers its buffer manager, not Python's objects nor allocator slack), temp directory
  peak 7.8 GiB. The heaviest: model.estimation 1,684 s wall / 438 s CPU, model.performance
  1,140 / 281, case.segments 502 / 117 (the 7.8 GiB spill), data.drift 346 / 82, model.ood
  292 / 95.
  Findings: data.feature_drift, data.out_of_range, model.accuracy_drop,
  model.calibration_shift, model.prediction_shift (the 10M seed case's).

``--engine spark`` runs the same diagnostics through the Spark engine, for the record: the
simulated case of ``--rows`` requests (10M by default; no replication) is exported table by
table to Parquet by DuckDB (``COPY ... TO``, once), opened with ``connect_lake`` on a
``local[2]`` session (UTC, 4 shuffle partitions, driver memory ``--memory-limit``, spilling
to ``--temp-directory`` as ``spark.local.dir``), and timed the same way. Its peak RSS adds the
JVM's (a child process) to Python's.
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

from _memory import children_peak_rss_mib, peak_rss_mib

DEFAULT_ROWS = {"duckdb": 100_000_000, "spark": 10_000_000}
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
    if replicas == 1:  # the simulated case itself
        seed_db, truth = prepare(seed_rows, workdir)
        return seed_db, truth | {"rows": rows, "replicas": 1, "seed_rows": seed_rows,
                                 "build_s": 0.0, "case_bytes": seed_db.stat().st_size}
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
    con.execute("SET enable_progress_bar = false")
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
            "WHERE q.ts >= $h AND q.ts < $h + INTERVAL 1 HOUR", {"h": hour})
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


def export_lake(db: Path, folder: Path) -> dict[str, str]:
    """The case's non-empty canonical tables as Parquet files (written once), for Spark."""
    import toolkit as tk
    from toolkit.store.lake import LAKE_TABLES

    done = folder / "tables.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    con = tk.connect(db, read_only=True)
    tables = {}
    for table in LAKE_TABLES:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                           [table]).fetchone()[0]:
            continue
        if not con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
            continue
        path = folder / f"{table}.parquet"
        con.execute(f"COPY {table} TO '{path}' (FORMAT parquet)")
        tables[table] = str(path)
    con.close()
    done.write_text(json.dumps(tables))
    return tables


def open_spark(tables: dict[str, str], memory: str, temp_directory: Path) -> object:
    """A lake case over the Parquet tables, on a local[2] Spark session."""
    from toolkit.store.lake import connect_lake

    gib = max(1, round(_bytes(memory) / 1024**3))
    conf = {"spark.master": "local[2]", "spark.driver.memory": f"{gib}g",
            "spark.sql.shuffle.partitions": "4", "spark.local.dir": str(temp_directory),
            "spark.ui.enabled": "false", "spark.sql.session.timeZone": "UTC"}
    return connect_lake(tables, conf=conf)


def _bytes(size: str) -> float:
    """``4GB``, ``4GiB``, ``512MB`` ... in bytes (decimal and binary units alike)."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT])i?B", size.strip(), flags=re.IGNORECASE)
    if not match:
        raise SystemExit(f"--memory-limit {size!r}: give it as e.g. 4GB or 512MB")
    return float(match.group(1)) * 1024 ** ("KMGT".index(match.group(2).upper()) + 1)


# -- the measurement -----------------------------------------------------------------------

class TempGauge:
    """Polls a folder's size on disk (allocated blocks of the files in it and its sub-folders)
    in a background thread.

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
        for root, _, files in os.walk(self.folder):  # Spark spills into sub-folders
            for name in files:
                try:
                    size += os.lstat(os.path.join(root, name)).st_blocks * 512
                except FileNotFoundError:  # removed meanwhile
                    pass
        self.peak = max(self.peak, size)
        self.interval_peak = max(self.interval_peak, size)

    def _poll(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()


def run_diagnostics(db: Path, truth: dict, temp_directory: Path, engine: str = "duckdb",
                    memory: str = "4GB") -> dict:
    """In this (fresh) process: every diagnostic, timed, with the spill folder watched."""
    import toolkit as tk
    from toolkit.diagnose import REGISTRY
    from toolkit.diagnose._case import case_view

    baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])
    load = os.getloadavg()
    rows = []
    results = {}
    with TempGauge(temp_directory) as gauge:
        start, cpu_start = time.perf_counter(), cpu_time()
        if engine == "spark":
            source = open_spark(export_lake(db, db.parent.parent / f"lake_{truth['rows']}"),
                                memory, temp_directory)
            conf = source._session.conf
            settings = {k: conf.get(k) for k in ("spark.master", "spark.driver.memory",
                                                 "spark.sql.shuffle.partitions",
                                                 "spark.sql.session.timeZone")}
            rows.append(_row("spark session + lake", start, cpu_start, gauge.mark(), None))
            start, cpu_start = time.perf_counter(), cpu_time()
        else:  # memory limit and temp folder from the environment
            source = tk.connect(db, read_only=True)
            source.execute("SET enable_progress_bar = false")
            settings = dict(source.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('memory_limit', 'temp_directory', 'threads')").fetchall())
        tick, cpu = time.perf_counter(), cpu_time()
        case = case_view(source)
        con = case.con
        getattr(case, "backend", None)  # load ibis's backend once, outside any diagnostic
        rows.append(_row("case view + backend", tick, cpu, gauge.mark(), None))
        for diagnostic_id, function in REGISTRY.items():
            tick, cpu = time.perf_counter(), cpu_time()
            kwargs = {}
            if diagnostic_id == "model.prediction_shift":
                kwargs = {"drift": results.get("data.drift"),
                          "performance": results.get("model.performance")}
            error = None
            try:
                results[diagnostic_id] = function(con, baseline, incident, case=case, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported, and the next one runs
                error = _error(exc)
                sql = _failing_sql(exc)
                if sql is not None:  # keep the query and its plan for the report
                    stem = str(temp_directory.parent / f"failed_{diagnostic_id}")
                    Path(f"{stem}.sql").write_text(sql + "\n")
                    if engine == "duckdb":
                        Path(f"{stem}.plan.txt").write_text(_plan(con, sql) + "\n")
                    error += f"\n         query and plan: {stem}.sql, {stem}.plan.txt"
            rows.append(_row(diagnostic_id, tick, cpu, gauge.mark(), error))
            print(_line(rows[-1]), file=sys.stderr, flush=True)
        total, cpu_total = time.perf_counter() - start, cpu_time() - cpu_start
    findings = sorted({f.id for r in results.values() for f in r.findings()
                       if f.severity in ("medium", "high")})
    return {"rows": rows, "total_s": total, "cpu_s": cpu_total, "peak_rss_mb": peak_rss_mib(),
            "children_peak_rss_mb": children_peak_rss_mib(), "engine": engine,
            "temp_peak_bytes": gauge.peak, "load_start": load, "load_end": os.getloadavg(),
            "settings": settings, "findings": findings,
            "failed": [r["id"] for r in rows if r["error"]]}


def cpu_time() -> float:
    """CPU seconds of this process and of its living descendants (Spark's JVM)."""
    import psutil

    total = time.process_time()
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # it ended meanwhile
            continue
        total += times.user + times.system
    return total


def _row(name: str, wall_start: float, cpu_start: float, temp_peak: int,
         error: str | None) -> dict:
    return {"id": name, "wall_s": time.perf_counter() - wall_start,
            "cpu_s": cpu_time() - cpu_start, "temp_peak_bytes": temp_peak,
            "peak_rss_mb": peak_rss_mib(), "children_peak_rss_mb": children_peak_rss_mib(),
            "load": os.getloadavg()[0], "error": error}


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


def _failing_sql(exc: BaseException) -> str | None:
    """The SQL text the engine was running when ``exc`` was raised (the deepest frame with a
    ``sql`` string among its locals: the recorder's, the engine's run)."""
    sql, tb = None, exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("sql")
        if isinstance(candidate, str):
            sql = candidate
        tb = tb.tb_next
    return sql


def _plan(con: object, sql: str) -> str:
    """DuckDB's physical plan of ``sql`` (EXPLAIN plans, it does not run the query)."""
    try:
        rows = con.execute(f"EXPLAIN {sql}").fetchall()
    except Exception as exc:  # noqa: BLE001 - the plan is a help, not the measurement
        return f"(no plan: {exc})"
    return "\n".join(str(r[-1]) for r in rows)


def _line(row: dict) -> str:
    text = (f"   {row['id']:28s} {row['wall_s']:8.2f} s wall {row['cpu_s']:8.2f} s CPU  "
            f"temp peak {_size(row['temp_peak_bytes']):>9s}  RSS peak so far "
            f"{row['peak_rss_mb']:,.0f} MiB")
    if row.get("children_peak_rss_mb"):  # Spark: the JVM's, so a run cut short still has it
        text += f" (+ JVM {row['children_peak_rss_mb']:,.0f} MiB)"
    if "load" in row:
        text += f"  load {row['load']:.1f}"
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
    parser.add_argument("--engine", choices=sorted(DEFAULT_ROWS), default="duckdb")
    parser.add_argument("--rows", type=int, default=None,
                        help="requests (default 100M on DuckDB, 10M on Spark)")
    parser.add_argument("--seed-rows", type=int, default=DEFAULT_SEED_ROWS)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument("--memory-limit", default="4GB",
                        help="DuckDB's memory limit, or the Spark driver's memory")
    parser.add_argument("--temp-directory", type=Path, default=None,
                        help="where DuckDB (or Spark) spills (default WORKDIR/spill)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    temp_directory = (args.temp_directory or workdir / "spill").resolve()
    if args.child:
        truth = json.loads((args.db.parent / "truth.json").read_text())
        print(json.dumps(run_diagnostics(args.db, truth, temp_directory, args.engine,
                                         args.memory_limit), default=str))
        return
    rows = args.rows or DEFAULT_ROWS[args.engine]
    workdir.mkdir(parents=True, exist_ok=True)
    temp_directory.mkdir(parents=True, exist_ok=True)
    if args.engine == "spark":
        from diagnose import prepare

        db, truth = prepare(rows, workdir)
        print(f"== {rows:,} requests x {truth['n_features']} features on Spark local[2] "
              f"(simulated case, exported to Parquet once)")
    else:
        db, truth = build_scaled_case(rows, args.seed_rows, workdir, args.memory_limit,
                                      temp_directory)
        print(f"== {truth['rows']:,} requests x {truth['n_features']} features "
              f"({truth['replicas']} replicas of a {truth['seed_rows']:,}-request simulated "
              f"case; built in {truth['build_s']:.0f} s, case file "
              f"{_size(truth['case_bytes'])})")
    env = os.environ | {"PYTHONWARNINGS": "ignore", "FORENSICS_MEMORY_LIMIT": args.memory_limit,
                        "FORENSICS_TEMP_DIRECTORY": str(temp_directory)}
    command = [sys.executable, __file__, "--child", "--db", str(db), "--workdir", str(workdir),
               "--temp-directory", str(temp_directory), "--engine", args.engine,
               "--memory-limit", args.memory_limit]
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"the diagnostics process failed (exit {out.returncode})")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"   settings: {result['settings']}")
    for row in result["rows"]:
        print(_line(row))
    load = "/".join(f"{x:.1f}" for x in result["load_start"])
    jvm = (f" (+ {result['children_peak_rss_mb']:,.0f} MiB in child processes: the JVM)"
           if result["children_peak_rss_mb"] else "")
    print(f"   {'all diagnostics':28s} {result['total_s']:8.2f} s wall "
          f"{result['cpu_s']:8.2f} s CPU  temp peak {_size(result['temp_peak_bytes'])}  "
          f"peak RSS {result['peak_rss_mb']:,.0f} MiB{jvm}")
    print(f"   load average at start {load} (1/5/15 min), at end "
          f"{'/'.join(f'{x:.1f}' for x in result['load_end'])}")
    print(f"   findings: {', '.join(result['findings'])}")
    if result["failed"]:
        print(f"   FAILED: {', '.join(result['failed'])}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
