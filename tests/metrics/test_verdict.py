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
    judge,
    label_p_value,
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
    record = _run({"data.batch_size": 2, "attack.iterations": 5, "metrics.gallery_size": 20})
    assert record["verdict"] == LEAKS, record["verdict_reason"]


def test_strong_dp_noise_on_large_gallery_is_no_measurable_leakage():
    record = _run(
        {
            "data.batch_size": 2,
            "attack.iterations": 5,
            "attack.analytic": False,
            "metrics.gallery_size": 120,
            "defenses": ["dp:c=0.01,z=1000"],
        }
    )
    assert record["verdict"] == NO_MEASURABLE_LEAKAGE, record["verdict_reason"]
