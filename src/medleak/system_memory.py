"""How much memory this process may still use: one reading shared by every guard.

The attack's guard (``experiments.memory_guard``) and the data loaders' (``data.dataset``) ask
the same question before they allocate; the answer is the smaller of the system's available
memory and the cgroup's limit, plus what the process already holds.
"""

from __future__ import annotations

import os
from pathlib import Path


def current_rss_bytes() -> int:
    """Resident memory of this process now (Linux ``/proc``; 0 where unknown)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int | None:
    """What this process may grow to: its own resident memory plus the smaller headroom of the
    system's available memory and its cgroup's limit."""
    limits: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024 + current_rss_bytes())
    except (OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            used = _cgroup_usage()
            limits.append(int(text) - used + current_rss_bytes())
    return min(limits) if limits else None


def _cgroup_usage() -> int:
    for path in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        try:
            return int(Path(path).read_text().strip())
        except (OSError, ValueError):
            continue
    return 0
