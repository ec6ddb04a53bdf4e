"""The Ray backend: the same jobs as the local pool, with Ray as the engine (no scheduler here).

Each job is one Ray task with ``num_cpus`` = its torch threads, so results match the local
backend (same hashes, statuses and metrics). Results travel back to the driver, which alone
writes the store. Without ``address`` a local Ray is started and shut down with the sweep.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Any

from medleak.errors import ConfigError


def _remote_job(job: dict[str, Any], threads: int) -> dict[str, Any]:
    import torch

    from medleak.experiments.sweep_worker import run_job

    torch.set_num_threads(threads)
    return run_job(job)


class RayBackend:
    def __init__(self, workers: int, threads: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'medleak[ray]'") from None
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            # CPU-only tasks: opt in now to Ray's future default (leave accelerator variables
            # alone when a task asks for no GPU), which silences its warning on every sweep
            os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers * threads, **kwargs)
        self._task = ray.remote(num_cpus=threads, max_retries=0)(_remote_job)

    def submit(self, payload: dict[str, Any]) -> Future:
        return self._task.remote(payload, self.threads).future()

    def reset(self) -> str | None:
        """Ray replaces dead workers itself (and names the cause in the task's error)."""
        return None

    def close(self, abort: bool = False) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False
