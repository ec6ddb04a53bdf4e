"""The benchmark scripts still run end to end (tiny settings; speed itself is never asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_speed_script_times_both_loops_and_counts_flops(tmp_path: Path, capsys) -> None:
    speed = _load("speed")
    out = tmp_path / "speed.json"
    argv = ["--models", "lenet", "--sizes", "16", "--batches", "2", "--algorithms", "fedsgd"]
    assert speed.main([*argv, "--iterations", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (cell,) = result["cells"]
    assert result["meta"]["matmul"]["best_gflops"] > 0
    for loop in ("plain", "medleak"):
        assert len(cell[loop]["wall"]) == 2
        # A double backward costs several forward passes; a counter blind to it would say ~3.
        assert cell[loop]["forward_passes"] > 5
    assert "lenet" in capsys.readouterr().out


def test_quality_script_scores_a_setting_and_compares(tmp_path: Path, capsys) -> None:
    quality = _load("quality")
    out = tmp_path / "quality.json"
    argv = ["--data", "phantom", "--only", "rog-l2/none/lenet", "--iterations", "1"]
    argv += ["--set", "data.image_size=32", "metrics.gallery_size=4", "data.phantom_count=12"]
    assert quality.main([*argv, "--json", str(out)]) == 0
    row = json.loads(out.read_text())["settings"]["rog-l2/none/lenet"]
    assert set(row) >= {"psnr", "ssim", "reid_rate", "label_accuracy", "attack_seconds"}
    assert quality.main([*argv, "--compare", str(out)]) == 0  # same seed, same numbers
    assert "dPSNR +0.000" in capsys.readouterr().out


def test_lean_ab_script_times_both_variants_and_restores_the_lean_layers(capsys) -> None:
    import medleak.fl.client as client

    original = client.lean_layers
    lean_ab = _load("lean_ab")
    argv = ["--cells", "lenet:16:fedsgd", "--rounds", "2", "--iterations", "1"]
    assert lean_ab.main(argv) == 0
    assert client.lean_layers is original
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[0] == "lenet:16:fedsgd" and row[-1].endswith("x")
    assert float(row[1]) > 0 and float(row[2]) > 0


def test_time_to_quality_script_reports_both_loops(tmp_path: Path, capsys) -> None:
    ttq = _load("time_to_quality")
    out = tmp_path / "ttq.json"
    argv = ["--only", "lenet-dlg/32/b1", "--budgets", "2,3", "--offsets", "0", "--data", "phantom"]
    assert ttq.main([*argv, "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert set(result["loops"]) == {"medleak", "rog-core"}
    for found in result["loops"].values():
        assert [p["iterations"] for p in found["points"]] == [2, 3]
        assert all(p["psnr"] > 0 and p["blank_psnr"] > 0 for p in found["points"])
    assert "synthetic phantoms" in capsys.readouterr().out


def test_time_to_quality_bf16_opt_in_adds_a_loop_and_restores_the_attacks(tmp_path: Path) -> None:
    import medleak.attacks as attacks

    before = dict(attacks.ATTACKS)
    ttq = _load("time_to_quality")
    out = tmp_path / "ttq.json"
    argv = ["--only", "lenet-dlg/32/b1", "--budgets", "2", "--offsets", "0", "--data", "phantom"]
    assert ttq.main([*argv, "--bf16", "--core", "rog-l2", "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert list(result["loops"]) == ["medleak", "medleak+bf16", "rog-l2"]
    low = result["loops"]["medleak+bf16"]["points"][0]
    assert low["psnr"] > 0 and low["psnr"] != result["loops"]["medleak"]["points"][0]["psnr"]
    assert attacks.ATTACKS == before


def test_time_to_target_is_the_first_budget_over_the_floor() -> None:
    ttq = _load("time_to_quality")
    points = [
        {"iterations": 50, "psnr": 20.0, "blank_psnr": 15.0, "seconds": 9.0},
        {"iterations": 10, "psnr": 16.0, "blank_psnr": 15.0, "seconds": 2.0},
        {"iterations": 25, "psnr": 18.5, "blank_psnr": 15.0, "seconds": 5.0},
    ]
    assert ttq.time_to_target(points) == 5.0
    assert ttq.time_to_target(points[1:2]) is None
