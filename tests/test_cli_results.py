"""`medleak results`: means per value and per kind (never across kinds); judged columns."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from medleak.cli import main
from medleak.cli_sweep import _grouped
from medleak.experiments.sqlite_store import SweepStore
from medleak.fl.utility import wilson_interval
from medleak.metrics.verdict import LEAKS, NO_MEASURABLE_LEAKAGE


def row(kind: str, defenses: str, **metrics: float) -> dict:
    return {"kind": kind, "status": "finished", "defenses": defenses, **metrics}


def test_group_by_keeps_attack_and_training_epsilons_apart() -> None:
    rows = [
        row("train", "dp", accuracy=0.7, epsilon=177.3),  # accounted over every round
        row("train", "dp", accuracy=0.6, epsilon=177.3),  # another seed
        row("attack", "dp", ssim=0.13, epsilon=10.0),  # the one attacked update's
        row("attack", "dp", ssim=0.15, epsilon=12.0),
        row("attack", "none", ssim=0.7),
        {**row("attack", "none", ssim=0.1), "status": "failed"},  # not averaged in
    ]
    groups = {(g["defenses"], g["kind"]): g for g in _grouped(rows, "defenses")}
    assert set(groups) == {("dp", "train"), ("dp", "attack"), ("none", "attack")}
    assert groups["dp", "train"]["epsilon"] == 177.3 and groups["dp", "train"]["runs"] == 2
    assert groups["dp", "train"]["accuracy_range"] == "0.600-0.700"  # across seeds: min-max
    assert groups["dp", "attack"]["epsilon"] == 11.0 and groups["dp", "attack"]["runs"] == 2
    assert groups["none", "attack"]["ssim"] == 0.7 and groups["none", "attack"]["runs"] == 1


def _store(path: Path) -> Path:
    """A no-defense run that leaks, a top-k run at the floor, and their trainings (the top-k
    one written before the intervals existed: accuracy and held-out count only)."""
    floor = {"psnr": 12.0, "blank_psnr": 12.0, "num_images": 2, "gallery_size": 100}
    with SweepStore(path) as store:
        for name, defenses, ssim, psnr, hits in (
            ("none", [], 0.8, 25.0, 2),
            ("topk", ["topk:ratio=0.1"], 0.12, 12.0, 0),
        ):
            config = {"defenses": defenses, "seed": 0, "data": {"offset": 0}}
            store.mark_running(f"{name}-a", "attack", name, config, f"{name}-t")
            metrics = {**floor, "ssim": ssim, "blank_ssim": 0.1, "psnr": psnr, "reid_count": hits}
            store.finish(f"{name}-a", metrics, None, {}, 1.0, {})
            store.mark_running(f"{name}-t", "train", name, config, None)
            train = {"accuracy": 0.85, "test_images": 400, "chance": 0.5}
            if name == "none":
                train.update(accuracy_ci_low=0.81, accuracy_ci_high=0.88, learned=True)
            store.finish(f"{name}-t", train, None, {}, 1.0, {})
    return path


def test_results_csv_and_table_carry_intervals_floors_and_verdicts(tmp_path, capsys) -> None:
    store = _store(tmp_path / "s.db")
    assert main(["results", str(store), "--csv"]) == 0
    rows = {r["hash"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    low, high = wilson_interval(340, 400)  # rebuilt for the older training record
    assert float(rows["topk-t"]["accuracy_ci_low"]) == low
    assert float(rows["topk-t"]["accuracy_ci_high"]) == high
    assert rows["none-t"]["accuracy_ci_low"] == "0.81" and rows["none-t"]["learned"] == "True"
    topk = rows["topk-a"]
    assert topk["verdict"] == NO_MEASURABLE_LEAKAGE and topk["baseline_verdict"] == LEAKS
    assert float(topk["floor_ssim"]) == 0.1 and float(topk["floor_psnr"]) == 12.0
    assert abs(float(topk["protection_ssim"]) - (0.7 - 0.02)) < 1e-9
    assert rows["none-a"]["verdict"] == LEAKS and rows["none-a"]["protection_ssim"] == ""
    assert main(["results", str(store)]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0].split()
    assert {"accuracy_95ci", "floor_ssim", "verdict", "protection_ssim"} <= set(header)
    assert f"{low:.3f}-{high:.3f}" in table and "no measurable leakage" in table
