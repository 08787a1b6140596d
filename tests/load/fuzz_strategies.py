"""Hypothesis strategies for the ingest fuzz suite: hostile files and what they hold.

Every strategy returns a :class:`Sample`: the bytes of a file, its name, and an independent model
of its content built while generating it (never by parsing the file back): the number of records
a correct reader must count, and for each record the source value of a few columns. The tests in
``test_fuzz.py`` load the file and compare what the loader did with this model.

A value's expectation is one of

* an exact value (text, float, or microseconds since the epoch for timestamps): a loaded record
  must carry it (the record may still be rejected, e.g. because another of its values is bad);
* :data:`REJECT`: the value cannot be loaded, so its record must be rejected (or the file
  refused);
* :data:`ANY`: the format leaves it open (a far epoch, a 20-hour offset): not checked;
* :class:`OneOf`: a few acceptable readings (an undecodable byte read as Latin-1 or cp1252, a
  duplicated JSON key read as its last value).
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import math
from dataclasses import dataclass
from datetime import date

from hypothesis import strategies as st

__all__ = [
    "ANY",
    "REJECT",
    "OneOf",
    "Cell",
    "Record",
    "Sample",
    "SPECS",
    "generic_files",
    "hostile_name_files",
    "parquet_files",
    "sagemaker_files",
    "kserve_files",
    "prometheus_files",
]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The value cannot be loaded: its record must be rejected (or the file refused).
REJECT = _Sentinel("REJECT")
#: The format does not decide the value: it is not checked.
ANY = _Sentinel("ANY")


@dataclass(frozen=True)
class OneOf:
    """Acceptable readings of a value; ``noted`` ones only when the load's note says why."""

    values: tuple
    noted: tuple = ()
    note_words: tuple[str, ...] = ()


@dataclass
class Cell:
    """One source value.

    Attributes
    ----------
    text
        The value as the file states it (``None``: absent or empty).
    kind
        How the loader converts it: ``str``, ``lower`` (trimmed, lower case), ``double``,
        ``label`` (class label: integral numbers without a decimal part), ``ts`` (see
        ``ts``), ``feature`` (``double`` or ``str`` after the loader's kind inference).
    ts
        For ``ts`` cells: the expected microseconds since the epoch, :data:`REJECT` or
        :data:`ANY`.
    clean
        Drawn from the plain alphabet: a record of clean cells must load.
    override
        An expectation that replaces the one computed from ``text`` and ``kind`` (invalid
        bytes, a duplicated JSON key).
    """

    text: str | None
    kind: str
    ts: object = None
    clean: bool = True
    override: object = None


@dataclass
class Record:
    """One record of the file: its key (unique) and the cells checked after loading."""

    key: str
    cells: dict[str, Cell]
    broken: str | None = None  # structural corruption: may be rejected, only the key is checked
    alt_keys: tuple[str, ...] = ()
    optional: bool = False  # valid, but a reader may fairly reject it (e.g. a BOM before it)

    @property
    def must_load(self) -> bool:
        if self.broken or self.optional:
            return False
        for cell in self.cells.values():
            if not cell.clean or cell.override is not None:
                return False
            if cell.kind == "ts" and not isinstance(cell.ts, int):
                return False
        return True


class Sample:
    """A generated file and the independent model of its content.

    Attributes
    ----------
    name, data
        File name (it names the table) and bytes.
    table, key_column
        Target table, and the column that identifies a record's row.
    records
        The records, in file order.
    count
        Records a correct reader counts (rows read); ``count_options`` other acceptable counts.
    refuse
        The file is unreadable as a whole: it must be refused.
    label
        What was generated, for failure messages.
    extra_columns
        Hostile-name columns and their values (``hostile_name_files``).
    key_sql
        SQL giving a loaded row's record key, when ``key_column`` alone is not it.
    """

    def __init__(self, name: str, data: bytes, table: str, key_column: str,
                 records: list[Record], count: int, *, refuse: bool = False, label: str = "",
                 extra_columns: dict[str, list[str | None]] | None = None,
                 count_options: tuple[int, ...] = (), key_sql: str | None = None) -> None:
        self.name, self.data, self.table, self.key_column = name, data, table, key_column
        self.records, self.count, self.refuse, self.label = records, count, refuse, label
        self.extra_columns = extra_columns or {}
        self.count_options = count_options
        self.key_sql = key_sql  # SQL giving a loaded row's record key (default: key_column)

    def __repr__(self) -> str:  # hypothesis prints the falsifying example with this
        return (f"Sample({self.label}, name={self.name!r}, table={self.table}, "
                f"count={self.count}, refuse={self.refuse}, data={self.data[:3000]!r})")


# --------------------------------------------------------------------------------------------
# values


PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=8)

HOSTILE_TEXTS = [
    "\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "a\"b", "\"", "'", "''", "a,b", "a;b", "a\tb", "a|b",
    "line\nbreak", "cr\rcr", "crlf\r\nx", "nul\x00byte", "\\", "\\n", "\\\"", "x\u2028y",
    "\ufeffbom", "caf\u00e9", "\u540d\u524d", "  spaced  ", " ", "'; DROP TABLE requests; --",
    "\"; DROP TABLE loads; --", "<script>alert(1)</script>", "NULL", "null", "NaN", "None",
    "rec\x1esep", "next\x85line", "\x7f", "\ud7ff\ue000", "\U0001f600", "a\x0bb\x0cc",
    "{\"json\": 1}", "[1, 2]", "$(touch /tmp/x)", "%s%n", "\u202eevil", "0", "-1",
]

#: Text characters for generated hostile strings (no surrogates: they cannot be encoded).
_HOSTILE_ALPHABET = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc", "Cf", "Co", "Mn"),
)
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_TEXTS),
    st.text(alphabet=_HOSTILE_ALPHABET, min_size=1, max_size=12),
)


@st.composite
def text_cells(draw, kind: str = "str") -> Cell:
    if _rarely(draw, 4):
        return Cell(draw(HOSTILE), kind, clean=False)
    return Cell(draw(PLAIN), kind)


NUMBER_TEXTS = [
    "0", "-0", "1.5", "-2.25e3", "1e308", "-1e308", "1e309", "-1e309", "inf", "-inf", "+Inf",
    "Infinity", "nan", "NaN", "-nan", "1e-320", "4.9e-324", "123456789012345678901234567890",
    "9223372036854775807", "-9223372036854775809", "18446744073709551616", "0.1", " 7 ",
    "12abc", "1,5", "0x1A", "1e", "--1", ".", "1.7976931348623157e308", "2.2250738585072014e-308",
]


