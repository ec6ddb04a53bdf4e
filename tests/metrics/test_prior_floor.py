"""The prior floor: the mean of other images is what a server knows without any update, so a
"reconstruction" that is only that average must not read as a leak (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medleak.experiments.config import RunConfig, apply_overrides
from medleak.experiments.run import gallery_for, plan_run, prior_for
from medleak.metrics import evaluate
from medleak.metrics.prior import prior_image
from medleak.metrics.verdict import LEAKS, judge


def _average_of_others(overrides: dict) -> dict:
    """Score the mean of the distractors (never a victim or a victim's patient) as if an attack
    had returned it for every victim."""
    config = apply_overrides(RunConfig(), {"seed": 0, "model.channels": 1, **overrides})
    plan = plan_run(config)
    distractors = gallery_for(plan)
    prior, source = prior_for(plan, distractors)
    assert prior is not None and source == "distractors"
    fake = prior.float().expand_as(plan.batch.images).clone()
    scores = evaluate(
        plan.batch.images,
        fake,
        initial=torch.full_like(fake, 0.5),
        true_labels=plan.batch.labels,
        used_labels=plan.batch.labels,
        sources=list(plan.batch.sources),
        patients=list(plan.batch.patients),
        gallery=distractors.images,
        gallery_patients=distractors.patients,
        prior=prior,
        prior_source=source,
    ).to_dict()
    return {**scores, "defenses": [], "labels_source": "known"}


def _blank_only(record: dict) -> dict:
    """The same record as the verdict saw it before the prior floor existed."""
    return {k: v for k, v in record.items() if not k.startswith(("prior_", "floor_"))}


def test_prior_image_is_the_pixel_mean() -> None:
    images = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    assert torch.equal(prior_image(images), torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError):
        prior_image(torch.zeros(0, 1, 4, 4))


def test_average_of_other_phantoms_is_not_a_leak() -> None:
    record = _average_of_others(
        {"data.image_size": 32, "data.phantom_count": 60, "metrics.gallery_size": 50}
    )
    # the average chest scores its own floor exactly, far above a blank gray image
    assert record["prior_ssim"] == pytest.approx(record["ssim"])
    assert record["prior_psnr"] == pytest.approx(record["psnr"])
    assert record["floor_ssim"] == record["prior_ssim"] > record["blank_ssim"] + 0.3
    assert record["floor_psnr"] == record["prior_psnr"] > record["blank_psnr"] + 1
    verdict = judge(record)
    assert verdict.outcome != LEAKS, verdict.reason
    assert "at the floor" in verdict.reason and "mean of other images" in verdict.reason
    # against the blank floor alone, the old rule called the average chest a leak
    assert judge(_blank_only(record)).outcome == LEAKS
    # RDLV is taken against the prior image (NVFlare), so the average itself gains nothing
    assert record["rdlv_reference"] == "prior" and record["rdlv"] == pytest.approx(0.0, abs=1e-6)


def test_average_of_other_real_xrays_is_not_a_leak(chest_xray_sample: Path) -> None:
    record = _average_of_others(
        {"data.source": str(chest_xray_sample), "data.image_size": 64, "metrics.gallery_size": 4}
    )
    assert record["floor_psnr"] == record["prior_psnr"] > record["blank_psnr"]
    verdict = judge(record)
    assert verdict.outcome != LEAKS, verdict.reason
    assert judge(_blank_only(record)).outcome == LEAKS


def _folder_of_phantoms(root: Path, count: int) -> Path:
    """An ImageFolder tree of phantom PNGs (another 'hospital' of the same modality)."""
    import numpy as np
    from PIL import Image

    from medleak.data import open_dataset
    from medleak.data.spec import DataSpec

    dataset = open_dataset(DataSpec(image_size=32, phantom_count=count), seed=5)
    batch = dataset.load(list(range(count)))
    for i, (image, label) in enumerate(zip(batch.images, batch.labels.tolist(), strict=True)):
        folder = root / ("NORMAL" if label == 0 else "PNEUMONIA")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image[0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"other-{i:03d}.png")
    return root


def test_gallery_source_and_auxiliary_come_from_other_folders(tmp_path: Path) -> None:
    other = str(_folder_of_phantoms(tmp_path / "other", 30))
    base = {"seed": 0, "model.channels": 1, "data.image_size": 32, "data.phantom_count": 6}
    own = plan_run(apply_overrides(RunConfig(), {**base, "metrics.gallery_size": 100}))
    assert gallery_for(own).available == 2  # 6 phantoms minus the batch of 4: not enough
    # --auxiliary naming the victims' own data averages the others, never the victims
    same = plan_run(apply_overrides(RunConfig(), {**base, "metrics.auxiliary": "phantom"}))
    prior_same, _ = prior_for(same, gallery_for(same))
    assert torch.allclose(prior_same, gallery_for(own).images.double().mean(0))
    config = apply_overrides(
        RunConfig(), {**base, "metrics.gallery_size": 25, "metrics.gallery_source": other}
    )
    plan = plan_run(config)
    distractors = gallery_for(plan)
    assert distractors.available == 30 and distractors.images.shape == (25, 1, 32, 32)
    prior, source = prior_for(plan, distractors)
    assert source == "distractors" and torch.allclose(prior, distractors.images.double().mean(0))
    aux = apply_overrides(config, {"metrics.auxiliary": other})
    prior_aux, source_aux = prior_for(plan_run(aux), distractors)
    assert source_aux == "auxiliary"  # all 30 images, not the 25 distractors
    assert not torch.allclose(prior_aux, prior)
