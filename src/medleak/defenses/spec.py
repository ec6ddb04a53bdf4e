"""What a defense is, as data: its parameters, how it transforms an update, what it costs to send.

A defense spec is text (``topk:ratio=0.1,scope=global``, from ``--defense``) or a YAML mapping
(``{"name": "topk", "params": {"ratio": 0.1}}`` or ``{"topk": {"ratio": 0.1}}``). Both resolve to
the same plain dict ``{"name": ..., "params": {...}}`` with every parameter present (defaults
filled in), which is what ``Update.defenses`` records and ``metrics.json`` stores, so a run can be
repeated from its record. The functions here take the registry as an argument so that this
module does not import the defenses it describes; ``medleak.defenses`` binds them to ``DEFENSES``.
"""

from __future__ import annotations

import json
import math
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from medleak.errors import ConfigError
from medleak.fl.update import Declaration, Update

Tensors = dict[str, torch.Tensor]
# transform(tensors, params, generator) -> tensors; deterministic defenses ignore the generator.
Transform = Callable[[Mapping[str, torch.Tensor], Mapping[str, Any], torch.Generator], Tensors]
# bits(tensors, params) -> the bits the client sends for this representation of the update.
BitCost = Callable[[Mapping[str, torch.Tensor], Mapping[str, Any]], int]
# declares(params) -> what the server can still rely on after this stage.
Declares = Callable[[Mapping[str, Any]], Declaration]


class _Required:
    """Marker default for a parameter the user must give."""

    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()
#: The sizes a number may have: tensors are float32, whose range is about 1e-38 to 3e38, and a
#: parameter of 1e-320 or 1e20 levels only overflows, underflows or runs out of memory later.
FLOAT_TINY = 1e-30
FLOAT_HUGE = 1e30
INT_LIMIT = 2**31 - 1
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One parameter of a defense.

    kind: float, int, bool or str. default: a value, ``None`` (optional, absent unless given) or
    ``REQUIRED``. choices: the allowed values of a str parameter. check/requirement: a range test
    and the words that state it in an error ("> 0", "in (0, 1]").
    """

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    check: Callable[[Any], bool] | None = None
    requirement: str = ""

    def describe_type(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        text = self.kind.__name__
        return f"{text} {self.requirement}" if self.requirement else text

    def describe_default(self) -> str:
        if self.default is REQUIRED:
            return "required"
        if self.default is None:
            return "-"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return str(self.default)


#: The compact representations a defense's output can be sent in: dense float32, sparse (indices
#: + values), sign (packed bits), levels (packed signs + levels + one scale per tensor), low-rank
#: (the factors), or 16-bit floats.
WireFormat = Literal["dense", "sparse", "sign", "levels", "low-rank", "fp16", "bf16"]
WIRE_FORMATS: tuple[str, ...] = typing.get_args(WireFormat)


@dataclass(frozen=True)
class Defense:
    """A registry entry: the description a user, the CLI and an obfuscation-aware attack read.

    transform: the math, on the tensors the client transmits (None for ``dp``, which changes how
        the client computes its gradient and is run by the chain instead).
    bits: the cost of the representation this defense sends; None means it sends the same
        representation as before (noise, clipping), so the previous cost stands.
    bits_text: the same formula in words, for ``medleak defenses``.
    validate: cross-parameter checks (e.g. exactly one of sigma / relative) on resolved params.
    declares: what the server can still rely on after this defense, from its resolved params
        (the contract obfuscation-aware attacks read; required: a chain refuses a defense
        without it rather than let it be attacked as if the update were exact).
    wire: the compact representation its output can travel in (``WIRE_FORMATS``): what a
        transport such as the Flower integration encodes, so a new compressing defense declares
        it here and is never silently sent dense.
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    transform: Transform | None
    bits: BitCost | None
    bits_text: str
    validate: Callable[[Mapping[str, Any]], None] | None = None
    declares: Declares | None = None
    wire: WireFormat = "dense"

    @property
    def client_side(self) -> bool:
        """True when the defense changes the client's computation (it must run first)."""
        return self.transform is None

    def build(self, params: Mapping[str, Any]) -> Stage:
        """The constructor: one configured step of a chain, ``Update -> Update``."""
        if self.declares is None:
            raise ConfigError(
                f"defense {self.name!r} does not declare what the server can rely on after it"
            )
        return Stage(self, dict(params))

    def declaration(self, params: Mapping[str, Any]) -> Declaration:
        """What the server can rely on after this defense with ``params``."""
        if self.declares is None:
            raise ConfigError(
                f"defense {self.name!r} does not declare what the server can rely on after it"
            )
        return self.declares(params)


