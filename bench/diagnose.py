"""Diagnostics at scale, and drift against Evidently's DataDriftPreset.

    python bench/diagnose.py [--rows 1000000 10000000] [--workdir bench/out]
                             [--memory-limit 1GB] [--evidently-rows 1000000] [--repeat 3]
                             [--baseline-tree /tmp/base-worktree]

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
Each run also reports its process CPU time (all DuckDB threads included) and the 1-minute load
average when it started, so that wall times taken on a busy machine can be read for what they are.

``--baseline-tree`` compares two versions of the toolkit on the same case files: it names a
checkout of another commit (``git worktree add /tmp/base <commit>``) whose ``toolkit`` package
the ``baseline`` runs import (through ``PYTHONPATH``) while the others import this tree's; the
two take turns run by run, so a busy spell on the machine hits both. The case is simulated and
ingested once, by this tree.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _case import MachineState, bench_parser, ingested_case, run_child
from _memory import peak_rss_mib

N_FEATURES = 20


def prepare(rows: int, workdir: Path) -> tuple[Path, dict]:
    """Simulate (once) and ingest (once) a case of ``rows`` requests with 20 features."""

    def simulate(raw: Path) -> dict:
        from toolkit.simulate import make_case, write_case

        named = len(make_case("covariate_shift", seed=0, rows=10_000).features())
        case = make_case("covariate_shift", seed=0, rows=rows,
                         extra_features=N_FEATURES - named)
        write_case(case, raw)
        return case.truth()

    def features(con: Any) -> dict:
        return {"n_features": con.execute("SELECT count(*) FROM features").fetchall()[0][0]}

    return ingested_case(workdir / f"diag_{rows}", simulate, written_as="simulate_s",
                         describe=features)


def run_diagnostics(db: Path, truth: dict, memory_limit: str | None) -> dict:
    """In this (fresh) process: every diagnostic, timed."""
    import toolkit as tk
    from toolkit.diagnose import REGISTRY
    from toolkit.diagnose._case import case_view

    con = tk.connect(db, read_only=True, memory_limit=memory_limit)
    baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])
    load = os.getloadavg()[0]
    cpu = time.process_time()
    start = time.perf_counter()
    case = case_view(con)
    getattr(case, "backend", None)  # load ibis's DuckDB backend once, outside any diagnostic
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
    cpu = time.process_time() - cpu
    findings = sorted({f.id for r in results.values() for f in r.findings()
                       if f.severity in ("medium", "high")})
    return {"total_s": total, "cpu_s": cpu, "load": load, "times": times, "peak_rss_mb":
            peak_rss_mib(), "findings": findings, "toolkit": str(Path(tk.__file__).parent),
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
    load = os.getloadavg()[0]
    tick = time.perf_counter()
    verdicts = evidently_drift(frames[0], frames[1], numerical=numerical,
                               categorical=categorical)
    elapsed = time.perf_counter() - tick
    return {"evidently_s": elapsed, "import_s": imported, "rows": rows, "load": load,
            "peak_rss_mb": peak_rss_mib(),
            "drifted": sorted(verdicts.loc[verdicts["drifted"], "feature"])}


def child(kind: str, db: Path, workdir: Path, memory_limit: str | None,
          tree: Path | None = None) -> dict:
    """Run one measurement in a fresh process; ``tree`` is the checkout whose toolkit it imports
    (``None``: the installed one, i.e. this tree's)."""
    result = run_child(__file__, kind, "--db", db, "--workdir", workdir,
                       memory_limit=memory_limit, pythonpath=tree)
    if tree is not None and kind == "diagnose" and Path(result["toolkit"]) != tree / "toolkit":
        raise SystemExit(f"--baseline-tree {tree}: the child imported {result['toolkit']}")
    return result


def main() -> None:
    parser = bench_parser(__doc__, rows=[1_000_000, 10_000_000], repeat=3,
                          repeat_help="fresh-process runs per measurement (medians are "
                                      "reported)", child={"choices": ["diagnose", "evidently"]})
    parser.add_argument("--evidently-rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="a checkout of another commit, timed against this tree's toolkit "
                             "on the same case files, run by run")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        truth = json.loads((args.db.parent / "truth.json").read_text())
        result = (run_diagnostics(args.db, truth, args.memory_limit) if args.child == "diagnose"
                  else run_evidently(args.db, truth))
        print(json.dumps(result, default=str))
        return
    base = args.baseline_tree.resolve() if args.baseline_tree else None
    if base is not None and not (base / "toolkit" / "__init__.py").exists():
        parser.error(f"--baseline-tree {base}: no toolkit package there")
    for rows in args.rows:
        db, truth = prepare(rows, args.workdir)
        print(f"\n== {rows:,} requests x {truth['n_features']} features "
              f"(simulated in {truth['simulate_s']:.0f} s, ingested in {truth['ingest_s']:.0f} s)")
        compare = rows == args.evidently_rows
        ours, theirs, before, machine = [], [], [], MachineState()
        for _ in range(max(1, args.repeat)):
            machine.read()
            if base is not None:
                before.append(child("diagnose", db, args.workdir, args.memory_limit, base))
            ours.append(child("diagnose", db, args.workdir, args.memory_limit))
            if compare:
                theirs.append(child("evidently", db, args.workdir, None))
        machine.read()
        if base is None:
            _print_times(ours)
        else:
            _print_comparison(before, ours, base)
        print(f"   findings: {', '.join(ours[0]['findings'])}")
        if before and before[0]["findings"] != ours[0]["findings"]:
            print(f"   findings of the baseline tree DIFFER: {', '.join(before[0]['findings'])}")
        print(f"   machine gauge (1M-step Python loop, before each run and after the last): "
              f"{', '.join(f'{g:.2f}' for g in machine.gauges)} s")
        if compare:
            drift = [r["times"]["data.drift"] for r in ours]
            evidently = [r["evidently_s"] for r in theirs]
            print(f"   Evidently DataDriftPreset on the same {theirs[0]['rows']:,} rows: "
                  f"{statistics.median(evidently):.1f} s ({_spread(evidently)}; its import, "
                  f"{statistics.median(r['import_s'] for r in theirs):.1f} s, not counted), "
                  f"peak RSS {max(r['peak_rss_mb'] for r in theirs):,.0f} MiB, load "
                  f"{_loads(theirs)}")
            ratios = ", ".join(f"{e / d:.0f}x" for d, e in zip(drift, evidently, strict=True))
            print(f"   drift: toolkit {statistics.median(drift):.2f} s ({_spread(drift)}) vs "
                  f"Evidently {statistics.median(evidently):.1f} s -> "
                  f"{statistics.median(evidently) / statistics.median(drift):.0f}x faster "
                  f"(run by run: {ratios})")
            print(f"   drifted features: toolkit {ours[0]['drifted']}; Evidently "
                  f"{theirs[0]['drifted']}")


def _median_times(runs: list[dict]) -> dict[str, float]:
    return {name: statistics.median(r["times"][name] for r in runs) for name in runs[0]["times"]}


def _print_times(runs: list[dict]) -> None:
    for name, seconds in sorted(_median_times(runs).items(), key=lambda kv: -kv[1]):
        print(f"   {name:28s} {seconds:7.2f} s")
    print(f"   {'all diagnostics':28s} {_summary(runs)}")


def _print_comparison(before: list[dict], after: list[dict], base: Path) -> None:
    """Per diagnostic: the baseline tree's median, this tree's, and their ratio."""
    old, new = _median_times(before), _median_times(after)
    print(f"   {'':28s} {'baseline':>8s} {'this':>8s}   ratio   (baseline: {base})")
    for name in sorted(set(old) | set(new), key=lambda n: -max(old.get(n, 0), new.get(n, 0))):
        a, b = old.get(name), new.get(name)
        ratio = f"{b / a:6.2f}" if a and b else "     -"
        print(f"   {name:28s} {_cell(a)} {_cell(b)}  {ratio}")
    print(f"   all diagnostics, baseline  {_summary(before)}")
    print(f"   all diagnostics, this tree {_summary(after)}")
    ratios = [b["total_s"] / a["total_s"] for a, b in zip(before, after, strict=True)]

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"   this / baseline, run by run (back to back): "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; of the medians "
          f"{median(after, 'total_s') / median(before, 'total_s'):.3f} wall, "
          f"{median(after, 'cpu_s') / median(before, 'cpu_s'):.3f} CPU")


def _cell(seconds: float | None) -> str:
    return f"{seconds:7.2f}s" if seconds is not None else f"{'-':>8s}"


def _summary(runs: list[dict]) -> str:
    """Median wall (spread), median CPU, peak RSS and load of a list of diagnose runs."""
    totals = [r["total_s"] for r in runs]
    cpu = [r["cpu_s"] for r in runs]
    return (f"{statistics.median(totals):7.2f} s wall ({_spread(totals)}), "
            f"{statistics.median(cpu):.2f} s CPU, peak RSS "
            f"{max(r['peak_rss_mb'] for r in runs):,.0f} MiB, load {_loads(runs)}")


def _loads(runs: list[dict]) -> str:
    """The 1-minute load averages at the start of each run."""
    return "/".join(f"{r['load']:.1f}" for r in runs)


def _spread(values: list[float]) -> str:
    """``min-max over n runs`` for a list of timings."""
    return f"{min(values):.2f}-{max(values):.2f} s over {len(values)} runs"

if __name__ == "__main__":
    main()
