"""The typed configuration of one attack run, loaded from YAML and overridden from the CLI.

Precedence: defaults < ``--config FILE`` < explicit command-line options. The resolved
configuration is saved beside the results so the same numbers can be produced again.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medleak.errors import ConfigError


@dataclass
class DataConfig:
    source: str = "phantom"
    split: str | None = None
    image_size: int = 128
    resize: str = "crop"
    order: str = "balanced"
    batch_size: int = 4
    offset: int = 0
    phantom_count: int = 200


@dataclass
class ModelConfig:
    name: str = "lenet"
    channels: int = 3
    weights: str | None = None
    round: int | None = None


@dataclass
class FLConfig:
    algorithm: str = "fedsgd"
    local_steps: int = 1
    local_lr: float = 1e-4
    send_buffers: bool | None = None


@dataclass
class AttackConfig:
    name: str = "rog"
    iterations: int = 100
    scale_factor: int = 4
    reconstruct_channels: str = "gray"
    labels: str = "known"
    lr: float | None = None
    tv: float | None = None
    prior: str = "auto"
    aware: bool = True
    restarts: int = 1
    analytic: bool = True
    feature_iterations: int | None = None
    soft_labels: bool = False
    preset: str | None = None
    bn_statistics: bool | None = None
    fedavg_model: str = "unroll"


@dataclass
class MetricsConfig:
    gallery_size: int = 100
    lpips_weights: str | None = None
    show_sources: bool = False  # keep real file names in outputs (they may carry patient numbers)


@dataclass
class RunConfig:
    """Everything that determines a run's numbers (the output folder does not)."""

    seed: int = 0
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fl: FLConfig = field(default_factory=FLConfig)
    defenses: list[Any] = field(default_factory=list)
    attack: AttackConfig = field(default_factory=AttackConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or say which key is wrong."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"config key {key!r} must not be empty")
    for option in options:
        if option is type(None):
            continue
        if option is bool and isinstance(value, bool):
            return value
        if option is int and not isinstance(value, bool):
            if isinstance(value, int):
                return value
            if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
        if option is float and not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        if option is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if typing.get_origin(option) is list:
            return list(value) if isinstance(value, (list, tuple)) else [value]
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"config key {key!r} must be {names}, got {value!r}")


def _merge(target: Any, mapping: dict[str, Any], prefix: str) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'top'!r} must be a mapping")
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in mapping.items():
        if key not in names:
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r}; known: {', '.join(sorted(names))}"
            )
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value or {}, f"{prefix}{key}.")
        else:
            setattr(target, key, _coerce(value, hints[key], prefix + key))


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Apply dotted-key overrides such as ``{"attack.iterations": 50}`` (returns a new config)."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return from_dict(_deep(config.to_dict(), nested))


def _deep(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_dict(mapping: dict[str, Any] | None) -> RunConfig:
    config = RunConfig()
    _merge(config, mapping or {}, "")
    return config


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML config with a safe loader (a config file can never run code)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        mapping = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from None
    if mapping is not None and not isinstance(mapping, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return from_dict(mapping)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
