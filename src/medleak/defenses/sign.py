"""``sign``: send only the sign of every coordinate (1 bit each).

signSGD (Bernstein et al., ICML 2018, "signSGD: Compressed Optimisation for Non-Convex Problems").
``scaled`` multiplies by the tensor's mean |g| (= ||g||_1 / n), the scaled sign of Karimireddy
et al. (ICML 2019, "Error Feedback Fixes SignSGD"), which keeps the update's magnitude at one
float per tensor. sign(0) is +1 so every coordinate carries exactly one bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import Defense, Param, Tensors
from medleak.fl.update import Declaration


def sign_compress(tensor: torch.Tensor, scaled: bool) -> torch.Tensor:
    """+1 where g >= 0, -1 elsewhere; times mean |g| when ``scaled``."""
    signs = torch.where(tensor >= 0, 1.0, -1.0).to(tensor.dtype)
    if scaled and tensor.numel():
        return signs * tensor.abs().mean()
    return signs


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    return {name: sign_compress(t, params["scaled"]) for name, t in tensors.items()}


def _bits(tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]) -> int:
    extra = 32 if params["scaled"] else 0
    return sum(t.numel() + extra for t in tensors.values())


SIGN = Defense(
    name="sign",
    summary="signSGD (Bernstein et al. 2018): sign(g), sign(0) = +1; scaled: times mean |g|",
    params=(Param("scaled", bool, False, "multiply the signs by the tensor's mean |g|"),),
    transform=_apply,
    bits=_bits,
    bits_text="n per tensor (+ 32 if scaled)",
    declares=lambda params: Declaration("sign"),
    wire="sign",
)
