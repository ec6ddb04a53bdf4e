"""The attacker's lean double backward gives the plain double backward's numbers, with less work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from medleak.fl import FLSettings, client_update_tensors, parameters_of
from medleak.fl.double_backward import lean_layers
from medleak.models import build_model


def _plain_update(model, params, inputs, targets, settings):
    """Reference: the obvious unrolled client computation with PyTorch's own derivatives."""
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    current = dict(params)
    names = list(params)
    total = None
    for _ in range(settings.steps):
        logits = functional_call(model, ({**current, **buffers},), (inputs,))
        grads = torch.autograd.grad(
            F.cross_entropy(logits, targets), [current[n] for n in names], create_graph=True
        )
        total = list(grads) if total is None else [t + g for t, g in zip(total, grads)]
        if settings.algorithm == "fedavg":
            current = {n: current[n] - settings.local_lr * g for n, g in zip(names, grads)}
    return dict(zip(names, total))


def _image_gradient(update_fn, model, settings, size=32, n=2, seed=0):
    """Gradient w.r.t. the images of the squared L2 between dummy and a fixed target update."""
    generator = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    images = torch.rand(n, 1, size, size, generator=generator, dtype=dtype)
    images.requires_grad_(True)
    params = {k: p.clone().requires_grad_(True) for k, p in parameters_of(model).items()}
    target = {
        k: torch.randn(p.shape, generator=generator, dtype=p.dtype) * 1e-2
        for k, p in params.items()
    }
    inputs = images.expand(-1, model.in_channels, -1, -1)
    dummy = update_fn(model, params, inputs, torch.arange(n) % 2, settings)
    loss = sum(((dummy[k] - target[k]) ** 2).sum() for k in target)
    loss.backward(inputs=[images])
    return loss.detach(), images.grad


def _lean_update(model, params, inputs, targets, settings):
    return client_update_tensors(model, params, inputs, targets, settings, create_graph=True)


@pytest.mark.parametrize("name", ["lenet", "lenet-dlg", "resnet18-rog", "resnet18", "resnet18-gn"])
@pytest.mark.parametrize(
    "settings", [FLSettings("fedsgd"), FLSettings("fedavg", local_steps=2, local_lr=0.1)]
)
def test_lean_path_equals_the_plain_double_backward(name, settings) -> None:
    model = build_model(name, 1 if name != "lenet" else 3, 16, seed=0).double()
    loss, grad = _image_gradient(_lean_update, model, settings, size=16)
    ref_loss, ref_grad = _image_gradient(_plain_update, model, settings, size=16)
    assert torch.allclose(loss, ref_loss, rtol=1e-10)
    assert torch.allclose(grad, ref_grad, rtol=1e-8, atol=1e-12 * ref_grad.abs().max())


class _OddConvs(nn.Module):
    """Strides, odd sizes, groups, dilation, bias, reflect padding, in-place ReLU, 3-d linear."""

    in_channels = 1

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode="reflect")
        self.c = nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(0, 2), bias=False)
        self.d = nn.Conv2d(6, 6, 3, padding="same")
        self.mix = nn.Linear(6, 6)
        self.head = nn.Linear(6, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.a(x))
        x = torch.relu(self.b(x))
        x = F.relu(self.c(x), inplace=True)
        x = torch.tanh(self.d(x))
        x = F.relu(self.mix(x.flatten(2).transpose(1, 2)))  # linear on N x positions x channels
        return self.head(x.mean(1))


@pytest.mark.parametrize("settings", [FLSettings(), FLSettings("fedavg", 2, 0.1)])
def test_lean_layers_handle_every_conv_configuration(settings) -> None:
    torch.manual_seed(0)
    model = _OddConvs().double()
    loss, grad = _image_gradient(_lean_update, model, settings, size=15)
    ref_loss, ref_grad = _image_gradient(_plain_update, model, settings, size=15)
    assert torch.allclose(loss, ref_loss, rtol=1e-10)
    assert torch.allclose(grad, ref_grad, rtol=1e-8, atol=1e-12 * ref_grad.abs().max())


def test_lean_path_skips_the_convolutions_nobody_uses() -> None:
    """FedSGD needs 7 convolution-equivalents per layer; PyTorch's generic path spends 8."""
    model = build_model("resnet18-rog", 1, 16, seed=0)
    with FlopCounterMode(display=False) as forward:
        model(torch.rand(2, 1, 16, 16))
    counts = {}
    for label, fn in (("lean", _lean_update), ("plain", _plain_update)):
        with FlopCounterMode(display=False) as counter:
            _image_gradient(fn, model, FLSettings(), size=16)
        counts[label] = counter.get_total_flops() / forward.get_total_flops()
    assert counts["lean"] < 7.05 < 7.9 < counts["plain"]


def test_lean_layers_are_off_outside_the_context() -> None:
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    w = torch.rand(2, 1, 3, 3)
    with lean_layers():
        inside = F.conv2d(x, w)
    outside = F.conv2d(x, w)
    assert "Lean" in type(inside.grad_fn).__name__
    assert "Lean" not in type(outside.grad_fn).__name__
    assert torch.equal(inside, outside)


@pytest.mark.parametrize("name", ["lenet", "resnet18-rog"])
def test_lean_layers_run_under_cpu_bfloat16_autocast(name) -> None:
    """The opt-in low-precision path: one dtype inside each lean Function's backward (a float32
    weight met bfloat16 gradients there before), and the image gradient still points where the
    float32 one does."""
    model = build_model(name, 1 if name != "lenet" else 3, 16, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, low = _image_gradient(_lean_update, model, FLSettings(), size=16)
    _, full = _image_gradient(_lean_update, model, FLSettings(), size=16)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert F.cosine_similarity(low.flatten(), full.flatten(), dim=0) > 0.9
