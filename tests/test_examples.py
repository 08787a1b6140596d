"""The example notebooks run top to bottom (papermill, like the report templates)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

from tests.conftest import REALDATA

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "examples").glob("*.py"))
pytestmark = pytest.mark.slow
#: Walk-throughs of the real traces in ../shared/realdata (skipped when it is absent).
REAL = "-real-"


def test_there_is_a_quickstart_and_one_walkthrough_per_pathway():
    names = [p.stem for p in EXAMPLES]
    assert names[0] == "01-quickstart"
    for pathway in ("data", "model", "infrastructure", "integration"):
        assert any(f"-{pathway}-" in name for name in names), pathway


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    parameters = {"workdir": str(tmp_path / "work")}
    if REAL in path.stem:
        if not REALDATA.exists():
            pytest.skip(f"real data not available: {REALDATA}")
        parameters["realdata"] = str(REALDATA)
    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    source = tmp_path / f"{path.stem}.ipynb"
    nbformat.write(notebook, source)
    executed = papermill.execute_notebook(
        str(source), str(tmp_path / f"{path.stem}.out.ipynb"),
        parameters=parameters, kernel_name="python3",
        execution_timeout=600, progress_bar=False, cwd=str(tmp_path))
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []
    # the notebooks show their figures and tables
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "no figure rendered"
