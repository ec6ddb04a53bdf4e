"""``clip``: scale the whole update down to global L2 norm at most ``c``.

User-level clipping as in DP-FedAvg (McMahan et al., ICLR 2018, "Learning Differentially Private
Recurrent Language Models"): it bounds one client's influence so that noise added after it (a
later ``gaussian`` stage) has a known scale. Clipping alone rescales and hides nothing about the
gradient's direction, which is what inversion attacks match.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import REQUIRED, Defense, Param, Tensors
from medleak.fl.update import Declaration


def global_norm(tensors: Mapping[str, torch.Tensor]) -> float:
    """L2 norm of all coordinates of all tensors together (computed in float64)."""
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors.values()))


def clip_global_norm(tensors: Mapping[str, torch.Tensor], c: float) -> Tensors:
    """Scale every tensor by min(1, c / ||update||) so the whole update has norm <= c."""
    norm = global_norm(tensors)
    factor = 1.0 if norm <= c else c / norm
    return {name: t * factor for name, t in tensors.items()}


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    return clip_global_norm(tensors, params["c"])


CLIP = Defense(
    name="clip",
    summary="scale the whole update to L2 norm <= c (user-level clipping, as DP-FedAvg)",
    params=(
        Param(
            "c",
            float,
            REQUIRED,
            "maximum L2 norm of the whole update",
            check=lambda x: x > 0,
            requirement="> 0",
        ),
    ),
    transform=_apply,
    bits=None,
    bits_text="unchanged (32 n)",
    declares=lambda params: Declaration("scaled"),
)
