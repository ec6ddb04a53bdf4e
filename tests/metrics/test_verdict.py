"""The verdict: never "no measurable leakage" when the test could not have seen a leak."""

from __future__ import annotations

import pytest

from medleak.experiments.config import RunConfig, apply_overrides
from medleak.experiments.run import execute, plan_run
from medleak.experiments.store import metrics_record
from medleak.metrics.reidentification import chance_p_value
from medleak.metrics.verdict import (
    INCONCLUSIVE,
    LEAKS,
    NO_MEASURABLE_LEAKAGE,
    distractors_needed,
    judge,
    label_p_value,
    protection_ssim,
)


def _metrics(**kw):
    base = {
        "ssim": 0.40,
        "blank_ssim": 0.38,
        "start_ssim": 0.10,
        "psnr": 12.0,
        "blank_psnr": 14.0,
        "num_images": 4,
        "gallery_size": 104,
        "reid_count": 0,
        "labels_source": "known",
        "label_accuracy": 1.0,
    }
    base.update(kw)
    base["reid_p_value"] = chance_p_value(
        base["reid_count"], base["num_images"], base["gallery_size"]
    )
    return base


def test_topk_case_on_real_xrays_leaks_on_pixel_similarity():
    # The case: SSIM 0.64 vs a blank floor of 0.38, 3 of 4 re-identified in a gallery
    # of 8 (p = 0.13): re-identification alone says nothing, the pixels say it leaked.
    v = judge(
        _metrics(
            ssim=0.64, blank_ssim=0.38, psnr=21.0, blank_psnr=15.1, gallery_size=8, reid_count=3
        )
    )
    assert v.outcome == LEAKS
    assert "SSIM 0.64" in v.reason
    assert v.evidence["reid_p_value"] > 0.05


def test_at_floor_with_small_gallery_is_inconclusive():
    # The case: 4 images in a gallery of 8; re-identifying half would be p = 0.26.
    v = judge(_metrics(gallery_size=8, reid_count=1))
    assert v.outcome == INCONCLUSIVE
    # One image in a gallery of 8: even a hit is p = 1/8.
    assert judge(_metrics(gallery_size=8, reid_count=0, num_images=1)).outcome == INCONCLUSIVE
    assert "gallery of 8" in v.reason
    assert v.evidence["reid_smallest_p"] >= 0.05


def test_at_floor_with_powerful_gallery_is_no_measurable_leakage():
    v = judge(_metrics(gallery_size=104, reid_count=0))
    assert v.outcome == NO_MEASURABLE_LEAKAGE
    assert "104" in v.reason


def test_ssim_must_also_beat_the_start():
    # A start image that already scores high (e.g. a blurred prior) is not a leak by itself.
    v = judge(_metrics(ssim=0.50, blank_ssim=0.38, start_ssim=0.55))
    assert v.outcome == NO_MEASURABLE_LEAKAGE


def test_psnr_alone_is_a_leak():
    assert judge(_metrics(psnr=15.5, blank_psnr=14.0)).outcome == LEAKS


def test_reidentification_alone_is_a_leak():
    v = judge(_metrics(gallery_size=104, reid_count=2))
    assert v.outcome == LEAKS and "2 of 4" in v.reason


def test_missing_signal_is_inconclusive_never_safe():
    m = _metrics()
    del m["blank_ssim"]
    assert judge(m).outcome == INCONCLUSIVE
    m = _metrics()
    del m["gallery_size"]
    assert judge(m).outcome == INCONCLUSIVE


def test_inferred_labels_above_chance_leak_oracle_labels_do_not():
    # 16 images, 14 PNEUMONIA, all labels recovered: guessing matches that with p = 120/2^16.
    per_image = [{"label": 1}] * 14 + [{"label": 0}] * 2
    inferred = _metrics(
        num_images=16, labels_source="inferred", label_accuracy=1.0, per_image=per_image
    )
    assert judge(inferred).outcome == LEAKS
    assert judge(inferred).evidence["label_p_value"] == pytest.approx(120 / 2**16)
    # A balanced batch's counts are easy to guess: not a leak on its own.
    balanced = _metrics(
        num_images=16,
        labels_source="inferred",
        label_accuracy=1.0,
        per_image=[{"label": i % 2} for i in range(16)],
    )
    assert judge(balanced).outcome == NO_MEASURABLE_LEAKAGE
    oracle = _metrics(num_images=16, labels_source="known", label_accuracy=1.0, per_image=per_image)
    assert judge(oracle).outcome == NO_MEASURABLE_LEAKAGE