@dataclass(frozen=True)
class Stage:
    """A defense with resolved parameters, applied to a whole update."""

    defense: Defense
    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, update: Update, generator: torch.Generator) -> Update:
        if self.defense.transform is None:
            raise ConfigError(
                f"defense {self.defense.name!r} changes how the client computes its update and "
                "cannot be applied to an update computed elsewhere"
            )
        tensors = self.defense.transform(update.tensors, self.params, generator)
        bits = (
            update.bits_sent
            if self.defense.bits is None
            else self.defense.bits(tensors, self.params)
        )
        return update.replace(tensors=tensors, bits_sent=int(bits))

    @property
    def declaration(self) -> Declaration:
        return self.defense.declaration(self.params)


def fail(defense: str, param: str, message: str) -> ConfigError:
    """The one-line error every bad parameter gets: it names the defense and the parameter."""
    return ConfigError(f"defense {defense!r}: parameter {param!r} {message}")


def _convert(defense: str, param: Param, value: Any) -> Any:
    """Coerce a value from text or YAML to the parameter's type, strictly."""
    if value is None:
        if param.default is None:
            return None
        raise fail(defense, param.name, f"needs a {param.kind.__name__} value, got nothing")
    shown = repr(value)
    if param.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise fail(defense, param.name, f"must be true or false, got {shown}")
    if param.kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,30}\s*", value):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > INT_LIMIT:
                raise fail(defense, param.name, f"must be at most {INT_LIMIT} in size, got {shown}")
            return value
        raise fail(defense, param.name, f"must be an integer, got {shown}")
    if param.kind is float:
        if isinstance(value, bool):
            raise fail(defense, param.name, f"must be a number, got {shown}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise fail(defense, param.name, f"must be a number, got {shown}") from None
        if not math.isfinite(number):
            raise fail(defense, param.name, f"must be a finite number, got {shown}")
        if number != 0 and not FLOAT_TINY <= abs(number) <= FLOAT_HUGE:
            raise fail(
                defense,
                param.name,
                f"must be 0 or of size {FLOAT_TINY:g} to {FLOAT_HUGE:g} (updates are float32), "
                f"got {shown}",
            )
        return number
    text = str(value).strip().lower()
    if param.choices and text not in param.choices:
        raise fail(defense, param.name, f"must be one of {', '.join(param.choices)}, got {shown}")
    return text


def _resolve(name: str, raw: Mapping[str, Any], registry: Mapping[str, Defense]) -> dict[str, Any]:
    if name not in registry:
        raise ConfigError(f"unknown defense {name!r}; choose from {', '.join(registry)}")
    defense = registry[name]
    known = {p.name: p for p in defense.params}
    for key in raw:
        if key not in known:
            allowed = ", ".join(known) if known else "none"
            raise ConfigError(
                f"defense {name!r}: unknown parameter {key!r}; its parameters are {allowed}"
            )
    params: dict[str, Any] = {}
    for param in defense.params:
        if param.name not in raw:
            if param.default is REQUIRED:
                raise fail(name, param.name, "is required")
            params[param.name] = param.default
            continue
        value = _convert(name, param, raw[param.name])
        if value is not None and param.check is not None and not param.check(value):
            raise fail(name, param.name, f"must be {param.requirement}, got {raw[param.name]!r}")
        params[param.name] = value
    if defense.validate is not None:
        defense.validate(params)
    return {"name": name, "params": params}


_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def parse_spec(text: str, registry: Mapping[str, Defense]) -> dict[str, Any]:
    """Resolve ``NAME`` or ``NAME:key=value,key=value`` (the ``--defense`` syntax)."""
    if not isinstance(text, str):
        raise ConfigError(f"malformed defense spec {text!r}: expected NAME:key=value,key=value")
    name, sep, rest = text.strip().partition(":")
    name = name.strip().lower()
    if not _NAME.fullmatch(name) or (sep and not rest.strip()):
        raise ConfigError(f"malformed defense spec {text!r}: expected NAME:key=value,key=value")
    raw: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq or not key or not value.strip():
                raise ConfigError(
                    f"malformed defense spec {text!r}: {item.strip()!r} is not key=value"
                )
            if key in raw:
                raise ConfigError(f"defense {name!r}: parameter {key!r} is given twice")
            raw[key] = value.strip()
    return _resolve(name, raw, registry)


def resolve_spec(obj: str | Mapping[str, Any], registry: Mapping[str, Defense]) -> dict[str, Any]:
    """Resolve a spec given as text or as a YAML mapping; see the module docstring for forms."""
    if isinstance(obj, str):
        return parse_spec(obj, registry)
    if not isinstance(obj, Mapping):
        raise ConfigError(
            f"malformed defense spec {obj!r}: expected text NAME:key=value or a mapping"
        )
    if "name" in obj:
        extra = set(obj) - {"name", "params"}
        if extra:
            raise ConfigError(
                f"malformed defense spec {dict(obj)!r}: unexpected keys {', '.join(sorted(extra))}"
                " (expected name and params)"
            )
        name, params = obj["name"], obj.get("params")
    elif len(obj) == 1:
        ((name, params),) = obj.items()
    else:
        raise ConfigError(
            f"malformed defense spec {dict(obj)!r}: expected {{name: ..., params: {{...}}}} "
            "or {NAME: {key: value}}"
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name.strip().lower()):
        raise ConfigError(f"malformed defense spec {dict(obj)!r}: bad defense name {name!r}")
    if params is None:
        params = {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ConfigError(
            f"defense {name!r}: parameters must be a mapping of key: value, got {params!r}"
        )
    return _resolve(
        name.strip().lower(), {k.strip().lower(): v for k, v in params.items()}, registry
    )


def format_spec(resolved: Mapping[str, Any]) -> str:
    """The ``--defense`` text of a resolved spec (absent optional parameters left out)."""
    items = []
    for key, value in resolved["params"].items():
        if value is None:
            continue
        items.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return resolved["name"] + (":" + ",".join(items) if items else "")


def describe_chain(stages: Sequence[Any] | None) -> str:
    """A defense chain as people read it everywhere medleak shows one (console, results, reports,
    findings): each stage as its ``--defense`` text, in the order applied; ``none`` for none."""
    if not stages:
        return "none"
    return " -> ".join(_stage_text(stage) for stage in stages)


def _stage_text(stage: Any) -> str:
    if isinstance(stage, str):
        return stage.strip()
    if isinstance(stage, Mapping) and isinstance(stage.get("name"), str):
        params = stage.get("params") or {}
        if isinstance(params, Mapping):
            return format_spec({"name": stage["name"], "params": dict(params)})
    return json.dumps(stage, sort_keys=True, default=str)


def describe(registry: Mapping[str, Defense]) -> str:
    """A plain-text table: each defense, its summary and bit cost, then one row per parameter."""
    rows: list[tuple[str, str, str, str]] = []
    for defense in registry.values():
        rows.append((defense.name, "", "", defense.summary))
        rows.append(("", "", "", f"bits sent: {defense.bits_text}"))
        for p in defense.params:
            rows.append(("  " + p.name, p.describe_type(), p.describe_default(), p.help))
    header = ("defense / parameter", "type", "default", "what it is")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]

    rule = "  ".join("-" * w for w in widths) + "  " + "-" * len(header[3])
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
