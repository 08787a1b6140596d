"""Cases on a lake (issue 26): ``tk.connect_lake`` and ``forensics classify --engine spark``.

One Spark session per test process (``spark_session`` of tests/spark/conftest.py);
the lake tables are Parquet files written here, either by pyarrow with chosen types (schema
checks) or by DuckDB from a simulated case (the same case classified on both engines).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import toolkit as tk
from tests.spark.conftest import simulated_lake
from toolkit.cli import main
from toolkit.errors import InvalidParameterError, SchemaMismatchError
from toolkit.store.lake import connect_lake

pytestmark = pytest.mark.spark

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def spark(spark_session):
    """The shared local Spark session (UTC) of tests/spark/conftest.py."""
    return spark_session


def _write(path, columns: dict[str, pa.Array]) -> str:
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path / "part-0.parquet")
    return str(path)


def _requests(path, **override) -> str:
    columns = {
        "request_id": pa.array(["a", "b", "c"]),
        "ts": pa.array([T0, T0, T0], pa.timestamp("us", tz="UTC")),
        "latency_ms": pa.array([10.0, 20.0, 30.0]),
        "amount_usd": pa.array([1.5, 2.5, 3.5]),
    }
    columns.update(override)
    return _write(path, {k: v for k, v in columns.items() if v is not None})


def test_missing_required_column_names_table_column_and_type(spark, tmp_path):
    path = _requests(tmp_path / "requests", ts=None)
    with pytest.raises(SchemaMismatchError) as info:
        connect_lake({"requests": path}, session=spark)
    message = str(info.value)
    assert "requests lacks the required column ts" in message
    assert "TIMESTAMP WITH TIME ZONE" in message
    assert "request_id, latency_ms, amount_usd" in message  # the columns it has


def test_wrong_types_are_all_named_in_one_error(spark, tmp_path):
    requests = _requests(tmp_path / "requests", latency_ms=pa.array(["10", "20", "30"]))
    labels = _write(tmp_path / "labels", {"request_id": pa.array(["a"]),
                                          "label": pa.array(["1"]),
                                          "labeled_at": pa.array([1.0])})
    with pytest.raises(SchemaMismatchError) as info:
        connect_lake({"requests": requests, "labels": labels}, session=spark)
    message = str(info.value)
    assert "requests.latency_ms has type string, expected DOUBLE" in message
    assert "labels.labeled_at has type double, expected TIMESTAMP WITH TIME ZONE" in message
    assert "\n" not in message


def test_lossless_types_are_converted_and_absent_columns_read_as_null(spark, tmp_path):
    """Integer ids and classes become text as ingest writes them (1.0 -> '1'), an integer
    latency a double, a naive timestamp UTC wall-clock time, a struct JSON text; optional
    columns the lake lacks exist and hold NULL; features stay as they are, a table not named
    is empty."""
    naive = datetime(2026, 3, 1, 12, 0)
    requests = _requests(
        tmp_path / "requests",
        request_id=pa.array([1, 2, 3], pa.int64()),
        ts=pa.array([naive] * 3, pa.timestamp("us")),
        latency_ms=pa.array([10, 20, 30], pa.int32()),
        prediction=pa.array([1.0, 0.0, 0.5]),
    )
    events = _write(tmp_path / "events", {
        "ts": pa.array([T0], pa.timestamp("us", tz="UTC")),
        "kind": pa.array(["config_change"]),
        "detail": pa.array([{"client_timeout_ms": 200}],
                           pa.struct([("client_timeout_ms", pa.int64())])),
    })
    lake = connect_lake({"requests": requests, "events": events}, session=spark)
    assert lake.sql("SELECT detail FROM events").to_pandas()["detail"].tolist() == \
        ['{"client_timeout_ms":200}']
    frame = lake.sql("SELECT request_id, unix_micros(ts) AS us, latency_ms, prediction, "
                     "score, amount_usd FROM requests ORDER BY request_id").to_pandas()
    assert frame["request_id"].tolist() == ["1", "2", "3"]
    assert frame["us"].tolist() == [int(T0.timestamp() * 1_000_000)] * 3
    assert frame["latency_ms"].tolist() == [10.0, 20.0, 30.0]
    assert frame["prediction"].tolist() == ["1", "0", "0.5"]
    assert frame["score"].isna().all()
    assert frame["amount_usd"].tolist() == [1.5, 2.5, 3.5]
    schema = lake.table("requests").schema()
    assert schema["latency_ms"].is_floating() and schema["request_id"].is_string()
    assert "load_id" not in schema
    assert lake.table("labels").count().to_pyarrow().as_py() == 0
    assert "labeled_at" in lake.table("labels").schema()


def test_unknown_table_and_unreadable_location_are_refused(spark, tmp_path):
    with pytest.raises(InvalidParameterError, match="'request' is not a table of a case"):
        connect_lake({"request": str(tmp_path)}, session=spark)
    with pytest.raises(InvalidParameterError, match=r"tables\['requests'\]: Spark cannot read "
                       r"requests \(parquet at .*nowhere\)"):
        connect_lake({"requests": str(tmp_path / "nowhere")}, session=spark)


def test_a_session_not_in_utc_is_refused_and_left_as_it_was(spark, tmp_path):
    path = _requests(tmp_path / "requests")
    paris = spark.newSession()
    paris.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    with pytest.raises(InvalidParameterError) as info:
        connect_lake({"requests": path}, session=paris)
    assert "spark.sql.session.timeZone='Europe/Paris'" in str(info.value)
    assert paris.conf.get("spark.sql.session.timeZone") == "Europe/Paris"
    utc = spark.newSession()
    utc.conf.set("spark.sql.session.timeZone", "Etc/UTC")  # UTC by another name
    assert connect_lake({"requests": path}, session=utc).table("requests").count() \
        .to_pyarrow().as_py() == 3


def test_two_lake_cases_keep_their_own_views(spark, tmp_path):
    """Each case lives in its own session: a second case does not replace the first one's
    views, and the caller's session gets none (the shared session may hold other tests'
    views, e.g. the parity tests' ``requests``: those must stay as they were)."""

    def callers_views():
        names = sorted(t.name for t in spark.catalog.listTables())
        return names, {n: spark.table(n).count() for n in names if n == "requests"}

    before = callers_views()
    one = connect_lake({"requests": _requests(tmp_path / "one")}, session=spark)
    two = connect_lake({"requests": _requests(
        tmp_path / "two", request_id=pa.array(["x"] * 5),
        ts=pa.array([T0] * 5, pa.timestamp("us", tz="UTC")),
        latency_ms=pa.array([1.0] * 5), amount_usd=pa.array([0.0] * 5))}, session=spark)
    assert one.table("requests").count().to_pyarrow().as_py() == 3
    assert two.table("requests").count().to_pyarrow().as_py() == 5
    assert callers_views() == before


