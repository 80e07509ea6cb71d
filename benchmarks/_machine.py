"""What every benchmark records about the machine it ran on (imported by the scripts beside
it; not part of the package)."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what the platform reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def base_info() -> dict[str, Any]:
    """Platform, CPU, CPU counts (all and usable by this process), Python and numpy."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
