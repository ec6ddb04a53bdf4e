"""``qsgd``: stochastic quantization to ``levels`` magnitudes, unbiased.

QSGD (Alistarh et al., NeurIPS 2017, "QSGD: Communication-Efficient SGD via Gradient Quantization
and Encoding"): scale by the tensor's L2 norm, round each |g_i| / ||g|| * (s-1) up or down at random
with the probability that makes the expectation exact, keep signs. ROG's code scales by max |g|
instead, which wastes fewer levels on small tensors; both are offered (``norm=l2|max``). Note the
level convention: here s counts the grid points {0, 1/(s-1), ..., 1} (zero included), as for
``uniform``, so the two share a bit cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import Defense, Param, Tensors
from medleak.defenses.uniform import LEVELS, levels_bits
from medleak.fl.update import Declaration


def qsgd_quantize(
    tensor: torch.Tensor, levels: int, norm: str, generator: torch.Generator
) -> torch.Tensor:
    """Stochastically round |g| / scale onto s levels; E[output] = input for every coordinate."""
    if tensor.numel() == 0:
        return tensor.clone()
    scale = torch.linalg.vector_norm(tensor) if norm == "l2" else tensor.abs().max()
    if scale == 0:
        return tensor.clone()
    steps = levels - 1
    position = (tensor.abs() / scale * steps).clamp_(0, steps)
    lower = torch.floor(position)
    draw = torch.rand(tensor.shape, generator=generator, device=tensor.device, dtype=tensor.dtype)
    level = lower + (draw < position - lower).to(tensor.dtype)
    return torch.sign(tensor) * level / steps * scale


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    return {
        name: qsgd_quantize(t, params["levels"], params["norm"], generator)
        for name, t in tensors.items()
    }


QSGD = Defense(
    name="qsgd",
    summary="QSGD (Alistarh et al. 2017): s levels, stochastic rounding, unbiased",
    params=(
        LEVELS,
        Param(
            "norm",
            str,
            "l2",
            "scale: l2 norm (QSGD) or max |g| (ROG's code)",
            choices=("l2", "max"),
        ),
    ),
    transform=_apply,
    bits=levels_bits,
    bits_text="n (1 + ceil(log2 s)) + 32 per tensor",
    declares=lambda params: Declaration("quantized", zero_mean=True),
    wire="levels",
)
