"""The client's computation, written functionally so the attacker can differentiate through it.

The same function computes the real update (client side) and the dummy update that an attack
matches (server side, with ``create_graph=True``), so both sides agree by construction. On the
attacker's side the layers run as :mod:`medleak.fl.double_backward` functions, the same values
with a backward pass that is cheaper to differentiate again (the attack loop's hot path).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from medleak.data.batch import Batch
from medleak.fl.double_backward import lean_layers
from medleak.fl.estimators import PLAIN, GradientEstimator
from medleak.fl.update import FLSettings, Update
from medleak.models import model_info, to_model_input

Params = dict[str, torch.Tensor]


def parameters_of(model: nn.Module) -> Params:
    """The trainable parameters the server sent, detached."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def buffers_of(model: nn.Module) -> Params:
    """Copies of the buffers (BatchNorm running stats): a forward pass must never mutate them."""
    return {name: b.detach().clone() for name, b in model.named_buffers()}


def client_update_tensors(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    settings: FLSettings,
    create_graph: bool = False,
) -> Params:
    """The update a client sends for ``inputs`` (already at the model's channel count).

    FedAvg's (w0 - w_tau) / lr equals the sum of the tau step gradients; it is accumulated as that
    sum because subtracting nearly equal float32 weights at lr = 1e-4 would lose digits.

    ``create_graph=True`` (the attacker) keeps the result differentiable w.r.t. ``inputs`` and
    runs the layers as :func:`medleak.fl.double_backward.lean_layers`: the same values, and a
    second backward pass without the work PyTorch's generic double backward wastes.
    """
    buffers = buffers_of(model)
    if not create_graph:
        return local_sgd(model, dict(params), buffers, inputs, targets, settings)
    # Views, not the leaves themselves: the autograd engine cannot be asked during
    # ``autograd.grad`` whether it will use a leaf's gradient, and the lean layers ask it.
    current = {n: p.view_as(p) for n, p in params.items()}
    if inputs.is_leaf and inputs.requires_grad:
        inputs = inputs.view_as(inputs)
    # The lean linear layer pays off only where later weights depend on the images (FedAvg).
    with lean_layers(linear=settings.steps > 1):
        return local_sgd(model, current, buffers, inputs, targets, settings, create_graph=True)


def local_sgd(
    model: nn.Module,
    current: Params,
    buffers: Params,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    settings: FLSettings,
    estimator: GradientEstimator = PLAIN,
    create_graph: bool = False,
) -> Params:
    """Sum of the step gradients of ``settings.steps`` full-batch SGD steps from ``current``,
    each step's gradient from ``estimator`` (plain, or DP-SGD's clipped and noised one), with
    BatchNorm in ``settings.bn_mode``."""
    with batchnorm_mode(model, settings.bn_mode):
        return _local_sgd(
            model, current, buffers, inputs, targets, settings, estimator, create_graph
        )


@contextmanager
def batchnorm_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Every BatchNorm layer of ``model`` in ``mode`` (``eval``: frozen running statistics) for
    the duration; the layers' own modes are restored after."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    before = [m.training for m in layers]
    try:
        if mode == "eval":
            for layer in layers:
                layer.train(False)
        yield
    finally:
        for layer, training in zip(layers, before):
            layer.train(training)


def _local_sgd(
    model: nn.Module,
    current: Params,
    buffers: Params,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    settings: FLSettings,
    estimator: GradientEstimator,
    create_graph: bool,
) -> Params:
    names = list(current)
    total: list[torch.Tensor] | None = None
    for step in range(settings.steps):
        estimate = estimator.gradient(model, current, buffers, inputs, targets, create_graph)
        grads = [estimate[n] for n in names]
        total = list(grads) if total is None else [t + g for t, g in zip(total, grads)]
        if settings.algorithm == "fedavg" and step + 1 < settings.steps:
            # One fused kernel (and one in the backward pass) instead of a product and a
            # difference: weight-sized passes dominate FedAvg on LeNet's wide linear layer.
            lr = settings.local_lr
            current = {n: torch.add(current[n], g, alpha=-lr) for n, g in zip(names, grads)}
    assert total is not None
    return dict(zip(names, total))


def compute_update(
    model: nn.Module, batch: Batch, settings: FLSettings, estimator: GradientEstimator = PLAIN
) -> Update:
    """What a client sends for ``batch`` under ``settings`` (no obfuscation yet), each local
    step's gradient from ``estimator`` (the honest plain gradient unless DP-SGD is asked for)."""
    estimator.check(model)
    params = {n: p.requires_grad_(True) for n, p in parameters_of(model).items()}
    inputs = to_model_input(batch.images, model_info(model).channels)
    # The copies are updated in place by every training-mode forward pass: after the steps they
    # hold the running statistics the client would send.
    buffers = buffers_of(model)
    tensors = local_sgd(model, dict(params), buffers, inputs, batch.labels, settings, estimator)
    tensors = {n: t.detach() for n, t in tensors.items()}
    update = Update(
        buffers=buffers if settings.sends_buffers and buffers else None,
        tensors=tensors,
        kind="gradient" if settings.algorithm == "fedsgd" else "pseudo_gradient",
        fl=settings,
        batch_size=len(batch),
        bits_sent=32 * sum(t.numel() for t in tensors.values()),
    )
    update.check_finite()
    return update
