"""``randk``: keep a random subset of coordinates, rescaled so the result is unbiased.

Random-k sparsification (Stich et al., NeurIPS 2018, "Sparsified SGD with Memory"; Wangni et al.,
NeurIPS 2018): the client and server share a seed, so only the k kept values and the 32-bit seed
travel. Exactly k = max(1, round(ratio n)) coordinates per tensor are drawn without replacement;
each is kept with probability k / n, so scaling by n / k (= 1 / ratio when ratio n is whole) makes
E[output] = input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import Defense, Tensors
from medleak.defenses.topk import kept_count, ratio_param
from medleak.fl.update import Declaration


def randk_tensor(tensor: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Keep k uniformly chosen coordinates of ``tensor``, each times n / k; zero the rest."""
    flat = tensor.reshape(-1)
    numel = flat.numel()
    k = kept_count(ratio, numel)
    out = torch.zeros_like(flat)
    if k:
        index = torch.randperm(numel, generator=generator, device=flat.device)[:k]
        out[index] = flat[index] * (numel / k)
    return out.reshape(tensor.shape)


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    return {name: randk_tensor(t, params["ratio"], generator) for name, t in tensors.items()}


def _bits(tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]) -> int:
    return sum(32 * kept_count(params["ratio"], t.numel()) + 32 for t in tensors.values())


RANDK = Defense(
    name="randk",
    summary="keep a random fraction (shared seed), rescaled by n/k so it is unbiased",
    params=(ratio_param("fraction of coordinates KEPT"),),
    transform=_apply,
    bits=_bits,
    bits_text="32 k + 32 per tensor (values and the seed)",
    declares=lambda params: Declaration("sparse", rescale=1.0 / float(params["ratio"])),
    wire="sparse",
)
