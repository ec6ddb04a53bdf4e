"""The Ray backend: the same jobs as the local pool, with Ray as the engine (no scheduler here).

Each job is one Ray task with ``num_cpus`` = its torch threads, so results match the local
backend (same hashes, statuses and metrics). Results travel back to the driver, which alone
writes the store. Without ``address`` a local Ray is started and shut down with the sweep.
"""

from __future__ import annotations

import os
import socket
import time
from concurrent.futures import Future
from typing import Any

from medleak.errors import ConfigError


def _remote_job(job: dict[str, Any], threads: int) -> dict[str, Any]:
    import torch

    from medleak.experiments.sweep_worker import run_job

    torch.set_num_threads(threads)
    return run_job(job)


#: How long a cluster address may take to answer (Ray itself retries for minutes).
CONNECT_SECONDS = 10.0
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, stream 0
SETTINGS_FRAME = 0x04


def check_reachable(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Refuse, in one line and within ``timeout``, a Ray address nobody answers at.

    ``auto`` (and other words without a port) are left to Ray; ``host:port`` and
    ``ray://host:port`` get one TCP connection attempt first.
    """
    target = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    if not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address}: port {port} is not a port number")
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection(
            (host.strip("[]") or "127.0.0.1", int(port)), timeout
        ) as conn:
            # Ray's cluster speaks gRPC (HTTP/2): a live one answers the client preface with a
            # SETTINGS frame at once; a port that accepts and stays silent is not a cluster
            conn.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            header = conn.recv(9)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(
            f"no Ray cluster answers at --address {address} ({reason}); start one with "
            "'ray start --head' or leave --address out for a local Ray"
        ) from None
    if len(header) < 4 or header[3] != SETTINGS_FRAME:
        raise ConfigError(
            f"--address {address} answers, but not as a Ray cluster (no gRPC reply); check the "
            "host and port ('ray status' on the head prints them)"
        )


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
                check_reachable(address)
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
