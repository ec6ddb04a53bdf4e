"""The Ray backend gives the same hashes, statuses and metrics as the local one."""

from __future__ import annotations

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


def test_ray_matches_local(tmp_path: Path) -> None:
    from medleak.experiments.ray_backend import RayBackend

    local = _results(tmp_path / "local.db", LocalBackend(1, 1))
    ray = _results(tmp_path / "ray.db", RayBackend(2, 1))
    assert local.keys() == ray.keys()
    assert sorted(s for s, _ in local.values()) == ["failed", "finished", "finished"]
    for run_id, (status, metrics) in local.items():
        assert ray[run_id][0] == status
        assert ray[run_id][1] == metrics
