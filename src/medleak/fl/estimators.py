"""How a client turns one batch into one step's gradient: plain, or DP-SGD.

The client's SGD loop (``fl.client``) and federated training (``fl.training``) ask an estimator
for each step's gradient; the estimator is the only place that knows whether the gradient is the
plain mean-loss gradient or DP-SGD's clipped and noised one. So DP is not a defense stage that
recomputes the update: the defense chain after it only transforms updates (``Update -> Update``).

DP-SGD (Abadi et al., CCS 2016, "Deep Learning with Differential Privacy"): per-example
gradients, each clipped to L2 norm ``c``, summed, Gaussian noise of std ``z c`` added, divided by
the batch size. The clipped sum comes from layer rules on one batch pass (``fl.per_example``)
where every layer has one, else from torch.func ``vmap(grad(...))`` over the same ``batch_loss``
the plain estimator uses; BatchNorm mixes the examples of a batch, so per-example gradients are
undefined there and the DP estimator refuses such models (Opacus does the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from medleak.errors import ConfigError
from medleak.fl.per_example import (
    clip_factors,
    clipped_gradient_sum,
    example_squares,
    scale_examples,
)
from medleak.models import has_batchnorm

Params = dict[str, torch.Tensor]

# Per-example gradients of this many floats at most are held at once (256 MB in float32).
_CHUNK_FLOATS = 2**26


def batch_loss(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """Mean cross-entropy; ``targets`` are class indices or per-class probabilities."""
    logits = functional_call(model, ({**params, **buffers},), (inputs,))
    return F.cross_entropy(logits, targets)


class GradientEstimator(Protocol):
    """One local step's gradient at ``params`` for one batch (``inputs`` at the model's channels).

    ``create_graph=True`` is the attacker asking for a differentiable result; only the plain
    estimator supports it (the attacker simulates an honest client's computation).
    """

    name: str

    def check(self, model: nn.Module) -> None: ...

    def gradient(
        self,
        model: nn.Module,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        create_graph: bool = False,
    ) -> Params: ...


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().requires_grad_(True)


@dataclass(frozen=True)
class PlainGradient:
    """The gradient of the batch's mean cross-entropy: what an honest client computes."""

    name: str = "plain"

    def check(self, model: nn.Module) -> None:
        return None

    def gradient(
        self,
        model: nn.Module,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        create_graph: bool = False,
    ) -> Params:
        names = list(params)
        # a weight that is not yet a leaf of the graph (federated training's copies) becomes one
        params = {
            n: p if p.requires_grad else p.detach().requires_grad_(True) for n, p in params.items()
        }
        loss = batch_loss(model, params, buffers, inputs, targets)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
        return dict(zip(names, grads))


PLAIN = PlainGradient()


def per_example_gradients(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> Params:
    """name -> B x (parameter shape): the gradient of each example's own loss."""

    def example_loss(p: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
        return batch_loss(model, p, buffers, x.unsqueeze(0), y.unsqueeze(0))

    return vmap(grad(example_loss), in_dims=(None, 0, 0))(dict(params), inputs, targets)


def per_example_norms(per_example: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """B norms, each over all parameters of one example's gradient."""
    return example_squares(per_example).sqrt()


def clip_per_example(per_example: Mapping[str, torch.Tensor], c: float) -> Params:
    """Scale each example's gradient by min(1, c / ||g_i||), so every example has norm <= c."""
    factor = clip_factors(per_example_norms(per_example), c)
    return {name: scale_examples(g, factor) for name, g in per_example.items()}


def noisy_clipped_gradient(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    c: float,
    z: float,
    generator: torch.Generator,
) -> Params:
    """One DP-SGD gradient: (sum_i clip_c(g_i) + N(0, (z c)^2)) / B."""
    batch = inputs.shape[0]
    floats = sum(p.numel() for p in params.values())
    chunk = max(1, _CHUNK_FLOATS // max(1, floats))
    total: Params = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, batch, chunk):
        x, y = inputs[start : start + chunk], targets[start : start + chunk]
        summed = clipped_gradient_sum(model, params, buffers, x, y, c)
        if summed is None:  # a layer without a rule: materialise each example's gradient
            summed = {
                n: g.sum(0)
                for n, g in clip_per_example(
                    per_example_gradients(model, params, buffers, x, y), c
                ).items()
            }
        for name, g in summed.items():
            total[name] += g
    out = {}
    for name, t in total.items():
        noise = torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)
        out[name] = (t + z * c * noise) / batch
    return out


@dataclass
class DpSgdGradient:
    """DP-SGD's per-example clipped (``c``), noised (``z c``) gradient; noise from ``generator``
    (its own stream, so a run repeats exactly and other randomness is untouched)."""

    c: float
    z: float
    generator: torch.Generator
    name: str = "dp-sgd"

    def check(self, model: nn.Module) -> None:
        if has_batchnorm(model):
            raise ConfigError(
                "defense 'dp': per-example gradients are undefined with BatchNorm (it mixes the "
                "examples of a batch); use a model without BatchNorm, e.g. lenet or resnet18-rog"
            )

    def gradient(
        self,
        model: nn.Module,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        create_graph: bool = False,
    ) -> Params:
        if create_graph:
            raise ValueError("the DP-SGD estimator is not differentiable w.r.t. the images")
        detached = {n: p.detach() for n, p in params.items()}
        return noisy_clipped_gradient(
            model, detached, buffers, inputs, targets, self.c, self.z, self.generator
        )
