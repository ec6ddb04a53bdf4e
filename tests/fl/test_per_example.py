"""DP-SGD's clipped sum by layer rules equals the materialised per-example gradients, and falls
back to them where a layer has no rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medleak.fl.estimators import (
    DpSgdGradient,
    clip_per_example,
    noisy_clipped_gradient,
    per_example_gradients,
)
from medleak.fl.per_example import clipped_gradient_sum
from medleak.models import build_model


def reference_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, c: float) -> dict:
    params = {n: p.detach() for n, p in model.named_parameters()}
    grads = per_example_gradients(model, params, dict(model.named_buffers()), x, y)
    return {n: g.sum(0) for n, g in clip_per_example(grads, c).items()}


def fast_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, c: float) -> dict | None:
    params = {n: p.detach() for n, p in model.named_parameters()}
    return clipped_gradient_sum(model, params, dict(model.named_buffers()), x, y, c)


def inputs(n: int, size: int, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, channels, size, size, generator=g), torch.arange(n) % 2


def assert_close(fast: dict, ref: dict) -> None:
    assert fast.keys() == ref.keys()
    for name, r in ref.items():
        scale = r.abs().max().clamp(min=1e-12)
        assert (fast[name] - r).abs().max() / scale < 1e-4, name


@pytest.mark.parametrize("name", ["lenet", "lenet-dlg", "resnet18-rog"])
@pytest.mark.parametrize("c", [1e-3, 1.0, 1e3])  # every example clipped / some / none
def test_layer_rules_equal_materialised_per_example_gradients(name: str, c: float) -> None:
    model = build_model(name, 1, 16 if name == "resnet18-rog" else 32, seed=0)
    x, y = inputs(5, 16 if name == "resnet18-rog" else 32)
    fast = fast_sum(model, x, y, c)
    assert fast is not None, "every layer of the registry's DP-capable models has a rule"
    assert_close(fast, reference_sum(model, x, y, c))


def test_soft_labels_and_a_biased_linear_on_sequences() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(2), nn.Linear(16, 3), nn.Flatten(), nn.Linear(3, 2))
    x = torch.rand(4, 1, 4, 4)
    y = torch.softmax(torch.randn(4, 2), 1)  # per-class probabilities, as label smoothing gives
    fast = fast_sum(model, x, y, 0.05)
    assert fast is not None
    assert_close(fast, reference_sum(model, x, y, 0.05))


class Twice(nn.Module):
    """A layer called twice per forward: its two calls' terms would mix in a layer rule."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.layer(torch.tanh(self.layer(x.flatten(1))))))


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8, 2)),
        Twice(),
    ],
    ids=["layer-without-rule", "in-place-after-layer", "layer-called-twice"],
)
def test_models_without_rules_fall_back_to_the_materialised_gradients(model: nn.Module) -> None:
    torch.manual_seed(0)
    x, y = inputs(3, 2)
    assert fast_sum(model, x, y, 0.1) is None
    params = {n: p.detach() for n, p in model.named_parameters()}
    # zero noise: the estimator's result is the reference clipped mean
    got = noisy_clipped_gradient(
        model, params, {}, x, y, 0.1, 0.0, torch.Generator().manual_seed(0)
    )
    ref = reference_sum(model, x, y, 0.1)
    assert_close({n: g * 3 for n, g in got.items()}, ref)


def test_dp_estimator_uses_the_same_noise_stream_as_before() -> None:
    """The layer rules change how the clipped sum is computed, not the noise drawn after it."""
    model = build_model("lenet", 1, 32, seed=0)
    x, y = inputs(4, 32)
    params = {n: p.detach() for n, p in model.named_parameters()}
    got = DpSgdGradient(1.0, 0.7, torch.Generator().manual_seed(3)).gradient(
        model, params, {}, x, y
    )
    gen = torch.Generator().manual_seed(3)
    ref = reference_sum(model, x, y, 1.0)
    for name, r in ref.items():
        noise = torch.randn(r.shape, generator=gen)
        expected = (r + 0.7 * noise) / 4
        assert torch.allclose(got[name], expected, atol=1e-6, rtol=1e-4), name
