"""Victim classifiers. Registry: name -> constructor(in_channels, num_classes, image_size)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from medleak.errors import ConfigError
from medleak.models.lenet import DlgLeNet, RogLeNet
from medleak.models.resnet import ResNet18, RogResNet18
from medleak.models.weights import load_weights

MODELS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "lenet": RogLeNet,
    "lenet-dlg": DlgLeNet,
    "resnet18-rog": RogResNet18,
    "resnet18": ResNet18,
}


def build_model(
    name: str,
    channels: int,
    image_size: int,
    seed: int,
    num_classes: int = 2,
    weights: str | Path | None = None,
) -> nn.Module:
    """Build a victim model initialised from ``seed`` (global RNG untouched), in training mode."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if image_size < 8 or image_size % 4:
        raise ConfigError(f"image size must be a multiple of 4 and at least 8, got {image_size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS[name](channels, num_classes, image_size)
    if weights is not None:
        load_weights(model, weights)
    # A client trains: BatchNorm uses batch statistics, as in the update a server receives.
    return model.train()


def has_batchnorm(model: nn.Module) -> bool:
    """True when per-example gradients are undefined because BatchNorm mixes the batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def to_model_input(gray: torch.Tensor, channels: int) -> torch.Tensor:
    """Replicate N x 1 x H x W gray images to the model channel count, as medical pipelines do."""
    if gray.shape[1] == channels:
        return gray
    if gray.shape[1] != 1:
        raise ConfigError(
            f"cannot feed {gray.shape[1]}-channel images to a {channels}-channel model"
        )
    return gray.expand(-1, channels, -1, -1)


__all__ = ["MODELS", "build_model", "has_batchnorm", "load_weights", "to_model_input"]
