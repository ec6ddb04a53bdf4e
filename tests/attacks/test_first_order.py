"""Issue 12: the first-order attacker model of FedAvg against the exact unroll."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.attacks.dummy import dummy_update, trainable_params
from medleak.data import Batch
from medleak.errors import ConfigError
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model


def _images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    coarse = torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1)


def _relative_error(lr: float, steps: int, name: str = "lenet") -> float:
    model = build_model(name, 3, 32, seed=0)
    images, labels = _images(4, 32), torch.tensor([0, 1, 0, 1])
    batch = Batch(images, labels, tuple("abcd"), (None,) * 4)
    update = compute_update(model, batch, FLSettings("fedavg", steps, lr))
    knowledge = ServerKnowledge(model=model, image_size=32, batch_size=4)
    params = trainable_params(knowledge)
    unrolled = dummy_update(knowledge, params, images, labels, update)
    first = dummy_update(knowledge, params, images, labels, update, first_order=True)

    def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        diff = sum(float((a[n] - b[n]).detach().pow(2).sum()) for n in b)
        return (diff / sum(float(b[n].detach().pow(2).sum()) for n in b)) ** 0.5

    # The unroll reproduces the client's update; the first-order model approximates it.
    assert distance(unrolled, update.tensors) < 1e-4
    return distance(first, unrolled)


def test_first_order_model_is_within_tolerance_for_small_lr_times_tau() -> None:
    # The reference FedAvg setting (tau 10, lr 1e-4) on ROG's ResNet-18: under 1% (measured 0.3%).
    assert _relative_error(1e-4, 10, "resnet18-rog") < 1e-2
    # ROG's LeNet has far larger gradients: there the same setting is 11% off, and only
    # lr 1e-6 is close. The approximation is a choice to measure, not a free speed-up.
    assert _relative_error(1e-6, 10) < 1e-3
    assert _relative_error(1e-4, 10) > 5e-2


def test_first_order_is_an_attack_option() -> None:
    model = build_model("lenet", 3, 32, seed=0)
    batch = Batch(_images(2, 32), torch.tensor([0, 1]), ("a", "b"), (None, None))
    update = compute_update(model, batch, FLSettings("fedavg", 3, 1e-4))
    knowledge = ServerKnowledge(model=model, image_size=32, batch_size=2)
    options = AttackOptions(2, labels="inferred", analytic=False, fedavg_model="first-order")
    result = get_attack("ig")(update, knowledge, options, seed=0)
    assert result.info["fedavg_model"] == "first-order"
    with pytest.raises(ConfigError):
        AttackOptions(fedavg_model="second")
