"""Running sweeps: commit per run, resume by hash, failures recorded, SIGKILL-safe, no strays."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from medleak.experiments.sqlite_store import SweepStore
from medleak.experiments.sweep import DIED, LocalBackend, run_sweep
from medleak.experiments.sweep_spec import expand

TINY = {
    "data": {"source": "phantom", "image_size": 16, "batch_size": 2, "phantom_count": 12},
    "model": {"name": "lenet", "channels": 1},
    "attack": {"name": "rog", "iterations": 2, "prior": "none"},
    "metrics": {"gallery_size": 4},
}


def _sweep(tmp_path: Path, spec: dict, workers: int = 1):
    sweep = expand(spec)
    with SweepStore(tmp_path / "r.db") as store:
        summary = run_sweep(sweep, store, LocalBackend(workers, 1))
        runs = store.runs()
    return sweep, summary, runs


@pytest.mark.slow
def test_failures_are_recorded_and_resume_skips_finished(tmp_path: Path) -> None:
    spec = {
        "base": TINY,
        "grid": {"seed": [0, 1]},
        "list": [{"data.source": str(tmp_path / "missing")}],
    }
    sweep, summary, runs = _sweep(tmp_path, spec, workers=2)
    assert summary.finished == 2 and summary.failed == 1
    status = {r.run_id: r for r in runs}
    failed = [r for r in runs if r.status == "failed"]
    assert len(failed) == 1 and "missing" in (failed[0].error or "")
    good = [r for r in runs if r.status == "finished"]
    assert all(r.metrics["ssim"] is not None and r.metrics["bits_sent"] > 0 for r in good)
    assert stat.S_IMODE(os.stat(tmp_path / "r.db").st_mode) == 0o600
    with SweepStore(tmp_path / "r.db") as store:
        assert store.blob(good[0].run_id, "originals.png")[:4] == b"\x89PNG"
        again = run_sweep(sweep, store, LocalBackend(1, 1))
        after = {r.run_id: r for r in store.runs()}
    assert again.skipped == 2 and again.finished == 0 and again.failed == 1  # failed retried
    assert len(after) == 3
    for run_id, run in status.items():
        if run.status == "finished":
            assert after[run_id].metrics == run.metrics


def test_training_and_attack_on_a_saved_round(tmp_path: Path) -> None:
    spec = {
        "base": {**TINY, "data": {**TINY["data"], "phantom_count": 16}},
        "grid": {"model.round": [0, 1]},
        "train": {"clients": 2, "rounds": 1, "local_steps": 2, "local_batch_size": 4},
    }
    sweep, summary, runs = _sweep(tmp_path, spec)
    assert summary.failed == 0, summary.errors
    trains = [r for r in runs if r.kind == "train"]
    attacks = [r for r in runs if r.kind == "attack"]
    assert len(trains) == 1 and len(attacks) == 2
    assert len(trains[0].curves["accuracy"]) == 2  # before training and after round 1
    assert {a.train_id for a in attacks} == {trains[0].run_id}
    # Round 0 is the initial model: the attack sees the same update as without training.
    assert {a.metrics["model_round"] for a in attacks} == {0, 1}
    psnr = {a.metrics["model_round"]: a.metrics["psnr"] for a in attacks}
    assert psnr[0] != psnr[1]


class _OneWorkerKilled(LocalBackend):
    """Seed 1's worker is SIGKILLed, as the kernel's out-of-memory killer does, every time."""

    def submit(self, payload):  # type: ignore[no-untyped-def]
        if payload["config"]["seed"] == 1:
            future = self._executor().submit(signal.raise_signal, signal.SIGKILL)
            self._remember()
            return future
        return super().submit(payload)


@pytest.mark.slow
def test_a_worker_killed_for_memory_is_recorded_failed_and_the_sweep_goes_on(
    tmp_path: Path,
) -> None:
    sweep = expand({"base": TINY, "grid": {"seed": [0, 1, 2]}})
    with SweepStore(tmp_path / "r.db") as store:
        summary = run_sweep(sweep, store, _OneWorkerKilled(2, 1))
        runs = {r.config["seed"]: r for r in store.runs()}
    assert summary.finished == 2 and summary.failed == 1
    assert runs[1].status == "failed" and runs[1].error is not None
    assert runs[1].error.startswith(DIED)
    # the signal is named when the dead worker's exit code was read (best effort, racy)
    assert runs[1].error == DIED or "SIGKILL" in runs[1].error
    assert runs[0].status == runs[2].status == "finished"  # retried alone if it shared the pool
    assert all(runs[s].metrics["ssim"] is not None for s in (0, 2))


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_sigkill_mid_sweep_then_restart_runs_each_once_and_leaves_no_worker(
    tmp_path: Path,
) -> None:
    spec_path = tmp_path / "spec.yaml"
    # runs long enough (no analytic shortcut, 60 steps) that the kill lands mid-sweep even on an
    # idle machine, where 5 two-step runs could all finish between the poll and the kill
    slow_attack = {**TINY["attack"], "iterations": 60, "analytic": False}
    spec = {"base": {**TINY, "attack": slow_attack}, "grid": {"seed": list(range(8))}}
    spec_path.write_text(yaml.safe_dump(spec))
    store_path = tmp_path / "r.db"
    command = [
        sys.executable,
        "-m",
        "medleak.cli",
        "sweep",
        str(spec_path),
        "--store",
        str(store_path),
        "--workers",
        "2",
        "--quiet",
    ]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    finished = 0
    while time.monotonic() < deadline and finished < 1:
        time.sleep(0.1)
        if store_path.exists():
            with SweepStore(store_path) as store:
                finished = len(store.runs(status="finished"))
    assert finished >= 1 and driver.poll() is None, "sweep ended before it could be killed"
    workers = _children(driver.pid)
    assert workers
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    end = time.monotonic() + 20
    while time.monotonic() < end and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "a worker outlived the killed sweep"
    with SweepStore(store_path) as store:
        before = {r.run_id: r.metrics for r in store.runs(status="finished")}
    assert 1 <= len(before) < 8
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with SweepStore(store_path) as store:
        runs = store.runs()
    assert len(runs) == 8 and all(r.status == "finished" for r in runs)
    assert len({r.run_id for r in runs}) == 8
    for run in runs:
        if run.run_id in before:
            assert run.metrics == before[run.run_id]  # kept, not recomputed
    assert f"{len(before)} already in the store" in rerun.stdout
