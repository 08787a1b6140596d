"""`forensics demo` twice into the same folder (issue 21 item 14) and the classify progress bar
(issue 21 item 12)."""

from __future__ import annotations

import importlib
import io
import json

import pytest
from rich.console import Console

from toolkit.cli import main

incident_cli = importlib.import_module("toolkit.cli.incident")


@pytest.mark.slow
def test_demo_runs_twice_into_the_same_folder(tmp_path, capsys, monkeypatch):
    """The second run used to stop with 'out/demo/raw exists and is not an empty folder' after
    it had already deleted the case."""
    monkeypatch.setenv("CI", "true")
    out = tmp_path / "demo"
    first = main(["demo", "--out", str(out), "--rows", "1000"])
    first_out = capsys.readouterr()
    assert first == 0, first_out.err
    stale = out / "raw" / "requests" / "stale-part.csv"  # left from the first run
    stale.write_text("request_id,ts\n")
    second = main(["demo", "--out", str(out), "--rows", "1000"])
    second_out = capsys.readouterr()
    assert second == 0, second_out.err
    assert "postmortem:" in second_out.out and "Traceback" not in second_out.err
    assert not stale.exists()  # the raw case was replaced, not mixed with the old one
    assert json.loads((out / "raw" / "truth.json").read_text())["seed"] == 7
    assert " rows loaded, 0 rejected" in second_out.out
    results = json.loads((out / "postmortem" / "results.json").read_text())
    assert results["classification"]["pathway"]


def test_demo_refuses_to_delete_a_folder_it_did_not_write(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")
    raw = tmp_path / "demo" / "raw"
    raw.mkdir(parents=True)
    (raw / "precious.csv").write_text("keep me\n")
    code = main(["demo", "--out", str(tmp_path / "demo"), "--rows", "1000"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "did not write" in err
    assert (raw / "precious.csv").read_text() == "keep me\n"


def test_diagnostic_progress_names_the_running_diagnostic():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with incident_cli.DiagnosticProgress(console, enabled=True, transient=False) as progress:
        progress("data.drift", 0, 17)
        progress("model.ood\x1b[2J", 5, 17)
    shown = buffer.getvalue()
    assert "classifying: model.ood\\x1b[2J" in shown and "5/17" in shown
    assert "\x1b[2J" not in shown.replace("\\x1b[2J", "")
    quiet = io.StringIO()
    with incident_cli.DiagnosticProgress(Console(file=quiet), enabled=False) as progress:
        progress("data.drift", 0, 17)
    assert quiet.getvalue() == ""


def test_classify_passes_the_progress_callback_when_supported(monkeypatch, capsys, tmp_path):
    import toolkit as tk
    import toolkit.classify

    db = tmp_path / "case.duckdb"
    tk.connect(db).close()
    calls = []

    class Result:
        def summary(self) -> str:
            return "verdict: fake"

    def fake(con, *, incident=None, baseline=None, rules=None, progress=None):
        calls.append(progress)
        progress("infra.latency", 3, 17)
        return Result()

    monkeypatch.setattr(toolkit.classify, "classify_incident", fake)
    assert main(["classify", "--db", str(db)]) == 0
    assert isinstance(calls[0], incident_cli.DiagnosticProgress)
    assert capsys.readouterr().out.strip() == "verdict: fake"

    class Hostile:
        def summary(self) -> str:
            return "verdict: model v2\x1b]0;pwned\x07 on\nhost \x1b[2J"

        def to_json(self, indent=None) -> str:
            return json.dumps({"model_version": "v2\x9b2J\x1b[2J"}, ensure_ascii=False)

    def without(con, *, incident=None, baseline=None, rules=None):
        return Hostile()

    monkeypatch.setattr(toolkit.classify, "classify_incident", without)
    assert main(["classify", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "v2\\x1b]0;pwned\\x07 on\nhost \\x1b[2J" in shown
    assert main(["classify", "--db", str(db), "--json"]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x9b" not in shown
    assert json.loads(shown) == {"model_version": "v2\x9b2J\x1b[2J"}
