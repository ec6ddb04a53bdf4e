"""Gradient obfuscations: ``Update -> Update``, each with its bit cost and privacy accounting.

``DEFENSES`` is the registry (name -> ``Defense`` description); adding a defense is one new file
and one line below. Each defense declares what the server can still rely on after it
(``Declaration``); attacks read that, never the name. Specs are ``NAME:key=value,...`` text or
YAML mappings; ``build_chain`` turns a list of them into a ``DefenseChain`` that computes what a
client sends under all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medleak.defenses import spec
from medleak.defenses.chain import DefenseChain
from medleak.defenses.clip import CLIP
from medleak.defenses.dp import DP, dp_epsilon
from medleak.defenses.gaussian import GAUSSIAN
from medleak.defenses.halfprecision import BF16, FP16
from medleak.defenses.identity import NONE
from medleak.defenses.powersgd import POWERSGD
from medleak.defenses.qsgd import QSGD
from medleak.defenses.randk import RANDK
from medleak.defenses.sign import SIGN
from medleak.defenses.spec import Defense, Param, describe_chain, format_spec
from medleak.defenses.topk import TOPK
from medleak.defenses.uniform import UNIFORM
from medleak.fl.update import Declaration

DEFENSES: dict[str, Defense] = {
    "none": NONE,
    "gaussian": GAUSSIAN,
    "clip": CLIP,
    "dp": DP,
    "uniform": UNIFORM,
    "qsgd": QSGD,
    "sign": SIGN,
    "topk": TOPK,
    "randk": RANDK,
    "powersgd": POWERSGD,
    "fp16": FP16,
    "bf16": BF16,
}


def parse_spec(text: str) -> dict[str, Any]:
    """Resolve ``NAME:key=value,key=value`` to ``{"name", "params"}`` with defaults filled in."""
    return spec.parse_spec(text, DEFENSES)


def resolve_spec(obj: str | Mapping[str, Any]) -> dict[str, Any]:
    """Resolve text, ``{"name": ..., "params": {...}}`` or ``{NAME: {...}}`` (YAML forms)."""
    return spec.resolve_spec(obj, DEFENSES)


def build_chain(specs: Sequence[str | Mapping[str, Any]]) -> DefenseChain:
    """The chain of the given specs, in order (``dp`` allowed only first)."""
    if isinstance(specs, (str, Mapping)):
        specs = [specs]
    return DefenseChain([resolve_spec(s) for s in specs], DEFENSES)


def declare_chain(specs: Sequence[str | Mapping[str, Any]]) -> tuple[Declaration, ...]:
    """What the server can rely on after each of ``specs`` (for an update decoded elsewhere)."""
    resolved = [resolve_spec(s) for s in specs]
    return tuple(DEFENSES[s["name"]].declaration(s["params"]) for s in resolved)


def describe_defenses() -> str:
    """The table ``medleak defenses`` prints: every defense, its parameters, defaults, summary."""
    return spec.describe(DEFENSES)


__all__ = [
    "DEFENSES",
    "Declaration",
    "Defense",
    "DefenseChain",
    "Param",
    "build_chain",
    "declare_chain",
    "describe_defenses",
    "dp_epsilon",
    "describe_chain",
    "format_spec",
    "parse_spec",
    "resolve_spec",
]
