"""Run ids are hashes of the canonical configuration; the run-folder store round-trips a record;
experiments never imports the report."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from medleak.experiments.config import RunConfig, apply_overrides
from medleak.experiments.records import RunRecord, canonical_config, run_id
from medleak.experiments.stores import RunFolderStore


def test_run_id_ignores_threads_output_and_lpips_folder_but_not_numbers() -> None:
    base = RunConfig()
    assert run_id(base) == run_id(apply_overrides(base, {"threads": 1}))
    assert run_id(base) == run_id(apply_overrides(base, {"metrics.lpips_weights": "/x"}))
    assert run_id(base) != run_id(apply_overrides(base, {"seed": 1}))
    assert run_id(base) != run_id(apply_overrides(base, {"attack.iterations": 5}))


def test_run_id_resolves_defense_defaults_and_hashes_weight_files(tmp_path: Path) -> None:
    short = apply_overrides(RunConfig(), {"defenses": ["topk:ratio=0.1"]})
    full = apply_overrides(RunConfig(), {"defenses": ["topk:ratio=0.1,scope=tensor"]})
    assert run_id(short) == run_id(full)
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    with_a = apply_overrides(RunConfig(), {"model.weights": str(a)})
    with_b = apply_overrides(RunConfig(), {"model.weights": str(b)})
    assert canonical_config(with_a)["model"]["weights"].startswith("sha256:")
    assert run_id(with_a) == run_id(with_b)
    b.write_bytes(b"other")
    assert run_id(with_a) != run_id(with_b)


def test_run_folder_store_round_trips_a_record(tmp_path: Path) -> None:
    record = RunRecord(
        run_id="abc",
        metrics={"run_id": "abc", "psnr": 12.5},
        tensors={"originals": torch.rand(2, 1, 4, 4)},
        trace_csv="iteration,restart,loss\n0,0,1.0\n",
        config_yaml="seed: 0\n",
    )
    key = RunFolderStore(tmp_path / "run").save(record)
    back = RunFolderStore(key).load()
    assert back.run_id == "abc" and back.metrics == record.metrics
    assert torch.equal(back.tensors["originals"], record.tensors["originals"])
    assert back.trace_csv == record.trace_csv and back.config_yaml == record.config_yaml


def test_experiments_does_not_import_report() -> None:
    package = Path(__file__).resolve().parents[2] / "src" / "medleak" / "experiments"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n.startswith("medleak.report") for n in names), path.name