# --- the same case on both engines -------------------------------------------------------


@pytest.fixture(scope="module")
def lake_case(tmp_path_factory):
    """A small simulated version-skew case (2,000 requests) ingested into DuckDB, its case
    tables written as Parquet, and its truth windows."""
    lake = simulated_lake(tmp_path_factory.mktemp("lake_case"), "version_skew", seed=3,
                          rows=2000)
    return lake.db, lake.tables, lake.incident, lake.baseline


@pytest.mark.slow
def test_cli_classifies_the_lake_as_duckdb_classifies_the_case(spark, lake_case, capsys,
                                                               monkeypatch):
    """``forensics classify --engine spark --tables ... --json`` on the Parquet tables gives
    the DuckDB case's verdict: pathway, failure mode, onset, and every finding's id, severity
    and onset (the windows given, so both engines diagnose the same pair)."""
    db, tables, incident, baseline = lake_case
    with tk.connect(db, read_only=True) as con:
        expected = tk.classify_incident(con, incident=incident, baseline=baseline).to_dict()
    assert (expected["pathway"], expected["failure_mode"]) == ("integration", "version_skew")
    monkeypatch.setenv("CI", "true")
    spec = ",".join(f"{table}={path}" for table, path in tables.items())
    capsys.readouterr()
    code = main(["classify", "--engine", "spark", "--tables", spec, "--incident", incident,
                 "--baseline", baseline, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    got = json.loads(out)
    for key in ("pathway", "failure_mode", "onset", "incident", "baseline", "serving_mode"):
        assert got[key] == expected[key], key

    def findings(result):
        return sorted((f["id"], f["severity"], f.get("onset"), f["summary"])
                      for f in result["findings"])

    assert findings(got) == findings(expected)
    statistics = {(f["id"], f["summary"]): f["statistic"] for f in expected["findings"]}
    for finding in got["findings"]:
        assert finding["statistic"] == pytest.approx(
            statistics[finding["id"], finding["summary"]], rel=1e-9, nan_ok=True), finding["id"]
    assert got["scores"] == pytest.approx(expected["scores"], rel=1e-9)


def test_cli_schema_error_is_one_line_and_exit_1(spark, tmp_path, capsys, monkeypatch):
    requests = _requests(tmp_path / "requests", latency_ms=pa.array(["10", "20", "30"]))
    monkeypatch.setenv("CI", "true")
    capsys.readouterr()
    code = main(["classify", "--engine", "spark", "--tables", f"requests={requests}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "requests.latency_ms has type string, expected DOUBLE" in err[0]


def test_catalog_tables_and_the_temporary_view_hint(spark, tmp_path):
    """A global temporary view is a catalog table the case's own session sees; a temporary
    view of the caller's session is not, and the error says what to name instead."""
    frame = spark.read.parquet(_requests(tmp_path / "requests"))
    frame.createOrReplaceGlobalTempView("lake_test_requests")
    lake = connect_lake({"requests": "global_temp.lake_test_requests"}, session=spark)
    assert lake.table("requests").count().to_pyarrow().as_py() == 3
    frame.createOrReplaceTempView("lake_test_local")
    with pytest.raises(InvalidParameterError, match=r"catalog table lake_test_local\).*"
                       r"global_temp\.NAME"):
        connect_lake({"requests": "lake_test_local"}, session=spark)
