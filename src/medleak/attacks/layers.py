"""Where the victim model exposes its features: the linear layers and what flows into them.

Attacks that read structure from an update (label counts from the last layer; per-image feature
vectors from a wide bias-free layer, R-GAP, Zhu & Blaschko, ICLR 2021) need to find those layers
and to compute their inputs for any image. A forward hook does that for any ``nn.Module`` without
knowing its code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LinearLayer:
    """One ``nn.Linear`` of the model: its module path and parameter names."""

    name: str
    module: nn.Linear

    @property
    def weight_name(self) -> str:
        return f"{self.name}.weight" if self.name else "weight"

    @property
    def bias_name(self) -> str | None:
        if self.module.bias is None:
            return None
        return f"{self.name}.bias" if self.name else "bias"


def linear_layers(model: nn.Module) -> list[LinearLayer]:
    """Every linear layer in registration order (for the models here, forward order)."""
    return [LinearLayer(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


class _Stop(Exception):
    """Raised by the hook to stop the forward pass once the wanted input is captured."""


def layer_input(model: nn.Module, layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """What ``layer`` receives when ``inputs`` go through ``model`` (flattened per example).

    Differentiable with respect to ``inputs``; the rest of the forward pass is never computed.
    """
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0])
        raise _Stop

    handle = layer.register_forward_pre_hook(hook)
    try:
        model(inputs)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the layer was not reached in the forward pass")
    return captured[0].flatten(1)
