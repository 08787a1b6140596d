"""When a batch job ran, and under which name: for records that carry no time of their own.

A SageMaker batch-transform capture record has no ``inferenceTime`` unless the job was created
with ``GenerateInferenceId``; its rows still need a ``ts``, and the rows of one job belong
together (one *batch run*), so that later diagnostics can compare run with run. The run's time
is taken from the first of:

1. the ``YYYY/MM/DD/HH`` folder the capture file sits in (the capture layout; the hour);
2. the job's description saved beside the file or in one of the two folders above it:
   the JSON of ``aws sagemaker describe-transform-job`` (or boto3's ``describe_transform_job``
   dumped with ``default=str``), whose ``TransformStartTime`` (else ``CreationTime``) is the
   run's time and ``TransformJobName`` its name; a folder holding several descriptions is
   ambiguous and not used;
3. a job name in the path: the SageMaker SDK names jobs ``<base>-YYYY-MM-DD-HH-MM-SS-mmm``
   (UTC), and people keep a job's output under a folder of that name;
4. the run time the caller gives (``run_time=...``, ``forensics ingest --run-time``).

Without any of them the records cannot be placed in time and are rejected (with a note that
says how to give the time).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolkit.errors import InvalidParameterError
from toolkit.load.formats._common import path_hour

__all__ = ["BatchRun", "batch_run", "parse_run_time"]

#: Largest job description read (a describe-transform-job answer is a few KB).
_MAX_DESCRIPTION_BYTES = 1 << 20
#: Folders above the capture file searched for a job description.
_LEVELS = 2
#: JSON files looked at per folder (their first bytes only, unless they name a transform job).
_MAX_CANDIDATES = 100
_JOB_NAME = re.compile(
    r"^(?P<name>.+?-(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})-(?P<h>\d{2})-(?P<mi>\d{2})-"
    r"(?P<s>\d{2})(?:-(?P<ms>\d{3}))?)$"
)


@dataclass(frozen=True)
class BatchRun:
    """One batch job's run.

    Attributes
    ----------
    time
        The run's time, ISO 8601 UTC.
    name
        How its rows are labelled (``endpoint``): the job's name, else the run's time.
    source
        Where the time comes from, for the load's note.
    """

    time: str
    name: str
    source: str


def parse_run_time(value: str | datetime) -> str:
    """A run time given by the caller, as ISO 8601 UTC; a time without offset is UTC.

    Examples
    --------
    >>> parse_run_time("2023-01-19T06:00:00+02:00")
    '2023-01-19T04:00:00+00:00'
    >>> parse_run_time("2023-01-19 06:00")
    '2023-01-19T06:00:00+00:00'

    Raises
    ------
    InvalidParameterError
        ``value`` is not an ISO 8601 time.
    """
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise InvalidParameterError(
                f"run time {value!r} is not an ISO 8601 time (e.g. 2023-01-19T06:00:00Z)."
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def batch_run(path: Path, run_time: str | datetime | None) -> BatchRun | None:
    """The batch run a capture file belongs to (see the module docstring), or ``None``."""
    hour = path_hour(path)
    description = _description(path)
    job = _job_name(path)
    name = description[1] if description else job[1] if job else None
    if hour is not None:
        time = parse_run_time(hour)
        return BatchRun(time, name or time, "the YYYY/MM/DD/HH folder")
    if description is not None:
        time, job_name, where = description
        return BatchRun(time, job_name, f"the job description {where}")
    if job is not None:
        time, job_name = job
        return BatchRun(time, job_name, f"the job name {job_name} in the path")
    if run_time is not None:
        time = parse_run_time(run_time)
        return BatchRun(time, time, "the run time given (run_time / --run-time)")
    return None


def _job_name(path: Path) -> tuple[str, str] | None:
    """The time and name of the nearest path part named like an SDK job."""
    for part in (path.name.split(".", 1)[0], *reversed(path.parent.parts)):
        match = _JOB_NAME.match(part)
        if match is None:
            continue
        g = match.groupdict()
        try:
            moment = datetime(int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"]),
                              int(g["mi"]), int(g["s"]), int(g["ms"] or 0) * 1000, tzinfo=UTC)
        except ValueError:  # 2023-13-45-...: not a timestamp after all
            continue
        return moment.isoformat(), match["name"]
    return None


def _description(path: Path) -> tuple[str, str, str] | None:
    """(time, job name, file) of the one transform-job description nearest to ``path``."""
    folder = path.parent
    for _ in range(_LEVELS + 1):
        found = [d for d in map(_read_description, _json_files(folder, path)) if d]
        if len(found) == 1:
            return found[0]
        if len(found) > 1 or folder.parent == folder:
            return None
        folder = folder.parent
    return None


def _json_files(folder: Path, capture: Path) -> list[Path]:
    try:
        found = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() == ".json" and p != capture and p.is_file()
                       and p.stat().st_size <= _MAX_DESCRIPTION_BYTES)
    except OSError:
        return []
    return found[:_MAX_CANDIDATES]


def _read_description(path: Path) -> tuple[str, str, str] | None:
    try:
        with open(path, "rb") as handle:
            if b'"TransformJobName"' not in handle.read(1 << 16):
                return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        job = json.loads(text)
    except ValueError:
        return None
    if not isinstance(job, dict) or not isinstance(job.get("TransformJobName"), str):
        return None
    for key in ("TransformStartTime", "CreationTime"):
        value = job.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                moment = datetime.fromtimestamp(value, tz=UTC)
            except (OverflowError, OSError, ValueError):
                continue
            return moment.isoformat(), job["TransformJobName"], path.name
        if isinstance(value, str):
            try:
                return parse_run_time(value), job["TransformJobName"], path.name
            except InvalidParameterError:
                continue
    return None
