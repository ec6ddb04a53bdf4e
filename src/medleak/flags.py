"""Command-line metadata carried by config fields, so a flag is declared once, beside its field.

A config dataclass field declared with ``option(default, "--flag", "help")`` becomes the CLI flag
``--flag``: its type and choices come from the field's annotation (a ``Literal`` gives the
choices), its default from the field's default, its help from here. The CLI
(``medleak.cli``) builds argparse arguments from this metadata; nothing here imports argparse,
so the lower floors (data, fl, attacks) can declare their options without depending on the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

#: How a flag sets its value. ``value`` takes an argument; ``toggle`` is ``--x`` / ``--no-x``
#: (for a bool); ``switch`` is ``--x`` setting True (no ``--no-x``); ``append`` repeats to build a
#: list.
FlagKind = Literal["value", "toggle", "switch", "append"]

METADATA_KEY = "medleak.flag"
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
) -> Any:
    """A dataclass field with a default and, when ``flag`` is given, its CLI flag.

    ``neutral``: for a key added after stores were written, the value that reproduces the old
    behaviour (see ``NEUTRAL_KEY``). Give it to every new option that has one.
    """
    metadata: dict[str, Any] = {}
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