def test_label_p_value_against_enumeration():
    # Batch 4, balanced truth, 4/4 needs a guess with exactly two of each: C(4,2)/16.
    # The worst case over truths is the balanced one for a perfect match.
    assert label_p_value(1.0, 4) == pytest.approx(6 / 16)
    assert label_p_value(0.0, 4) == 1.0
    assert label_p_value(0.5, 2) == 1.0  # one of two always matches some composition


def _run(overrides):
    config = apply_overrides(
        RunConfig(), {"seed": 0, "data.image_size": 32, "model.channels": 1, **overrides}
    )
    return metrics_record(execute(plan_run(config)))


def test_phantom_attack_leaks_end_to_end():
    # 5 iterations at 32 px rebuild SSIM 0.28: above a blank image (0.12), below the mean of
    # other phantoms (0.71, issue 22's prior floor). What leaks is identity: 1 of 2 picked out
    # of 102 (p = 0.04); a gallery of 20 (as before the prior floor) could not show that.
    record = _run({"data.batch_size": 2, "attack.iterations": 5, "metrics.gallery_size": 100})
    assert record["verdict"] == LEAKS, record["verdict_reason"]
    assert "picked out of a gallery" in record["verdict_reason"]


def test_strong_dp_noise_on_large_gallery_is_no_measurable_leakage():
    # Issue 22: "no measurable leakage" for a defended run also needs its baseline (the same
    # attack on the undefended update) to leak. This test used to run with the analytic stage
    # off, where 5 iterations do not rebuild even the undefended update; with it on they do.
    record = _run(
        {
            "data.batch_size": 2,
            "attack.iterations": 5,
            "metrics.gallery_size": 120,
            "metrics.baseline": True,
            "defenses": ["dp:c=0.01,z=1000"],
        }
    )
    assert record["baseline_verdict"] == LEAKS, record["baseline_verdict_reason"]
    assert record["verdict"] == NO_MEASURABLE_LEAKAGE, record["verdict_reason"]


# --- issue 22: the stronger floor, the baseline, words that follow numbers ---------------------


def test_the_stronger_floor_decides():
    # SSIM 0.60 clears a blank floor of 0.38 but not the mean of other images (0.74)
    m = _metrics(ssim=0.60, blank_ssim=0.38, prior_ssim=0.74, psnr=16.0, prior_psnr=17.5)
    v = judge(m)
    assert v.outcome == NO_MEASURABLE_LEAKAGE, v.reason
    assert v.evidence["floor_ssim"] == 0.74 and v.evidence["floor_psnr"] == 17.5
    assert "below the floor (0.74, the mean of other images)" in v.reason
    assert "PSNR 16.0 dB is below the floor" in v.reason
    # an old record without the prior image is judged against the blank image, as before
    assert judge(_metrics(ssim=0.60, blank_ssim=0.38)).outcome == LEAKS


def test_words_follow_numbers():
    far_below = judge(_metrics(psnr=8.3, blank_psnr=15.1, ssim=0.10, blank_ssim=0.40))
    assert "PSNR 8.3 dB is below the floor" in far_below.reason
    assert "SSIM 0.10 is below the floor" in far_below.reason
    within = judge(_metrics(psnr=14.5, blank_psnr=15.1, ssim=0.38, blank_ssim=0.40))
    assert "PSNR 14.5 dB is at the floor" in within.reason
    assert "SSIM 0.38 is at the floor" in within.reason