@st.composite
def number_cells(draw, kind: str = "double", allow_empty: bool = True) -> Cell:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        text = draw(st.sampled_from(NUMBER_TEXTS))
        return Cell(text, kind, clean=False)
    if choice == 1:
        value = draw(st.floats(allow_nan=True, allow_infinity=True))
        return Cell(repr(value), kind, clean=False)
    if choice == 2:
        return Cell(str(draw(st.integers(-(10**30), 10**30))), kind, clean=False)
    if choice == 3 and allow_empty:
        return Cell(None, kind, clean=False)
    value = draw(st.decimals(min_value=-1e6, max_value=1e6, places=3, allow_nan=False))
    return Cell(str(value), kind)


def _rarely(draw, n: int) -> bool:
    """True about once in ``n`` draws (``integers(0, k) == 0`` would be drawn far more often)."""
    return draw(st.sampled_from([False] * (n - 1) + [True]))


def _epoch_us(y: int, mo: int, d: int, h: int, mi: int, s: int, us: int, offset_min: int) -> int:
    days = date(y, mo, d).toordinal() - date(1970, 1, 1).toordinal()
    return (((days * 24 + h) * 60 + mi) * 60 + s) * 1_000_000 + us - offset_min * 60_000_000


@st.composite
def ts_cells(draw, required: bool = True) -> Cell:
    """A timestamp as text, with the instant it denotes computed here (not by a parser)."""
    choice = draw(st.integers(0, 9))
    if choice <= 3:
        y = draw(st.integers(2000, 2030))
        mo, d = draw(st.integers(1, 12)), draw(st.integers(1, 28))
        h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
        digits = draw(st.integers(0, 6))
        frac = draw(st.integers(0, 10**digits - 1)) if digits else 0
        us = frac * 10 ** (6 - digits)
        zone = draw(st.sampled_from(["Z", "", "+00:00", "offset"]))
        offset = 0
        if zone == "offset":
            offset = draw(st.integers(-14 * 60, 14 * 60))
            sign = "+" if offset >= 0 else "-"
            zone = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        sep = draw(st.sampled_from(["T", " "]))
        text = f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}"
        if digits:
            text += "." + f"{frac:0{digits}d}"
        text += zone
        clean = zone in ("Z", "+00:00", "")
        return Cell(text, "ts", ts=_epoch_us(y, mo, d, h, mi, s, us, offset), clean=clean)
    if choice == 4:  # extreme but valid instants
        text, expect = draw(st.sampled_from([
            ("0001-01-01T00:00:00Z", _epoch_us(1, 1, 1, 0, 0, 0, 0, 0)),
            ("0001-01-01T00:30:00+01:00", _epoch_us(1, 1, 1, 0, 30, 0, 0, 60)),
            ("9999-12-31T23:59:59.999999Z", _epoch_us(9999, 12, 31, 23, 59, 59, 999999, 0)),
            ("9999-12-31T20:00:00-03:59", _epoch_us(9999, 12, 31, 20, 0, 0, 0, -239)),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.999999Z", -1),
            ("2026-03-02", _epoch_us(2026, 3, 2, 0, 0, 0, 0, 0)),
        ]))
        return Cell(text, "ts", ts=expect, clean=False)
    if choice == 5:  # offsets out of range, impossible dates: not instants
        text = draw(st.sampled_from([
            "2026-03-02T14:00:00+25:00", "2026-03-02T14:00:00-25:00", "2026-03-02T14:00:00+24:00",
            "2026-03-02T14:00:00+99:99", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
            "2026-03-02T24:00:01Z", "2026-03-02T14:61:00Z", "yesterday", "2026-03-02T14:00:00ZZ",
            "0000-00-00T00:00:00Z", "1e400",
        ]))
        return Cell(text, "ts", ts=REJECT, clean=False)
    if choice == 6:  # offsets a day long: ISO 8601 allows up to 23:59, no place uses them
        text = draw(st.sampled_from(["2026-03-02T14:00:00+23:59", "2026-03-02T14:00:00-18:30",
                                     "10000-01-01T00:00:00Z", "+10000-01-01T00:00:00Z"]))
        return Cell(text, "ts", ts=ANY, clean=False)
    if choice == 7:  # epoch seconds / milliseconds (magnitude tells the unit)
        seconds = draw(st.integers(946_684_800, 2_000_000_000))
        ms = draw(st.integers(0, 999))
        form = draw(st.sampled_from(["s", "s.ms", "ms"]))
        if form == "s":
            return Cell(str(seconds), "ts", ts=seconds * 1_000_000, clean=False)
        if form == "ms":
            return Cell(str(seconds * 1000 + ms), "ts", ts=(seconds * 1000 + ms) * 1000,
                        clean=False)
        text = f"{seconds}.{ms:03d}"
        return Cell(text, "ts", ts=round(float(text) * 1e6), clean=False)
    if choice == 8:  # far epochs: the unit is a guess
        text = draw(st.sampled_from(["1e20", "-1e20", "1e300", "99999999999999999999",
                                     "-62135596801", "253402300800", "0"]))
        expect = 0 if text == "0" else ANY
        return Cell(text, "ts", ts=expect, clean=False)
    if required:
        return Cell(None, "ts", ts=REJECT, clean=False)
    return Cell(None, "ts", ts=None, clean=False)


# --------------------------------------------------------------------------------------------
# generic tables


@dataclass(frozen=True)
class TableSpec:
    key: str
    columns: tuple[tuple[str, str], ...]  # (column, strategy kind)
    required: tuple[str, ...]


SPECS = {
    "requests": TableSpec("request_id", (
        ("request_id", "key"), ("ts", "ts"), ("model_version", "str"), ("latency_ms", "double"),
        ("status", "status"), ("amount", "feature_num"), ("country", "feature_str"),
    ), ("request_id", "ts")),
    "labels": TableSpec("request_id", (
        ("request_id", "key"), ("label", "label"), ("labeled_at", "ts_opt"),
    ), ("request_id", "label")),
    "events": TableSpec("version", (
        ("ts", "ts"), ("kind", "kind"), ("artifact", "artifact"), ("version", "key"),
        ("host", "str"),
    ), ("ts", "kind")),
    "metrics": TableSpec("host", (
        ("ts", "ts"), ("host", "key"), ("name", "str"), ("value", "double"),
    ), ("ts", "name")),
}

_KINDS = ["deploy", "rollback", "config_change", "restart", "oom_kill", "scale", "cache_flush",
          "alert"]


