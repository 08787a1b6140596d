"""The README's tour runs as written: its ``bash`` and ``python`` blocks, in order.

A block preceded by ``<!-- not run: reason -->`` is skipped (Airflow, long runs); blocks in
other languages (``toml``, ``cron``) are illustrations. The tour runs in a scratch copy of the
layout it expects (the repository root as working directory), with the environment's
``bin`` first on ``PATH`` as ``source .venv/bin/activate`` would put it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(r"(<!-- not run:[^>]*-->\s*\n)?```(\w+)\n(.*?)\n```", re.S)


def tour_blocks() -> list[tuple[str, str]]:
    """(language, code) of every runnable block of the tour, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    blocks = []
    for skip, language, code in _BLOCK.findall(text[start:end]):
        if not skip and language in ("bash", "python"):
            blocks.append((language, code))
    return blocks


def test_the_tour_has_blocks_of_both_languages():
    languages = [language for language, _ in tour_blocks()]
    assert languages.count("bash") >= 6 and languages.count("python") >= 2


@pytest.mark.slow
def test_readme_tour_runs_verbatim(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORENSICS_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    # `source .venv/bin/activate` needs the file; give the scratch root one that sets PATH.
    activate = tmp_path / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'export PATH="{bin_dir}:$PATH"\n')
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for number, (language, code) in enumerate(tour_blocks(), start=1):
        if language == "bash":
            out = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path,
                                 env=env, capture_output=True, text=True, timeout=900)
            assert out.returncode == 0, (
                f"README block {number} failed ({out.returncode}):\n{code}\n"
                f"--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}")
            assert "Traceback" not in out.stderr, out.stderr
        else:
            exec(compile(code, f"README block {number}", "exec"), namespace)  # noqa: S102
    # What the tour promises exists and says what the case holds.
    verdict = (tmp_path / "out-tour-verdict.json").read_text()
    assert '"failure_mode": "calibration_collapse"' in verdict
    assert (tmp_path / "out" / "tour" / "postmortem.html").stat().st_size > 10_000
    assert list((tmp_path / "out" / "weekly").glob("*.html"))
    # The gate refuses the int8 candidate on calibration alone, as the README says.
    junit = (tmp_path / "out" / "gate-junit.xml").read_text()
    assert 'failures="1"' in junit and "<failure" in junit
    assert junit.index("<failure") > junit.index('name="calibration"')
