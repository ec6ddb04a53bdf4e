"""Post-processing priors applied to an attack's output (ROG's refinement seam).

Registry: name -> function mapping N x 1 x H x W images in [0, 1] to refined images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from medleak.errors import ConfigError

Prior = Callable[[torch.Tensor], torch.Tensor]


def identity(images: torch.Tensor) -> torch.Tensor:
    """No post-processing: the optimised images as they are."""
    return images


PRIORS: dict[str, Prior] = {"none": identity}


def apply_prior(name: str, images: torch.Tensor) -> torch.Tensor:
    if name not in PRIORS:
        raise ConfigError(f"unknown prior {name!r}; choose from {', '.join(sorted(PRIORS))}")
    with torch.no_grad():
        return PRIORS[name](images).clamp(0, 1)
