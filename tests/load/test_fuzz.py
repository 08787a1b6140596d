"""Property-based / fuzz tests of ingest: hostile files never lose rows silently.

Every test generates a file (``fuzz_strategies``) together with an independent model of what it
holds (the number of records and their source values, built while generating, never by parsing
the file back), loads it into a real DuckDB case file through the public API or the CLI, and
checks the ingest contract of DESIGN section 3 and issue 19:

(a) the file is refused with a :class:`~toolkit.errors.ToolkitError` whose message is one line,
    and the case is unchanged (every table's columns and rows, compared before and after); or
(b) it is loaded with ``rows read`` equal to the independent record count and equal to
    ``loaded + rejected`` (in the report, in ``loads``, in the table and in ``rejects``), every
    loaded row comes from one source record, and every loaded value equals its source value;
    a record whose values are all plain must be loaded;

and never any other exception (a traceback). ``make test`` runs a small derandomized budget
(hypothesis profile ``ci``); ``make fuzz`` a long random search.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import toolkit as tk
from toolkit.cli import main
from toolkit.errors import ToolkitError
from toolkit.store.schema import quote_ident

from .fuzz_strategies import (
    ANY,
    REJECT,
    Cell,
    OneOf,
    Sample,
    generic_files,
    hostile_name_files,
    kserve_files,
    parquet_files,
    prometheus_files,
    sagemaker_files,
)

pytestmark = pytest.mark.fuzz

#: The profile's budget; the slower tests take a share of it (the CLI starts Typer each time,
#: the SageMaker and KServe readers cost about twice a generic file), so that the whole file
#: stays within a minute in `make test`.
_BUDGET = settings().max_examples


# --------------------------------------------------------------------------------------------
# the case


class Template(tuple):
    """(path, snapshot) of the template case; printed short in hypothesis' reports."""

    def __repr__(self) -> str:
        return f"Template({self[0]})"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Template:
    """A case with earlier loads in it (requests with a feature, labels), and its snapshot."""
    return make_template(tmp_path_factory.mktemp("fuzz_template"))


def make_template(root: Path) -> Template:
    """Build the template case in ``root``: its path and its snapshot."""
    path = root / "case.duckdb"
    (root / "requests.csv").write_text(
        "request_id,ts,model_version,latency_ms,baseline_feature\n"
        "base-1,2026-03-01T00:00:00Z,v0,10.5,1.25\nbase-2,2026-03-01T00:00:01Z,v0,11,2\n",
        encoding="utf-8",
    )
    (root / "labels.csv").write_text("request_id,label\nbase-1,1\nbase-2,0\n", encoding="utf-8")
    con = tk.connect(path)
    tk.load(con, root / "requests.csv")
    tk.load(con, root / "labels.csv")
    con.execute("CHECKPOINT")
    con.close()
    # what a connection does on open (views, migrations) is part of the reference state
    con = tk.connect(path)
    con.close()
    return Template((path, _snapshot(path)))


