"""`medleak results`: means per value and per kind, never across kinds; unknown keys are errors;
`--csv` honours grouping; `--desc`; one bandwidth name (bits sent / raw); the judged columns
(floors, verdict against the no-defense twin, protection) and the accuracy's interval."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from medleak.cli import main
from medleak.cli_sweep import _grouped
from medleak.experiments.sqlite_store import SweepStore
from medleak.experiments.sweep_spec import expand
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


def _store(tmp_path: Path) -> Path:
    """A store with four finished attack runs (two defenses x two seeds) and their numbers."""
    base = {
        "data": {"source": "phantom", "image_size": 16, "batch_size": 2, "phantom_count": 16},
        "model": {"name": "lenet", "channels": 1},
        "attack": {"name": "rog", "iterations": 2, "prior": "none"},
        "metrics": {"gallery_size": 4},
    }
    sweep = expand({"base": base, "grid": {"seed": [0, 1], "defenses": [[], ["sign"]]}})
    path = tmp_path / "s.db"
    with SweepStore(path) as store:
        for i, job in enumerate(sweep.jobs):
            sign = bool(job.config["defenses"])
            metrics = {
                "ssim": 0.2 + 0.1 * i,
                "psnr": 10.0 + i,
                "bits_sent": 1.0 if sign else 32.0,
                "bits_raw": 32.0,
            }
            store.mark_running(job.run_id, job.kind, job.label, job.config, None)
            store.finish(job.run_id, metrics, None, {}, 1.0, {})
    return path


def _results(path: Path, *options: str, capsys) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(["results", str(path), *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_unknown_key_is_an_error_in_every_option(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = _store(tmp_path)
    for option in (["--where", "defense=none"], ["--group-by", "defense"], ["--sort", "defense"]):
        code, out, err = _results(path, *option, capsys=capsys)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "unknown key 'defense'" in err and "'defenses'" in err
    code, out, _ = _results(path, "--where", "seed=1", capsys=capsys)
    assert code == 0 and "(2 rows)" in out


def test_csv_honours_group_by_and_sort_can_descend(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = _store(tmp_path)
    code, out, _ = _results(path, "--group-by", "seed", "--csv", capsys=capsys)
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(table) == 2 and {r["seed"] for r in table} == {"0", "1"}
    assert all(r["runs"] == "2" for r in table)
    code, out, _ = _results(path, "--sort", "psnr", "--desc", "--csv", capsys=capsys)
    psnr = [float(r["psnr"]) for r in csv.DictReader(io.StringIO(out))]
    assert psnr == sorted(psnr, reverse=True) and len(psnr) == 4
    code, out, err = _results(path, "--desc", capsys=capsys)
    assert code == 2 and "--desc needs --sort" in err


def test_bandwidth_has_one_name_and_direction(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = _store(tmp_path)
    code, out, _ = _results(path, "--csv", capsys=capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "compression_ratio" not in rows[0]
    assert sorted({float(r["bits_ratio"]) for r in rows}) == [1 / 32, 1.0]  # sent / raw
    code, out, _ = _results(path, "--group-by", "defenses", capsys=capsys)
    assert "bits_ratio" in out.splitlines()[0] and "compression_ratio" not in out


def _judged_store(path: Path) -> Path:
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
    store = _judged_store(tmp_path / "s.db")
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
