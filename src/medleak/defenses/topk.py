"""``topk``: keep the largest-magnitude coordinates, zero the rest (gradient pruning).

Zhu et al. (NeurIPS 2019, "Deep Leakage from Gradients") found that pruning the smallest
coordinates starts to stop DLG once more than about 20% are zeroed; top-k is also the standard
sparsifier of communication-efficient FL (Aji & Heafield, EMNLP 2017; Lin et al., ICLR 2018).
``ratio`` is the fraction KEPT. ``scope=tensor`` keeps k = max(1, round(ratio n)) of each tensor;
``scope=global`` ranks all coordinates of the update together, so a layer may lose everything.
The client sends each kept value (32 bits) with its index (ceil(log2 n) bits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import REQUIRED, Defense, Param, Tensors
from medleak.fl.update import Declaration


def kept_count(ratio: float, numel: int) -> int:
    """k = max(1, round(ratio n)), rounding halves up (never 0 for a non-empty tensor)."""
    if numel == 0:
        return 0
    return min(numel, max(1, math.floor(ratio * numel + 0.5)))


def topk_flat(flat: torch.Tensor, k: int) -> torch.Tensor:
    """A copy of the 1-D ``flat`` with all but its k largest magnitudes set to zero."""
    out = torch.zeros_like(flat)
    if k:
        index = torch.topk(flat.abs(), k, sorted=False).indices
        out[index] = flat[index]
    return out


def topk_tensor(tensor: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep exactly ``kept_count(ratio, n)`` largest-magnitude coordinates of one tensor."""
    flat = tensor.reshape(-1)
    return topk_flat(flat, kept_count(ratio, flat.numel())).reshape(tensor.shape)


def topk_global(tensors: Mapping[str, torch.Tensor], ratio: float) -> Tensors:
    """Keep exactly ``kept_count(ratio, N)`` largest magnitudes over all N coordinates."""
    names = list(tensors)
    flat = torch.cat([tensors[n].reshape(-1) for n in names])
    kept = topk_flat(flat, kept_count(ratio, flat.numel()))
    out, start = {}, 0
    for name in names:
        size = tensors[name].numel()
        out[name] = kept[start : start + size].reshape(tensors[name].shape)
        start += size
    return out


def sparse_bits(kept: int, numel: int) -> int:
    """k values at 32 bits, each with an index of ceil(log2 n) bits."""
    return kept * (32 + math.ceil(math.log2(numel))) if numel > 1 else 32 * kept


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    if params["scope"] == "global":
        return topk_global(tensors, params["ratio"])
    return {name: topk_tensor(t, params["ratio"]) for name, t in tensors.items()}


def _bits(tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]) -> int:
    ratio = params["ratio"]
    if params["scope"] == "global":
        total = sum(t.numel() for t in tensors.values())
        return sparse_bits(kept_count(ratio, total), total)
    return sum(sparse_bits(kept_count(ratio, t.numel()), t.numel()) for t in tensors.values())


def ratio_param(help_text: str) -> Param:
    """The fraction-kept parameter shared by the sparsifiers."""
    return Param(
        "ratio", float, REQUIRED, help_text, check=lambda r: 0 < r <= 1, requirement="in (0, 1]"
    )


TOPK = Defense(
    name="topk",
    summary="keep the k = max(1, round(ratio n)) largest magnitudes, zero the rest (pruning)",
    params=(
        ratio_param("fraction of coordinates KEPT"),
        Param(
            "scope",
            str,
            "tensor",
            "rank within each tensor or over the whole update",
            choices=("tensor", "global"),
        ),
    ),
    transform=_apply,
    bits=_bits,
    bits_text="k (32 + ceil(log2 n)); n = all coordinates for scope=global",
    declares=lambda params: Declaration("sparse", bounded=True),
    wire="sparse",
)
