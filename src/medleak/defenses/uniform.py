"""``uniform``: deterministic uniform quantization of each tensor to ``levels`` magnitudes.

Each tensor is scaled by its max |g|; every magnitude is rounded to the nearest of the s levels
{0, 1/(s-1), ..., 1} (zero included) and its sign kept, so the client sends one sign bit and
ceil(log2 s) level bits per coordinate plus the float32 scale. This is the biased, round-to-nearest
counterpart of QSGD (Alistarh et al., NeurIPS 2017), the quantizer ROG (Yue et al., USENIX
Security 2023) evaluates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import REQUIRED, Defense, Param, Tensors
from medleak.fl.update import Declaration


def uniform_quantize(tensor: torch.Tensor, levels: int) -> torch.Tensor:
    """Round |g| / max|g| to the grid {0, 1/(s-1), ..., 1}, keep signs, rescale by max|g|."""
    scale = tensor.abs().max() if tensor.numel() else tensor.new_zeros(())
    if scale == 0:
        return tensor.clone()
    steps = levels - 1
    level = torch.round(tensor.abs() / scale * steps).clamp_(0, steps)
    return torch.sign(tensor) * level / steps * scale


def quantized_bits(numel: int, levels: int) -> int:
    """Sign bit plus ceil(log2 s) level bits per coordinate, plus one float32 scale per tensor."""
    return numel * (1 + math.ceil(math.log2(levels))) + 32


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    return {name: uniform_quantize(t, params["levels"]) for name, t in tensors.items()}


def levels_bits(tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]) -> int:
    """Bits of a quantized update: signs, level indices and one float scale per tensor."""
    return sum(quantized_bits(t.numel(), params["levels"]) for t in tensors.values())


# Shared by every quantizer on the {0, 1/(s-1), ..., 1} grid (uniform, QSGD).
LEVELS = Param(
    "levels",
    int,
    REQUIRED,
    "number of magnitude levels s, zero included",
    check=lambda s: s >= 2,
    requirement=">= 2",
)


UNIFORM = Defense(
    name="uniform",
    summary="round |g|/max|g| to s levels {0, 1/(s-1), ..., 1}, signs kept (deterministic)",
    params=(LEVELS,),
    transform=_apply,
    bits=levels_bits,
    bits_text="n (1 + ceil(log2 s)) + 32 per tensor",
    declares=lambda params: Declaration("quantized"),
    wire="levels",
)
