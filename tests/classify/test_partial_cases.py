"""Property: any subset of a case's tables and columns, any windows, gives a contract-valid verdict.

Simulated cases of several modes are built once per module (small, so they build fast); each
example copies one case database, removes tables or columns from the copy (a column is removed
by emptying it: the store always has the canonical columns, as with a real export that lacks
them), picks windows that may be empty, tiny or at the data's edges, and classifies. The verdict
must follow the classification contract (DESIGN section 4) and abstain where it must: no finding
may rest on a window of fewer than ``MIN_WINDOW_ROWS`` requests, and with nothing testable the
verdict is ``undetermined``.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import toolkit as tk
from toolkit.classify import classify_incident
from toolkit.classify.taxonomy import FAILURE_MODES, NONE, PATHWAYS, UNDETERMINED
from toolkit.diagnose._base import SEVERITIES
from toolkit.diagnose._case import MIN_WINDOW_ROWS
from toolkit.diagnose.registry import REQUEST_WINDOWS
from toolkit.simulate import ingest_case, make_case
from toolkit.types import Window

pytestmark = pytest.mark.fuzz

MODES = ("memory_exhaustion", "covariate_shift", "cache_staleness")
OPTIONAL_TABLES = ("labels", "reference", "metrics", "events", "lineage")
#: Column groups of ``requests`` an export may lack.
COLUMN_GROUPS = {
    "outputs": ("prediction", "score"),
    "host": ("host",),
    "latency": ("latency_ms",),
    "status": ("status", "http_status", "error_type"),
    "versions": ("model_version", "pipeline_version", "client_version"),
}
REQUEST_ROWS = ("all", "none", "3", "203")
#: How the statuses are written: as the schema says, as some exports do, or all failures.
STATUSES = ("ok/error/timeout", "SUCCEED/FAILED", "all error")
WINDOWS = ("detect", "truth", "empty_baseline", "tiny_incident", "at_start", "at_end",
           "baseline_only")
#: Examples per run: a third of the profile's budget (25 in "ci": about a minute).
EXAMPLES = max(6, settings().max_examples // 3)
CONTRACT = {"pathway", "failure_mode", "confidence", "scores", "onset", "incident", "baseline",
            "findings", "not_assessed", "remediation"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """One small ingested case per mode: its database and its truth."""
    out = {}
    for mode in MODES:
        folder = tmp_path_factory.mktemp(mode)
        case = make_case(mode, seed=5, rows=1_000)
        ingest_case(case, folder).close()
        out[mode] = (folder / "case.duckdb", case.truth())
    return out


def partial(source: Path, target: Path, keep_tables: set[str], drop_groups: set[str],
            drop_features: bool, rows: str, statuses: str = STATUSES[0]) -> tk.connect:
    """A copy of ``source`` with the tables not kept emptied, column groups and features
    emptied, statuses rewritten, and ``requests`` cut to ``rows``."""
    shutil.copy(source, target)
    con = tk.connect(target)
    if statuses == "SUCCEED/FAILED":
        con.execute("UPDATE requests SET status = CASE WHEN status = 'ok' THEN 'SUCCEED' "
                    "ELSE 'FAILED' END")
    elif statuses == "all error":
        con.execute("UPDATE requests SET status = 'error'")
    for table in OPTIONAL_TABLES:
        if table not in keep_tables:
            con.execute(f"DELETE FROM {table}")
    columns = [c for g in sorted(drop_groups) for c in COLUMN_GROUPS[g]]
    if drop_features:
        columns += [r[0] for r in con.execute("SELECT name FROM features").fetchall()]
    present = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'requests'").fetchall()}
    columns = [c for c in columns if c in present]
    if columns:
        con.execute("UPDATE requests SET " + ", ".join(f'"{c}" = NULL' for c in columns))
    if rows == "none":
        con.execute("DELETE FROM requests")
    elif rows != "all":
        # every k-th request, so that the few left still spread over the whole span
        n = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
        step = max(n // int(rows), 1)
        con.execute("DELETE FROM requests WHERE request_id NOT IN (SELECT request_id FROM "
                    "(SELECT request_id, row_number() OVER (ORDER BY ts) AS k FROM requests) "
                    "WHERE k % ? = 0 LIMIT ?)", [step, int(rows)])
    return con


def windows(kind: str, truth: dict, span: Window | None) -> dict[str, str]:
    baseline, incident = Window(*truth["baseline"]), Window(*truth["incident"])
    if kind == "truth":
        return {"baseline": str(baseline), "incident": str(incident)}
    if kind == "empty_baseline":
        return {"baseline": str(Window(baseline.start - timedelta(days=30),
                                       baseline.start - timedelta(days=29))),
                "incident": str(incident)}
    if kind == "tiny_incident":
        return {"baseline": str(baseline),
                "incident": str(Window(incident.start, incident.start + timedelta(minutes=1)))}
    if kind == "baseline_only":
        return {"baseline": str(baseline)}
    if kind in ("at_start", "at_end") and span is not None:
        if kind == "at_start":
            return {"incident": str(Window(span.start, span.start + timedelta(hours=1)))}
        return {"incident": str(Window(span.end - timedelta(minutes=1),
                                       span.end + timedelta(hours=1)))}
    return {}


def requests_in(con, window: Window) -> int:
    return con.execute("SELECT count(*) FROM requests WHERE ts >= ? AND ts < ?",
                       [window.start, window.end]).fetchall()[0][0]


def check_contract(result, con) -> dict:
    """The verdict follows DESIGN section 4 and abstains where it must; returns the payload."""
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert CONTRACT <= set(payload)
    pathway, mode = payload["pathway"], payload["failure_mode"]
    if pathway in (NONE, UNDETERMINED):
        assert mode == pathway
    else:
        assert pathway in PATHWAYS and mode in FAILURE_MODES[pathway]
    assert 0.0 <= payload["confidence"] <= 1.0
    assert set(payload["scores"]) == set(PATHWAYS)
    assert all(0.0 <= v <= 1.0 for v in payload["scores"].values())
    assert math.isclose(sum(payload["scores"].values()), 1.0, abs_tol=2e-3)
    for finding in payload["findings"]:
        assert finding["pathway"] in PATHWAYS and finding["severity"] in SEVERITIES
    for gap in payload["not_assessed"]:
        assert gap["check"] and gap["reason"]
    baseline, incident = Window(*payload["baseline"]), Window(*payload["incident"])
    # the guard: no finding rests on a window of too few requests (counted independently)
    n_base, n_inc = requests_in(con, result.baseline), requests_in(con, result.incident)
    for finding in result.diagnosis.findings():
        needs = REQUEST_WINDOWS.get(finding.diagnostic)
        if needs == "both" and not (finding.diagnostic == "integration.versions"
                                    and con.execute("SELECT count(*) FROM lineage")
                                    .fetchall()[0][0]):
            assert min(n_base, n_inc) >= MIN_WINDOW_ROWS, finding
        elif needs is not None:
            assert n_inc >= MIN_WINDOW_ROWS, finding
    tested = [r for i, r in result.diagnosis.results.items() if i != "case.traffic" and r.assessed]
    if not tested and not payload["findings"]:
        assert pathway == UNDETERMINED
    assert baseline.end <= incident.start or incident.end <= baseline.start
    return payload


@given(
    mode=st.sampled_from(MODES),
    keep_tables=st.sets(st.sampled_from(OPTIONAL_TABLES)),
    drop_groups=st.sets(st.sampled_from(sorted(COLUMN_GROUPS))),
    drop_features=st.booleans(),
    rows=st.sampled_from(REQUEST_ROWS),
    statuses=st.sampled_from(STATUSES),
    window=st.sampled_from(WINDOWS),
)
@settings(max_examples=EXAMPLES)
def test_any_subset_and_any_windows_give_a_contract_valid_verdict(
        cases, tmp_path_factory, mode, keep_tables, drop_groups, drop_features, rows, statuses,
        window):
    source, truth = cases[mode]
    target = tmp_path_factory.mktemp("partial") / "case.duckdb"
    con = partial(source, target, keep_tables, drop_groups, drop_features, rows, statuses)
    try:
        span = None
        if con.execute("SELECT count(*) FROM requests").fetchall()[0][0]:
            first, last = con.execute("SELECT min(ts), max(ts) FROM requests").fetchall()[0]
            span = Window(first, last + timedelta(microseconds=1))
        kw = windows(window, truth, span)
        note(f"windows {kw}")
        if not any(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                   for t in ("requests", "metrics", "events")):
            with pytest.raises(tk.errors.EmptyWindowError, match="no requests, metrics or"):
                classify_incident(con, **kw)
            return
        check_contract(classify_incident(con, **kw), con)
    finally:
        con.close()


# -- fixed examples of the shapes real exports have -----------------------------------------

@pytest.mark.parametrize(("keep", "drop", "rows", "expected"), [
    # an LLM trace: requests with times and nothing a diagnostic can test
    (set(), {"outputs", "host", "latency", "status", "versions"}, "all", {UNDETERMINED}),
    # a SageMaker capture sample: three requests with outputs and features, no baseline
    (set(), {"host", "latency", "status", "versions"}, "3", {UNDETERMINED}),
])
def test_exports_with_nothing_to_compare_abstain(cases, tmp_path, keep, drop, rows, expected):
    source, _ = cases["covariate_shift"]
    con = partial(source, tmp_path / "case.duckdb", keep, drop, drop_features=rows == "all",
                  rows=rows)
    payload = check_contract(classify_incident(con), con)
    assert payload["pathway"] in expected
    assert payload["findings"] == []
    assert payload["not_assessed"]


# -- the postmortem renders on partial cases -------------------------------------------------

#: Text that must never reach a reader of the postmortem.
WARNING_TEXT = ("Traceback", "Warning:", "warnings.warn", "site-packages", "Error:")


def _visible_text(page: str) -> str:
    """What a reader sees: tags, styles, scripts, images and preformatted SQL removed."""
    import html as htmllib
    import re

    page = re.sub(r"<(style|script|pre)\b.*?</\1>", " ", page, flags=re.S | re.I)
    page = re.sub(r"<img [^>]*>", " ", page)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "keep", "drop", "rows"), [
    ("metrics only", {"metrics"}, set(), "none"),
    ("requests without outputs, labels or events", {"metrics", "reference"}, {"outputs"},
     "all"),
    ("three requests", set(), set(), "3"),
])
def test_the_postmortem_renders_on_partial_cases(cases, tmp_path, shape, keep, drop, rows):
    source, _ = cases["covariate_shift"]
    con = partial(source, tmp_path / "case.duckdb", keep, drop, drop_features=False, rows=rows)
    expected = classify_incident(con).to_dict()
    con.close()
    rendered = tk.render_postmortem(tmp_path / "case.duckdb", tmp_path / "out")
    notebook = json.loads(rendered.notebook.read_text())
    outputs = [o for c in notebook["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"
                or o.get("name") == "stderr"], shape
    text = _visible_text(rendered.html.read_text())
    assert not [w for w in WARNING_TEXT if w in text], shape
    verdict = json.loads(rendered.results.read_text())["classification"]
    assert (verdict["pathway"], verdict["failure_mode"]) == (expected["pathway"],
                                                             expected["failure_mode"])
