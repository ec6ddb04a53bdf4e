"""The frontier section of a report built from a sweep store (synthetic records, no runs)."""

from __future__ import annotations

from pathlib import Path

from medleak.cli import main
from medleak.experiments.sqlite_store import StoredRun, SweepStore
from medleak.metrics.verdict import LEAKS, judge
from medleak.report.frontier import collect, pareto, setting_verdict, store_conclusion


def _store(path: Path) -> Path:
    settings = {
        "none": ([], 0.9, 0.8, 1.0),
        "topk": (["topk:ratio=0.1"], 0.85, 0.5, 0.15),
        "dp": (["dp:c=1,z=2"], 0.6, 0.1, 1.0),
        "bad": (["gaussian:relative=0.1"], 0.7, 0.7, 1.0),  # dominated by topk
    }
    with SweepStore(path) as store:
        for name, (defenses, acc, ssim, ratio) in settings.items():
            for seed in (0, 1):
                config = {
                    "defenses": defenses,
                    "seed": seed,
                    "data": {"source": "phantom"},
                    "attack": {"name": "rog"},
                    "model": {"round": None},
                }
                store.mark_running(f"{name}-a{seed}", "attack", name, config, f"{name}-t{seed}")
                store.finish(
                    f"{name}-a{seed}",
                    {
                        "ssim": ssim + 0.01 * seed,
                        "blank_ssim": 0.1,
                        "reid_rate": 0.5,
                        "bits_sent": 320 * ratio,
                        "bits_raw": 320,
                    },
                    None,
                    {},
                    1.0,
                    {"medleak_version": "0.1.0"},
                )
                store.mark_running(f"{name}-t{seed}", "train", name, config, None)
                store.finish(
                    f"{name}-t{seed}",
                    {
                        "accuracy": acc,
                        "auc": acc,
                        "bits_ratio": ratio,
                        "epsilon": 3.0 if name == "dp" else None,
                    },
                    {"accuracy": [0.5, acc]},
                    {},
                    1.0,
                    {"medleak_version": "0.1.0"},
                )
    return path


def test_pareto_front_drops_dominated_settings(tmp_path: Path) -> None:
    with SweepStore(_store(tmp_path / "s.db")) as store:
        settings = collect(store.runs())
    assert [s.label for s in settings][0] == "none"
    points = {
        s.label: (sum(t.metrics["accuracy"] for t in s.trainings) / 2, sum(s.leak) / len(s.leak))
        for s in settings
    }
    assert points["topk:ratio=0.1"][1] == 0.405  # mean SSIM above the floor of 0.1
    assert set(pareto(points)) == {"none", "topk:ratio=0.1", "dp:c=1,z=2"}


def test_report_accepts_a_store_and_ranks_defenses(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    out = tmp_path / "r.html"
    assert main(["report", str(store), "--out", str(out)]) == 0
    html = out.read_text()
    assert "Frontier" in html and "Synthetic data" in html
    assert html.count("(front)") == 3 and "verdict" in html
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


def test_the_store_conclusion_names_each_setting_once(tmp_path: Path) -> None:
    with SweepStore(_store(tmp_path / "s.db")) as store:
        html = store_conclusion(collect(store.runs()))
    assert html.count('class="verdict') == 4
    assert "none: " in html and "dp:c=1,z=2: " in html