@st.composite
def _cell(draw, kind: str, index: int) -> Cell:
    if kind == "key":
        suffix = draw(st.one_of(st.just(""), PLAIN.map(lambda s: "-" + s), HOSTILE))
        return Cell(f"k{index}{suffix}", "str", clean=not suffix or suffix.startswith("-"))
    if kind == "ts":
        return draw(ts_cells())
    if kind == "ts_opt":
        return draw(ts_cells(required=False))
    if kind == "str":
        return draw(text_cells())
    if kind == "double":
        return draw(number_cells())
    if kind == "feature_num":
        return draw(number_cells(kind="feature"))
    if kind == "feature_str":
        return draw(text_cells(kind="feature"))
    if kind == "status":
        if _rarely(draw, 5):
            return Cell(draw(st.sampled_from(["OK", " Error ", "TIMEOUT", "", "weird"])),
                        "lower", clean=False)
        return Cell(draw(st.sampled_from(["ok", "error", "timeout"])), "lower")
    if kind == "kind":
        if _rarely(draw, 5):
            text = draw(st.sampled_from(["Deploy", " ROLLBACK ", "", "  ", "explosion"]))
            return Cell(text, "lower", clean=False)
        return Cell(draw(st.sampled_from(_KINDS)), "lower")
    if kind == "artifact":
        return Cell(draw(st.sampled_from(["model", "pipeline", "client", "Cache", None])),
                    "lower", clean=False)
    if kind == "label":
        if _rarely(draw, 4):
            text = draw(st.one_of(HOSTILE, st.sampled_from(["1.0", "01", "1e3", "-0", "2.5",
                                                             " 1", "inf"])))
            return Cell(text, "label", clean=False)
        return Cell(draw(st.sampled_from(["0", "1", "spam", "ham", "cat"])), "label")
    raise AssertionError(kind)


@st.composite
def _records(draw, table: str, n: int) -> list[Record]:
    spec = SPECS[table]
    records = []
    for i in range(n):
        cells = {name: draw(_cell(kind, i)) for name, kind in spec.columns}
        records.append(Record(cells[spec.key].text, cells))
    return records


def _latin1_ok(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _either_encoding(records: list[Record]) -> None:
    """A file holding invalid UTF-8 may be read as Latin-1 or cp1252 instead: every non-ASCII
    text cell not already overridden may load as its UTF-8 text or either reading."""
    for record in records:
        for cell in record.cells.values():
            if cell.override is None and cell.text and not cell.text.isascii() and \
                    cell.kind in ("str", "feature"):
                cell.override = OneOf((cell.text, *_latin1_alternatives(
                    cell.text.encode("utf-8"))))
                cell.clean = False


def _latin1_alternatives(raw: bytes) -> tuple[str, ...]:
    readings = []
    for codec in ("latin-1", "cp1252"):
        try:
            readings.append(raw.decode(codec))
        except UnicodeDecodeError:
            pass
    return tuple(dict.fromkeys(readings))


_BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
              b"\xc0\xaf"]


def _csv_field(text: str, delimiter: str) -> str:
    """One field as a CSV writer quotes it (an empty field stays empty)."""
    return _csv_line([text], delimiter, "") if text else ""


