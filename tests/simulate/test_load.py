"""Every generated case is a folder of generic exports the real loader takes with zero rejects."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import toolkit as tk
from toolkit import simulate
from toolkit.simulate import writer
from toolkit.simulate.rows import CHUNK_ROWS
from toolkit.simulate.writer import write_case

CASES = [(mode, None) for mode in simulate.FAILURE_MODES] + \
    [(None, preset) for preset in simulate.PRESETS]


@pytest.mark.parametrize("mode,preset", CASES, ids=[m or p for m, p in CASES])
def test_loads_with_zero_rejects(tmp_path, mode, preset):
    case = simulate.make_case(mode, seed=5, rows=10_000, preset=preset)
    out = write_case(case, tmp_path / "case")
    con = tk.connect()
    report = tk.load(con, out)
    assert report.rows_rejected == 0
    loaded = {f.table for f in report.files if f.status == "loaded"}
    assert loaded == set(case.table_names)
    assert [f.source for f in report.files if f.status == "skipped"] == [str(out / "truth.json")]
    counts = dict(con.execute("SELECT table_name, sum(rows_loaded) FROM loads GROUP BY 1")
                  .fetchall())
    assert counts["requests"] == 10_000
    truth = json.loads((out / "truth.json").read_text())
    assert truth == case.truth()
    assert con.execute("SELECT count(*) FROM requests WHERE ts < ?::TIMESTAMPTZ OR ts >= "
                       "?::TIMESTAMPTZ", [case.start, case.end]).fetchone()[0] == 0


def test_layout_and_types(tmp_path, monkeypatch):
    # one chunk per part, so two parts without generating two million rows
    monkeypatch.setattr(writer, "_CHUNKS_PER_PART", 1)
    case = simulate.make_case("cache_staleness", seed=4, rows=CHUNK_ROWS + 5_000)
    assert "labels" in case.table_names
    out = write_case(case, tmp_path / "case")
    assert sorted(p.name for p in (out / "requests").iterdir()) == \
        ["part-00000.parquet", "part-00001.parquet"]
    catalog = pd.read_csv(out / "features.csv")
    assert list(catalog.columns) == ["name", "kind", "position", "unit"]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert all(e["ts"].endswith("Z") and isinstance(e["detail"], dict) for e in events)
    con = tk.connect()
    assert tk.load(con, out).rows_rejected == 0
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                             "WHERE table_name = 'requests'").fetchall())
    assert types["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert types["in_flight"] == "INTEGER" or "in_flight" not in case.truth()["platform"][
        "optional_columns"]
    assert types["cache_hit"] == "BOOLEAN" and types["amount_usd"] == "DOUBLE"
    assert types["country"] == "VARCHAR"
    units = dict(con.execute("SELECT name, unit FROM features").fetchall())
    assert units["amount_usd"] == "USD" and units["distance_km"] == "km"
    # ad-hoc SQL on the loaded case sees the stale cache hits
    stale = con.execute(
        "SELECT count(*) FROM requests WHERE cache_hit AND cache_model_version <> model_version"
    ).fetchone()[0]
    assert stale > 0
    assert con.execute("SELECT count(*) FROM labelled_predictions").fetchone()[0] > 0
