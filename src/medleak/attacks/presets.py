"""Named attack configurations, for comparisons that must not drift.

``rog-core`` is the reference ROG core (Yue et al., USENIX Security 2023) exactly: true labels,
no post-processing, squared-L2 matching whatever the obfuscation, every model channel optimised,
latent scale factor 4, Adam 0.05 with cosine annealing to 0.005, 100 iterations, one start, and
none of medleak's analytic stage. A preset overrides the options it names.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from medleak.attacks.options import CommonOptions
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


#: The attack each preset configures.
PRESET_ATTACK = {"rog-core": "rog"}

OptionsT = TypeVar("OptionsT", bound=CommonOptions)


def apply_preset(name: str | None, options: OptionsT) -> OptionsT:
    """``options`` with the preset's fields replaced (unchanged for None)."""
    if name is None or name == "":
        return options
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    fields = {f.name for f in dataclasses.fields(options)}
    missing = sorted(set(PRESETS[name]) - fields)
    if missing:
        raise ConfigError(
            f"preset {name!r} is for attack {PRESET_ATTACK.get(name, '?')!r}: this attack has no "
            f"{', '.join(missing)}"
        )
    return dataclasses.replace(options, **PRESETS[name])