def _snapshot(path: Path) -> dict:
    """Columns and rows of every table and the text of every view of the case file."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        state = {}
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1"
        ).fetchall()
        for (name,) in tables:
            columns = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
                "AND table_name = ? ORDER BY column_index", [name]).fetchall()
            rows = con.execute(f"SELECT * FROM {quote_ident(name)}").fetchall()
            state[name] = (columns, sorted(repr(r) for r in rows))
        state["<views>"] = con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
        return state
    finally:
        con.close()


def _workdir(tmp_path: Path, template: tuple[Path, dict], sample: Sample) -> tuple[Path, Path]:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    case = work / "case.duckdb"
    shutil.copyfile(template[0], case)
    path = work / sample.name
    path.write_bytes(sample.data)
    return case, path


def _assert_unchanged(case: Path, template: tuple[Path, dict], what: str) -> None:
    after = _snapshot(case)
    before = template[1]
    changed = [t for t in sorted(set(before) | set(after)) if before.get(t) != after.get(t)]
    assert not changed, f"{what}, yet the case changed: tables {changed}"


def _assert_one_line(message: str, what: str) -> None:
    assert message.strip(), f"{what}: empty message"
    assert len(message.strip().splitlines()) == 1, f"{what}: message of several lines: {message!r}"


# --------------------------------------------------------------------------------------------
# the properties


def check_api(tmp_path: Path, template: tuple[Path, dict], sample: Sample, *,
              also: Callable[[Any, Any], None] | None = None) -> str:
    """Load ``sample`` with ``tk.load`` and check the contract (and ``also(con, report)`` when
    it loaded); return what happened."""
    case, path = _workdir(tmp_path, template, sample)
    con = tk.connect(case)
    try:
        try:
            report = tk.load(con, path)
        except ToolkitError as exc:
            _assert_one_line(str(exc), "refused")
            con.close()
            _assert_unchanged(case, template, f"refused ({exc})")
            return "refused"
        assert not sample.refuse, f"an unreadable file was loaded: {report.to_frame()}"
        if also is not None:
            also(con, report)
        check_loaded(con, sample, report)
        return "loaded"
    finally:
        con.close()


def check_loaded(con, sample: Sample, report) -> None:
    """Counts against the independent model, then every loaded row against its source."""
    assert len(report.files) == 1, report.to_frame()
    result = report.files[0]
    assert result.status == "loaded", result
    assert result.table == sample.table, result
    assert result.rows_read == result.rows_loaded + result.rows_rejected, result
    counts = (sample.count, *sample.count_options)
    assert result.rows_read in counts, (
        f"rows read {result.rows_read} ({result.rows_loaded} loaded, {result.rows_rejected} "
        f"rejected), but the file holds {sample.count} record(s)")
    load_id = result.load_id
    read, loaded, rejected, note = con.execute(
        "SELECT rows_read, rows_loaded, rows_rejected, coalesce(note, '') FROM loads "
        "WHERE load_id = ?", [load_id]).fetchall()[0]
    assert (read, loaded, rejected) == (result.rows_read, result.rows_loaded,
                                        result.rows_rejected)
    table = quote_ident(sample.table)
    in_table = con.execute(f"SELECT count(*) FROM {table} WHERE load_id = ?",
                           [load_id]).fetchall()[0][0]
    assert in_table == loaded, f"{in_table} rows in {sample.table}, report says {loaded}"
    kept = con.execute("SELECT count(*) FROM rejects WHERE load_id = ?", [load_id]).fetchall()
    assert kept[0][0] == rejected, f"{kept[0][0]} rows in rejects, report says {rejected}"
    check_values(con, sample, load_id, note)


def _column_types(con, table: str) -> dict[str, str]:
    return dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
        "AND table_name = ?", [table]).fetchall())


def check_values(con, sample: Sample, load_id: int, note: str) -> None:
    """Every loaded row maps to one source record and carries its source values."""
    types = _column_types(con, sample.table)
    columns = sorted({c for r in sample.records for c in r.cells if c in types})
    select = []
    for column in columns:
        ident = quote_ident(column)
        select.append(f"epoch_us({ident})" if types[column].startswith("TIMESTAMP") else ident)
    key_sql = sample.key_sql or quote_ident(sample.key_column)
    rows = con.execute(
        f"SELECT {key_sql}, {', '.join(select)} FROM {quote_ident(sample.table)} "
        "WHERE load_id = ?", [load_id]).fetchall()
    by_key = {}
    for record in sample.records:
        for key in (record.key, *record.alt_keys):
            by_key[key] = record
    seen: set[int] = set()
    for row in rows:
        key, values = row[0], dict(zip(columns, row[1:], strict=True))
        record = by_key.get(key)
        assert record is not None, (
            f"loaded a row whose {sample.key_column} {key!r} is in no source record: {values}")
        assert id(record) not in seen, f"record {key!r} loaded twice"
        seen.add(id(record))
        if record.broken:
            continue
        for column, cell in record.cells.items():
            if cell.kind == "feature" and column in note:
                continue  # a feature renamed (e.g. load_id -> load_id_input), and said so
            if column not in types:
                if cell.text in (None, "") and cell.override is None:
                    continue  # no value in the source, no column in the table: nothing lost
                assert column in note, (
                    f"source column {column!r} is neither in {sample.table} nor in the load's "
                    f"note ({note!r})")
                continue
            _check_cell(key, column, cell, types[column], values[column], note)
    missing = [r.key for r in sample.records if r.must_load and id(r) not in seen]
    assert not missing, f"valid record(s) {missing} not loaded (rejected: {_rejects(con)})"


def _rejects(con) -> list[tuple]:
    return con.execute("SELECT row_number, column_name, reason FROM rejects "
                       "WHERE load_id = (SELECT max(load_id) FROM loads)").fetchall()


def _check_cell(key: str, column: str, cell: Cell, dtype: str, loaded: object,
                note: str) -> None:
    where = f"record {key!r}, column {column} ({dtype}): source {cell.text!r}"
    if cell.kind == "ts":
        expect = cell.ts
        if expect is ANY:
            return
        assert expect is not REJECT, f"{where}: not an instant, yet loaded as {loaded!r}"
        assert loaded == expect, f"{where}: loaded {loaded!r} us, expected {expect!r} us"
        return
    base = cell.override if cell.override is not None else OneOf((cell.text,))
    if base is ANY:
        return
    assert base is not REJECT, f"{where}: cannot be loaded, yet loaded as {loaded!r}"
    accepted = [_convert(t, cell.kind, dtype) for t in base.values]
    noted = [_convert(t, cell.kind, dtype) for t in base.noted]
    if any(word in note.lower() for word in base.note_words):
        accepted += noted
    accepted = [a for a in accepted if a is not REJECT]
    assert accepted, f"{where}: cannot be converted to {dtype}, yet loaded as {loaded!r}"
    if dtype == "VARCHAR" and loaded == "":
        loaded = None
    assert any(_same(loaded, a, cell.kind) for a in accepted), (
        f"{where}: loaded {loaded!r}, expected one of {accepted!r}")


def _convert(text: str | None, kind: str, dtype: str) -> object:
    """The value the loader must store for source ``text`` in a column of type ``dtype``."""
    if text is None or text == "":
        return None
    if dtype in ("DOUBLE", "FLOAT", "REAL"):
        try:
            value = float(text)
        except ValueError:
            return REJECT
        return None if math.isnan(value) else value  # NaN is no value (issue 19, defect 12)
    if kind == "lower":
        return text.strip(" ").lower() or None
    if kind == "label":
        try:
            number = float(text)
        except ValueError:
            return text
        if text.isascii() and math.isfinite(number) and number == math.trunc(number) and \
                abs(number) < 1e15 and not re.match(r"^\s*[+-]?0[0-9]", text):
            return str(int(number))
        return text
    return text


def _same(loaded: object, expected: object, kind: str) -> bool:
    if expected is None or loaded is None:
        return loaded is None and expected is None
    if isinstance(expected, float):
        return isinstance(loaded, (int, float)) and not math.isnan(loaded) and \
            float(loaded) == expected
    if kind == "feature" and isinstance(loaded, str) and isinstance(expected, str):
        # a JSON number kept as text may be spelled differently (1e308 / 1e+308)
        if loaded == expected:
            return True
        try:
            return float(loaded) == float(expected) and not math.isnan(float(expected))
        except ValueError:
            return False
    return loaded == expected


# --------------------------------------------------------------------------------------------
# generic files


@given(sample=generic_files(table="requests"))
def test_csv_and_jsonl_requests(tmp_path, template, sample):
    """requests as CSV / CSV.gz / JSON lines with corrupt records, encodings, extreme values."""
    check_api(tmp_path, template, sample)


@given(sample=st.sampled_from(["labels", "events", "metrics"]).flatmap(generic_files))
def test_csv_and_jsonl_other_tables(tmp_path, template, sample):
    """labels, events and metrics files with the same kinds of corruption."""
    check_api(tmp_path, template, sample)


@given(sample=generic_files(well_formed=True))
def test_well_formed_files_are_loaded(tmp_path, template, sample):
    """A file whose every record is well formed (values may be bad) is loaded, not refused.

    Refusing it would be safe but wrong: its good records are lost to the case. Only a file of
    no record at all may be refused.
    """
    outcome = check_api(tmp_path, template, sample)
    assert outcome == "loaded" or sample.count == 0, "a well-formed file was refused"


@given(sample=parquet_files())
def test_parquet_requests(tmp_path, template, sample):
    """Parquet with NaN / inf / 1e308 / int64 extremes, year 1 and 9999, truncated files."""
    check_api(tmp_path, template, sample)


@given(sample=hostile_name_files())
def test_hostile_column_names(tmp_path, template, sample):
    """Columns named like the loader's internals, case-only and exact duplicates, SQL-ish names.

    Either the file is refused, or the canonical values are right and every extra column is a
    feature column of exactly that name holding exactly its values, or is named in the load's
    note (not loaded silently under another name, nor dropped).
    """
    _check_hostile_names(tmp_path, template, sample)


def _check_hostile_names(tmp_path: Path, template: Template, sample: Sample) -> None:
    case, path = _workdir(tmp_path, template, sample)
    con = tk.connect(case)
    try:
        try:
            report = tk.load(con, path)
        except ToolkitError as exc:
            _assert_one_line(str(exc), "refused")
            con.close()
            _assert_unchanged(case, template, f"refused ({exc})")
            return
        check_loaded(con, sample, report)
        load_id = report.files[0].load_id
        note = con.execute("SELECT coalesce(note, '') FROM loads WHERE load_id = ?",
                           [load_id]).fetchall()[0][0]
        types = _column_types(con, "requests")
        for name, values in sample.extra_columns.items():
            if name in note:
                continue  # renamed, refused or left out: said so
            assert name in types, (
                f"source column {name!r} is not a column of requests and the note does not "
                f"name it: {note!r} (columns: {sorted(types)})")
            loaded = dict(con.execute(
                f"SELECT request_id, {quote_ident(name)} FROM requests WHERE load_id = ?",
                [load_id]).fetchall())
            for i, value in enumerate(values):
                if f"r{i}" not in loaded:
                    continue  # rejected
                expected = _convert(value, "feature", types[name])
                got = loaded[f"r{i}"]
                assert expected is not REJECT and _same(got, expected, "feature"), (
                    f"column {name!r} row r{i}: source {value!r}, loaded {got!r}")
        # the provenance column is the loader's, whatever the file says
        ids = con.execute("SELECT DISTINCT load_id FROM requests WHERE request_id LIKE 'r%'"
                          ).fetchall()
        assert ids in ([], [(load_id,)]), f"provenance overwritten: load_id values {ids}"
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# platform formats


@settings(max_examples=max(10, _BUDGET * 3 // 5))  # the slowest reader per example
@given(sample=sagemaker_files())
def test_sagemaker_capture(tmp_path, template, sample):
    """SageMaker capture lines: truncated, not objects, bad / non-UTF-8 base64, no time, ..."""
    outcome = _platform(tmp_path, template, sample, "sagemaker",
                        {"base64_not_utf8": ("utf", "decode", "base64")})
    assert outcome in ("loaded", "refused")


@settings(max_examples=max(10, _BUDGET * 3 // 5))  # the slowest reader per example
@given(sample=kserve_files())
def test_kserve_cloudevents(tmp_path, template, sample):
    """KServe structured CloudEvents: no id, no time, corrupt data_base64, lone halves, ..."""
    _platform(tmp_path, template, sample, "kserve",
              {"no_time": ("time",), "no_id": ("without id",)})


@given(sample=prometheus_files())
def test_prometheus_query_range(tmp_path, template, sample):
    """Prometheus query_range: NaN / Inf / 1e308 values, times 1e20, bad arity, truncation."""
    _platform(tmp_path, template, sample, "prometheus", {})


def _platform(tmp_path: Path, template: tuple[Path, dict], sample: Sample, fmt: str,
              noted: dict[str, tuple[str, ...]]) -> str:
    """The generic contract, plus: recognised as ``fmt``, and fallbacks are noted."""

    def recognised_and_noted(con, report) -> None:
        assert report.files[0].format == fmt, report.to_frame()
        result = report.files[0]
        note = "; ".join(result.notes).lower()
        loaded_keys = {k for (k,) in con.execute(
            f"SELECT {sample.key_sql or quote_ident(sample.key_column)} FROM {quote_ident(sample.table)} "
            "WHERE load_id = ?", [result.load_id]).fetchall()}
        for record in sample.records:
            words = noted.get(record.broken or "")
            if words and ({record.key, *record.alt_keys} & loaded_keys):
                assert any(w in note for w in words), (
                    f"record {record.key!r} ({record.broken}) loaded without a note saying so: "
                    f"{result.notes}")

    return check_api(tmp_path, template, sample, also=recognised_and_noted)


# --------------------------------------------------------------------------------------------
# the command line


@settings(max_examples=max(5, _BUDGET // 3))
@given(sample=st.one_of(generic_files(), kserve_files(), prometheus_files()))
def test_cli_ingest(tmp_path, template, sample):
    """``forensics ingest``: a report whose counts match, or one line on stderr and exit 1/2.

    Nothing printed carries a raw control character from the file (issue 19, defect 8), and
    a failed ingest leaves the case unchanged.
    """
    case, path = _workdir(tmp_path, template, sample)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["ingest", str(path), "--db", str(case)])
    stdout, stderr = out.getvalue(), err.getvalue()
    assert "Traceback" not in stdout + stderr, stderr
    control = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
    assert not control.search(stdout + stderr), (
        f"raw control characters printed: {(stdout + stderr)!r}")
    if code != 0:
        assert code in (1, 2), (code, stderr)
        _assert_one_line(stderr, f"exit {code}")
        assert stderr.startswith("error:"), stderr
        _assert_unchanged(case, template, f"ingest failed ({stderr.strip()})")
        return
    assert not sample.refuse, stdout
    match = re.search(r"1 file\(s\)[^:\n]*: ([\d,]+) rows read, ([\d,]+) loaded, "
                      r"([\d,]+) rejected", stdout)
    assert match, stdout
    read, loaded, rejected = (int(g.replace(",", "")) for g in match.groups())
    assert read == loaded + rejected, stdout
    assert read in (sample.count, *sample.count_options), (
        f"rows read {read}, but the file holds {sample.count} record(s)")
    con = tk.connect(case, read_only=True)
    try:
        in_table = con.execute(
            f"SELECT count(*) FROM {quote_ident(sample.table)} WHERE load_id = "
            "(SELECT max(load_id) FROM loads)").fetchall()[0][0]
        assert in_table == loaded, (in_table, stdout)
    finally:
        con.close()
