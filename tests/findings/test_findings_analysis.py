"""Each finding's decision on tiny synthetic runs: it agrees, and it flips when the data does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings import attack_findings as af
from medleak.findings import training_findings as tf
from medleak.findings.outcome import AGREES, DISAGREES, INCONCLUSIVE
from medleak.findings.stats import PHANTOM, SAMPLE, falls, spearman, summarise

_count = 0


def run(
    kind: str = "attack",
    source: str = "phantom",
    seed: int = 0,
    attack: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    **keys: Any,
) -> StoredRun:
    """A finished run whose config has ``keys`` as dotted overrides."""
    global _count
    _count += 1
    config: dict[str, Any] = {
        "seed": seed,
        "data": {"source": source, "batch_size": 1, "image_size": 32},
        "model": {"name": "lenet", "round": None},
        "fl": {"local_steps": 1, "local_lr": 1e-4},
        "defenses": [],
        "attack": attack or {"name": "rog", "iterations": 10},
    }
    for dotted, value in keys.items():
        node = config
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    return StoredRun(
        f"r{_count}", kind, "finished", "", config, None, metrics or {}, {}, None, 1.0, "x", None
    )


def ssim(value: float, blank: float = 0.2) -> dict[str, float]:
    return {"ssim": value + blank, "blank_ssim": blank, "psnr": 20.0, "blank_psnr": 14.0}


def only(outcomes: list, source: str = PHANTOM):
    picked = [o for o in outcomes if o.source == source]
    assert len(picked) == 1
    return picked[0]


def test_stats_known_values() -> None:
    s = summarise([1.0, 2.0, 3.0, None, float("nan")])
    assert s is not None and s.mean == 2.0 and s.sd == pytest.approx(1.0) and s.n == 3
    assert spearman([1, 2, 3, 4], [10, 9, 8, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) is None
    assert falls([1, 2, 4], [0.5, 0.3, 0.1], 0.05)
    assert not falls([1, 2, 4], [0.5, 0.3, 0.48], 0.05)  # too little lower at the end
    assert not falls([1, 2, 4], [0.1, 0.3, 0.5], 0.05)


def _dlg(psnrs: list[float], source: str = "phantom") -> list[StoredRun]:
    return [
        run(
            source=source,
            seed=i,
            attack={"name": "dlg"},
            metrics={"psnr": p, "ssim": 0.9, "blank_ssim": 0.1, "blank_psnr": 13.0},
        )
        for i, p in enumerate(psnrs)
    ]


def test_finding_1_majority_of_seeds_at_30_db() -> None:
    agrees = only(af.finding_1(_dlg([35, 31, 30.5, 12, 10])))
    assert agrees.verdict == AGREES and "3 of 5" in agrees.reason
    flipped = only(af.finding_1(_dlg([35, 31, 29.5, 12, 10])))
    assert flipped.verdict == DISAGREES
    both = af.finding_1(_dlg([35, 31, 33]) + _dlg([10, 11, 12], source="/data/xray"))
    assert {o.source: o.verdict for o in both} == {PHANTOM: AGREES, SAMPLE: DISAGREES}


def _batch_runs(curve: dict[int, float], attack: dict[str, Any]) -> list[StoredRun]:
    return [
        run(seed=s, attack=attack, metrics=ssim(v + 0.01 * s), data__batch_size=b)
        for b, v in curve.items()
        for s in range(3)
    ]


def test_finding_2_falls_with_batch_for_optimisation_attacks() -> None:
    ig = {"name": "ig"}
    analytic = {"name": "rog"}
    falling = _batch_runs({1: 0.6, 2: 0.4, 4: 0.2, 8: 0.05}, ig)
    flat_analytic = _batch_runs({1: 0.7, 2: 0.7, 4: 0.7, 8: 0.7}, analytic)
    outcome = only(af.finding_2(falling + flat_analytic))
    assert outcome.verdict == AGREES
    assert "analytic stage (lenet) does not fall" in outcome.reason
    rising = _batch_runs({1: 0.2, 2: 0.3, 4: 0.5, 8: 0.6}, ig)
    assert only(af.finding_2(rising)).verdict == DISAGREES
    at_floor = _batch_runs({1: 0.0, 2: 0.0, 4: 0.0}, ig)
    assert only(af.finding_2(at_floor)).verdict == INCONCLUSIVE
    one_batch = _batch_runs({1: 0.6}, ig)  # a trend needs two batch sizes
    assert only(af.finding_2(one_batch)).verdict == INCONCLUSIVE


def test_finding_3_falls_with_tau_times_lr() -> None:
    def runs(values: dict[tuple[int, float], float]) -> list[StoredRun]:
        return [
            run(seed=s, metrics=ssim(v), fl__local_steps=tau, fl__local_lr=lr)
            for (tau, lr), v in values.items()
            for s in range(3)
        ]

    down = {(1, 1e-4): 0.6, (5, 1e-4): 0.5, (10, 1e-2): 0.1}
    assert only(af.finding_3(runs(down))).verdict == AGREES
    up = {(1, 1e-4): 0.1, (5, 1e-4): 0.5, (10, 1e-2): 0.6}
    assert only(af.finding_3(runs(up))).verdict == DISAGREES


def _bn(off: float, on: float) -> list[StoredRun]:
    return [
        run(
            seed=s,
            attack={"name": "ig", "bn_statistics": switch},
            metrics=ssim(value),
            model__name="resnet18",
        )
        for switch, value in ((False, off), (True, on))
        for s in range(3)
    ]


def test_finding_4_statistics_margin() -> None:
    assert only(af.finding_4(_bn(0.02, 0.30))).verdict == AGREES
    assert only(af.finding_4(_bn(0.02, 0.05))).verdict == DISAGREES  # gain 0.03 < 0.05


def _aware(aware: float, unaware: float) -> list[StoredRun]:
    out = []
    for d in (["qsgd:levels=4"], ["topk:ratio=0.1"], ["topk:ratio=0.01"]):
        for attack, value in (
            ({"name": "rog", "aware": True}, aware),
            ({"name": "rog", "aware": False}, unaware),
            ({"name": "rog", "preset": "rog-core"}, unaware / 2),
        ):
            out += [run(seed=s, attack=attack, metrics=ssim(value), defenses=d) for s in range(3)]
    return out


def test_finding_5_aware_keeps_more() -> None:
    outcome = only(af.finding_5(_aware(0.5, 0.1)))
    assert outcome.verdict == AGREES and "reference ROG core" in outcome.reason
    assert only(af.finding_5(_aware(0.1, 0.5))).verdict == DISAGREES


def _dp(accuracy_at_z2: float, silent_at_z2: bool) -> list[StoredRun]:
    out = []
    for d, acc, leak_value in (
        ([], 0.85, 0.6),
        (["dp:c=1.0,z=0.5"], 0.84, 0.3),
        (["dp:c=1.0,z=2.0"], accuracy_at_z2, 0.0),
    ):
        for s in range(3):
            verdict = "no measurable leakage" if (silent_at_z2 and d and "z=2" in d[0]) else "leaks"
            out.append(run(seed=s, metrics={**ssim(leak_value), "verdict": verdict}, defenses=d))
            out.append(run("train", seed=s, metrics={"accuracy": acc}, defenses=d))
    return out


def test_finding_6_noise_stops_the_leak_at_a_cost() -> None:
    outcome = only(tf.finding_6(_dp(0.70, True)))
    assert outcome.verdict == AGREES and "dp:c=1.0,z=2.0" in outcome.reason
    assert only(tf.finding_6(_dp(0.84, True))).verdict == DISAGREES  # no accuracy cost
    assert only(tf.finding_6(_dp(0.70, False))).verdict == DISAGREES  # never silent


def _rounds(late: float) -> list[StoredRun]:
    return [
        run(seed=s, attack={"name": a}, metrics=ssim(v if a == "rog" else v / 2), model__round=r)
        for r, v in ((0, 0.6), (1, 0.5), (8, late))
        for a in ("rog", "ig")
        for s in range(3)
    ]


def test_finding_7_late_rounds_leak_less() -> None:
    assert only(tf.finding_7(_rounds(0.2))).verdict == AGREES
    assert only(tf.finding_7(_rounds(0.58))).verdict == DISAGREES


def _noniid(drop_iid: float, drop_skew: float) -> list[StoredRun]:
    out = []
    for part, drop in (("iid", drop_iid), ("dirichlet", drop_skew)):
        for d, acc in (
            ([], 0.8),
            (["dp:c=1.0,z=2.0"], 0.8 - drop),
            (["topk:ratio=0.01"], 0.8 - drop),
        ):
            for s in range(3):
                out.append(
                    run(
                        "train",
                        seed=s,
                        metrics={"accuracy": acc},
                        defenses=d,
                        train__partition=part,
                    )
                )
    return out


def test_finding_8_non_iid_costs_more() -> None:
    assert only(tf.finding_8(_noniid(0.02, 0.10))).verdict == AGREES
    assert only(tf.finding_8(_noniid(0.10, 0.02))).verdict == DISAGREES


def test_explanation_only_for_disagreements_and_with_numbers() -> None:
    from medleak.findings.explain import explain

    agree_runs = _dlg([35, 31, 33])
    assert explain(1, only(af.finding_1(agree_runs)), agree_runs) == ""
    runs = _dlg([35, 12, 10])
    text = explain(1, only(af.finding_1(runs)), runs)
    assert "10.0 to 35.0 dB" in text  # the spread comes from the runs, not from a fixed text


def test_why_4_follows_the_numbers() -> None:
    from medleak.findings.explain import explain

    def bn(switch: bool, value: float, seed: int) -> StoredRun:
        return run(
            seed=seed,
            attack={"name": "ig", "iterations": 50, "bn_statistics": switch},
            metrics=ssim(value),
            model__name="resnet18",
        )

    floor = [bn(s, 0.01, i) for s in (False, True) for i in range(3)]
    text = explain(4, only(af.finding_4(floor)), floor)
    assert "stays at the floor" in text and "0.01 without and 0.01 with" in text
    leaking = [bn(False, 0.30, i) for i in range(3)] + [bn(True, 0.32, i) for i in range(3)]
    text = explain(4, only(af.finding_4(leaking)), leaking)
    assert "stays at the floor" not in text and "0.30 without and 0.32 with" in text


def test_contrast_matches_settings_across_sources() -> None:
    from medleak.findings.contrast import contrast, contrast_row, summary_sentence

    def pair(batch: int, phantom: float, xray: float, seeds: int = 3) -> list[StoredRun]:
        return [
            run(source=src, seed=i, metrics=ssim(v, blank), data__batch_size=batch)
            for src, v, blank in (("phantom", phantom, 0.1), ("/x", xray, 0.4))
            for i in range(seeds)
        ]

    runs = pair(1, 0.6, 0.2) + pair(2, 0.3, 0.29)
    runs += [run(seed=0, metrics=ssim(0.9), data__batch_size=16)]  # phantoms only: not matched
    c = contrast(3, runs)
    assert c is not None and c.settings == 2 and c.differ == 1
    assert c.phantom is not None and c.phantom.mean == pytest.approx(0.45)
    assert c.sample is not None and c.sample.mean == pytest.approx(0.245)
    assert c.floor_sample is not None and c.floor_sample.mean == pytest.approx(0.4)
    assert c.widest is not None and c.widest[0].startswith("lenet, batch 1")
    row = contrast_row(c, ("agrees", "disagrees"))
    assert "outcome differs" in row[1] and "1 of 2" in row[3] and "-0.40" in row[5]
    assert "leak less in 1" in summary_sentence([c])
    assert contrast(3, pair(1, 0.5, 0.5)[:3]) is None  # phantoms only: nothing to compare


def test_why_2_names_the_attack_that_collapses_at_batch_2() -> None:
    from medleak.findings.explain import explain

    opt = {"name": "rog", "iterations": 50, "analytic": False}
    values = {1: 0.6, 2: 0.0, 4: 0.08, 8: 0.1, 16: 0.07}  # rank corr. -0.3: not "falling"
    runs = [
        run(seed=s, attack=opt, metrics=ssim(v), data__batch_size=b)
        for b, v in values.items()
        for s in range(3)
    ]
    outcome = only(af.finding_2(runs))
    assert outcome.verdict == DISAGREES
    text = explain(2, outcome, runs)
    assert "falls from 0.60 at batch 1" in text and "0.00, 0.08, 0.10, 0.07" in text


def test_why_8_says_when_the_non_iid_training_never_left_chance() -> None:
    from medleak.findings.explain import explain

    runs = _noniid(0.30, 0.10)  # disagrees, but the non-IID no-defense training reached 0.8
    for r in runs:
        r.metrics["chance"] = 0.5
    text = explain(8, only(tf.finding_8(runs)), runs)
    assert text and "majority-class rate" not in text
    stuck = [r for r in runs if r.config["train"]["partition"] == "iid"] + [
        run(
            "train",
            seed=s,
            metrics={"accuracy": 0.5, "chance": 0.5},
            defenses=d,
            train__partition="dirichlet",
        )
        for d in ([], ["dp:c=1.0,z=2.0"], ["topk:ratio=0.01"])
        for s in range(3)
    ]
    outcome = only(tf.finding_8(stuck))
    # no accuracy above chance left for a defense to cost: the comparison cannot tell
    assert outcome.verdict == INCONCLUSIVE
    assert "majority-class rate (0.50)" in outcome.reason
    assert "stays at 0.500 test accuracy, the majority-class rate (0.50)" in explain(
        8, outcome, stuck
    )
