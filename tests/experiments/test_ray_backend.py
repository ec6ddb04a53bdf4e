"""The Ray backend gives the same hashes, statuses and metrics as the local one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from medleak.experiments.sqlite_store import SweepStore
from medleak.experiments.sweep import LocalBackend, run_sweep
from medleak.experiments.sweep_spec import expand

pytest.importorskip("ray")

TIMING = {"seconds", "seconds_per_iteration", "cpu_seconds", "cpu", "threads", "git_commit"}


def _results(path: Path, backend) -> dict[str, tuple[str, dict]]:
    spec = {
        "base": {
            "data": {"source": "phantom", "image_size": 16, "batch_size": 2, "phantom_count": 12},
            "model": {"name": "lenet", "channels": 1},
            "attack": {"name": "rog", "iterations": 2, "prior": "none"},
            "metrics": {"gallery_size": 4},
        },
        "grid": {"seed": [0, 1]},
        "list": [{"data.source": str(path.parent / "missing")}],
    }
    with SweepStore(path) as store:
        run_sweep(expand(spec), store, backend)
        return {
            r.run_id: (r.status, {k: v for k, v in r.metrics.items() if k not in TIMING})
            for r in store.runs()
        }


@pytest.mark.slow
def test_ray_matches_local(tmp_path: Path) -> None:
    from medleak.experiments.ray_backend import RayBackend

    local = _results(tmp_path / "local.db", LocalBackend(1, 1))
    ray = _results(tmp_path / "ray.db", RayBackend(2, 1))
    assert local.keys() == ray.keys()
    assert sorted(s for s, _ in local.values()) == ["failed", "finished", "finished"]
    for run_id, (status, metrics) in local.items():
        assert ray[run_id][0] == status
        assert ray[run_id][1] == metrics


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def ray_head():
    """A ``ray start --head`` on 127.0.0.1 with free ports and its own temp dir; stopped after."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip("the ray command is not installed next to this Python")
    gcs, client, node, objects, grpc, listen, metrics, runtime = _free_ports(8)
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths are limited
    command = [
        str(ray_cli), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
        f"--port={gcs}", f"--ray-client-server-port={client}", f"--node-manager-port={node}",
        f"--object-manager-port={objects}", f"--dashboard-agent-grpc-port={grpc}",
        f"--dashboard-agent-listen-port={listen}", f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime}", "--include-dashboard=false", "--num-cpus=2",
        f"--temp-dir={temp}", "--disable-usage-stats", '--resources={"medleak_test_head": 1}',
    ]  # fmt: skip
    head = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert head.poll() is None, "ray start --head exited"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", gcs)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("ray head did not open its port in 180 s")
        yield f"127.0.0.1:{gcs}"
    finally:
        head.send_signal(signal.SIGTERM)  # --block stops every process it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # our session only: anything it left behind
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_joins_a_running_cluster_by_address(tmp_path: Path, ray_head: str) -> None:
    import ray

    from medleak.experiments.ray_backend import RayBackend

    backend = RayBackend(2, 1, address=ray_head)
    # joined that head (Ray names 127.0.0.1 by the node's address), did not start its own
    assert ray.get_runtime_context().gcs_address.rsplit(":", 1)[1] == ray_head.rsplit(":", 1)[1]
    assert ray.cluster_resources().get("medleak_test_head") == 1
    joined = _results(tmp_path / "ray.db", backend)
    assert not ray.is_initialized()  # the driver disconnected; the cluster is the head's
    local = _results(tmp_path / "local.db", LocalBackend(1, 1))
    assert joined.keys() == local.keys()
    for run_id, (status, metrics) in local.items():
        assert joined[run_id] == (status, metrics)
