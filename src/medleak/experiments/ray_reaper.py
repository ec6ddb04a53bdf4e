"""After a ``kill -9`` of a sweep driver, its local Ray goes too (within about a second).

Ray's own fate sharing stops the workers with the driver, but the agents of a local Ray started
by ``ray.init`` (dashboard agent, runtime-env agent) outlive it. The reaper is a small process
started beside the driver: while the driver lives it remembers the driver's descendants (the Ray
processes it started, by pid and start time, so a reused pid is never hit); when the driver is
gone it kills what it remembered and their children, then exits. It touches nothing else: not
another user's Ray, not a cluster joined by ``--address`` (no reaper is started for one).

    python .../medleak/experiments/ray_reaper.py DRIVER_PID   (stdlib only: starts in ms)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.5


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, state) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19]), fields[0]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            tree.setdefault(info[0], []).append(int(entry))
    return tree


def descendants(roots: list[int]) -> dict[int, int]:
    """pid -> start time of every live descendant of ``roots`` (roots excluded)."""
    tree, found, todo = _children(), {}, list(roots)
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found and child != os.getpid() and (info := _stat(child)):
                found[child] = info[1]
                todo.append(child)
    return found


def _alive(pid: int, started: int | None = None) -> bool:
    info = _stat(pid)
    return info is not None and info[2] != "Z" and (started is None or info[1] == started)


def reap(driver: int) -> int:
    """Watch ``driver``; once it is gone, kill the processes it had started. Returns how many."""
    known: dict[int, int] = {}
    while _alive(driver):
        known.update(descendants([driver]))
        time.sleep(POLL_SECONDS)
    # what the remembered processes started since the last look goes too
    known.update(descendants([pid for pid, start in known.items() if _alive(pid, start)]))
    killed = 0
    for pid, started in known.items():
        if _alive(pid, started):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: ray_reaper.py DRIVER_PID", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the driver's terminal is its own
    reap(int(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
