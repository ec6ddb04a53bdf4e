"""The frontier section of a report built from a sweep store (synthetic records, no runs)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.collections import PathCollection

from medleak.cli import main
from medleak.experiments.sqlite_store import StoredRun, SweepStore
from medleak.fl.utility import wilson_interval
from medleak.metrics.verdict import LEAKS, NO_MEASURABLE_LEAKAGE, judge
from medleak.report.frontier import (
    collect,
    front_of,
    frontier_figure,
    pareto,
    protection,
    representative,
    setting_verdict,
    store_conclusion,
)

HELD_OUT = 400
#: at the blank floor, with a re-identification test that could have seen a leak (p = 0.04)
FLOOR = {"psnr": 12.0, "blank_psnr": 12.0, "num_images": 2, "gallery_size": 100, "reid_count": 0}


def _attack_metrics(ssim: float) -> dict:
    leaky = ssim > 0.3
    return {
        **FLOOR,
        "ssim": ssim,
        "blank_ssim": 0.1,
        "psnr": 25.0 if leaky else 12.0,
        "reid_count": 2 if leaky else 0,
        "reid_rate": 1.0 if leaky else 0.0,
        "bits_sent": 320,
        "bits_raw": 320,
    }


def _train_metrics(accuracy: float) -> dict:
    low, high = wilson_interval(round(accuracy * HELD_OUT), HELD_OUT)
    return {
        "accuracy": accuracy,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "auc": accuracy,
        "auc_ci_low": accuracy - 0.04,
        "auc_ci_high": min(1.0, accuracy + 0.04),
        "chance_rate": 0.5,
        "majority_rate": 0.5,
        "learned": low > 0.5,
        "test_images": HELD_OUT,
        "bits_ratio": 1.0,
        "epsilon": None,
    }


#: name: defenses, accuracy per seed, SSIM per seed
SETTINGS = {
    "none": ([], (0.90, 0.92), (0.80, 0.82)),
    "topk": (["topk:ratio=0.1"], (0.85, 0.87), (0.12, 0.13)),
    # at chance, and the least leakage of all: would be on the front if it had learned
    "dp": (["dp:c=1,z=2"], (0.50, 0.51), (0.10, 0.10)),
    # the most accurate, less leaky than none, but one seed leaks: never recommended
    "gauss": (["gaussian:relative=0.1"], (0.95, 0.96), (0.11, 0.70)),
    # leaks more than no defense on the same batches: the attack budget decided
    "sign": (["sign"], (0.80, 0.81), (0.95, 0.97)),
}


def _store(path: Path, settings: dict = SETTINGS) -> Path:
    with SweepStore(path) as store:
        for name, (defenses, accuracies, ssims) in settings.items():
            for seed in (0, 1):
                config = {
                    "defenses": defenses,
                    "seed": seed,
                    "data": {"source": "phantom", "offset": 0},
                    "attack": {"name": "rog", "iterations": 30, "restarts": 1},
                    "model": {"round": None},
                }
                store.mark_running(f"{name}-a{seed}", "attack", name, config, f"{name}-t{seed}")
                metrics = _attack_metrics(ssims[seed])
                store.finish(f"{name}-a{seed}", metrics, None, {}, 1.0, {})
                store.mark_running(f"{name}-t{seed}", "train", name, config, None)
                curves = {"accuracy": [0.5, accuracies[seed]]}
                store.finish(
                    f"{name}-t{seed}", _train_metrics(accuracies[seed]), curves, {}, 1.0, {}
                )
    return path


def _settings(tmp_path: Path) -> dict:
    with SweepStore(_store(tmp_path / "s.db")) as store:
        return {s.label.split(":")[0]: s for s in collect(store.runs())}


def test_pareto_front_drops_dominated_settings() -> None:
    points = {"none": (0.9, 0.7), "topk": (0.85, 0.4), "dp": (0.6, 0.0), "bad": (0.7, 0.6)}
    assert set(pareto(points)) == {"none", "topk", "dp"}


def test_a_setting_at_chance_is_hollow_and_off_the_front(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    dp = settings["dp"]
    assert dp.learned is False and settings["topk"].learned is True
    assert dp.utility.accuracy_ci_low < 0.5 < dp.utility.accuracy_ci_high
    front = front_of(list(settings.values()))
    assert dp.key not in front and settings["topk"].key in front
    fig, drawn_front = frontier_figure(list(settings.values()))
    assert drawn_front == front
    hollow, filled = [], []
    for collection in fig.axes[0].collections:
        if not isinstance(collection, PathCollection):
            continue  # error bars
        offsets = collection.get_offsets()
        if len(offsets) != 1 or collection.get_sizes()[0] >= 420:  # one setting, not a ring
            continue
        faces = collection.get_facecolors()
        (hollow if len(faces) == 0 or faces[0][3] == 0 else filled).append(tuple(offsets[0]))
    assert hollow == [(dp.utility.accuracy, 0.0)]
    assert (settings["topk"].utility.accuracy, sum(settings["topk"].leak) / 2) in filled


def test_a_leaking_setting_is_never_on_the_front_nor_recommended(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    gauss = settings["gaussian"]
    assert setting_verdict(gauss).outcome == LEAKS  # one leaking seed of two
    assert setting_verdict(settings["topk"]).outcome == NO_MEASURABLE_LEAKAGE
    front = front_of(list(settings.values()))
    assert gauss.key not in front and settings["none"].key not in front
    html = store_conclusion(list(settings.values()))
    recommended = html.split("Recommended: <strong>")[1].split("</strong>")[0]
    assert recommended == "topk:ratio=0.1"  # not gauss (more accurate) nor dp (at chance)
    assert "mean 0.860" not in html and "0.860 (0.850-0.870 over 2 seeds)" in html


def test_the_quoted_run_is_the_run_whose_image_is_shown(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    point = representative(settings["gaussian"])
    assert point.run.run_id == "gauss-a1" and point.verdict.outcome == LEAKS
    html = store_conclusion(list(settings.values()))
    line = next(p for p in html.split("<p") if "gaussian:relative=0.1: " in p)
    assert "run gauss-a1, seed 1" in line and "SSIM 0.70" in line
    assert "range 0.010 to 0.600 over 2 runs" in line  # means over seeds with their range


def test_protection_against_the_baseline_and_the_budget_warning(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # no defense leaks 0.70 / 0.72 above the floor, top-k 0.02 / 0.03: it bought ~0.685
    assert abs(protection(settings["topk"]) - 0.685) < 1e-9
    assert protection(settings["sign"]) < -0.05
    assert {p.baseline_verdict for p in settings["topk"].points} == {LEAKS}
    html = store_conclusion(list(settings.values()))
    assert "attack budget is too small to rank defenses" in html
    assert "<code>attack.iterations</code> (now 30)" in html and "attack.restarts" in html
    calm = {k: v for k, v in SETTINGS.items() if k != "sign"}
    with SweepStore(_store(tmp_path / "calm.db", calm)) as store:
        assert "budget is too small" not in store_conclusion(collect(store.runs()))


def test_report_ranks_defenses_with_their_intervals(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    out = tmp_path / "r.html"
    assert main(["report", str(store), "--out", str(out)]) == 0
    html = out.read_text()
    assert "Frontier" in html and "Synthetic data" in html
    assert html.count("(front)") == 1  # top-k: the others leak or did not learn
    table = html.split('<table class="ranking')[1].split("</table>")[0]
    # top-k's interval: seed 0's Wilson low (0.85) to seed 1's Wilson high (0.87)
    low, high = wilson_interval(340, HELD_OUT)[0], wilson_interval(348, HELD_OUT)[1]
    assert f"[{low:.3f}, {high:.3f}]" in table
    assert "accuracy (95% CI)" in table and "protection vs none" in table
    rows = table.split("<tr>")[2:]
    assert "topk:ratio=0.1 <b>(front)</b>" in rows[0]
    assert "(budget too small)" in table
    assert html.count("data:image/png;base64,") >= 2  # frontier + accuracy curves
    assert "http://" not in html and "https://" not in html


def _attack(run_id: str, metrics: dict) -> StoredRun:
    config = {"defenses": ["topk:ratio=0.1"], "attack": {"name": "rog"}}
    return StoredRun(
        run_id, "attack", "finished", "topk", config, None, metrics, {}, None, 1.0, None, None
    )


def test_one_leaking_seed_makes_the_setting_leak_and_safety_needs_every_seed() -> None:
    leaky = {"ssim": 0.9, "blank_ssim": 0.1, "psnr": 30.0, "blank_psnr": 12.0}
    floor = {"ssim": 0.1, "blank_ssim": 0.1, "psnr": 12.0, "blank_psnr": 12.0}
    for mixed, expected in (([floor, leaky], LEAKS), ([floor, floor], judge(floor).outcome)):
        setting = collect([_attack(f"r{i}", m) for i, m in enumerate(mixed)])[0]
        assert setting_verdict(setting).outcome == expected


def test_leakage_is_measured_above_the_stronger_floor() -> None:
    prior = {"ssim": 0.8, "blank_ssim": 0.1, "prior_ssim": 0.75, "psnr": 20.0, "blank_psnr": 12}
    recorded = {**prior, "floor_ssim": 0.7}
    assert abs(collect([_attack("p", prior)])[0].leak[0] - 0.05) < 1e-9
    assert abs(collect([_attack("f", recorded)])[0].leak[0] - 0.1) < 1e-9


def test_the_store_conclusion_names_each_setting_once(tmp_path: Path) -> None:
    html = store_conclusion(list(_settings(tmp_path).values()))
    assert html.count('class="verdict') == 6  # 5 settings + the budget warning
    assert "none: " in html and "dp:c=1,z=2: " in html
