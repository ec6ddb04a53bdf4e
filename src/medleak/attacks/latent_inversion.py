"""Invert per-image targets at a wide layer's input on ROG's low-resolution latent.

The stages that read one target per image off a wide layer (a feature support under sign, an
averaged feature direction under unbiased quantization) all finish the same way: one gray latent
per target, upsampled bicubically, optimised so that the layer's input matches the target. The
low-resolution latent is what keeps the fit smooth: a full-resolution image matches a one-bit
support or a noisy direction with high-frequency noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medleak.attacks.base import Progress, ServerKnowledge
from medleak.attacks.dummy import report, seeded_uniform
from medleak.attacks.gradient_matching import total_variation
from medleak.attacks.layers import LinearLayer, layer_input
from medleak.models import to_model_input

DEFAULT_LR = 0.01

FeatureLoss = Callable[[torch.Tensor], torch.Tensor]
Inversion = tuple[torch.Tensor, torch.Tensor, list[float]]


@dataclass(frozen=True)
class LatentFit:
    """How to fit: Adam steps, latent side, total-variation weight, seed, learning rate."""

    iterations: int
    side: int
    tv: float
    seed: int
    lr: float = DEFAULT_LR


def invert_features(
    knowledge: ServerKnowledge,
    layer: LinearLayer,
    count: int,
    feature_loss: FeatureLoss,
    fit: LatentFit,
    progress: Progress | None = None,
) -> Inversion:
    """``count`` gray images minimising ``feature_loss`` of the layer's input (count x F) plus
    ``fit.tv`` x total variation; returns the images, the start, and the loss trace.

    Adam with cosine annealing to 0.1 lr on a ``fit.side`` x ``fit.side`` latent in [0, 1],
    started at mid-gray with faint seeded noise.
    """
    size, side, lr, iterations = knowledge.image_size, fit.side, fit.lr, fit.iterations
    latent = 0.5 + 0.02 * (seeded_uniform((count, 1, side, side), fit.seed) - 0.5)

    def image(lat: torch.Tensor) -> torch.Tensor:
        if side == size:
            return lat.clamp(0, 1)
        up = F.interpolate(lat, size=(size, size), mode="bicubic", align_corners=False)
        return up.clamp(0, 1)

    initial = image(latent).detach()
    latent.requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations, 0.1 * lr)
    trace: list[float] = []
    for iteration in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        images = image(latent)
        inputs = to_model_input(images, knowledge.channels)
        loss = feature_loss(layer_input(knowledge.model, layer.module, inputs))
        loss = loss + fit.tv * total_variation(images)
        loss.backward(inputs=[latent])
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            latent.clamp_(0, 1)
        trace.append(loss.item())
        report(progress, iteration, trace[-1])
    return image(latent).detach(), initial, trace


__all__ = ["DEFAULT_LR", "FeatureLoss", "Inversion", "LatentFit", "invert_features"]
