"""Command-line metadata carried by config fields, so a flag is declared once, beside its field.

A config dataclass field declared with ``option(default, "--flag", "help")`` becomes the CLI flag
``--flag``: its type and choices come from the field's annotation (a ``Literal`` gives the
choices), its default from the field's default, its help from here. The CLI
(``medleak.cli``) builds argparse arguments from this metadata; nothing here imports argparse,
so the lower floors (data, fl, attacks) can declare their options without depending on the CLI.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

#: How a flag sets its value. ``value`` takes an argument; ``toggle`` is ``--x`` / ``--no-x``
#: (for a bool); ``switch`` is ``--x`` setting True (no ``--no-x``); ``append`` repeats to build a
#: list.
FlagKind = Literal["value", "toggle", "switch", "append"]

METADATA_KEY = "medleak.flag"
#: Field metadata: the ``Bounds`` a number must lie in (checked wherever a value comes in).
BOUNDS_KEY = "medleak.bounds"
#: Field metadata: the value at which a config key reproduces the behaviour from before the key
#: existed. The canonical config (``experiments.records``) drops a key at its neutral value, so
#: adding an option never re-keys a store, while changing a default still does.
NEUTRAL_KEY = "medleak.neutral"


@dataclass(frozen=True)
class Flag:
    """A field's command-line face.

    name: the flag, e.g. ``--attack-lr`` (need not match the field name).
    help: what it does, in a few words; the CLI appends the field's default unless ``help``
        already says what the default is.
    kind: None = from the annotation (``toggle`` for a bool, else ``value``).
    choices: allowed values when the annotation cannot say them (e.g. a registry's names);
        None = the annotation's ``Literal`` values, if any.
    metavar: the argument's placeholder in the help (None = argparse's, from the flag name).
    default_text: how the default reads in the help when the field's default value does not
        say it (``None`` meaning "the attack's published default", for example).
    """

    name: str
    help: str
    kind: FlagKind | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    default_text: str | None = None

    def __post_init__(self) -> None:
        if not self.name.startswith("--"):
            raise ValueError(f"a flag name starts with '--', got {self.name!r}")


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric option: ``low <= value <= high`` (``value > low`` when
    ``above``). Every float must also be finite: NaN and infinity are refused with the option's
    name wherever they come in (flag, YAML, ``--set``, a sweep axis)."""

    low: float | None = None
    high: float | None = None
    above: bool = False

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range (words for an error), or None when it is fine."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        low_ok = self.low is None or (value > self.low if self.above else value >= self.low)
        high_ok = self.high is None or value <= self.high
        if low_ok and high_ok:
            return None
        if self.low is not None and self.high is not None:
            left = "(" if self.above else "["
            return f"must be in {left}{_text(self.low)}, {_text(self.high)}], got {value}"
        if self.high is not None:
            return f"must be <= {_text(self.high)}, got {value}"
        return f"must be {'>' if self.above else '>='} {_text(self.low)}, got {value}"


def _text(bound: float | None) -> str:
    """A bound as a person writes it: 100000 rather than 1e+05, 1e+30 rather than 30 zeros."""
    if bound is not None and float(bound).is_integer() and abs(bound) < 1e12:
        return str(int(bound))
    return f"{bound:g}"


#: A float option without declared bounds: finite and within float32's comfortable range.
FLOAT_BOUNDS = Bounds(-1e30, 1e30)
#: An int option without declared bounds: a 32-bit count.
INT_BOUNDS = Bounds(-(2**31 - 1), 2**31 - 1)


def bounds_of(field: dataclasses.Field[Any], kind: type) -> Bounds:
    """The bounds a numeric field declares, else the default for its type."""
    declared = field.metadata.get(BOUNDS_KEY)
    if declared is not None:
        return declared
    return FLOAT_BOUNDS if kind is float else INT_BOUNDS


def option(
    default: Any = dataclasses.MISSING,
    flag: str | None = None,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    kind: FlagKind | None = None,
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
    neutral: Any = dataclasses.MISSING,
    low: float | None = None,
    high: float | None = None,
    above: bool = False,
) -> Any:
    """A dataclass field with a default and, when ``flag`` is given, its CLI flag.

    ``neutral``: for a key added after stores were written, the value that reproduces the old
    behaviour (see ``NEUTRAL_KEY``). Give it to every new option that has one.
    ``low``/``high``/``above``: the range of a number (see ``Bounds``).
    """
    metadata: dict[str, Any] = {}
    if low is not None or high is not None:
        metadata[BOUNDS_KEY] = Bounds(low, high, above)
    if neutral is not dataclasses.MISSING:
        metadata[NEUTRAL_KEY] = neutral
    if flag is not None:
        metadata[METADATA_KEY] = Flag(flag, help, kind, choices, metavar, default_text)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def neutral_of(field: dataclasses.Field[Any]) -> tuple[bool, Any]:
    """(True, value) when the field declares a neutral value, else (False, None)."""
    if NEUTRAL_KEY in field.metadata:
        return True, field.metadata[NEUTRAL_KEY]
    return False, None


def flag_of(field: dataclasses.Field[Any]) -> Flag | None:
    """The flag a field declares, or None for a field settable only in YAML."""
    return field.metadata.get(METADATA_KEY)
