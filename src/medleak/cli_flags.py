"""argparse arguments generated from the config fields' flag metadata (``medleak.flags``).

The flag name, help and (for a value that is not a ``Literal``) choices come from the field's
metadata; the type, the choices of a ``Literal`` and the default shown in the help come from the
field itself. Every argument defaults to None (unset), so a flag overrides a ``--config`` file
only when given.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any, Literal

from medleak.experiments.config import ConfigFlag, RunConfig, config_flags, scalar_options


def dest(flag: ConfigFlag) -> str:
    """argparse's attribute for the flag (``--attack-lr`` -> ``attack_lr``)."""
    return flag.flag.name.lstrip("-").replace("-", "_")


def _choices_and_type(hint: Any) -> tuple[tuple[Any, ...] | None, type | None]:
    for option in scalar_options(hint):
        if typing.get_origin(option) is Literal:
            values = typing.get_args(option)
            return values, type(values[0])
        if option in (int, float):
            return None, option
    return None, None


def default_text(flag: ConfigFlag) -> str:
    """``(default X)`` for the help, from the field's default, unless the help says it already."""
    if "default" in flag.flag.help:
        return ""
    if flag.flag.default_text is not None:
        return f" (default: {flag.flag.default_text})"
    value = flag.default
    if value is None or value == []:
        return ""
    if isinstance(value, bool):
        return f" (default {'on' if value else 'off'})"
    return f" (default {value})"


def _number_type(kind: type, flag: ConfigFlag) -> Any:
    """argparse's ``type`` for a number flag: converts, then refuses NaN, infinity and values out
    of the field's bounds, so the error names the flag at parse time."""

    def convert(text: str) -> Any:
        value = kind(text)  # a ValueError is argparse's "invalid int value: 'x'"
        problem = flag.bounds.problem(value) if flag.bounds is not None else None
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    convert.__name__ = kind.__name__
    return convert


def argument(flag: ConfigFlag) -> dict[str, Any]:
    """The ``add_argument`` keywords for one generated flag."""
    meta = flag.flag
    kwargs: dict[str, Any] = {"default": None, "help": meta.help + default_text(flag)}
    is_bool = bool in scalar_options(flag.hint)
    kind = meta.kind or ("toggle" if is_bool else "value")
    if kind == "toggle":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif kind == "switch":
        kwargs.update(action="store_const", const=True)
    else:
        if kind == "append":
            kwargs["action"] = "append"
        choices, value_type = _choices_and_type(flag.hint)
        if meta.choices is not None:
            choices = meta.choices
        if choices is not None:
            kwargs["choices"] = list(choices)
        if value_type not in (None, str):  # argparse hands strings over as they are
            kwargs["type"] = _number_type(value_type, flag) if choices is None else value_type
    if meta.metavar is not None:
        kwargs["metavar"] = meta.metavar
    return kwargs


def add_config_flags(
    parser: argparse.ArgumentParser, cls: type = RunConfig, *, grouped: bool = True
) -> None:
    """One argument per flagged field of ``cls``, grouped by config section (a command without
    a YAML config, such as ``train-prior``, passes ``grouped=False``)."""
    groups: dict[str, Any] = {}
    for flag in config_flags(cls):
        if not grouped:
            parser.add_argument(flag.flag.name, dest=dest(flag), **argument(flag))
            continue
        section = flag.section or "run"
        if section not in groups:
            groups[section] = parser.add_argument_group(
                f"{section} options" if flag.section else "run options",
                f"YAML keys {section}.*" if flag.section else "YAML keys at the top level",
            )
        groups[section].add_argument(flag.flag.name, dest=dest(flag), **argument(flag))


def config_overrides(args: argparse.Namespace, cls: type = RunConfig) -> dict[str, Any]:
    """The dotted-key overrides the user gave on the command line (unset flags left out)."""
    values: dict[str, Any] = {}
    for flag in config_flags(cls):
        value = getattr(args, dest(flag))
        if value is not None:
            values[flag.key] = value
    return values
