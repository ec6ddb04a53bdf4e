"""Issue 23, class 6: two sweeps on one store never both compute a run (leases with owner and
heartbeat), and SIGTERM stops a sweep as Ctrl-C does (exit 143, one line, no worker left)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
import yaml

from medleak.experiments import ray_reaper
from medleak.experiments import sweep as sweep_module
from medleak.experiments.sqlite_store import SweepStore
from medleak.experiments.sweep import run_sweep
from medleak.experiments.sweep_spec import expand

TINY = {
    "data": {"source": "phantom", "image_size": 16, "batch_size": 2, "phantom_count": 12},
    "model": {"name": "lenet", "channels": 1},
    "attack": {"name": "rog", "iterations": 2, "prior": "none"},
    "metrics": {"gallery_size": 0},
}
LIVE_OTHER = f"{socket.gethostname()}:{os.getpid()}:other-sweep"  # a live process: this one


class RecordingBackend:
    """Runs nothing: answers each job at once and remembers which runs it was asked to compute.

    ``on_submit`` lets a test act as the other sweep at the moment this one starts a run.
    """

    workers = 1

    def __init__(self, on_submit=None) -> None:
        self.computed: list[str] = []
        self.on_submit = on_submit

    def submit(self, payload: dict) -> Future:
        self.computed.append(payload["run_id"])
        if self.on_submit is not None:
            self.on_submit(payload["run_id"])
        future: Future = Future()
        future.set_result(
            {"status": "finished", "metrics": {"ssim": 0.5}, "seconds": 0.0, "provenance": {}}
        )
        return future

    def reset(self) -> None:
        return None

    def close(self, abort: bool = False) -> None:
        return None


def _jobs(n: int):
    return expand({"base": TINY, "grid": {"seed": list(range(n))}})


def test_a_run_another_sweep_holds_is_skipped_once_that_sweep_finishes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "LEASE_POLL_SECONDS", 0.05)
    sweep = _jobs(3)
    held = sweep.jobs[0].run_id
    with SweepStore(tmp_path / "s.db") as store:
        assert store.acquire(held, LIVE_OTHER)  # the other sweep is computing run 0

        def other_sweep_finishes(run_id: str) -> None:
            if run_id == sweep.jobs[2].run_id:  # while this sweep works on its last run
                store.mark_running(held, "attack", "", sweep.jobs[0].config, None)
                store.finish(held, {"ssim": 0.7}, None, {}, 1.0, {})
                store.release(LIVE_OTHER, held)

        backend = RecordingBackend(other_sweep_finishes)
        summary = run_sweep(sweep, store, backend)
        runs = {r.run_id: r for r in store.runs()}
    assert held not in backend.computed  # never computed twice
    assert sorted(backend.computed) == sorted(j.run_id for j in sweep.jobs[1:])
    assert summary.skipped == 1 and summary.finished == 2
    assert runs[held].metrics == {"ssim": 0.7}  # the other sweep's result stands


def test_a_lease_is_taken_over_when_it_expires_or_its_owner_is_gone(tmp_path, monkeypatch):
    with SweepStore(tmp_path / "s.db") as store:
        assert store.acquire("r1", LIVE_OTHER)
        assert not store.acquire("r1", "me")  # live and fresh: not mine to take
        assert store.acquire("r1", "me", ttl=0.0)  # its heartbeat is older than the ttl
        assert store.acquire("r1", "me") and not store.acquire("r1", LIVE_OTHER)
        store.release("me")
        assert store.acquire("r1", LIVE_OTHER)
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        dead = f"{socket.gethostname()}:{gone.pid}:killed-sweep"
        assert store.acquire("r2", dead)
        assert store.acquire("r2", "me")  # its process is gone: no need to wait out the ttl
        elsewhere = "another-host:1:x"
        assert store.acquire("r3", elsewhere)
        assert not store.acquire("r3", "me")  # another machine: only the heartbeat can tell
        before = time.time()
        store.renew("me")
        assert store.finished_since("r2", before) is False

    # a sweep whose other holder stopped renewing computes the run itself
    monkeypatch.setattr(sweep_module, "LEASE_POLL_SECONDS", 0.05)
    monkeypatch.setattr("medleak.experiments.sqlite_store.LEASE_SECONDS", 0.3)
    sweep = _jobs(2)
    with SweepStore(tmp_path / "t.db") as store:
        store.acquire(sweep.jobs[0].run_id, elsewhere)
        backend = RecordingBackend()
        summary = run_sweep(sweep, store, backend)
    assert sorted(backend.computed) == sorted(j.run_id for j in sweep.jobs)
    assert summary.finished == 2


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_a_sweep_like_ctrl_c(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    slow = {**TINY, "attack": {**TINY["attack"], "iterations": 400}}
    spec.write_text(yaml.safe_dump({"base": slow, "grid": {"seed": [0, 1, 2, 3]}}))
    store = tmp_path / "s.db"
    command = [sys.executable, "-m", "medleak.cli", "sweep", str(spec), "--store", str(store),
               "--workers", "2", "--quiet"]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.3)
        workers = [p for p in _children(driver.pid) if _alive(p)]
        if len(workers) >= 2 and store.exists():
            with SweepStore(store, create=False) as db:
                if db.runs(status="running"):
                    break
    assert driver.poll() is None and workers, "the sweep ended before it could be stopped"
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 143
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["medleak sweep: interrupted"], err  # no leaked-semaphore warning either
    end = time.monotonic() + 10
    while time.monotonic() < end and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
    with SweepStore(store) as db:  # the interrupted sweep gave its leases back
        assert db.acquire(db.runs(status="running")[0].run_id, "next-sweep", ttl=3600)


def test_the_ray_reaper_kills_what_a_killed_driver_started_and_nothing_else(tmp_path):
    """The mechanism behind "after kill -9 of a Ray sweep its Ray processes are gone": a driver
    starts a detached process (as ``ray.init`` starts its agents), the driver is killed, the
    reaper kills that process; a process the driver did not start is left alone."""
    pid_file = tmp_path / "child.pid"
    driver_code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", driver_code])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    reaper = subprocess.Popen(
        [sys.executable, ray_reaper.__file__, str(driver.pid)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        time.sleep(1.5)  # the reaper has looked at the driver's descendants
        driver.kill()
        driver.wait()
        end = time.monotonic() + 10
        while time.monotonic() < end and _alive(child):
            time.sleep(0.2)
        assert not _alive(child), "the killed driver's process outlived it"
        assert reaper.wait(timeout=10) == 0
        assert bystander.poll() is None  # not the driver's: untouched
    finally:
        for process in (driver, bystander, reaper):
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_two_sweeps_on_one_store_compute_each_run_once(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    slow = {**TINY, "attack": {**TINY["attack"], "iterations": 15}}
    spec.write_text(yaml.safe_dump({"base": slow, "grid": {"seed": list(range(4))}}))
    store = tmp_path / "s.db"
    command = [sys.executable, "-m", "medleak.cli", "sweep", str(spec), "--store", str(store),
               "--quiet"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not store.exists():
        time.sleep(0.2)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    with SweepStore(store, create=False) as db:
        runs = db.runs()
    assert len(runs) == 4 and all(r.status == "finished" for r in runs)
    import sqlite3

    attempts = sqlite3.connect(store).execute("SELECT attempts FROM runs").fetchall()
    assert all(a == 1 for (a,) in attempts), attempts  # no run was computed by both sweeps
    finished = sum(int(out.split(" finished,")[0].split()[-1]) for out, _ in outs)
    assert finished == 4, outs
