"""The input normalisation a deployment's model applies (ImageNet's mean/std, say), as part of
the model: a forward pre-hook, so parameter names stay the model's own, the client's update and
the attacker's model of it both see normalised inputs, and the attack still rebuilds images in
[0, 1] pixel space.

Written ``imagenet`` or ``MEAN/STD`` with one value, or one per channel, each side
(``0.5/0.25``, ``0.485,0.456,0.406/0.229,0.224,0.225``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medleak.errors import ConfigError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def parse_normalize(text: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel from ``imagenet`` or ``MEAN/STD``."""
    if text.strip().lower() == "imagenet":
        mean, std = IMAGENET
        if channels == 1:  # a gray image replicated: the channels' average
            return (sum(mean) / 3,), (sum(std) / 3,)
        return mean, std
    left, slash, right = text.partition("/")
    try:
        mean = tuple(float(v) for v in left.split(","))
        std = tuple(float(v) for v in right.split(","))
    except ValueError:
        mean = std = ()
    if not slash or not mean or not std:
        raise ConfigError(
            f"model.normalize must be 'imagenet' or MEAN/STD (e.g. 0.5/0.25), got {text!r}"
        )
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        raise ConfigError(f"model.normalize {text!r}: give 1 or {channels} values each side")
    if not all(s > 0 for s in std):
        raise ConfigError(f"model.normalize {text!r}: every std must be > 0")
    return mean * (channels // len(mean)), std * (channels // len(std))


def add_normalization(model: nn.Module, text: str | None, channels: int) -> nn.Module:
    """Register ``(x - mean) / std`` in front of ``model``'s forward (nothing for None)."""
    if text is None:
        return model
    mean, std = parse_normalize(text, channels)

    def normalise(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return ((x - m) / s, *args[1:])

    model.register_forward_pre_hook(normalise)
    return model
