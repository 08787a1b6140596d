"""HTML views of diagnostic results and of a diagnosis: self-contained, escaped, navigable."""

from __future__ import annotations

import base64
import html
from datetime import timedelta
from html.parser import HTMLParser

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose import run_diagnostics
from toolkit.diagnose.integration.versions import version_matrix
from toolkit.diagnose.registry import UnknownDiagnosticError
from toolkit.errors import InvalidParameterError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=10))
INCIDENT = (T0 + timedelta(hours=10), T0 + timedelta(hours=16))
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def case():
    """A model version named like an XSS payload is rolled back onto 40% of the traffic at
    10:00 and fails there (the version skew case of test_versions, hostile name)."""
    rng = np.random.default_rng(0)
    k = np.arange(960)
    ts = T0 + pd.to_timedelta(k, unit="min")
    skewed = (k >= 600) & (k % 5 < 2)
    requests = pd.DataFrame({
        "request_id": [f"r{i}" for i in k], "ts": ts,
        "model_version": np.where(skewed, HOSTILE, "m2"), "pipeline_version": "p2",
        "client_version": np.where(k % 2, "web-1", "ios-1"),
        "score": np.where(skewed, rng.uniform(0.9, 1.0, 960), rng.uniform(0.55, 0.8, 960)),
        "prediction": "fraud"})
    ok = np.where(skewed, rng.random(960) < 0.4, rng.random(960) < 0.9)
    labels = pd.DataFrame({"request_id": requests["request_id"],
                           "label": np.where(ok, "fraud", "legit"),
                           "labeled_at": ts + timedelta(hours=1)}).iloc[::2]
    lineage = pd.DataFrame({"release": ["r1", "r2"], "model_version": [HOSTILE, "m2"],
                            "pipeline_version": ["p1", "p2"], "client_version": [None, None]})
    events = pd.DataFrame({"ts": [T0 + timedelta(hours=10)], "kind": ["rollback"],
                           "artifact": ["model"], "version": [HOSTILE]})
    return make_case(requests=requests, labels=labels, lineage=lineage, events=events)


@pytest.fixture(scope="module")
def result(case):
    return version_matrix(case, BASELINE, INCIDENT, bucket=timedelta(hours=1))


class _Document(HTMLParser):
    """Collects tags, image sources, the title and the text of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False
        self.table_rows = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "title":
            self._in_title = True
        if tag == "tr":
            self.table_rows += 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        self.text.append(data)


def _parse(markup: str) -> _Document:
    document = _Document()
    document.feed(markup)
    document.close()
    return document


def test_to_html_escapes_the_findings_and_embeds_the_figure(result):
    found = result.findings()
    assert found and any(HOSTILE in f.summary for f in found), [f.summary for f in found]
    assert HOSTILE in result.table.astype(str).to_string()
    open_before = plt.get_fignums()
    fragment = result.to_html()
    assert plt.get_fignums() == open_before  # the figure drawn for the snippet is closed
    assert "<script" not in fragment
    assert html.escape(HOSTILE) in fragment
    for finding in found:
        assert html.escape(finding.summary) in fragment
    parsed = _parse(fragment)
    # the parsed text gives back the hostile value as text, never as an element
    assert HOSTILE in "".join(parsed.text) and "script" not in parsed.tags
    assert len(parsed.images) == 1 and parsed.images[0].startswith("data:image/png;base64,")
    png = base64.b64decode(parsed.images[0].split(",", 1)[1], validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_to_html_limits_the_table_and_says_how_many_rows_are_left_out(result):
    n = len(result.table)
    assert n > 3
    parsed = _parse(result.to_html(max_rows=3, figure=False))
    headline = len(result.headline())
    assert parsed.table_rows == headline + 1 + 3  # headline table, header row, 3 rows
    assert f"{n - 3:,} more rows not shown (of {n:,}" in "".join(parsed.text)
    assert not parsed.images
    # floats rounded for reading (4 significant digits), not 0.6734981...
    cells = set(parsed.text)
    for value in result.table["mean_score"].head(3):
        assert f"{value:.4g}" in cells and repr(float(value)) not in cells
    with pytest.raises(InvalidParameterError, match="max_rows"):
        result.to_html(max_rows=0)


def test_repr_html_is_the_fragment_without_the_figure(result):
    assert result._repr_html_() == result.to_html(figure=False)
    assert "<img" not in result._repr_html_()


def test_save_html_writes_a_parseable_document(result, tmp_path):
    path = result.save_html(tmp_path / "versions.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parsed = _parse(text)
    assert parsed.tags[:3] == ["html", "head", "meta"] and "body" in parsed.tags
    assert result.id in parsed.title
    assert len(parsed.images) == 1
    assert "<script" not in text and html.escape(HOSTILE) in text


@pytest.mark.parametrize("name, message", [("versions.png", "html or .htm"),
                                           ("versions", "without suffix"),
                                           ("missing/versions.html", "does not exist")])
def test_save_html_validates_the_path(result, tmp_path, name, message):
    with pytest.raises(InvalidParameterError, match=message):
        result.save_html(tmp_path / name)
    assert not (tmp_path / name).exists()


def test_a_hostile_value_in_any_table_cell_is_escaped(result):
    from dataclasses import replace

    table = result.table.copy()
    table[HOSTILE] = HOSTILE
    table.loc[table.index[0], HOSTILE] = "&amp;"
    fragment = replace(result, table=table).to_html(figure=False)
    assert "<script" not in fragment
    assert fragment.count(html.escape(HOSTILE)) >= 2  # header and cell
    assert "&amp;amp;" in fragment


def test_diagnosis_is_a_mapping_with_an_html_table(case):
    ids = ["integration.versions", "data.drift", "infra.hosts"]
    diagnosis = run_diagnostics(case, BASELINE, INCIDENT, ids=ids)
    assert list(diagnosis) == list(diagnosis.keys()) == [
        i for i in diagnosis.results if i in ids]
    assert set(diagnosis.keys()) == {i for i in ids if i in diagnosis.results}
    assert len(diagnosis) == len(diagnosis.results) == 3
    assert "data.drift" in diagnosis and "data.nope" not in diagnosis and [] not in diagnosis
    assert dict(diagnosis.items()) == diagnosis.results
    assert list(diagnosis.values()) == list(diagnosis.results.values())
    assert diagnosis.get("data.nope") is None
    assert diagnosis["integration.versions"] is diagnosis.results["integration.versions"]

    markup = diagnosis._repr_html_()
    parsed = _parse(markup)
    assert parsed.table_rows == 1 + 3
    assert "<script" not in markup and html.escape(HOSTILE) in markup
    versions = diagnosis["integration.versions"]
    top = max(versions.findings(), key=lambda f: f.rank)
    assert html.escape(f"[{top.severity}] {top.summary}") in markup
    assert len(repr(diagnosis)) < 200 and "3 diagnostics" in repr(diagnosis)


def test_a_wrong_key_lists_the_valid_ids_and_suggests_the_closest(case):
    diagnosis = run_diagnostics(case, BASELINE, INCIDENT, ids=["data.drift", "infra.hosts"])
    with pytest.raises(KeyError) as caught:
        diagnosis["data.drfit"]
    message = str(caught.value)
    assert isinstance(caught.value, UnknownDiagnosticError)
    assert message.startswith("No diagnostic 'data.drfit' in this diagnosis. "
                              "Did you mean 'data.drift'?")
    assert message.endswith("Valid ids: data.drift, infra.hosts.")
    with pytest.raises(KeyError, match="Valid ids: data.drift, infra.hosts") as caught:
        diagnosis["zzz"]
    assert "Did you mean" not in str(caught.value)
