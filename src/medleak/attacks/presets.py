"""Named attack configurations, for comparisons that must not drift.

``rog-core`` is the reference ROG core (Yue et al., USENIX Security 2023) exactly: true labels,
no post-processing, squared-L2 matching whatever the obfuscation, every model channel optimised,
latent scale factor 4, Adam 0.05 with cosine annealing to 0.005, 100 iterations, one start, and
none of medleak's analytic stage. A preset overrides the options it names.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from medleak.attacks.options import AttackOptions
from medleak.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "rog-core": {
        "labels": "known",
        "prior": "none",
        "aware": False,
        "reconstruct_channels": "all",
        "scale_factor": 4,
        "lr": None,
        "tv": None,
        "iterations": 100,
        "restarts": 1,
        "analytic": False,
        "init": "uniform",
    },
}


def apply_preset(name: str | None, options: AttackOptions) -> AttackOptions:
    """``options`` with the preset's fields replaced (unchanged for None)."""
    if name is None or name == "":
        return options
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    return dataclasses.replace(options, **PRESETS[name])
