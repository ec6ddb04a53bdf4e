"""``fp16`` / ``bf16``: send the update in a 16-bit float format.

Half-precision communication is the cheapest compression FL stacks ship (e.g. mixed-precision
training, Micikevicius et al., ICLR 2018). fp16 keeps 10 mantissa bits but overflows above 65504
(an overflow becomes inf and the update is refused); bf16 keeps float32's range with 7 bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import Defense, Tensors, Transform
from medleak.fl.update import Declaration


def cast_roundtrip(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """What the server reads: the tensor cast to ``dtype`` and back to its own dtype."""
    return tensor.to(dtype).to(tensor.dtype)


def _transform(dtype: torch.dtype) -> Transform:
    def apply(
        tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
    ) -> Tensors:
        return {name: cast_roundtrip(t, dtype) for name, t in tensors.items()}

    return apply


def _bits16(tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]) -> int:
    return sum(16 * t.numel() for t in tensors.values())


FP16 = Defense(
    name="fp16",
    summary="cast to IEEE half precision and back (overflow above 65504 is refused)",
    params=(),
    transform=_transform(torch.float16),
    bits=_bits16,
    bits_text="16 n",
    declares=lambda params: Declaration("quantized"),
    wire="fp16",
)

BF16 = Defense(
    name="bf16",
    summary="cast to bfloat16 and back (float32 range, 8-bit significand)",
    params=(),
    transform=_transform(torch.bfloat16),
    bits=_bits16,
    bits_text="16 n",
    declares=lambda params: Declaration("quantized"),
    wire="bf16",
)
