"""Reconstruction attacks: an Update plus what the server knows -> reconstructed images.

Registry: name -> ``Attack`` (update, knowledge, options, seed, progress) -> Reconstruction.
Optimisation attacks share ``skeleton.match_gradients``; image regularizers are a registry in
``regularizers``.
"""

from __future__ import annotations

from medleak.attacks import dlg, inverting_gradients, rog
from medleak.attacks.base import Attack, Progress, Reconstruction, ServerKnowledge
from medleak.attacks.options import AttackOptions
from medleak.attacks.presets import PRESETS, apply_preset
from medleak.attacks.priors import check_prior
from medleak.errors import ConfigError

ATTACKS: dict[str, Attack] = {
    "rog": rog.attack,
    "ig": inverting_gradients.attack,
    "dlg": dlg.attack,
}


def get_attack(name: str) -> Attack:
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose from {', '.join(sorted(ATTACKS))}")
    return ATTACKS[name]


__all__ = [
    "ATTACKS",
    "Attack",
    "PRESETS",
    "AttackOptions",
    "Progress",
    "Reconstruction",
    "ServerKnowledge",
    "apply_preset",
    "check_prior",
    "get_attack",
]