def _csv_line(fields: list[str], delimiter: str, terminator: str) -> str:
    """One record: a field holding a CR or LF is always quoted, whatever ends the lines."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, quotechar='"', doublequote=True,
               quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue()[:-2] + terminator


@st.composite
def generic_files(draw, table: str | None = None, formats=("csv", "csv.gz", "jsonl"),
                  well_formed: bool = False) -> Sample:
    """A generic table file (CSV, CSV.gz or JSON lines) with random corruption.

    ``well_formed``: no structural corruption, no truncation, UTF-8 throughout and no NUL
    character: every record is a record of the format (its values may still be bad ones).
    """
    table = table or draw(st.sampled_from(sorted(SPECS)))
    fmt = draw(st.sampled_from(formats))
    n = 0 if _rarely(draw, 12) else draw(st.integers(1, 8))  # now and then no record at all
    records = draw(_records(table, n))
    if well_formed:
        for record in records:
            for cell in record.cells.values():
                if cell.text is not None and "\x00" in cell.text:
                    cell.text = cell.text.replace("\x00", "0")
            record.key = record.cells[SPECS[table].key].text
    if fmt.startswith("csv"):
        return draw(_csv_sample(table, fmt, records, well_formed))
    return draw(_jsonl_sample(table, records, well_formed))


@st.composite
def _csv_sample(draw, table: str, fmt: str, records: list[Record],
                well_formed: bool = False) -> Sample:
    spec = SPECS[table]
    names = [c for c, _ in spec.columns]
    delimiter = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    terminator = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig"]))
    corruptions = draw(st.lists(
        st.sampled_from(["none"] * 6 + ["unbalanced_quote", "stray_quote", "wrong_delimiter",
                                        "extra_field", "missing_field", "invalid_bytes",
                                        "latin1"]),
        min_size=len(records), max_size=len(records)))
    if well_formed:
        corruptions = ["none"] * len(records)
    # One quote error per file: a second stray quote would close the first, and the lines
    # between them would be, by the CSV grammar, one valid value with line breaks in it.
    quoted = [i for i, c in enumerate(corruptions) if c in ("unbalanced_quote", "stray_quote")]
    for i in quoted[1:]:
        corruptions[i] = "none"
    quote_broken = bool(quoted)
    truncate = _rarely(draw, 6) and not well_formed
    mixed = "invalid_bytes" in corruptions or "latin1" in corruptions
    chunks: list[bytes] = []
    header = _csv_line(names, delimiter, terminator)
    chunks.append(header.encode(encoding))
    for record, corruption in zip(records, corruptions, strict=True):
        if quote_broken:
            # After a quote error, no other quote or line break may close it: the broken
            # record is then the only reading a parser can have.
            for cell in record.cells.values():
                if cell.text is not None and any(ch in cell.text for ch in "\"\r\n" + delimiter):
                    cell.text = cell.text.replace('"', "'").replace("\r", " ").replace(
                        "\n", " ").replace(delimiter, " ")
                    if cell.override is None and cell.kind == "str":
                        cell.clean = False
            record.key = record.cells[spec.key].text
        texts = [record.cells[c].text or "" for c in names]
        fields = list(texts)
        codec = "utf-8"
        if corruption == "invalid_bytes":
            target = draw(st.sampled_from([c for c in names if c != spec.key]))
            bad = draw(st.sampled_from(_BAD_BYTES))
            cell = record.cells[target]
            raw = (cell.text or "").encode("utf-8") + bad
            if cell.kind == "ts":
                cell.ts = REJECT
            else:
                cell.override = OneOf(_latin1_alternatives(raw))
            cell.clean = False
            fields[names.index(target)] = raw.decode("utf-8", "surrogateescape")
        elif corruption == "latin1":
            codec = "latin-1"
            for cell in record.cells.values():
                if cell.text and not cell.text.isascii():
                    cell.clean = False
                    try:
                        cell.text.encode("latin-1")
                    except UnicodeEncodeError:
                        cell.override = ANY
        line = _csv_line(fields, delimiter, terminator)
        if corruption in ("unbalanced_quote", "stray_quote"):
            # not in the key: a loaded record must still be found by it
            j = draw(st.sampled_from([i for i, c in enumerate(names) if c != spec.key]))
            quoted = [_csv_field(f, delimiter) for f in fields]
            quoted[j] = ('"' + texts[j]) if corruption == "unbalanced_quote" else \
                ('ab"c' + texts[j])
            line = delimiter.join(quoted) + terminator
            record.broken = corruption
        elif corruption == "wrong_delimiter":
            other = draw(st.sampled_from([d for d in ",;\t|" if d != delimiter]))
            line = _csv_line(fields, other, terminator)
            record.broken = corruption
        elif corruption == "extra_field":
            line = _csv_line(fields + ["extra"], delimiter, terminator)
            record.broken = corruption
        elif corruption == "missing_field":
            line = _csv_line(fields[:-1], delimiter, terminator)
            record.broken = corruption
        if codec == "latin-1":
            data = line.encode("latin-1", errors="ignore") if any(
                isinstance(c.override, _Sentinel) for c in record.cells.values()) \
                else line.encode("latin-1")
            if any(c.override is ANY for c in record.cells.values()):
                record.broken = "latin1_lossy"
                # characters Latin-1 lacks are left out of the file, the key's too
                record.alt_keys = (record.key.encode("latin-1", "ignore").decode("latin-1"),)
        else:
            data = line.encode("utf-8", "surrogateescape")
        chunks.append(data)
    if mixed:
        _either_encoding(records)
    if truncate and records:
        last = chunks[-1].rstrip(terminator.encode())
        if len(last) > 1:
            cut = draw(st.integers(1, len(last) - 1))
            chunks[-1] = last[:cut]
            records[-1].broken = "truncated"
            if last[:cut].count(b'"') % 2:
                # the cut leaves a quote open: nothing after it may close it (it is the end)
                pass
    data = b"".join(chunks)
    refuse = False
    name = f"{table}.csv"
    if fmt == "csv.gz":
        data = gzip.compress(data, mtime=0)
        name += ".gz"
        if _rarely(draw, 6) and not well_formed:
            data = data[: draw(st.integers(10, max(10, len(data) - 1)))]
            refuse = True
    label = (f"csv delimiter={delimiter!r} terminator={terminator!r} encoding={encoding} "
             f"corruptions={corruptions} truncate={truncate}")
    return Sample(name, data, table, spec.key, records, len(records), refuse=refuse, label=label)


def _json_value(cell: Cell, draw) -> object:
    """The JSON value of a cell: numbers as numbers when they are finite JSON numbers."""
    if cell.text is None:
        return draw(st.sampled_from([None, "__omit__"]))
    if cell.kind in ("double", "feature") and draw(st.booleans()):
        try:
            number = json.loads(cell.text)
        except ValueError:
            return cell.text
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return _RawNumber(cell.text.strip())
    if cell.kind == "ts" and draw(st.booleans()):
        try:
            number = json.loads(cell.text)
        except ValueError:
            return cell.text
        if isinstance(number, (int, float)):
            return _RawNumber(cell.text.strip())
    return cell.text


class _RawNumber(str):
    """A JSON number written as it is in the source text (``1e308``, a 30-digit integer)."""


def _dump(value: object, ascii_only: bool) -> str:
    if isinstance(value, _RawNumber):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii_only)


def _json_object(pairs: list[tuple[str, object]], ascii_only: bool) -> str:
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=ascii_only)}: {_dump(v, ascii_only)}"
                           for k, v in pairs) + "}"


@st.composite
def _jsonl_sample(draw, table: str, records: list[Record], well_formed: bool = False) -> Sample:
    spec = SPECS[table]
    names = [c for c, _ in spec.columns]
    ascii_only = draw(st.booleans())
    terminator = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    bom = _rarely(draw, 6) and not well_formed
    corruptions = draw(st.lists(
        st.sampled_from(["none"] * 6 + ["garbage", "non_object", "dup_key", "invalid_bytes",
                                        "nonstandard_number", "blank_before"]),
        min_size=len(records), max_size=len(records)))
    if well_formed:
        corruptions = ["none" if c != "blank_before" else c for c in corruptions]
    truncate = _rarely(draw, 6) and not well_formed
    chunks = []
    mixed = "invalid_bytes" in corruptions
    for record, corruption in zip(records, corruptions, strict=True):
        pairs = []
        for name in names:
            value = _json_value(record.cells[name], draw)
            if value != "__omit__":
                pairs.append((name, value))
        line = _json_object(pairs, ascii_only)
        raw = line.encode("utf-8")
        if corruption == "garbage":
            cut = draw(st.integers(1, len(line) - 1))
            line = line[:cut] + draw(st.sampled_from(["}", "{", ",,", "\"", "]", "\\"])) + \
                line[cut:]
            if _valid_object(line):
                line = line + "}"
            raw = line.encode("utf-8")
            record.broken = corruption
        elif corruption == "non_object":
            raw = draw(st.sampled_from([b"[1, 2]", b"42", b"\"text\"", b"null", b"true"]))
            record.broken = corruption
        elif corruption == "dup_key":
            target = draw(st.sampled_from([c for c in names if c != spec.key]))
            cell = record.cells[target]
            first = draw(PLAIN)
            pairs = [(k, v) for k, v in pairs if k != target]
            pairs.insert(draw(st.integers(0, len(pairs))), (target, first))
            pairs.append((target, cell.text))
            if cell.kind in ("str", "feature"):
                cell.override = OneOf(((cell.text or None),), noted=(first,),
                                      note_words=("duplicat",))
            elif cell.kind == "ts":
                cell.ts = ANY if cell.ts is not REJECT else REJECT
            else:
                cell.override = ANY
            cell.clean = False
            raw = _json_object(pairs, ascii_only).encode("utf-8")
        elif corruption == "invalid_bytes":
            target = draw(st.sampled_from([c for c, k in spec.columns
                                           if k in ("str",) and c != spec.key] or [None]))
            if target is None:
                record.broken = "invalid_bytes"
                raw = raw[:-1] + b"\xff}"
            else:
                cell = record.cells[target]
                bad = draw(st.sampled_from(_BAD_BYTES))
                value = (cell.text or "x") + "\x00MARK\x00"
                pairs = [(k, value if k == target else v) for k, v in pairs]
                if not any(k == target for k, _ in pairs):
                    pairs.append((target, value))
                text = _json_object(pairs, False)
                marker = json.dumps(value, ensure_ascii=False)[1:-1]
                body = json.dumps(cell.text or "x", ensure_ascii=False)[1:-1].encode("utf-8")
                raw = text.encode("utf-8").replace(marker.encode("utf-8"), body + bad)
                cell.override = OneOf(_latin1_alternatives((cell.text or "x").encode("utf-8")
                                                           + bad))
                cell.clean = False
        elif corruption == "nonstandard_number":
            target = draw(st.sampled_from([c for c, k in spec.columns
                                           if k in ("double", "feature_num")] or [None]))
            literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "+1", "01", "1.",
                                            ".5", "0x10"]))
            if target is None:
                record.broken = corruption
                raw = raw[:-1] + b", \"x\": " + literal.encode() + b"}"
            else:
                pairs = [(k, _RawNumber(literal) if k == target else v) for k, v in pairs]
                if not any(k == target for k, _ in pairs):
                    pairs.append((target, _RawNumber(literal)))
                raw = _json_object(pairs, ascii_only).encode("utf-8")
                cell = record.cells[target]
                cell.text = literal
                cell.clean = False
                # Not JSON: a reader may reject the line, or read the literal as JavaScript does
                record.broken = corruption
        if corruption == "blank_before":
            chunks.append(draw(st.sampled_from([b"", b"   "])) + terminator.encode())
        chunks.append(raw + terminator.encode())
    if bom and records:
        chunks[0] = b"\xef\xbb\xbf" + chunks[0]
        records[0].optional = True
    if mixed:
        _either_encoding(records)
    if truncate and records:
        last = chunks[-1].rstrip(b"\r\n")
        cut = draw(st.integers(1, len(last) - 1)) if len(last) > 1 else 1
        chunks[-1] = last[:cut]
        records[-1].broken = "truncated"
    data = b"".join(chunks)
    label = (f"jsonl ascii={ascii_only} terminator={terminator!r} bom={bom} "
             f"corruptions={corruptions} truncate={truncate}")
    return Sample(f"{table}.jsonl", data, table, spec.key, records, len(records), label=label)


def _valid_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# hostile column names

HOSTILE_NAMES = [
    "__c0", "__c1", "__c2", "__c3", "_raw", "_row", "_parse_error", "_parse_column", "_errors",
    "__row_number", "ordinality", "file_row_number", "load_id", "LOAD_ID", "Load_Id", "__label",
    "__labeled_at", "__x", "_v", "_perr", "_pcol", "_id", "_xs", "_ys", "_gts", "Amount", "TS",
    "Request_ID", "MODEL_VERSION", "a\"b", "x'; DROP TABLE requests; --", "\"", "'", "select",
    "from", "group", "\u540d\u524d", "caf\u00e9", "sp ace", " lead", "tab\tname", "semi;colon",
    "pipe|name", "dollar$1", "$path", "?", "\\", "\x1b[2Jname", "uni\u2028code", "x" * 70,
    "x;y;z;w;v;u", "rowid", "excluded", "_errors_1", "amount_1",
]


@st.composite
def hostile_name_files(draw, formats: tuple[str, ...] = ("csv", "jsonl", "parquet"),
                       duplicates: str = "sometimes") -> Sample:
    """A ``requests`` file whose extra (feature) columns have hostile names.

    ``duplicates``: whether a canonical column's name also names a second column (CSV or
    Parquet): ``"sometimes"``, ``"always"`` or ``"never"``.
    """
    fmt = draw(st.sampled_from(formats))
    n = draw(st.integers(1, 5))
    records = []
    for i in range(n):
        ts = draw(ts_cells().filter(lambda c: isinstance(c.ts, int)))
        records.append(Record(f"r{i}", {
            "request_id": Cell(f"r{i}", "str"), "ts": ts,
            "model_version": Cell(f"v{i % 2}", "str"),
            "amount": Cell(str(i + 0.5), "feature"),
        }))
    extra = draw(st.lists(st.sampled_from(HOSTILE_NAMES), min_size=1, max_size=4, unique=True))
    if fmt != "parquet" and _rarely(draw, 5):
        extra = [name for name in extra if _latin1_ok(name)]
        extra.append(draw(st.sampled_from(["gr\u00fc\u00dfe", "\u00e9t\u00e9"])) + "\x00latin1")
    values = {
        name: [draw(st.one_of(PLAIN, st.sampled_from(["1.5", "2", "-3e2"]))) for _ in range(n)]
        for name in extra
    }
    base = ["request_id", "ts", "model_version", "amount"]
    order = base + extra
    draw(st.randoms()).shuffle(order)
    latin1 = [name for name in extra if name.endswith("\x00latin1")]
    clean = {name.replace("\x00latin1", ""): vals for name, vals in values.items()}
    order = [name.replace("\x00latin1", "") for name in order]

    def value(name: str, i: int) -> str:
        if name in clean:
            return clean[name][i]
        return records[i].cells[name].text

    columns = [(c, [value(c, i) for i in range(n)]) for c in order]
    duplicate = None
    if fmt != "jsonl" and duplicates != "never" and (duplicates == "always" or
                                                      _rarely(draw, 4)):
        # the same name twice (JSON's duplicated keys are fuzzed in generic_files)
        duplicate = draw(st.sampled_from(["model_version", "amount"]))
        again = [draw(PLAIN) for _ in range(n)]
        columns.insert(draw(st.integers(0, len(columns))), (duplicate, again))
        clean[duplicate] = again
        for record, other in zip(records, again, strict=True):
            cell = record.cells[duplicate]
            cell.override = OneOf((cell.text,), noted=(other,), note_words=(duplicate,))
            cell.clean = False
    names = [c for c, _ in columns]
    if fmt == "csv":
        lines = [_csv_line(names, ",", "\n")]
        lines += [_csv_line([vals[i] for _, vals in columns], ",", "\n") for i in range(n)]
        if latin1:
            data = lines[0].encode("latin-1", errors="strict") + \
                "".join(lines[1:]).encode("utf-8")
        else:
            data = "".join(lines).encode("utf-8")
        name = "requests.csv"
    elif fmt == "jsonl":
        data = b"".join(
            (_json_object([(c, vals[i]) for c, vals in columns], False) + "\n").encode(
                "latin-1" if latin1 and i == 0 else "utf-8", errors="strict")
            for i in range(n))
        name = "requests.jsonl"
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # case-only duplicates (amount / Amount) and exact ones are both kept: Parquet allows them
        table = pa.Table.from_arrays([pa.array(vals, pa.string()) for _, vals in columns],
                                     names=names)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        data = buffer.getvalue()
        name = "requests.parquet"
    if latin1 and fmt == "jsonl":
        records[0].optional = True  # its line is Latin-1: a reader may reject it
    sample = Sample(name, data, "requests", "request_id", records, n,
                    label=f"hostile names {fmt} extra={extra} duplicate={duplicate}")
    sample.extra_columns = clean
    return sample


# --------------------------------------------------------------------------------------------
# Parquet


@st.composite
def parquet_files(draw) -> Sample:
    """A ``requests`` Parquet file with extreme values (and now and then a truncated file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = draw(st.integers(1, 8))
    ts_type = draw(st.sampled_from(["timestamp", "timestamp_naive", "string", "int_seconds"]))
    lat_type = draw(st.sampled_from(["float64", "float32", "string", "int64"]))
    records, ts_values, latencies, amounts, countries, versions = [], [], [], [], [], []
    for i in range(n):
        key = f"k{i}" + draw(st.one_of(st.just(""), HOSTILE))
        version = draw(text_cells())
        country = draw(text_cells(kind="feature"))
        if ts_type in ("timestamp", "timestamp_naive"):
            us = draw(st.one_of(
                st.integers(-62135596800_000000, 253402300799_999999),
                st.sampled_from([-62135596800_000000, 253402300799_999999, 0]),
                st.just(None)))
            ts_values.append(us)
            ts_cell = Cell(None if us is None else str(us), "ts",
                           ts=REJECT if us is None else us, clean=us is not None)
        elif ts_type == "string":
            ts_cell = draw(ts_cells())
            ts_values.append(ts_cell.text)
        else:
            seconds = draw(st.one_of(st.integers(946_684_800, 2_000_000_000),
                                     st.integers(-(2**63), 2**63 - 1)))
            ts_values.append(seconds)
            expect = seconds * 1_000_000 if 946_684_800 <= seconds <= 2_000_000_000 else ANY
            ts_cell = Cell(str(seconds), "ts", ts=expect, clean=expect is not ANY)
        if lat_type in ("float64", "float32"):
            value = draw(st.one_of(
                st.floats(allow_nan=True, allow_infinity=True,
                          width=64 if lat_type == "float64" else 32),
                st.sampled_from([1e308, -1e308, 5e-324, -0.0]), st.none()))
            latencies.append(value)
            lat_cell = Cell(None if value is None else repr(value), "double",
                            clean=value is not None and math.isfinite(value))
        elif lat_type == "int64":
            value = draw(st.integers(-(2**63), 2**63 - 1))
            latencies.append(value)
            lat_cell = Cell(str(value), "double", clean=False)
        else:
            lat_cell = draw(number_cells())
            latencies.append(lat_cell.text)
        amount = draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()))
        amounts.append(amount)
        amount_cell = Cell(None if amount is None else repr(amount), "feature",
                           clean=amount is not None and math.isfinite(amount))
        countries.append(country.text)
        versions.append(version.text)
        records.append(Record(key, {
            "request_id": Cell(key, "str", clean=key == f"k{i}"), "ts": ts_cell,
            "model_version": version, "latency_ms": lat_cell, "amount": amount_cell,
            "country": country,
        }))
    if ts_type == "timestamp":
        ts_array = pa.array(ts_values, type=pa.timestamp("us", tz="UTC"))
    elif ts_type == "timestamp_naive":
        ts_array = pa.array(ts_values, type=pa.timestamp("us"))
    elif ts_type == "string":
        ts_array = pa.array(ts_values, type=pa.string())
    else:
        ts_array = pa.array(ts_values, type=pa.int64())
    lat_arrow = {"float64": pa.float64(), "float32": pa.float32(), "int64": pa.int64(),
                 "string": pa.string()}[lat_type]
    if lat_type == "float32":
        # the loader sees the float32 value widened to double: that is the source value
        for record, value in zip(records, latencies, strict=True):
            if value is not None:
                record.cells["latency_ms"].text = repr(float(pa.array([value],
                                                                      pa.float32())[0].as_py()))
    table = pa.table({
        "request_id": pa.array([r.key for r in records], pa.string()),
        "ts": ts_array,
        "model_version": pa.array(versions, pa.string()),
        "latency_ms": pa.array(latencies, lat_arrow),
        "amount": pa.array(amounts, pa.float64()),
        "country": pa.array(countries, pa.string()),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=draw(st.sampled_from([2, 1000])))
    data = buffer.getvalue()
    refuse = False
    if _rarely(draw, 7):
        data = data[: draw(st.integers(0, len(data) - 1))]
        refuse = True
    return Sample("requests.parquet", data, "requests", "request_id", records, n, refuse=refuse,
                  label=f"parquet ts={ts_type} latency={lat_type} truncated={refuse}")


# --------------------------------------------------------------------------------------------
# platform records


def _feature_cells(draw, names: list[str]) -> dict[str, Cell]:
    return {name: draw(number_cells(kind="feature", allow_empty=False)) for name in names}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number_json(text: str) -> object:
    """A feature value as a JSON value: a number when it is one, else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _RawNumber(text.strip())
    return text


PLATFORM_FEATURES = ["amount", "score_in", "__x", "_raw", "__c0", "load_id", "Amount"]


@st.composite
def sagemaker_files(draw) -> Sample:
    """SageMaker data capture lines (JSON object instances) with random corruption."""
    n = draw(st.integers(1, 6))
    names = draw(st.lists(st.sampled_from(PLATFORM_FEATURES), min_size=1, max_size=3,
                          unique_by=str.lower))
    lines, records = [], []
    count = 0
    for i in range(n):
        event_id = f"ev-{i}"
        inference_id = draw(st.one_of(st.none(), st.just(f"inf-{i}"),
                                      HOSTILE.map(lambda s, i=i: f"inf-{i}{s}")))
        key = inference_id if inference_id is not None else event_id
        ts = draw(ts_cells().filter(lambda c: c.text is None or not _is_number(c.text)))
        features = _feature_cells(draw, names)
        instance = "{" + ", ".join(f"{json.dumps(k)}: {_dump(_number_json(c.text), True)}"
                                   for k, c in features.items()) + "}"
        encoding = draw(st.sampled_from(["JSON", "BASE64"]))
        body = instance
        output = str(draw(st.sampled_from(["0.9", "0.1", "0.5"])))
        corruption = draw(st.sampled_from(["none"] * 6 + [
            "truncated_line", "not_object", "bad_base64", "base64_not_utf8", "no_time",
            "dup_event_id", "garbage"]))
        if i == 0 and corruption in ("truncated_line", "not_object", "garbage"):
            corruption = "none"  # the reader recognises capture by its first line
        metadata = [("eventId", event_id)]
        if inference_id is not None:
            metadata.append(("inferenceId", inference_id))
        if corruption != "no_time" and ts.text is not None:
            metadata.append(("inferenceTime", ts.text))
        cells = {"request_id": Cell(key, "str", clean=inference_id in (None, f"inf-{i}")),
                 "ts": ts, **features}
        record = Record(key, cells)
        data_value = body if encoding == "JSON" else base64.b64encode(body.encode()).decode()
        if corruption == "bad_base64":
            encoding, data_value = "BASE64", "!!not base64@@" + data_value[:5]
            record.broken = corruption
        elif corruption == "base64_not_utf8":
            encoding = "BASE64"
            data_value = base64.b64encode(body.encode()[:-1] + b"\xff\xfe}").decode()
            record.broken = corruption
        elif corruption == "no_time":
            ts.ts = REJECT
            ts.clean = False
        elif corruption == "dup_event_id":
            record.alt_keys = (f"ev-dup-{i}",)
            record.broken = corruption
        capture = {"captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": data_value, "encoding": encoding},
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                               "data": output, "encoding": "CSV"}},
            "eventMetadata": dict(metadata), "eventVersion": "0"}
        line = json.dumps(capture)
        if corruption == "dup_event_id":
            line = line.replace('"eventMetadata": {', f'"eventMetadata": {{"eventId": '
                                f'"ev-dup-{i}", ', 1)
            if inference_id is None:
                record.alt_keys = (f"ev-dup-{i}",)
        if corruption == "truncated_line":
            line = line[: draw(st.integers(1, len(line) - 1))]
            record.broken = corruption
        elif corruption == "not_object":
            line = json.dumps([capture])
            record.broken = corruption
        elif corruption == "garbage":
            cut = draw(st.integers(1, len(line) - 1))
            line = line[:cut] + "\x00}{" + line[cut:]
            record.broken = corruption
        lines.append(line)
        records.append(record)
        count += 1
    data = ("\n".join(lines) + draw(st.sampled_from(["\n", ""]))).encode("utf-8")
    # the first line must be recognisable as capture, or the file is not SageMaker at all
    return Sample("capture.jsonl", data, "requests", "request_id", records, count,
                  label=f"sagemaker features={names}")


@st.composite
def kserve_files(draw) -> Sample:
    """KServe structured-mode CloudEvents (one JSON object per line), request/response pairs."""
    n = draw(st.integers(1, 5))
    names = draw(st.lists(st.sampled_from(PLATFORM_FEATURES), min_size=1, max_size=3,
                          unique_by=str.lower))
    events: list[tuple[int, str]] = []  # (order key, line)
    records: list[Record] = []
    no_id: list[tuple[Record, str]] = []
    count = 0
    seq = 0
    for i in range(n):
        ce_id = f"ce-{i}" + draw(st.one_of(st.just(""), HOSTILE))
        t0 = draw(st.integers(1_700_000_000_000_000, 1_800_000_000_000_000))
        latency_us = draw(st.integers(0, 10_000_000))
        features = _feature_cells(draw, names)
        instance = "{" + ", ".join(f"{json.dumps(k)}: {_dump(_number_json(c.text), True)}"
                                   for k, c in features.items()) + "}"
        request_body = '{"instances": [' + instance + "]}"
        response_body = json.dumps({"predictions": [draw(st.sampled_from([0, 1]))]})
        corruption = draw(st.sampled_from(["none"] * 6 + [
            "no_id", "no_time", "bad_base64", "truncated_request", "truncated_response",
            "no_response", "garbage_response_body"]))
        base64_mode = draw(st.booleans())

        def event(kind: str, time_us: int | None, body: str, with_id: bool = True,
                  bad_b64: bool = False, ce_id: str = ce_id, base64_mode: bool = base64_mode
                  ) -> str:
            obj = {"specversion": "1.0"}
            if with_id:
                obj["id"] = ce_id
            obj.update({"source": "http://localhost:9081/",
                        "type": f"org.kubeflow.serving.inference.{kind}"})
            if time_us is not None:
                obj["time"] = _rfc3339(time_us)
            obj.update({"datacontenttype": "application/json", "inferenceservicename": "isvc",
                        "namespace": "ns"})
            if bad_b64:
                obj["data_base64"] = "@@@not base64!!"
            elif base64_mode:
                obj["data_base64"] = base64.b64encode(body.encode()).decode()
            else:
                obj["data"] = json.loads(body)
            return json.dumps(obj)

        ts_cell = Cell(_rfc3339(t0), "ts", ts=t0)
        latency = Cell(repr(latency_us / 1000), "double")
        cells = {"request_id": Cell(ce_id, "str", clean=ce_id == f"ce-{i}"), "ts": ts_cell,
                 "latency_ms": latency, **features}
        record = Record(ce_id, cells)
        request = event("request", None if corruption == "no_time" else t0, request_body,
                        with_id=corruption != "no_id", bad_b64=corruption == "bad_base64")
        response = event("response", t0 + latency_us, response_body,
                         with_id=corruption != "no_id")
        if corruption == "no_id":
            # Without an id only their order can pair the two events: one record when a
            # reader pairs them (id "#<line of the request>", said in a note), else two
            # rejected ones.
            record.broken = corruption
            record.key = "\x00no-id"  # the id is the request's line: set once lines are placed
            no_id.append((record, request))
            count += 1
        elif corruption == "no_time":
            record.broken = corruption  # rejected, or loaded with a note (checked in the test)
            cells["ts"] = Cell(None, "ts", ts=ANY, clean=False)
            cells["latency_ms"] = Cell(None, "double", override=ANY, clean=False)
            count += 1
        elif corruption == "bad_base64":
            record.broken = corruption
            count += 1
        elif corruption == "truncated_request":
            request = request[: draw(st.integers(1, len(request) - 1))]
            # the truncated line is one record; the response is then alone: another record
            record.broken = corruption
            cells["latency_ms"] = Cell(None, "double", override=ANY, clean=False)
            cells["ts"] = Cell(None, "ts", ts=ANY, clean=False)
            count += 2
        elif corruption == "truncated_response":
            response = response[: draw(st.integers(1, len(response) - 1))]
            cells["latency_ms"] = Cell(None, "double", override=ANY, clean=False)
            record.broken = corruption
            count += 2
        elif corruption == "no_response":
            response = None
            cells["latency_ms"] = Cell(None, "double")
            count += 1
        elif corruption == "garbage_response_body":
            body = response_body[:-3]
            response = event("response", t0 + latency_us, "{}")
            response = response.replace(
                '"data": {}' if not base64_mode else
                f'"data_base64": "{base64.b64encode(b"{}").decode()}"',
                f'"data": {json.dumps(body)}' if not base64_mode else
                f'"data_base64": "{base64.b64encode(body.encode()).decode()}"')
            record.broken = corruption
            count += 1
        else:
            count += 1
        events.append((seq, request))
        seq += 1
        if response is not None:
            events.append((seq + draw(st.integers(0, 3)), response))
            seq += 1
        records.append(record)
    events.sort(key=lambda e: e[0])
    for record, request in no_id:
        line = next(i for i, (_, text) in enumerate(events, start=1) if text is request)
        record.alt_keys = (f"#{line}",)
    data = "\n".join(line for _, line in events).encode("utf-8") + b"\n"
    options = tuple(range(count + 1, count + len(no_id) + 1))
    return Sample("kserve-dump.jsonl", data, "requests", "request_id", records, count,
                  label=f"kserve features={names}", count_options=options)


def _rfc3339(us: int) -> str:
    seconds, micro = divmod(us, 1_000_000)
    days, rest = divmod(seconds, 86400)
    d = date.fromordinal(date(1970, 1, 1).toordinal() + days)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d.isoformat()}T{h:02d}:{m:02d}:{s:02d}.{micro:06d}000Z"


PROM_VALUES = ["1", "0", "0.25", "-3.5", "1e308", "-1e308", "NaN", "+Inf", "-Inf", "1e-300",
               "123456789012345678901234567890", "abc", "", "1,5", "0x10", "inf", "nan"]


@st.composite
def prometheus_files(draw) -> Sample:
    """A Prometheus query_range response (or one per line) with corrupt samples.

    Records are samples, keyed ``<host>@<microseconds>``: a loaded row is found by its host
    and time.
    """
    n_series = draw(st.integers(1, 4))
    lines_mode = draw(st.booleans())
    pretty = draw(st.booleans()) and not lines_mode
    records: list[Record] = []
    responses: list[list[tuple[str, list[Record]]]] = [[]]
    for s in range(n_series):
        host = f"h{s}" + draw(st.one_of(st.just(""), PLAIN.map(lambda x: "-" + x)))
        name = draw(st.sampled_from(["fuzz_gauge", "fuzz:ratio", "Fuzz_Gauge", "fuzz_gauge_z"]))
        labels = {"__name__": name, "instance": host, "job": draw(st.sampled_from(
            ["j", "\x1b[2J", "a\"b", "\u540d"]))}
        values, series_records = [], []
        n_samples = draw(st.integers(1, 5))
        t = draw(st.integers(1_700_000_000, 1_800_000_000))
        for k in range(n_samples):
            t_ms = t * 1000 + k * 15_000 + draw(st.integers(0, 999))
            t_text = f"{t_ms // 1000}.{t_ms % 1000:03d}"
            v_text = draw(st.one_of(st.sampled_from(PROM_VALUES),
                                    st.floats(allow_nan=False).map(repr)))
            corruption = draw(st.sampled_from(["none"] * 8 + ["time_1e20", "time_text",
                                                              "time_negative", "arity",
                                                              "value_number"]))
            t_json: object = _RawNumber(t_text)
            ts_expect: object = round(float(t_text) * 1e6)
            sample: list = [t_json, v_text]
            if corruption == "time_1e20":
                sample[0] = _RawNumber("1e20")
                ts_expect = REJECT
            elif corruption == "time_text":
                sample[0] = "yesterday"
                ts_expect = REJECT
            elif corruption == "time_negative":
                sample[0] = _RawNumber(f"-{k}.5")
                ts_expect = -(k * 1_000_000 + 500_000)
            elif corruption == "arity":
                sample = draw(st.sampled_from([[t_json], [t_json, v_text, "x"], []]))
                ts_expect = REJECT
            elif corruption == "value_number":
                sample[1] = _RawNumber("1.5")  # a number where the API writes a string
                v_text = "1.5"
            key = f"{host}@{ts_expect}" if isinstance(ts_expect, int) else \
                f"\x00unloadable-{len(records)}"
            record = Record(key, {
                "ts": Cell(t_text, "ts", ts=ts_expect, clean=False),
                "host": Cell(host, "str"),
                "value": Cell(v_text, "double", clean=False),
            }, broken=corruption if corruption not in ("none", "time_negative",
                                                       "value_number") else None)
            records.append(record)
            series_records.append(record)
            values.append("[" + ", ".join(_dump(x, True) for x in sample) + "]")
        series = ('{"metric": ' + json.dumps(labels) + ', "values": [' + ", ".join(values) +
                  "]}")
        if lines_mode and responses[-1] and draw(st.booleans()):
            responses.append([])
        responses[-1].append((series, series_records))
    documents = [
        '{"status": "success", "data": {"resultType": "matrix", "result": [' +
        (",\n  " if pretty else ", ").join(text for text, _ in r) + "]}}"
        for r in responses
    ]
    count = len(records)
    refuse = False
    if lines_mode:
        data = "\n".join(documents) + "\n"
        if len(documents) > 1 and _rarely(draw, 5):
            # a truncated response line is one unreadable record in place of its samples
            last = documents[-1]
            lost = [r for _, rs in responses[-1] for r in rs]
            data = "\n".join(documents[:-1]) + "\n" + last[: draw(st.integers(1, len(last) - 1))]
            count = count - len(lost) + 1
            for record in lost:
                record.broken = "truncated"
                record.key = "\x00truncated"
    else:
        data = documents[0]
        if pretty:
            data = json.dumps(json.loads(data), indent=2)
        if _rarely(draw, 7):
            data = data[: draw(st.integers(1, len(data) - 1))]
            refuse = True
    return Sample("query_range.json", data.encode("utf-8"), "metrics", "host", records, count,
                  refuse=refuse, label=f"prometheus lines={lines_mode} pretty={pretty}",
                  key_sql="host || '@' || CAST(epoch_us(ts) AS VARCHAR)")
