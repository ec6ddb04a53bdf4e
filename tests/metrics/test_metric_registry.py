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
