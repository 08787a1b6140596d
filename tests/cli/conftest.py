"""Shared fixtures of the command-line tests."""

from __future__ import annotations

import importlib
import subprocess

import pytest

from toolkit.cli import main

cli_app = importlib.import_module("toolkit.cli.app")  # the module (toolkit.cli.app is the app)


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The one line a refused command printed (``error: ...``), after checking its exit code
    and that no traceback came with it."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def run(capsys, monkeypatch):
    """``forensics ARGS`` in this process (the console script's main(); a subprocess per call
    would cost seconds of imports), with stdout and stderr captured."""

    def invoke(*args: str, env: dict | None = None, width: int = 200):
        monkeypatch.setenv("CI", "true")
        monkeypatch.setattr(cli_app.console, "_width", width)
        monkeypatch.setattr(cli_app.err_console, "_width", width)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        for key in env or {}:
            monkeypatch.delenv(key)
        return subprocess.CompletedProcess(list(args), code, out, err)

    return invoke
