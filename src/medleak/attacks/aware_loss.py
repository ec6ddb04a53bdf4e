"""Gradient-matching losses that know what the obfuscation lets the server rely on.

The attacker knows the protocol (threat model in REFERENCE.md), so it can compare its dummy
update with the received one the way the obfuscation allows, instead of treating every
obfuscation as generic noise as ROG (Yue et al., 2023) does. It reads each stage's
``Declaration`` (``Update.declarations``), never a defense's name:

- ``sparse`` (top-k, rand-k): only the transmitted coordinates carry information; the zeros are
  "unknown", not "zero". Loss: per-layer squared L2 on the transmitted coordinates, normalised by
  the layer's target energy (so the 33M-coordinate linear layer does not drown the convolutions).
  The declared rescale (rand-k: n/k) is applied to the dummy the same way.
- ``sign`` (signSGD): only the signs are known, so magnitudes must not be fitted. Loss: a smooth
  surrogate of sign disagreement, -mean(sign_target * tanh(dummy / s)), with s a per-layer scale
  (0.1 x the dummy layer's RMS, detached) so tanh is near a step without vanishing gradients.
- ``noisy``, ``quantized``, ``scaled``, ``low_rank``: the update is the true one plus zero-mean
  or scale-changing error; layer-wise cosine distance (Geiping et al., 2020) ignores the
  magnitude changes and averages the error out over each layer instead of fitting it coordinate
  by coordinate.
- ``exact`` (no obfuscation): squared L2, as DLG and ROG.

For a chain, the most restrictive stage decides: sign > sparse > any other inexact stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch

from medleak.attacks.gradient_matching import squared_l2
from medleak.fl.update import Declaration

Loss = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]

LossKind = Literal["exact", "noise", "sparse", "sign"]


def masked_l2(
    dummy: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], rescale: float = 1.0
) -> torch.Tensor:
    """Squared L2 on transmitted (non-zero) coordinates, each layer normalised by its energy."""
    total = torch.zeros(())
    for name, t in target.items():
        mask = t != 0
        energy = t.pow(2).sum()
        if not mask.any() or energy == 0:
            continue
        total = total + ((dummy[name] * rescale - t) * mask).pow(2).sum() / energy
    return total


def sign_agreement(
    dummy: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """1 - mean(sign(target) * tanh(dummy / s)) per layer, summed; 0 = every sign agrees."""
    total = torch.zeros(())
    for name, t in target.items():
        d = dummy[name]
        scale = 0.1 * d.detach().pow(2).mean().sqrt().clamp(min=1e-12)
        total = total + 1 - (torch.sign(t) * torch.tanh(d / scale)).mean()
    return total


def layer_cosine(
    dummy: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Sum over layers of 1 - cosine similarity."""
    total = torch.zeros(())
    for name, t in target.items():
        d = dummy[name]
        denom = d.norm() * t.norm()
        if denom == 0:
            continue
        total = total + 1 - (d * t).sum() / (denom + 1e-30)
    return total


def loss_kind(declarations: Sequence[Declaration]) -> LossKind:
    """Which loss the declared stages call for: sign, sparse, noise or exact."""
    kinds = [d.kind for d in declarations]
    if "sign" in kinds:
        return "sign"
    if "sparse" in kinds:
        return "sparse"
    if any(k != "exact" for k in kinds):
        return "noise"
    return "exact"


def sparse_rescale(declarations: Sequence[Declaration]) -> float:
    """The factor the sparse stages multiplied the kept values by (rand-k: n/k; top-k: 1)."""
    rescale = 1.0
    for d in declarations:
        if d.kind == "sparse":
            rescale *= d.rescale
    return rescale


def aware_loss(declarations: Sequence[Declaration], aware: bool = True) -> Loss:
    """The matching loss for an update obfuscated as ``declarations`` say (squared L2 when not
    aware)."""
    if not aware:
        return squared_l2
    kind = loss_kind(declarations)
    if kind == "sign":
        return sign_agreement
    if kind == "sparse":
        rescale = sparse_rescale(declarations)
        return lambda dummy, target: masked_l2(dummy, target, rescale)
    if kind == "noise":
        return layer_cosine
    return squared_l2
