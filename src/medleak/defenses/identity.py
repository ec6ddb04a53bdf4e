"""``none``: the client sends its update unchanged; the baseline every defense is measured by."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import Defense, Tensors
from medleak.fl.update import Declaration


def _identity(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    return dict(tensors)


NONE = Defense(
    name="none",
    summary="no obfuscation: the raw float32 update",
    params=(),
    transform=_identity,
    # Keeps the previous cost, which is 32 n for an update nothing else touched.
    bits=None,
    bits_text="32 n",
    declares=lambda params: Declaration("exact"),
)
