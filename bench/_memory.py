"""Peak resident memory of this process, for the benchmark children.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not the child's own peak on Linux: ``execve`` folds the
peak of the process image it replaces into it, and ``subprocess`` starts children by
``vfork`` + ``exec`` from the parent's image. A child started by a parent that had just
simulated and ingested 10M rows reported the parent's 3.1 GB, however little it used itself.
``VmHWM`` in ``/proc/self/status`` belongs to the current image only, so it is read where it
exists; elsewhere ``ru_maxrss`` is the best there is (KiB on Linux, bytes on macOS).

Example (a parent holding 2 GiB starts a child that uses 11 MiB): ``ru_maxrss`` 2,059 MiB,
``VmHWM`` 11 MiB.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

__all__ = ["peak_rss_mib", "children_peak_rss_mib"]


def peak_rss_mib() -> float:
    """This process image's peak resident set size, in MiB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def children_peak_rss_mib() -> float:
    """The sum of the peak resident set sizes of this process's living descendants, in MiB
    (e.g. the JVM that pyspark starts), read from their ``VmHWM``; 0 where ``/proc`` is
    missing."""
    proc = Path("/proc")
    if not (proc / "self").exists():
        return 0.0
    total, pending, seen = 0.0, _children(os.getpid()), set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        pending += _children(pid)
        try:
            status = (proc / str(pid) / "status").read_text()
        except OSError:  # it ended meanwhile
            continue
        total += next((int(line.split()[1]) / 1024 for line in status.splitlines()
                       if line.startswith("VmHWM:")), 0.0)
    return total


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return out
