"""What the bench scripts share: the case, built once and reused; the common options; the fresh
child processes that measure; and the machine's state beside each run.

A script builds its case once into ``--workdir`` (``bench/out``), where the next run finds it:
:func:`built_case` for a case written in the engine, :func:`ingested_case` for one written as
files (simulated or generated) and loaded with ``tk.load``, as ``forensics ingest`` does. It
then measures in fresh processes (:func:`run_child`: the script itself with ``--child``), so
that each figure's peak RSS (``VmHWM``, see ``_memory``) and timings are its own. The machine
is shared: :class:`MachineState` reads a fixed CPU workload (``_gauge``) and the load average
before each run and after the last, to say which state each figure was taken in.

Example: ``built_case(workdir / "mine_1000", lambda con: {...})`` builds
``mine_1000/case.duckdb`` and ``truth.json`` on the first call and returns them unchanged on
the next, without opening the case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from _gauge import speed_gauge

__all__ = ["bench_parser", "built_case", "ingested_case", "open_case", "run_child",
           "MachineState"]

T = TypeVar("T")


def bench_parser(doc: str | None, *, rows: int | list[int], memory_limit: bool = True,
                 repeat: int | None = 1, repeat_help: str | None = None,
                 child: dict[str, Any] | None = None, db: bool = True
                 ) -> argparse.ArgumentParser:
    """The options every bench script takes: ``--rows`` (one size, or several when ``rows``
    is a list), ``--workdir``, and where asked ``--memory-limit`` (DuckDB's, default none),
    ``--repeat`` (fresh-process runs per measurement) and the hidden ``--child`` (with the
    ``add_argument`` keywords in ``child``) and ``--db`` by which a script runs itself."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    several = isinstance(rows, list)
    parser.add_argument("--rows", type=int, nargs="+" if several else None, default=rows)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    if memory_limit:
        parser.add_argument("--memory-limit", default=None)
    if repeat is not None:
        parser.add_argument("--repeat", type=int, default=repeat, help=repeat_help)
    if child is not None:
        parser.add_argument("--child", help=argparse.SUPPRESS, **child)
    if db:
        parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    return parser


def built_case(folder: Path, build: Callable[[Any], dict]) -> tuple[Path, dict]:
    """``folder/case.duckdb`` and the dict kept beside it in ``truth.json``: as found when both
    exist, else built now by ``build(con)`` on a new case (``tk.connect`` creates the canonical
    schema) whose returned dict is kept.

    The case is built under another name and renamed once complete, so a run interrupted
    while building leaves nothing that the next run would take for a case.
    """
    import toolkit as tk

    db, truth_file = folder / "case.duckdb", folder / "truth.json"
    if db.exists() and truth_file.exists():
        return db, json.loads(truth_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "case.partial.duckdb"
    partial.unlink(missing_ok=True)
    con = tk.connect(partial)
    try:
        truth = build(con)
    finally:
        con.close()
    partial.rename(db)
    truth_file.write_text(json.dumps(truth, default=str))
    return db, truth


def ingested_case(folder: Path, write: Callable[[Path], dict], *, written_as: str,
                  describe: Callable[[Any], dict] | None = None) -> tuple[Path, dict]:
    """:func:`built_case` from files: ``write(folder / "raw")`` writes them (simulated or
    generated) and returns the case's truth, ``tk.load`` loads them. The truth kept adds the
    seconds each took (``written_as`` and ``ingest_s``) and what ``describe(con)`` returns,
    read from the loaded case."""
    import toolkit as tk

    def build(con: Any) -> dict:
        raw = folder / "raw"
        shutil.rmtree(raw, ignore_errors=True)  # an interrupted run's files
        start = time.perf_counter()
        truth = write(raw)
        written = time.perf_counter() - start
        start = time.perf_counter()
        tk.load(con, raw)
        loaded = time.perf_counter() - start
        return truth | {written_as: written, "ingest_s": loaded} | (
            describe(con) if describe else {})

    return built_case(folder, build)


def open_case(db: Path, memory_limit: str | None) -> tuple[Any, Any]:
    """In a child process: the case file opened read-only and its case view, with ibis's
    DuckDB backend loaded, so that no diagnostic's time includes them."""
    import toolkit as tk
    from toolkit.diagnose._case import case_view

    con = tk.connect(db, read_only=True, memory_limit=memory_limit)
    case = case_view(con)
    case.backend  # noqa: B018 - loads the backend
    return con, case


def run_child(script: str, *args: object, memory_limit: str | None = None,
              pythonpath: Path | None = None) -> dict:
    """Run ``script --child ARGS`` in a fresh process and return the JSON object its last line
    of output holds; ``pythonpath`` goes before the inherited ``PYTHONPATH`` (e.g. another
    checkout whose ``toolkit`` the child imports)."""
    command = [sys.executable, script, "--child", *map(str, args)] + (
        ["--memory-limit", memory_limit] if memory_limit else [])
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath),
                                                          os.environ.get("PYTHONPATH")]))
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


class MachineState:
    """The machine gauge (seconds of a fixed Python loop, ``_gauge``) and the 1-minute load
    average, read by :meth:`read` before each run and after the last."""

    def __init__(self) -> None:
        self.gauges: list[float] = []
        self.loads: list[float] = []

    def read(self, *, gauge: bool = True) -> None:
        """Read the load average, and the gauge unless ``gauge`` is false."""
        if gauge:
            self.gauges.append(speed_gauge())
        self.loads.append(os.getloadavg()[0])

    def repeat(self, times: int, run: Callable[..., T], *args: Any, **kwargs: Any) -> list[T]:
        """``run(*args, **kwargs)`` ``times`` times (once at the least), reading the state
        before each."""
        results = []
        for _ in range(max(1, times)):
            self.read()
            results.append(run(*args, **kwargs))
        return results

    def line(self, load_digits: int = 1) -> str:
        """The line the scripts print under their timings."""
        return (f"   load average (1 min) before each run and after the last: "
                f"{', '.join(f'{v:.{load_digits}f}' for v in self.loads)}; machine gauge "
                f"(1M-step Python loop): {', '.join(f'{g:.2f}' for g in self.gauges)} s")
