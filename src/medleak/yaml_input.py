"""Every YAML file medleak reads, read one way: safe, UTF-8, no duplicate keys, one-line errors.

PyYAML's safe loader never runs code, but left alone it lets the last of two equal keys win
silently (a sweep would run something other than what the file seems to say), prints errors over
several lines, and a file that is not UTF-8 raises a ``UnicodeDecodeError``. Here a duplicate
key is an error naming the key and its line, a syntax error gives its line and column, and a
file that is not UTF-8 text says so, each in one line (``ConfigError``, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medleak.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that repeats a key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: PyYAML's own error says so
                continue
            if duplicate:
                raise ConfigError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                    "(each key may appear once in a mapping)"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping
)


def _one_line(exc: yaml.YAMLError) -> str:
    """``line L, column C: problem`` from a PyYAML error (its text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    problem = " ".join(str(problem).split())
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def loads_yaml(text: str, where: str) -> Any:
    """Parse YAML text (safe loader, unique keys); ``where`` names it in an error."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {_one_line(exc)}") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an out-of-range date
        raise ConfigError(f"{where} holds a value YAML cannot read: {exc}") from None


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Read and parse a YAML file; a missing, unreadable or non-UTF-8 file is one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    return loads_yaml(text, f"{what} {path}")
