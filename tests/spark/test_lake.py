"""Cases on a lake (issue 26): ``tk.connect_lake`` and ``forensics classify --engine spark``.

One Spark session per test process (SPa's shared ``spark_session`` fixture when it is there);
the lake tables are Parquet files written here, either by pyarrow with chosen types (schema
checks) or by DuckDB from a simulated case (the same case classified on both engines).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import InvalidParameterError, SchemaMismatchError
from toolkit.store.lake import connect_lake

pytestmark = pytest.mark.spark

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def spark(request):
    """The shared local Spark session (UTC)."""
    try:
        return request.getfixturevalue("spark_session")
    except pytest.FixtureLookupError:
        pass
    pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        pytest.skip("Java is absent: Spark needs Java 17")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("forensics-tests")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


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
    latency a double, a naive timestamp UTC wall-clock time; optional columns the lake lacks
    exist and hold NULL; features and unknown tables stay as they are / empty."""
    naive = datetime(2026, 3, 1, 12, 0)
    requests = _requests(
        tmp_path / "requests",
        request_id=pa.array([1, 2, 3], pa.int64()),
        ts=pa.array([naive] * 3, pa.timestamp("us")),
        latency_ms=pa.array([10, 20, 30], pa.int32()),
        prediction=pa.array([1.0, 0.0, 0.5]),
    )
    lake = connect_lake({"requests": requests}, session=spark)
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
    views, and the caller's session gets none."""
    one = connect_lake({"requests": _requests(tmp_path / "one")}, session=spark)
    two = connect_lake({"requests": _requests(
        tmp_path / "two", request_id=pa.array(["x"] * 5),
        ts=pa.array([T0] * 5, pa.timestamp("us", tz="UTC")),
        latency_ms=pa.array([1.0] * 5), amount_usd=pa.array([0.0] * 5))}, session=spark)
    assert one.table("requests").count().to_pyarrow().as_py() == 3
    assert two.table("requests").count().to_pyarrow().as_py() == 5
    assert "requests" not in [t.name for t in spark.catalog.listTables()]
