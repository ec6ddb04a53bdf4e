"""Reconstruction attacks: an Update plus what the server knows -> reconstructed images.

Registry: name -> ``AttackSpec`` (its options dataclass, the function
(update, knowledge, options, seed, progress) -> Reconstruction, a one-line summary). Every
surface reads it: the ``--attack`` choices and help, which options apply to which attack (an
option the chosen attack does not have is refused), and which options enter a run's id.
Optimisation attacks share ``skeleton.match_gradients``; image regularizers are a registry in
``regularizers``. A new attack is one module (its options and its function) and one line here.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medleak.attacks import dlg, inverting_gradients, rog
from medleak.attacks.base import Attack, Progress, Reconstruction, ServerKnowledge
from medleak.attacks.options import CommonOptions
from medleak.attacks.presets import PRESETS, apply_preset
from medleak.attacks.priors import check_prior
from medleak.errors import ConfigError


@dataclass(frozen=True)
class AttackSpec:
    """One attack: its name, its options dataclass, the function that runs it, a summary."""

    name: str
    options: type[CommonOptions]
    run: Callable[..., Reconstruction]
    summary: str

    def __call__(self, *args: Any, **kwargs: Any) -> Reconstruction:
        return self.run(*args, **kwargs)

    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.options))


ATTACKS: dict[str, AttackSpec] = {
    "rog": AttackSpec(
        "rog", rog.RogOptions, rog.attack, "ROG (Yue et al. 2023), medleak's default"
    ),
    "ig": AttackSpec(
        "ig", inverting_gradients.IgOptions, inverting_gradients.attack, "Inverting Gradients"
    ),
    "dlg": AttackSpec("dlg", dlg.DlgOptions, dlg.attack, "Deep Leakage from Gradients (L-BFGS)"),
}


def _every_option(specs: dict[str, AttackSpec]) -> type[CommonOptions]:
    """One dataclass holding every attack's options (their union): what the config's ``attack``
    section, the flags and the sweep axes are made of, and what the Python API may pass to any
    attack (an attack reads only its own fields)."""
    bases = tuple(dict.fromkeys(spec.options for spec in specs.values()))
    union = types.new_class("AttackOptions", bases)
    union.__module__ = __name__
    union.__doc__ = "Every attack's options in one object (see ``ATTACKS`` for which is whose)."
    return dataclass(frozen=True)(union)


AttackOptions = _every_option(ATTACKS)


def get_attack(name: str) -> AttackSpec:
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose from {', '.join(sorted(ATTACKS))}")
    return ATTACKS[name]


def attack_help() -> str:
    """The ``--attack`` help, from the registry."""
    return "; ".join(f"{name} = {spec.summary}" for name, spec in ATTACKS.items())


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackOptions",
    "AttackSpec",
    "CommonOptions",
    "PRESETS",
    "Progress",
    "Reconstruction",
    "ServerKnowledge",
    "apply_preset",
    "attack_help",
    "check_prior",
    "get_attack",
]
