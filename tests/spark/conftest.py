"""One local Spark session per test process, shared by every test under tests/spark.

``make test`` runs ``pytest -n 2 --dist loadfile``: one file runs in one worker, so keeping the
Spark tests in few files keeps to few JVMs. The session is ``local[2]`` in UTC (the engine
refuses any other time zone), with two shuffle partitions (the cases are small), no UI and no
console progress or logs. Tests skip with the reason when pyspark or Java is absent.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from toolkit.store.schema import DATA_TABLES, quote_ident, quote_literal

#: Tables a case may hold that diagnostics read: the canonical ones and ``case_meta``.
CASE_TABLES = (*DATA_TABLES, "case_meta")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.spark)


def _skip_reason() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'inference-forensics[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and Path(java_home, "bin", "java").exists()):
        return "Java is absent (no java on PATH, no JAVA_HOME): Spark needs Java 17"
    return None


@pytest.fixture(scope="session")
def spark_session():
    """The shared ``local[2]`` SparkSession (UTC, 2 shuffle partitions, UI off, quiet)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("forensics-tests")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=OFF")
               .getOrCreate())
    session.sparkContext.setLogLevel("OFF")
    yield session
    session.stop()


def export_case(con, folder: Path) -> dict[str, Path]:
    """Write every case table of a DuckDB case to ``folder/<table>.parquet`` (timestamps in
    UTC, JSON as text, as a lake holds them); returns the files by table name."""
    folder.mkdir(parents=True, exist_ok=True)
    present = {name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
    files = {}
    for table in CASE_TABLES:
        if table not in present:
            continue
        path = folder / f"{table}.parquet"
        con.execute(f"COPY (SELECT * FROM {quote_ident(table)}) TO {quote_literal(str(path))} "
                    "(FORMAT parquet)")
        files[table] = path
    return files


def register_case(session, files: dict[str, Path]):
    """Register the Parquet files as temporary views under their canonical names (dropping
    views a previous case left) and return an ibis pyspark backend on ``session``."""
    import ibis

    for table in CASE_TABLES:
        session.catalog.dropTempView(table)
    for table, path in files.items():
        session.read.parquet(str(path)).createOrReplaceTempView(table)
    return ibis.pyspark.connect(session)


@dataclass(frozen=True)
class LakeCase:
    """A simulated case in DuckDB (``db``, closed) and as a lake: its case tables as Parquet
    files (``tables``: table -> path, as ``--tables`` takes them), with its true windows."""

    db: Path
    tables: dict[str, str]
    incident: str
    baseline: str


def simulated_lake(folder: Path, mode: str, *, seed: int, rows: int,
                   edit: Callable[..., None] | None = None) -> LakeCase:
    """Simulate ``mode``, ingest it into ``folder/case.duckdb`` (every row loaded), let
    ``edit(con, truth)`` change the case, then write it as a lake with :func:`export_case`."""
    from toolkit.simulate import ingest_case, make_case

    case = make_case(mode, seed=seed, rows=rows)
    truth = case.truth()
    con = ingest_case(case, folder)
    try:
        assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
        if edit is not None:
            edit(con, truth)
        files = export_case(con, folder / "lake")
    finally:
        con.close()
    return LakeCase(folder / "case.duckdb", {table: str(path) for table, path in files.items()},
                    "/".join(truth["incident"]), "/".join(truth["baseline"]))
