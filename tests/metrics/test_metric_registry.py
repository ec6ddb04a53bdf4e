"""Metrics are registered objects: one defined in this file reaches metrics.json and the report;
a metric whose input is missing is absent with the reason; every registered metric is sound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medleak.experiments.config import from_dict
from medleak.experiments.run import execute, plan_run
from medleak.experiments.store import write_run
from medleak.metrics import evaluate
from medleak.metrics.base import NEEDS, Cell, Inputs, Metric, Value, per_image_value
from medleak.metrics.registry import METRICS
from medleak.report import render_run

TINY = {
    "data": {"source": "phantom", "image_size": 16, "batch_size": 2, "phantom_count": 8},
    "model": {"name": "lenet", "channels": 1},
    "attack": {"name": "rog", "iterations": 2, "prior": "none"},
    "metrics": {"gallery_size": 4},
}


def _mean_abs_error(inputs: Inputs) -> Value:
    diff = (inputs.reconstructions - inputs.originals).abs().flatten(1).mean(1)
    return per_image_value("mae", diff.tolist())


MAE = Metric(
    "mae",
    "mean absolute error",
    False,
    _mean_abs_error,
    per_image=(Cell("mae", "MAE per image", 4),),
    compare=(Cell("mae", "MAE", 4),),
)


def test_a_metric_registered_in_one_file_reaches_metrics_json_and_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(METRICS, "mae", MAE)
    result = execute(plan_run(from_dict(TINY)))
    saved = write_run(result, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    per_image = [row["mae"] for row in record["per_image"]]
    assert all(isinstance(v, float) and v > 0 for v in per_image)
    assert record["mae"] == pytest.approx(sum(per_image) / len(per_image))
    # the report renders it with the label and digits the registry gives
    render_run(tmp_path / "run", saved)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "MAE per image" in html
    assert f"{per_image[0]:.4f}" in html


def test_a_metric_whose_input_is_missing_is_absent_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def needs_gallery(inputs: Inputs) -> Value:
        calls.append(1)
        return Value({"gallery_gap": 1.0})

    metric = Metric("gallery_gap", "gallery gap", True, needs_gallery, needs=("gallery",))
    monkeypatch.setitem(METRICS, "gallery_gap", metric)
    x = torch.rand(2, 1, 16, 16)
    kwargs = {"true_labels": torch.zeros(2), "sources": ["a", "b"], "patients": None}
    out = evaluate(x, x, **kwargs).to_dict()
    assert out["gallery_gap"] is None and out["gallery_gap_reason"] == NEEDS["gallery"]
    assert calls == [] and all(row["gallery_gap"] is None for row in out["per_image"])
    out = evaluate(x, x, gallery=torch.rand(3, 1, 16, 16), **kwargs).to_dict()
    assert out["gallery_gap"] == 1.0 and "gallery_gap_reason" not in out


def test_every_registered_metric_declares_a_known_direction_and_needs() -> None:
    x = torch.rand(2, 1, 16, 16)
    out = evaluate(
        x,
        x.flip(0),
        initial=torch.rand_like(x),
        true_labels=torch.tensor([0, 1]),
        used_labels=torch.tensor([0, 0]),
        sources=["a", "b"],
        patients=None,
    ).to_dict()
    for name, metric in METRICS.items():
        assert metric.name == name and isinstance(metric.higher_leaks, bool)
        assert set(metric.needs) <= set(NEEDS)
        assert name in out  # its headline is in metrics.json (a number or None with a reason)
        assert out[name] is not None or out.get(f"{name}_reason"), name
        for key in metric.column_keys:
            assert all(key in row for row in out["per_image"]), (name, key)


def test_a_summary_metric_reaches_the_console_results_and_group_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One ``summary`` cell in the registry, and every list of runs shows the new number."""
    import csv
    import dataclasses
    import io

    import yaml

    from medleak.cli import main

    monkeypatch.setitem(METRICS, "mae", dataclasses.replace(MAE, summary=(Cell("mae", "MAE", 4),)))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["attack", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "MAE: 0." in capsys.readouterr().out
    from medleak.experiments.sqlite_store import SweepStore
    from medleak.experiments.sweep_spec import expand

    store = str(tmp_path / "s.db")  # what a sweep stores (its workers are other processes)
    with SweepStore(store) as db:
        for job in expand({"base": TINY, "grid": {"seed": [0, 1]}}).jobs:
            db.mark_running(job.run_id, job.kind, job.label, job.config, None)
            db.finish(job.run_id, {"mae": 0.1 + job.config["seed"], "ssim": 0.5}, None, {}, 1, {})
    assert main(["results", store]) == 0
    assert "mae" in capsys.readouterr().out.splitlines()[0]
    assert main(["results", store, "--group-by", "seed", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and all(float(r["mae"]) > 0 for r in rows)
