"""Gradient-matching losses that know which obfuscation the protocol applied.

The attacker knows the protocol (threat model in REFERENCE.md), so it can compare its dummy
update with the received one the way the obfuscation allows, instead of treating every
obfuscation as generic noise as ROG (Yue et al., 2023) does:

- ``topk`` / ``randk`` (sparsification): only the transmitted coordinates carry information; the
  zeros are "unknown", not "zero". Loss: per-layer squared L2 on the transmitted coordinates,
  normalised by the layer's target energy (so the 33M-coordinate linear layer does not drown the
  convolutions). rand-k rescales kept values by n/k, so the dummy is rescaled the same way.
- ``sign`` (signSGD): only the signs are known, so magnitudes must not be fitted. Loss: a smooth
  surrogate of sign disagreement, -mean(sign_target * tanh(dummy / s)), with s a per-layer scale
  (0.1 x the dummy layer's RMS, detached) so tanh is near a step without vanishing gradients.
- quantisation (``qsgd``, ``uniform``, ``fp16``, ``bf16``), noise (``gaussian``, ``dp``), ``clip``
  and ``powersgd``: the update is the true one plus zero-mean or scale-changing error; layer-wise
  cosine distance (Geiping et al., 2020) ignores the magnitude changes and averages the error out
  over each layer instead of fitting it coordinate by coordinate.
- no obfuscation: squared L2, as DLG and ROG.

For a chain, the most restrictive stage decides: sign > sparsification > noise-like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from medleak.attacks.gradient_matching import squared_l2

Loss = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]

SPARSIFIERS = ("topk", "randk")
NOISE_LIKE = ("qsgd", "uniform", "gaussian", "dp", "clip", "powersgd", "fp16", "bf16")


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


def loss_kind(defenses: Sequence[Mapping[str, Any]]) -> str:
    """Which loss the defense chain calls for: sign, sparse, noise or exact."""
    names = [str(d.get("name")) for d in defenses]
    if "sign" in names:
        return "sign"
    if any(n in SPARSIFIERS for n in names):
        return "sparse"
    if any(n in NOISE_LIKE for n in names):
        return "noise"
    return "exact"


def aware_loss(defenses: Sequence[Mapping[str, Any]], aware: bool = True) -> Loss:
    """The matching loss for an update obfuscated by ``defenses`` (squared L2 when not aware)."""
    if not aware:
        return squared_l2
    kind = loss_kind(defenses)
    if kind == "sign":
        return sign_agreement
    if kind == "sparse":
        rescale = 1.0
        for d in defenses:
            if d.get("name") == "randk":
                rescale *= 1.0 / float(d.get("params", {}).get("ratio", 1.0))
        return lambda dummy, target: masked_l2(dummy, target, rescale)
    if kind == "noise":
        return layer_cosine
    return squared_l2
