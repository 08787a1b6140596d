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

import resource
import sys
from pathlib import Path

__all__ = ["peak_rss_mib"]


def peak_rss_mib() -> float:
    """This process image's peak resident set size, in MiB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024
