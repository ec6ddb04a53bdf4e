"""Run a sweep: skip what the store has, run the rest on a backend, commit each run as it ends.

The driver alone writes the store. Trainings run before the attacks that target one of their
rounds. A run that raises is recorded as failed with its reason; a worker that dies (killed for
memory, say) breaks the process pool: the runs it held are retried one at a time, and the one
that kills its worker again is recorded as failed. Then the sweep goes on.

Two sweeps may share a store: a run being computed holds a lease in the store (owner and
heartbeat, renewed while it runs). Another sweep leaves a leased run alone, skips it once it is
finished, and takes it over only when the lease expires or its holder is gone.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import medleak
from medleak.errors import ConfigError
from medleak.experiments.sqlite_store import SweepStore, lease_owner
from medleak.experiments.sweep_spec import Job, Sweep
from medleak.experiments.sweep_worker import init_worker, run_job

DIED = "worker process died (killed by a signal, e.g. for memory)"
#: How often a running sweep renews its leases (well inside ``LEASE_SECONDS``), and how often it
#: looks again at a run another sweep holds.
HEARTBEAT_SECONDS = 20.0
LEASE_POLL_SECONDS = 5.0


@dataclass
class SweepSummary:
    total: int = 0
    skipped: int = 0
    finished: int = 0
    failed: int = 0
    other_version: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: runs found under an id an older run-id scheme gave them, re-keyed in place (old -> new)
    migrated: list[str] = field(default_factory=list)


def _round_blob(job: Job) -> str:
    return f"round-{job.config['model']['round']}.safetensors"


def plan_todo(sweep: Sweep, store: SweepStore, rerun: bool, summary: SweepSummary) -> list[Job]:
    """Jobs to run: new, failed, left 'running' by a crash, or (with --rerun) another version's."""
    todo: list[Job] = []
    wanted_rounds: dict[str, set[str]] = {}
    for job in sweep.attacks:
        if job.train_id is not None and job.config["model"].get("round") is not None:
            wanted_rounds.setdefault(job.train_id, set()).add(_round_blob(job))
    for job in sweep.jobs:
        # A store written by an earlier version keyed this run differently: re-key it once.
        moved = next((old for old in job.legacy_ids if store.rekey(old, job.run_id)), None)
        if moved:
            summary.migrated.append(f"{moved} -> {job.run_id}")
        state = store.status(job.run_id)
        if state is not None and state[0] == "finished":
            if moved or state[1] != medleak.__version__:
                why = f"older run id {moved}, " if moved else ""
                summary.other_version.append(f"{job.run_id} ({why}medleak {state[1]})")
                if rerun:
                    todo.append(job)
                    continue
            missing = wanted_rounds.get(job.run_id, set()) - set(store.blob_names(job.run_id))
            if job.kind == "train" and missing:
                todo.append(job)
                continue
            summary.skipped += 1
            continue
        todo.append(job)
    return todo


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class LocalBackend:
    """A pool of spawned worker processes, each tied to this driver (no stray workers)."""

    def __init__(self, workers: int, threads: int) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None
        self._known: dict[int, Any] = {}

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(os.getpid(), self.threads),
            )
        return self._pool

    def submit(self, payload: dict[str, Any]) -> Future:
        future = self._executor().submit(run_job, payload)
        self._remember()
        return future

    def _remember(self) -> None:
        """Keep each worker's handle: after a death its exit signal says why."""
        assert self._pool is not None
        self._known.update(getattr(self._pool, "_processes", {}) or {})

    def reset(self) -> str | None:
        """After a worker died: drop the broken pool; returns how the dead worker died.

        The dead worker's exit code is read before the survivors are killed, so SIGKILL here
        means an outside kill (the kernel's out-of-memory killer sends SIGKILL).
        """
        if self._pool is None:
            return None
        processes = list(self._known.values())
        killed = self._kill()
        self._pool, self._known = None, {}
        codes = [p.exitcode for p in processes if p not in killed]
        signals = {-c for c in codes if c is not None and c < 0 and -c != signal.SIGTERM}
        if not signals:
            return None
        names = sorted(_signal_name(n) for n in signals)
        if "SIGKILL" in names:
            return "SIGKILL, as the kernel's out-of-memory killer sends"
        return ", ".join(names) or None

    def _kill(self) -> list[Any]:
        """Kill the pool's live workers; returns those killed here (not the dead one)."""
        assert self._pool is not None
        processes = list(getattr(self._pool, "_processes", {}).values())
        killed = [p for p in processes if p.is_alive()]
        for process in killed:
            process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        return killed

    def close(self, abort: bool = False) -> None:
        if self._pool is None:
            return
        if abort:
            self._kill()
        else:
            self._pool.shutdown(wait=True)
        self._pool = None


