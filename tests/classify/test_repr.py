"""The classification's notebook view: verdict, score bars, evidence, gaps, remediation,
everything escaped (values come from logs)."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest

from tests.diagnose.test_html import BASELINE, HOSTILE, INCIDENT
from tests.diagnose.test_html import case as case  # noqa: F401  (the fixture)
from toolkit.classify import classify_incident, remediation_for, score
from toolkit.classify.api import Classification
from toolkit.classify.engine import Evidence
from toolkit.classify.rules import _parse
from toolkit.diagnose import Diagnosis, Finding
from toolkit.diagnose._base import NotAssessed
from toolkit.types import Window


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


def _parse_html(markup: str) -> _Tags:
    parsed = _Tags()
    parsed.feed(markup)
    parsed.close()
    return parsed


@pytest.fixture(scope="module")
def classification(case):  # noqa: F811
    return classify_incident(case, incident=INCIDENT, baseline=BASELINE)


def test_the_view_escapes_a_hostile_model_version(classification):
    findings = classification.diagnosis.findings()
    assert any(HOSTILE in f.summary for f in findings)
    markup = classification._repr_html_()
    assert "<script" not in markup and html.escape(HOSTILE) in markup
    parsed = _parse_html(markup)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    # no external resource, no event handler
    for attrs in parsed.attrs:
        assert not any(k.startswith("on") or k in ("src", "href") for k in attrs), attrs
    assert HOSTILE in "".join(parsed.text)


def test_the_view_shows_verdict_scores_evidence_and_remediation(classification):
    v = classification.verdict
    markup = classification._repr_html_()
    text = "".join(_parse_html(markup).text)
    assert f"confidence{v.confidence:.2f}" in text
    if v.pathway not in ("none", "undetermined"):
        assert f"Verdict: {v.pathway} / {v.failure_mode.replace('_', ' ')}" in text
    # one bar per pathway, its width the score in percent, in the order of the scores
    widths = re.findall(r"width:([0-9.]+)%", markup)
    ranked = sorted(v.scores.items(), key=lambda kv: -kv[1])
    assert [float(w) for w in widths[:len(ranked)]] == [round(s * 100, 1) for _, s in ranked]
    for finding in classification.diagnosis.findings()[:30]:
        assert html.escape(finding.summary) in markup
    for action in v.remediation:
        assert html.escape(action) in markup
    for gap in classification.not_assessed:
        assert html.escape(gap.reason) in markup


def test_an_undetermined_verdict_shows_its_candidates_as_such():
    rules = _parse({"scoring": {"base": -3.0, "min_margin": 0.15},
                    "rules": [{"name": "a", "when": [{"finding": "x.a"}],
                               "add": {"covariate_shift": 5.0}},
                              {"name": "b", "when": [{"finding": "x.b"}],
                               "add": {"memory_leak": 5.0}}]}, "test")
    baseline, incident = Window(*BASELINE), Window(*INCIDENT)
    found = (Finding("x.a", "data", "high", 1.0, 0.0, "a"),
             Finding("x.b", "infrastructure", "high", 1.0, 0.0, "b"))
    gaps = (NotAssessed("model.performance", "no labels"),)
    import pandas as pd

    events = pd.DataFrame(columns=["ts", "kind", "artifact", "version", "host", "detail"])
    verdict = score(Evidence(found, gaps, events, baseline, incident), rules)
    assert verdict.pathway == "undetermined"
    result = Classification(verdict, baseline, incident, Diagnosis(baseline, incident, {}))
    markup = result._repr_html_()
    p = verdict.mode_scores["covariate_shift"]
    assert html.escape(f"If it is covariate shift (candidate, p={p:.2f}): ") in markup
    # the text summary (forensics classify) shows every step and candidate, not the first 4
    summary = result.summary()
    for step in verdict.remediation:
        assert f"  - {step}" in summary
    assert " ".join(remediation_for("memory_leak")) in summary
    assert result.to_dict()["remediation"] == list(verdict.remediation)
