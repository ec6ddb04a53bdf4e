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


class Scheduler:
    """One sweep's run: the queue (trainings first), what is running, what another sweep holds,
    and the crash bookkeeping, in fields; ``run()`` loops until nothing is left.

    A run is leased in the store before it starts (a second sweep on the same store waits for it
    and skips it once finished); an attack on a training's round waits for that training; a
    worker death retries the runs it took down once, then runs a suspect alone so a second death
    names it.
    """

    def __init__(
        self,
        sweep: Sweep,
        store: SweepStore,
        backend: Any,
        rerun: bool,
        progress: Callable[[str, Job, dict[str, Any] | None], None] | None,
    ) -> None:
        self.store, self.backend, self.progress = store, backend, progress
        self.summary = SweepSummary(total=len(sweep.jobs))
        todo = plan_todo(sweep, store, rerun, self.summary)
        self.owner, self.began = lease_owner(), time.time()
        self.renewed = self.began
        #: leased by another sweep: job, when to look again
        self.deferred: dict[str, tuple[Job, float]] = {}
        self.pending_train = {j.run_id for j in todo if j.kind == "train"}
        self.queue = [j for j in todo if j.kind == "train"] + [
            j for j in todo if j.kind == "attack"
        ]
        self.failed_train: dict[str, str] = {}
        self.suspects: dict[str, int] = {}
        self.running: dict[Future, Job] = {}
        self.capacity = getattr(backend, "workers", 1)

    def report(self, event: str, job: Job, result: dict[str, Any] | None = None) -> None:
        if self.progress is not None:
            self.progress(event, job, result)

    def record_failure(self, job: Job, error: str, seconds: float | None = None) -> None:
        self.store.fail(job.run_id, error, seconds)
        self.summary.failed += 1
        self.summary.errors.append(f"{job.kind} {job.run_id} ({job.label}): {error}")
        if job.kind == "train":
            self.failed_train[job.run_id] = error
            self.pending_train.discard(job.run_id)
        self.report("failed", job, {"error": error})

    def ready(self, job: Job) -> bool:
        needs = job.kind == "attack" and job.config["model"].get("round") is not None
        return not (needs and job.train_id in self.pending_train)

    def payload(self, job: Job) -> dict[str, Any] | None:
        data = {**dataclasses.asdict(job)}
        if job.kind == "attack" and job.config["model"].get("round") is not None:
            if job.train_id in self.failed_train:
                self.record_failure(job, f"its training {job.train_id} failed")
                return None
            blob = self.store.blob(job.train_id or "", _round_blob(job))
            if blob is None:
                self.record_failure(job, f"training {job.train_id} has no saved {_round_blob(job)}")
                return None
            data["state"] = blob
        return data

    def take(self, job: Job) -> bool:
        """Lease the run; a run another sweep holds waits, one it finished meanwhile is skipped."""
        if self.store.finished_since(job.run_id, self.began):
            self.summary.skipped += 1
            if job.kind == "train":
                self.pending_train.discard(job.run_id)
            self.report("skipped", job)
            return False
        if not self.store.acquire(job.run_id, self.owner):
            self.deferred[job.run_id] = (job, time.monotonic() + LEASE_POLL_SECONDS)
            return False
        if self.store.finished_since(job.run_id, self.began):  # finished as the lease freed
            self.store.release(self.owner, job.run_id)
            return self.take(job)
        return True

    def requeue_deferred(self) -> None:
        now = time.monotonic()
        for run_id, (job, when) in list(self.deferred.items()):
            if when <= now:
                del self.deferred[run_id]
                self.queue.insert(0, job)

    def start_ready(self) -> None:
        """Submit queued runs while there is capacity (a suspect runs alone)."""
        alone = any(j.run_id in self.suspects for j in self.running.values())
        while self.queue and len(self.running) < self.capacity and not alone:
            pick = next((j for j in self.queue if self.ready(j)), None)
            if pick is None:
                break
            if pick.run_id in self.suspects and self.running:
                break  # a suspect runs alone, so a second death names it
            self.queue.remove(pick)
            if not self.take(pick):
                continue
            data = self.payload(pick)
            if data is None:
                self.store.release(self.owner, pick.run_id)
                continue
            self.store.mark_running(pick.run_id, pick.kind, pick.label, pick.config, pick.train_id)
            self.running[self.backend.submit(data)] = pick
            self.report("started", pick)
            alone = pick.run_id in self.suspects

    def idle(self) -> None:
        """Nothing running: wait for a run another sweep holds, or find the queue stalled."""
        if self.deferred and (not self.queue or not any(self.ready(j) for j in self.queue)):
            # only runs another sweep holds are left (or wait for one): look again soon
            soonest = min(w for _, w in self.deferred.values())
            time.sleep(max(0.0, soonest - time.monotonic()))
        elif self.queue and not any(self.ready(j) for j in self.queue):
            raise RuntimeError("sweep scheduler stalled")  # unreachable by construction

    def collect(self) -> None:
        """Wait for finished runs (waking for the heartbeat) and record them."""
        # sooner when a run another sweep holds is to be looked at
        timeout = min(HEARTBEAT_SECONDS, LEASE_POLL_SECONDS) if self.deferred else HEARTBEAT_SECONDS
        done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
        if time.time() - self.renewed >= HEARTBEAT_SECONDS:
            self.store.renew(self.owner)
            self.renewed = time.time()
        broken: list[Job] = []
        for future in done:
            job = self.running.pop(future)
            self.store.release(self.owner, job.run_id)
            try:
                result = future.result()
            except BrokenProcessPool:
                broken.append(job)
                continue
            except Exception as exc:  # the backend could not run it at all
                self.record_failure(job, f"{type(exc).__name__}: {exc}".splitlines()[0])
                continue
            self.record(job, result)
        if broken:
            self.recover(broken)

    def record(self, job: Job, result: dict[str, Any]) -> None:
        if result["status"] != "finished":
            self.record_failure(job, result["error"], result.get("seconds"))
            return
        self.store.finish(
            job.run_id,
            result["metrics"],
            result.get("curves"),
            result.get("blobs", {}),
            result["seconds"],
            result["provenance"],
        )
        self.summary.finished += 1
        if job.kind == "train":
            self.pending_train.discard(job.run_id)
        self.report("finished", job, result)

    def recover(self, broken: list[Job]) -> None:
        """A worker died: every run it took down is retried once, then failed as the suspect."""
        broken.extend(self.running.values())
        self.running.clear()
        how = self.backend.reset()
        for job in broken:
            self.suspects[job.run_id] = self.suspects.get(job.run_id, 0) + 1
            if self.suspects[job.run_id] >= 2 or len(broken) == 1:
                self.record_failure(job, f"{DIED}: {how}" if how else DIED)
            else:
                self.queue.insert(0, job)
                self.report("retry", job)

    def run(self) -> SweepSummary:
        try:
            while self.queue or self.running or self.deferred:
                self.requeue_deferred()
                self.start_ready()
                if not self.running:
                    self.idle()
                    continue
                self.collect()
            self.backend.close()
        except BaseException:
            self.backend.close(abort=True)
            self.store.release(self.owner)  # interrupted: another sweep may take these runs
            raise
        return self.summary


def run_sweep(
    sweep: Sweep,
    store: SweepStore,
    backend: Any,
    rerun: bool = False,
    progress: Callable[[str, Job, dict[str, Any] | None], None] | None = None,
) -> SweepSummary:
    """Run what is not finished; returns counts (see :class:`SweepSummary`)."""
    return Scheduler(sweep, store, backend, rerun, progress).run()
