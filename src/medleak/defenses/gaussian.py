"""``gaussian``: add isotropic Gaussian noise to every coordinate of the update.

The simplest perturbation defense; DLG (Zhu et al., NeurIPS 2019, "Deep Leakage from Gradients")
found that noise of variance around 1e-2 stops it while 1e-4 does not. Without clipping it carries
no formal guarantee (the gradient's sensitivity is unbounded); ``dp`` is the version that does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import Defense, Param, Tensors, fail
from medleak.fl.update import Declaration


def tensor_rms(tensor: torch.Tensor) -> float:
    """Root mean square of the coordinates: the scale ``relative`` noise is measured against."""
    return float(tensor.double().pow(2).mean().sqrt()) if tensor.numel() else 0.0


def add_gaussian(tensor: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``tensor + N(0, sigma^2)`` per coordinate, drawn from ``generator``."""
    noise = torch.randn(tensor.shape, generator=generator, device=tensor.device, dtype=tensor.dtype)
    return tensor + sigma * noise


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    out = {}
    for name, tensor in tensors.items():
        if params["sigma"] is not None:
            sigma = params["sigma"]
        else:
            sigma = params["relative"] * tensor_rms(tensor)
        out[name] = add_gaussian(tensor, sigma, generator)
    return out


def _validate(params: Mapping[str, Any]) -> None:
    if (params["sigma"] is None) == (params["relative"] is None):
        raise fail(
            "gaussian",
            "sigma",
            "or 'relative' must be given, exactly one of them (absolute or relative to each "
            "tensor's RMS)",
        )


def _nonneg(x: float) -> bool:
    return x >= 0


GAUSSIAN = Defense(
    name="gaussian",
    summary="add N(0, sigma^2) to every coordinate (Zhu et al. 2019); no formal guarantee",
    params=(
        Param(
            "sigma",
            float,
            None,
            "absolute noise std (give sigma or relative)",
            check=_nonneg,
            requirement=">= 0",
        ),
        Param(
            "relative",
            float,
            None,
            "noise std as a multiple of each tensor's RMS",
            check=_nonneg,
            requirement=">= 0",
        ),
    ),
    transform=_apply,
    bits=None,
    bits_text="unchanged (32 n)",
    validate=_validate,
    declares=lambda params: Declaration("noisy", zero_mean=True),
)
