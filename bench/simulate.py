"""Simulator throughput and peak memory: write a simulated case of N request rows to Parquet.

    python bench/simulate.py [--rows 10000000 100000000] [--mode memory_leak] [--features 20]
                             [--workdir bench/out] [--keep]

Each size runs in a fresh subprocess so its peak RSS (``VmHWM``, see ``_memory``) is its own.
The case is planned with ``make_case`` and written with ``write_case`` (the code path of
``forensics simulate``): rows are generated 250k at a time and streamed to Parquet parts of 1M
rows, so memory stays bounded whatever the row count. ``--features`` is the total number of
model features: the named ones plus generic ``f01``.. up to that count.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from _case import bench_parser, run_child
from _memory import peak_rss_mib


def measure(rows: int, mode: str, features: int, workdir: Path, keep: bool) -> dict:
    """Run in a child process: plan and write one case, report time, RSS and size."""
    from toolkit import simulate

    out = workdir / f"sim_{mode}_{rows}"
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    named = len(simulate.make_case(mode, seed=0, rows=1_000).features())
    case = simulate.make_case(mode, seed=0, rows=rows, extra_features=max(0, features - named))
    planned = time.perf_counter() - start
    simulate.write_case(case, out)
    elapsed = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    requests = sum(p.stat().st_size for p in (out / "requests").iterdir())
    peak_mb = peak_rss_mib()
    if not keep:
        shutil.rmtree(out)
    return {"rows": rows, "mode": mode, "features": len(case.features()),
            "plan_s": round(planned, 2), "seconds": round(elapsed, 1),
            "rows_per_s": round(rows / elapsed), "peak_rss_mb": round(peak_mb),
            "disk_gb": round(size / 1e9, 2), "requests_gb": round(requests / 1e9, 2)}


def main() -> None:
    parser = bench_parser(__doc__, rows=[10_000_000, 100_000_000], memory_limit=False,
                          repeat=None, child={"type": int}, db=False)
    parser.add_argument("--mode", default="memory_leak")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="Keep the generated files.")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(measure(args.child, args.mode, args.features, args.workdir, args.keep)))
        return
    print(f"{'rows':>12} {'features':>8} {'seconds':>8} {'rows/s':>10} {'peak RSS MiB':>12} "
          f"{'disk GB':>8}")
    for rows in args.rows:
        r = run_child(__file__, rows, "--mode", args.mode, "--features", args.features,
                      "--workdir", args.workdir, *(["--keep"] if args.keep else []))
        print(f"{r['rows']:>12,} {r['features']:>8} {r['seconds']:>8} {r['rows_per_s']:>10,} "
              f"{r['peak_rss_mb']:>12,} {r['disk_gb']:>8}", flush=True)


if __name__ == "__main__":
    main()
