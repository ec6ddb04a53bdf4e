"""Distances between a dummy update and the received one.

``squared_l2`` is DLG's and ROG's objective (Zhu et al. 2019; Yue et al. 2023); ``cosine`` is
Inverting Gradients' (Geiping et al. 2020), which ignores the update's scale and so tolerates
obfuscations that rescale or perturb magnitudes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def squared_l2(
    dummy: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Sum over every layer of the squared Euclidean distance."""
    return sum(((dummy[n] - target[n]) ** 2).sum() for n in target)  # type: ignore[return-value]


def cosine(
    dummy: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """1 - cosine similarity of the concatenated updates (over ``names``, default all layers)."""
    names = list(target) if names is None else list(names)
    dot = sum((dummy[n] * target[n]).sum() for n in names)
    dummy_norm = sum((dummy[n] ** 2).sum() for n in names)
    target_norm = sum((target[n] ** 2).sum() for n in names)
    return 1 - dot / (dummy_norm.sqrt() * target_norm.sqrt() + 1e-12)  # type: ignore[union-attr]


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV), a smoothness prior."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy
