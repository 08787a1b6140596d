"""Execute a packaged notebook template with papermill and export it to HTML with nbconvert.

Templates are jupytext percent scripts (``notebooks/templates/*.py``, shipped in the wheel as
``toolkit.report.templates``) with one cell tagged ``parameters``. They are converted to a
notebook with an explicit kernel, executed by papermill with a cell timeout, and exported by
nbconvert (code hidden by default). A failing cell is an error, never a silent HTML.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from toolkit.errors import InvalidParameterError, ToolkitError

__all__ = ["Rendered", "render_template", "template_names", "ReportError", "KERNEL_NAME"]

#: Papermill runs templates on this kernel: Jupyter maps ``python3`` to the Python running the
#: toolkit (``sys.executable``), so the report sees the same installation.
KERNEL_NAME = "python3"
#: Per-cell timeout in seconds (papermill's default is "forever").
CELL_TIMEOUT = 900


class ReportError(ToolkitError, RuntimeError):
    """A template failed to execute or to export."""


@dataclass(frozen=True)
class Rendered:
    """Paths written by a render."""

    notebook: Path
    html: Path
    results: Path | None = None


def template_names() -> list[str]:
    """Names of the packaged templates."""
    folder = resources.files("toolkit.report.templates")
    return sorted(p.name[:-3] for p in folder.iterdir()
                  if p.name.endswith(".py") and not p.name.startswith("_"))


def load_template(name: str) -> Any:
    """The template ``name`` as a notebook node with an explicit kernel."""
    import jupytext

    if name not in template_names():
        raise InvalidParameterError(
            f"Unknown template {name!r}; choose one of {', '.join(template_names())}."
        )
    text = (resources.files("toolkit.report.templates") / f"{name}.py").read_text("utf-8")
    notebook = jupytext.reads(text, fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def render_template(
    name: str,
    parameters: dict[str, Any],
    out_dir: Path,
    *,
    stem: str,
    hide_code: bool = True,
    timeout: int = CELL_TIMEOUT,
) -> Rendered:
    """Execute template ``name`` with ``parameters`` into ``out_dir/stem.ipynb`` and ``.html``.

    Raises
    ------
    ReportError
        A cell failed (the executed notebook is still written, for debugging) or the export
        failed.
    """
    import nbformat
    import papermill

    for key, value in parameters.items():
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise InvalidParameterError(
                f"Template parameters must be JSON scalars; {key!r} is {type(value).__name__}."
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / f".{stem}.input.ipynb"
    executed = out_dir / f"{stem}.ipynb"
    nbformat.write(load_template(name), source)
    env_backup = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        execute(source, executed, parameters, timeout=timeout, cwd=out_dir)
    except papermill.PapermillExecutionError as exc:
        raise ReportError(
            f"Template {name!r} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}. "
            f"The executed notebook is at {executed}."
        ) from exc
    finally:
        source.unlink(missing_ok=True)
        if env_backup is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backup
    notebook = nbformat.read(executed, as_version=4)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if errors:
        raise ReportError(f"Template {name!r} produced an error output: {errors[0].get('ename')}")
    _divert_stderr(notebook, executed.with_suffix(".stderr.txt"))
    html_path = executed.with_suffix(".html")
    html_path.write_text(export_html(notebook, hide_code=hide_code), encoding="utf-8")
    return Rendered(executed, html_path)


def _divert_stderr(notebook: Any, log: Path) -> None:
    """Move stderr text (warnings a library printed) out of the notebook into ``log``.

    The executed ``.ipynb`` keeps it, for debugging (and tests fail on it); the reader's HTML
    never shows it.
    """
    lines = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines.append(str(output.get("text", "")))
            else:
                kept.append(output)
        cell["outputs"] = kept
    if lines:
        log.write_text("".join(lines), encoding="utf-8")
    else:
        log.unlink(missing_ok=True)


def execute(source: Path, executed: Path, parameters: dict[str, Any], *, timeout: int,
            cwd: Path) -> None:
    """Run ``source`` with papermill on :data:`KERNEL_NAME` into ``executed``.

    On POSIX systems the kernel talks to papermill over Unix domain sockets (ZeroMQ's ``ipc``
    transport, files in the user's Jupyter runtime directory, mode 0700) rather than over
    unencrypted localhost TCP ports that any local user could reach; ipykernel 7.4 and newer
    warn about the latter on every start. Windows has no ``ipc`` transport, and a runtime
    directory whose path is too long for a socket address (over 53 characters) cannot hold
    the sockets: both keep TCP.
    """
    import papermill

    extra = {"kernel_manager_class": _ipc_kernel_manager()} if _ipc_possible() else {}
    papermill.execute_notebook(
        str(source), str(executed), parameters=parameters, kernel_name=KERNEL_NAME,
        execution_timeout=timeout, progress_bar=False, log_output=False, cwd=str(cwd),
        **extra,
    )


def _ipc_possible() -> bool:
    """Whether kernel sockets fit in the runtime directory (``kernel-<uuid>-ipc-<n>`` there;
    Linux allows 107 bytes in a socket path, macOS 103)."""
    from jupyter_core.paths import jupyter_runtime_dir

    longest = len(os.fsencode(os.path.join(jupyter_runtime_dir(), f"kernel-{'0' * 36}-ipc-5")))
    return os.name == "posix" and longest <= 103


@functools.cache
def _ipc_kernel_manager() -> type:
    """nbclient's default kernel manager with the ``ipc`` transport as its default."""
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

    return IPCKernelManager


def export_html(notebook: Any, *, hide_code: bool = True) -> str:
    """nbconvert HTML (lab template), with code cells and prompts hidden when asked."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = hide_code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(notebook)
    return body


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return path
