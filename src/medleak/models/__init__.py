"""Victim classifiers, and what each one is.

Registry: name -> ``ModelSpec`` (constructor(in_channels, num_classes, image_size) plus the facts
attacks need: BatchNorm or not, which linear layer is the wide exposed one, which is the head), so
an attack reads what a model *is* instead of sniffing its layer list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medleak.errors import ConfigError
from medleak.models.densenet import DenseNet121
from medleak.models.lenet import DlgLeNet, RogLeNet
from medleak.models.normalize import add_normalization
from medleak.models.resnet import ResNet18, ResNet18GN, RogResNet18
from medleak.models.weights import load_weights


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry.

    build: constructor(in_channels, num_classes, image_size); every model here takes any
        number of classes (``model.num_classes``).
    has_batchnorm: BatchNorm mixes the batch (no per-example gradients; running buffers exist).
    exposed_linear: module path of a wide linear layer fed by non-negative features, whose weight
        gradient exposes per-image features (R-GAP / ROG's analytic stage); None if there is none.
    head: module path of the last linear layer; when the model has an exposed layer, the head
        follows it directly (its weights scale the disaggregated features).
    min_image_size: the smallest side the architecture's downsampling allows.
    """

    build: Callable[[int, int, int], nn.Module]
    has_batchnorm: bool
    exposed_linear: str | None
    head: str
    num_classes_configurable: bool = True
    min_image_size: int = 8


@dataclass(frozen=True)
class ModelInfo:
    """What a built model is: its input channels and its registry facts."""

    channels: int
    has_batchnorm: bool
    exposed_linear: str | None
    head: str | None


MODELS: dict[str, ModelSpec] = {
    "lenet": ModelSpec(RogLeNet, False, exposed_linear="classifier.1", head="classifier.3"),
    "lenet-dlg": ModelSpec(DlgLeNet, False, exposed_linear=None, head="classifier.1"),
    "resnet18-rog": ModelSpec(RogResNet18, False, exposed_linear=None, head="fc"),
    "resnet18": ModelSpec(ResNet18, True, exposed_linear=None, head="fc"),
    "resnet18-gn": ModelSpec(ResNet18GN, False, exposed_linear=None, head="fc"),
    "densenet121": ModelSpec(
        DenseNet121, True, exposed_linear=None, head="classifier", min_image_size=32
    ),
}


def build_model(
    name: str,
    channels: int,
    image_size: int,
    seed: int,
    num_classes: int = 2,
    weights: str | Path | None = None,
    normalize: str | None = None,
) -> nn.Module:
    """Build a victim model initialised from ``seed`` (global RNG untouched), in training mode;
    ``normalize``: its input normalisation (``models.normalize``), None for none."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if image_size < 8 or image_size % 4:
        raise ConfigError(f"image size must be a multiple of 4 and at least 8, got {image_size}")
    smallest = MODELS[name].min_image_size
    if image_size < smallest:
        raise ConfigError(f"model {name} needs images of at least {smallest} px, got {image_size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS[name].build(channels, num_classes, image_size)
    if weights is not None:
        load_weights(model, weights)
    add_normalization(model, normalize, channels)
    # A client trains: BatchNorm uses batch statistics, as in the update a server receives.
    return model.train()


def model_info(model: nn.Module) -> ModelInfo:
    """The registry facts of ``model``'s class; for a model outside the registry (a test's toy
    model, a user's own), facts read from its modules, the exposed layer being a first linear
    layer followed by at least one more, the head being the second when there are exactly two."""
    channels = _input_channels(model)
    for spec in MODELS.values():
        if type(model) is spec.build:
            return ModelInfo(channels, spec.has_batchnorm, spec.exposed_linear, spec.head)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    exposed = linears[0] if len(linears) >= 2 else None
    head = linears[1] if len(linears) == 2 else None
    return ModelInfo(channels, has_batchnorm(model), exposed, head)


def _input_channels(model: nn.Module) -> int:
    declared = getattr(model, "in_channels", None)
    if isinstance(declared, int):
        return declared
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    raise ConfigError(f"cannot tell the input channels of {type(model).__name__}")


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


__all__ = [
    "MODELS",
    "ModelInfo",
    "ModelSpec",
    "build_model",
    "has_batchnorm",
    "load_weights",
    "model_info",
    "to_model_input",
]
