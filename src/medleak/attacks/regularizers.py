"""Image regularizers added to a gradient-matching objective: a registry, name -> penalty.

A penalty maps the dummy images (N x C x H x W) to a scalar. TV is Inverting Gradients' prior
(Geiping et al., 2020); BatchNorm-statistics matching (``attacks.bn_statistics``) and learned
priors are the next entries. An attack asks for them by name with a weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from medleak.attacks.gradient_matching import total_variation
from medleak.errors import ConfigError

Penalty = Callable[[torch.Tensor], torch.Tensor]

REGULARIZERS: dict[str, Penalty] = {
    "tv": total_variation,
}


def regularization(weights: Mapping[str, float], images: torch.Tensor) -> torch.Tensor | None:
    """Sum of weight x penalty(images) over ``weights`` (None when there are none)."""
    total: torch.Tensor | None = None
    for name, weight in weights.items():
        if name not in REGULARIZERS:
            raise ConfigError(
                f"unknown regularizer {name!r}; choose from {', '.join(sorted(REGULARIZERS))}"
            )
        term = weight * REGULARIZERS[name](images)
        total = term if total is None else total + term
    return total
