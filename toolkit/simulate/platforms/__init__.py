"""A simulated case written as a serving platform exports it, for the readers of
:mod:`toolkit.load.formats` (``forensics simulate --format ...``).

Each format writes what the platform's own export holds, following
``reference/log_formats.md``, and writes the rest of the case as the generic files of
:func:`~toolkit.simulate.write_case` (a real user has CloudWatch / Prometheus metrics, deploy
logs and a label table next to the platform export). ``forensics ingest`` recognises every file
by its content. The request id each export carries is the generic one, except Vertex AI's
(a NUMERIC: :func:`toolkit.simulate.platforms.vertex.request_ids`), so labels still join.

``sagemaker``
    ``datacapture/<endpoint>/AllTraffic/YYYY/MM/DD/HH/*.jsonl`` (requests: features,
    prediction, score) and ``groundtruth/YYYY/MM/DD/HH/*.jsonl`` (labels); generic: reference,
    features, metrics, events, lineage.
``kserve``
    ``event-display/<isvc>-NNNNN.log``, knative event_display dumps of the payload logger's
    CloudEvents with V2 bodies (requests); generic: labels and the rest.
``prometheus``
    ``prometheus/<query>.json``, ``query_range`` matrix responses (metrics); generic:
    requests, labels and the rest.
``kubernetes``
    ``kubernetes/events.json`` (``kubectl get events -A -o json``) and
    ``kubernetes/pods.jsonl`` (Pod objects): restarts, OOM kills, scaling, image deploys;
    generic: the other events, requests, labels and the rest.
``otlp``
    ``otlp/traces-NNNNN.jsonl``, collector file-exporter lines of OTLP/JSON server spans
    (requests); generic: labels and the rest.
``vertex``
    ``vertex/request_response_logging-NNNNNNNNNNNN.json``, the BigQuery NDJSON export of the
    logging table (answered requests); generic: labels (keyed by the Vertex ids) and the rest.

Each module's docstring lists which canonical columns its export carries, which it cannot,
and how values are rounded on the way (e.g. SageMaker's whole-second ``inferenceTime``).

Examples
--------
>>> import tempfile, toolkit as tk
>>> from toolkit.simulate import make_case
>>> case = make_case("memory_leak", seed=1, rows=2_000)
>>> out = write_platform_case(case, tempfile.mkdtemp() + "/case", "prometheus")
>>> sorted(p.name for p in (out / "prometheus").iterdir())[:2]
['DCGM_FI_DEV_FB.json', 'DCGM_FI_DEV_GPU_UTIL.json']
>>> report = tk.load(tk.connect(), out)
>>> report.rows_rejected, sorted({f.format for f in report.files if f.table == "metrics"})
(0, ['prometheus'])
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from toolkit.errors import InvalidParameterError
from toolkit.simulate.case import Case
from toolkit.simulate.platforms._common import Progress

__all__ = ["write_platform_case", "FORMATS"]

#: Platform formats the simulator writes (``generic`` is :func:`~toolkit.simulate.write_case`).
FORMATS: tuple[str, ...] = ("sagemaker", "kserve", "prometheus", "kubernetes", "otlp", "vertex")


def write_platform_case(
    case: Case,
    out_dir: str | os.PathLike[str],
    format: str,
    *,
    progress: Progress | None = None,
) -> Path:
    """Write ``case`` under ``out_dir`` as the platform ``format`` exports it.

    Parameters
    ----------
    case
        From :func:`~toolkit.simulate.make_case`.
    out_dir
        Target folder (created; must be empty if it exists).
    format
        One of :data:`FORMATS`, or ``generic``.
    progress
        Optional callback ``progress(rows_done, rows_total)`` after each request chunk.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InvalidParameterError
        Unknown format, or ``out_dir`` is a file or a folder that is not empty.
    """
    if format == "generic":
        from toolkit.simulate.writer import write_case

        return write_case(case, out_dir, progress=progress)
    if format not in FORMATS:
        raise InvalidParameterError(
            f"Unknown format {format!r}; choose one of generic, {', '.join(FORMATS)}.")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidParameterError(f"{out} exists and is not an empty folder.")
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"toolkit.simulate.platforms.{format}")
    module.write(case, out, progress)
    return out
