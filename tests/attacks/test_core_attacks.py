"""ROG and Inverting Gradients recover images, deterministically, and refuse bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.data import Batch
from medleak.errors import ConfigError, MedleakError
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model


def _smooth_batch(n: int, size: int, seed: int = 1) -> Batch:
    coarse = torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))
    images = F.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1)
    return Batch(images, torch.arange(n) % 2, tuple(f"s{i}" for i in range(n)), (None,) * n)


def _setup(model_name: str, n: int, size: int, channels: int = 1, settings=None):
    model = build_model(model_name, channels, size, seed=0)
    batch = _smooth_batch(n, size)
    update = compute_update(model, batch, settings or FLSettings())
    knowledge = ServerKnowledge(model, size, n, true_labels=batch.labels)
    return batch, update, knowledge


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_inverting_gradients_recovers_a_dlg_lenet_image() -> None:
    batch, update, knowledge = _setup("lenet-dlg", 1, 32)
    result = get_attack("ig")(update, knowledge, AttackOptions(iterations=400), seed=0)
    assert _psnr(result.images, batch.images) > 25
    assert result.trace[-1] < result.trace[0] and len(result.trace) == 400


def test_rog_reduces_the_matching_loss_and_beats_its_start() -> None:
    batch, update, knowledge = _setup("lenet", 2, 32, channels=3)
    result = get_attack("rog")(update, knowledge, AttackOptions(iterations=60), seed=0)
    assert result.images.shape == (2, 1, 32, 32)
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert result.trace[-1] < 0.25 * result.trace[0]
    start = max(_psnr(result.initial_images[i], batch.images[i]) for i in range(2))
    assert (
        min(max(_psnr(result.images[j], batch.images[i]) for j in range(2)) for i in range(2))
        > start + 2
    )


def test_rog_attacks_fedavg_by_unrolling_the_local_steps() -> None:
    settings = FLSettings("fedavg", local_steps=3, local_lr=0.05)
    batch, update, knowledge = _setup("lenet", 1, 32, settings=settings)
    result = get_attack("rog")(update, knowledge, AttackOptions(iterations=40), seed=0)
    assert result.trace[-1] < 0.2 * result.trace[0]


def test_all_channel_mode_reports_the_channel_mean() -> None:
    batch, update, knowledge = _setup("lenet", 1, 16, channels=3)
    options = AttackOptions(iterations=2, reconstruct_channels="all")
    result = get_attack("rog")(update, knowledge, options, seed=0)
    assert result.images.shape == (1, 1, 16, 16)


def test_same_seed_same_reconstruction() -> None:
    _, update, knowledge = _setup("lenet", 1, 16)
    options = AttackOptions(iterations=5)
    a = get_attack("rog")(update, knowledge, options, seed=3)
    b = get_attack("rog")(update, knowledge, options, seed=3)
    c = get_attack("rog")(update, knowledge, options, seed=4)
    assert torch.equal(a.images, b.images) and a.trace == b.trace
    assert not torch.equal(a.images, c.images)


def test_bad_attack_input_is_refused() -> None:
    _, update, knowledge = _setup("lenet", 1, 20)
    with pytest.raises(ConfigError, match="divisible"):
        get_attack("rog")(update, knowledge, AttackOptions(scale_factor=8), seed=0)
    with pytest.raises(ConfigError, match="iterations"):
        AttackOptions(iterations=0)
    with pytest.raises(ConfigError, match="unknown attack"):
        get_attack("gan")
    name = next(iter(update.tensors))
    bad = dict(update.tensors)
    bad[name] = torch.full_like(bad[name], float("inf"))
    with pytest.raises(MedleakError, match="NaN/inf"):
        get_attack("ig")(update.replace(tensors=bad), knowledge, AttackOptions(), seed=0)
    other = build_model("lenet", 1, 16, seed=0)
    with pytest.raises(MedleakError, match="shape"):
        get_attack("rog")(update, ServerKnowledge(other, 16, 1), AttackOptions(), seed=0)