def test_small_gallery_says_how_many_distractors_would_decide():
    # 4 victims: re-identifying 2 must reach p < 0.05; the number is the smallest that does.
    needed = distractors_needed(4)
    assert chance_p_value(2, 4, 4 + needed) < 0.05 <= chance_p_value(2, 4, 4 + needed - 1)
    assert distractors_needed(1) == 20  # one victim: a hit is p = 1/G, so G = 21
    short = judge(_metrics(gallery_size=8, reid_count=0, gallery_available=4))
    assert short.outcome == INCONCLUSIVE
    assert f"needs {needed} distractors" in short.reason and "--gallery-source" in short.reason
    assert "use a larger gallery" not in short.reason
    enough = judge(_metrics(gallery_size=8, reid_count=0, gallery_available=500))
    assert f"--gallery-size {needed}" in enough.reason


def _defended(**kw):
    return _metrics(defenses=[{"name": "sign", "params": {}}], **kw)


def test_defended_run_needs_a_leaking_baseline():
    leaking = _metrics(ssim=0.90, psnr=25.0, reid_count=4)
    flat = _metrics(ssim=0.41, reid_count=0)
    assert judge(_defended(), leaking).outcome == NO_MEASURABLE_LEAKAGE
    v = judge(_defended(), flat)
    assert v.outcome == INCONCLUSIVE
    assert "baseline" in v.reason and "undefended update does" not in v.reason
    assert "says nothing about the defense" in v.reason
    # no baseline at all: a defended run is never called safe
    unknown = judge(_defended())
    assert unknown.outcome == INCONCLUSIVE and "--baseline" in unknown.reason
    # an undefended run is its own baseline: the rule is unchanged for it
    assert judge(_metrics(), flat).outcome == NO_MEASURABLE_LEAKAGE
    # the baseline a run stored is used when none is given
    assert judge({**_defended(), "baseline": leaking}).outcome == NO_MEASURABLE_LEAKAGE


def test_defended_leaking_more_than_its_baseline_flags_the_budget():
    base = _metrics(ssim=0.61, blank_ssim=0.38, psnr=13.0, reid_count=0)
    defended = _defended(ssim=0.87, blank_ssim=0.38, psnr=13.0, iterations=30)
    v = judge(defended, base)
    assert v.outcome == LEAKS
    assert v.evidence["budget_too_small"] is True
    assert "attack budget is too small" in v.reason and "--iterations (now 30)" in v.reason
    assert protection_ssim(defended, base) == pytest.approx(-0.26)
    assert protection_ssim(_defended(ssim=0.40), base) == pytest.approx(0.21)
    # a deterministic analytic stage decided: more iterations would not help, and it says so
    analytic = judge({**defended, "attack_info": {"stage": "analytic"}}, base)
    assert "analytic stage decided" in analytic.reason and "--iterations" in analytic.reason
    assert "--no-analytic" in analytic.reason


def _gaussian_run(model: str, iterations: int):
    return _run(
        {
            "model.name": model,
            "data.batch_size": 2,
            "data.phantom_count": 130,
            "attack.iterations": iterations,
            "metrics.gallery_size": 120,
            "metrics.baseline": True,
            "defenses": ["gaussian:relative=100"],
        }
    )


def test_defense_on_a_setting_the_attack_cannot_rebuild_is_inconclusive():
    # BatchNorm ResNet-18 at 32 px, 3 iterations: the undefended update is not rebuilt either.
    record = _gaussian_run("resnet18", 3)
    assert record["baseline_verdict"] != LEAKS, record["baseline_verdict_reason"]
    assert record["verdict"] == INCONCLUSIVE
    assert "baseline" in record["verdict_reason"]
    assert "does not rebuild this setting even without a defense" in record["verdict_reason"]
    assert record["protection_ssim"] == pytest.approx(0.0)


def test_same_defense_on_rogs_lenet_with_a_leaking_baseline_can_be_safe():
    record = _gaussian_run("lenet", 3)
    assert record["baseline_verdict"] == LEAKS, record["baseline_verdict_reason"]
    assert record["verdict"] == NO_MEASURABLE_LEAKAGE, record["verdict_reason"]
    assert record["baseline"]["verdict"] == LEAKS and "per_image" in record["baseline"]
