"""The lake spec of a report (render_postmortem / render_weekly with engine='spark') is checked
by the same rule as the command line's --tables: LakeSource.parse, before any notebook runs."""

from __future__ import annotations

import pytest

import toolkit as tk
from toolkit.cli.lake import check_source
from toolkit.errors import InvalidParameterError
from toolkit.store.lake import LakeSource

#: One of each kind: C0 (a line break, a tab, ESC), DEL, a C1 control (0x9b, a one-byte CSI on
#: some terminals), a lone surrogate (an undecodable byte of a command-line argument).
CONTROLS = ["\n", "\t", "\x1b", "\x7f", "\x85", "\x9b", "\udcff"]


@pytest.fixture
def notebooks(monkeypatch):
    started = []
    monkeypatch.setattr("toolkit.report.render_template", lambda *a, **k: started.append(a))
    return started


@pytest.mark.parametrize("char", CONTROLS)
def test_report_and_command_line_refuse_the_same_characters(tmp_path, notebooks, char):
    location = f"/lake/req{char}uests"
    message = "holds a control character"
    with pytest.raises(InvalidParameterError, match=message):
        LakeSource.parse("requests", location)
    with pytest.raises(InvalidParameterError, match=message):
        check_source(None, "spark", [f"requests={location}"])
    with pytest.raises(InvalidParameterError, match=message):
        tk.render_postmortem(None, tmp_path / "pm", engine="spark",
                             tables={"requests": location})
    with pytest.raises(InvalidParameterError, match=message):
        tk.render_weekly(None, tmp_path / "wk", week="2026-W07", engine="spark",
                         tables={"requests": location})
    assert notebooks == []


def test_a_control_character_at_either_end_is_not_stripped_away(tmp_path, notebooks):
    """parse strips spaces from a location; a trailing line break is refused, not stripped."""
    with pytest.raises(InvalidParameterError, match="control character"):
        tk.render_postmortem(None, tmp_path / "pm", engine="spark",
                             tables={"requests": "/lake/requests\n"})
    assert notebooks == []


def test_a_comma_in_a_location_is_refused_by_the_report(tmp_path, notebooks):
    """A mapping's location with a comma would split the spec the notebook gets."""
    with pytest.raises(InvalidParameterError, match="holds a comma"):
        tk.render_postmortem(None, tmp_path / "pm", engine="spark",
                             tables={"requests": "/lake/a,labels=/etc"})
    assert notebooks == []


def test_plain_text_and_unicode_locations_pass(tmp_path, notebooks):
    assert LakeSource.parse("requests", " /lake/réquêts ") == LakeSource(
        "requests", "/lake/réquêts", "parquet")
    assert check_source(None, "spark", ["requests=/lake/日本"]) == {"requests": "/lake/日本"}