def run_sweep(
    sweep: Sweep,
    store: SweepStore,
    backend: Any,
    rerun: bool = False,
    progress: Callable[[str, Job, dict[str, Any] | None], None] | None = None,
) -> SweepSummary:
    """Run what is not finished; returns counts (see :class:`SweepSummary`)."""
    summary = SweepSummary(total=len(sweep.jobs))
    todo = plan_todo(sweep, store, rerun, summary)
    owner, began = lease_owner(), time.time()
    deferred: dict[str, tuple[Job, float]] = {}  # leased by another sweep: job, when to look again
    renewed = began
    pending_train = {j.run_id for j in todo if j.kind == "train"}
    queue = [j for j in todo if j.kind == "train"] + [j for j in todo if j.kind == "attack"]
    failed_train: dict[str, str] = {}
    suspects: dict[str, int] = {}
    running: dict[Future, Job] = {}
    capacity = getattr(backend, "workers", 1)

    def report(event: str, job: Job, result: dict[str, Any] | None = None) -> None:
        if progress is not None:
            progress(event, job, result)

    def record_failure(job: Job, error: str, seconds: float | None = None) -> None:
        store.fail(job.run_id, error, seconds)
        summary.failed += 1
        summary.errors.append(f"{job.kind} {job.run_id} ({job.label}): {error}")
        if job.kind == "train":
            failed_train[job.run_id] = error
            pending_train.discard(job.run_id)
        report("failed", job, {"error": error})

    def ready(job: Job) -> bool:
        needs = job.kind == "attack" and job.config["model"].get("round") is not None
        return not (needs and job.train_id in pending_train)

    def payload(job: Job) -> dict[str, Any] | None:
        data = {**dataclasses.asdict(job)}
        if job.kind == "attack" and job.config["model"].get("round") is not None:
            if job.train_id in failed_train:
                record_failure(job, f"its training {job.train_id} failed")
                return None
            blob = store.blob(job.train_id or "", _round_blob(job))
            if blob is None:
                record_failure(job, f"training {job.train_id} has no saved {_round_blob(job)}")
                return None
            data["state"] = blob
        return data

    def take(job: Job) -> bool:
        """Lease the run; a run another sweep holds waits, one it finished meanwhile is skipped."""
        if store.finished_since(job.run_id, began):
            summary.skipped += 1
            if job.kind == "train":
                pending_train.discard(job.run_id)
            report("skipped", job)
            return False
        if not store.acquire(job.run_id, owner):
            deferred[job.run_id] = (job, time.monotonic() + LEASE_POLL_SECONDS)
            return False
        if store.finished_since(job.run_id, began):  # finished just before the lease was free
            store.release(owner, job.run_id)
            return take(job)
        return True

    try:
        while queue or running or deferred:
            now = time.monotonic()
            for run_id, (job, when) in list(deferred.items()):
                if when <= now:
                    del deferred[run_id]
                    queue.insert(0, job)
            alone = any(j.run_id in suspects for j in running.values())
            while queue and len(running) < capacity and not alone:
                pick = next((j for j in queue if ready(j)), None)
                if pick is None:
                    break
                if pick.run_id in suspects and running:
                    break  # a suspect runs alone, so a second death names it
                queue.remove(pick)
                if not take(pick):
                    continue
                data = payload(pick)
                if data is None:
                    store.release(owner, pick.run_id)
                    continue
                store.mark_running(pick.run_id, pick.kind, pick.label, pick.config, pick.train_id)
                running[backend.submit(data)] = pick
                report("started", pick)
                alone = pick.run_id in suspects
            if not running:
                if deferred and (not queue or not any(ready(j) for j in queue)):
                    # only runs another sweep holds are left (or wait for one): look again soon
                    time.sleep(max(0.0, min(w for _, w in deferred.values()) - time.monotonic()))
                elif queue and not any(ready(j) for j in queue):
                    raise RuntimeError("sweep scheduler stalled")  # unreachable by construction
                continue
            done, _ = wait(list(running), timeout=HEARTBEAT_SECONDS, return_when=FIRST_COMPLETED)
            if time.time() - renewed >= HEARTBEAT_SECONDS:
                store.renew(owner)
                renewed = time.time()
            broken: list[Job] = []
            for future in done:
                job = running.pop(future)
                store.release(owner, job.run_id)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken.append(job)
                    continue
                except Exception as exc:  # the backend could not run it at all
                    record_failure(job, f"{type(exc).__name__}: {exc}".splitlines()[0])
                    continue
                if result["status"] == "finished":
                    store.finish(
                        job.run_id,
                        result["metrics"],
                        result.get("curves"),
                        result.get("blobs", {}),
                        result["seconds"],
                        result["provenance"],
                    )
                    summary.finished += 1
                    if job.kind == "train":
                        pending_train.discard(job.run_id)
                    report("finished", job, result)
                else:
                    record_failure(job, result["error"], result.get("seconds"))
            if broken:
                broken.extend(running.values())
                running.clear()
                how = backend.reset()
                for job in broken:
                    suspects[job.run_id] = suspects.get(job.run_id, 0) + 1
                    if suspects[job.run_id] >= 2 or len(broken) == 1:
                        record_failure(job, f"{DIED}: {how}" if how else DIED)
                    else:
                        queue.insert(0, job)
                        report("retry", job)
        backend.close()
    except BaseException:
        backend.close(abort=True)
        store.release(owner)  # interrupted: another sweep may take these runs at once
        raise
    return summary
