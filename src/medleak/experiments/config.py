"""The typed configuration of one attack run, loaded from YAML and overridden from the CLI.

Precedence: defaults < ``--config FILE`` < explicit command-line options. The resolved
configuration is saved beside the results so the same numbers can be produced again.

One source of truth: the sections are the domain objects (``fl`` *is* ``FLSettings``; ``data``
and ``attack`` extend ``DataSpec`` and ``AttackOptions`` with the batch choice and the attack's
name), and every field carries its CLI flag (``medleak.flags.option``), from which ``medleak
attack``'s flags and help are generated (``config_flags``). A new option is one field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml

from medleak.attacks import ATTACKS, AttackOptions, attack_help
from medleak.attacks.presets import PRESET_ATTACK, PRESETS, apply_preset
from medleak.data.spec import DataSpec
from medleak.errors import ConfigError
from medleak.fl.update import FLSettings
from medleak.flags import Bounds, Flag, bounds_of, flag_of, neutral_of, option, since_of
from medleak.models import MODELS
from medleak.yaml_input import read_yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


@dataclass(frozen=True)
class DataConfig(DataSpec):
    """Which images (a ``DataSpec``) and which of them form the client's batch."""

    batch_size: int = option(4, "--batch-size", "images in the client batch", low=1, high=100_000)
    offset: int = option(0, "--offset", "first image of the batch", low=0, high=10**9)

    def spec(self) -> DataSpec:
        """The data set part, for ``data.open_dataset``."""
        return project(self, DataSpec)

    def federation_spec(self) -> DataSpec:
        """The data a federated training draws from: the batch choice (split, order) does not
        apply, so those stay at their defaults."""
        return dataclasses.replace(self.spec(), split=None, order="balanced")


#: The FL section is the client's settings themselves: nothing to add, nothing to copy.
FLConfig = FLSettings


@dataclass(frozen=True)
class ModelConfig:
    """The victim model. ``round`` (sweep specs only) attacks that round of a training."""

    name: str = option("lenet", "--model", "the victim model", choices=tuple(MODELS))
    channels: Literal[1, 3] = option(3, "--channels", "model input channels")
    weights: str | None = option(
        None, "--weights", "trained weights (.safetensors or a torch state dict)"
    )
    round: int | None = None
    normalize: str | None = option(
        None,
        "--normalize",
        "input normalisation: imagenet, or MEAN/STD (one value or one per channel each side)",
        default_text="none",
        neutral=None,
    )
    num_classes: int | None = option(
        None,
        "--num-classes",
        "classifier outputs",
        default_text="the data's classes, at least 2",
        high=100_000,
        since=(2, None),
    )

    def __post_init__(self) -> None:
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"model.num_classes must be >= 2, got {self.num_classes}")

    def classes_for(self, data_classes: int) -> int:
        """The model's outputs: ``num_classes``, or the data's classes (at least 2: a single
        output has a constant softmax, so no gradient to leak). Fewer than the data's classes
        is bad input: labels beyond the head would fail deep inside the loss."""
        if self.num_classes is None:
            return max(2, data_classes)
        if data_classes > self.num_classes:
            raise ConfigError(
                f"the data has {data_classes} classes but model.num_classes is "
                f"{self.num_classes}; raise --num-classes or leave it unset (default: the data's)"
            )
        return self.num_classes


@dataclass(frozen=True)
class AttackConfig(AttackOptions):  # type: ignore[valid-type,misc]
    """Which attack, and its options, optionally through a preset.

    The section holds every attack's options (``attacks.AttackOptions``, the registry's union),
    so one YAML key or flag per option; the chosen attack receives only its own, and an option it
    does not have, set away from its default, is refused in one line.
    """

    name: str = option("rog", "--attack", attack_help(), choices=tuple(ATTACKS))
    preset: str | None = option(
        None, "--preset", "rog-core = the reference ROG core exactly", choices=tuple(PRESETS)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        spec = ATTACKS.get(self.name)
        if spec is None:
            return  # an unknown name is refused with the choices where the attack is built
        own = set(spec.option_names())
        for f in dataclasses.fields(AttackOptions):
            if f.name in own or getattr(self, f.name) == _default(f):
                continue
            declared = flag_of(f)
            shown = f"{f.name} ({declared.name})" if declared else f.name
            raise ConfigError(
                f"attack {self.name!r} has no option {shown}; its options: {', '.join(sorted(own))}"
            )
        wanted = PRESET_ATTACK.get(self.preset or "")
        if wanted is not None and wanted != self.name:
            raise ConfigError(f"preset {self.preset!r} is for attack {wanted!r}, not {self.name!r}")

    def options(self) -> Any:
        """What the attack receives: its own options (``ATTACKS[name].options``) with the
        preset's fields applied."""
        spec = ATTACKS.get(self.name)
        if spec is None:
            raise ConfigError(
                f"unknown attack {self.name!r}; choose from {', '.join(sorted(ATTACKS))}"
            )
        return apply_preset(self.preset, project(self, spec.options))

    def own_keys(self) -> tuple[str, ...]:
        """The keys of this section that determine the chosen attack's numbers."""
        spec = ATTACKS.get(self.name)
        names = (
            spec.option_names()
            if spec is not None
            else tuple(f.name for f in dataclasses.fields(AttackOptions))
        )
        return ("name", "preset", *names)


@dataclass(frozen=True)
class MetricsConfig:
    """How a run is scored: the re-identification gallery, the prior floor, the baseline."""

    gallery_size: int = option(100, "--gallery-size", "re-identification distractors", high=10**6)
    gallery_source: str | None = option(
        None,
        "--gallery-source",
        "draw distractors from this folder/.npz (same modality) instead of the victims' data",
        default_text="the victims' data set",
        metavar="DIR",
        neutral=None,
    )
    auxiliary: str | None = option(
        None,
        "--auxiliary",
        "images the attacker holds (folder/.npz): their mean is the prior-image floor",
        default_text="the mean of the distractors",
        metavar="DIR",
        neutral=None,
    )
    # Only adds numbers beside the defended ones (excluded from the run id, records.EXCLUDED).
    baseline: bool | None = option(
        None,
        "--baseline",
        "also attack the same batch's undefended update with the same attack and budget",
        default_text="on when a defense is given; a sweep attacks its [] setting instead",
    )
    lpips_weights: str | None = option(None, "--lpips-weights", "folder with LPIPS AlexNet weights")
    # keep real file names in outputs (they may carry patient numbers)
    show_sources: bool = option(
        False,
        "--show-sources",
        "keep real file names in the outputs",
        kind="switch",
        default_text="a keyed pseudonym",
    )


@dataclass
class RunConfig:
    """Everything that determines a run's numbers (the output folder does not)."""

    seed: int = option(
        0, "--seed", "seed for the model, data, defenses and attack", low=0, high=2**32 - 1
    )
    threads: int | None = option(
        None, "--threads", "torch CPU threads", default_text="torch's", low=1, high=4096
    )
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fl: FLSettings = field(default_factory=FLSettings)
    defenses: list[Any] = option(
        default_factory=list,
        flag="--defense",
        help="obfuscation NAME:key=value,... (repeat to chain)",
        kind="append",
        metavar="SPEC",
    )
    attack: AttackConfig = field(default_factory=AttackConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as saved (config.yaml, metrics.json, a store): the attack section holds
        only the chosen attack's options, so a run never records another attack's."""
        data = self.full_dict()
        own = set(self.attack.own_keys())
        data["attack"] = {k: v for k, v in data["attack"].items() if k in own}
        return data

    def full_dict(self) -> dict[str, Any]:
        """Every field, every attack's options included (what older run-id schemes hashed)."""
        return dataclasses.asdict(self)


def project(value: Any, cls: type[T]) -> T:
    """``cls`` built from the fields of ``value`` that ``cls`` has (a config section -> its
    domain object), so no field is ever copied by hand."""
    return cls(**{f.name: getattr(value, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class ConfigFlag:
    """One CLI flag generated from a config field: its dotted key, metadata, type and default."""

    key: str
    flag: Flag
    hint: Any
    default: Any
    bounds: Bounds | None = None

    @property
    def section(self) -> str:
        return self.key.rpartition(".")[0]


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def config_flags(cls: type = RunConfig, prefix: str = "") -> list[ConfigFlag]:
    """Every field of ``cls`` (sections included) that declares a flag, in field order."""
    hints = typing.get_type_hints(cls)
    out: list[ConfigFlag] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if _is_section(hint):
            out.extend(config_flags(hint, f"{prefix}{f.name}."))
        elif (declared := flag_of(f)) is not None:
            kind = _number_kind(hint)
            bounds = bounds_of(f, kind) if kind is not None else None
            out.append(ConfigFlag(prefix + f.name, declared, hint, _default(f), bounds))
    return out


def neutral_keys(cls: type = RunConfig) -> list[tuple[tuple[str, ...], Any]]:
    """(key path, neutral value) of every field that declares one (``flags.option``)."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[tuple[str, ...], Any]] = []
    for f in dataclasses.fields(cls):
        if _is_section(hints[f.name]):
            out.extend(((f.name, *path), value) for path, value in neutral_keys(hints[f.name]))
        else:
            declared, value = neutral_of(f)
            if declared:
                out.append(((f.name,), value))
    return out


def keys_added_after(scheme: int, cls: type = RunConfig) -> list[tuple[tuple[str, ...], Any]]:
    """(key path, implied value) of every key the run ids of ``scheme`` did not hash: those
    declared ``since`` a later scheme, and every key with a neutral value (added later still)."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[tuple[str, ...], Any]] = []
    for f in dataclasses.fields(cls):
        if _is_section(hints[f.name]):
            nested = keys_added_after(scheme, hints[f.name])
            out.extend(((f.name, *path), value) for path, value in nested)
            continue
        declared = since_of(f)
        if declared is not None and declared[0] > scheme:
            out.append(((f.name,), declared[1]))
            continue
        has_neutral, value = neutral_of(f)
        if has_neutral:
            out.append(((f.name,), value))
    return out


def config_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key a YAML file, ``--set`` or a sweep axis may set, flag or not."""
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        if _is_section(hints[f.name]):
            keys.extend(config_keys(hints[f.name], f"{prefix}{f.name}."))
        else:
            keys.append(prefix + f.name)
    return keys


def scalar_options(hint: Any) -> tuple[Any, ...]:
    """The alternatives of an annotation, ``None`` included: ``int | None`` -> (int, NoneType)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _number_kind(hint: Any) -> type | None:
    """int or float when the annotation holds that number type (a Literal's values excluded)."""
    options = scalar_options(hint)
    return float if float in options else int if int in options else None


def _checked(field_: dataclasses.Field[Any], hint: Any, value: Any, key: str) -> Any:
    """A value converted to the field's type and, for a number, inside the field's bounds."""
    value = _coerce(value, hint, key)
    kind = _number_kind(hint)
    if kind is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        problem = bounds_of(field_, kind).problem(value)
        if problem is not None:
            flag = flag_of(field_)
            name = f"{flag.name} ({key})" if flag is not None else key
            raise ConfigError(f"{name} {problem}")
    return value


_NO = object()  # "this converter does not take the value"


def _to_bool(value: Any, key: str) -> Any:
    return value if isinstance(value, bool) else _NO


def _to_int(value: Any, key: str) -> Any:
    if isinstance(value, bool):
        return _NO
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        if len(value.strip()) > 30:
            raise ConfigError(f"config key {key!r} is too large, got {value[:30]}...")
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _NO


def _to_float(value: Any, key: str) -> Any:
    if isinstance(value, bool):
        return _NO
    try:
        return float(value)
    except (TypeError, ValueError):
        return _NO


def _to_str(value: Any, key: str) -> Any:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    return _NO


_CONVERTERS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _alternatives(hint: Any) -> list[Any]:
    """The types a value may take: ``int | None`` -> [int, NoneType]; a ``Literal`` -> the types
    of its values (whether the value is one of them is the domain object's check)."""
    expanded: list[Any] = []
    for option_ in scalar_options(hint):
        if typing.get_origin(option_) is Literal:
            expanded.extend(dict.fromkeys(type(v) for v in typing.get_args(option_)))
        else:
            expanded.append(option_)
    return expanded


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or say which key is wrong (trying the
    annotation's alternatives in order)."""
    expanded = _alternatives(hint)
    if value is None:
        if type(None) in expanded:
            return None
        raise ConfigError(f"config key {key!r} must not be empty")
    for option_ in expanded:
        if typing.get_origin(option_) is list:
            return list(value) if isinstance(value, (list, tuple)) else [value]
        convert = _CONVERTERS.get(option_)
        if convert is not None and (converted := convert(value, key)) is not _NO:
            return converted
    names = " or ".join(getattr(o, "__name__", str(o)) for o in expanded)
    raise ConfigError(f"config key {key!r} must be {names}, got {value!r}")


def _check_mapping(mapping: Any, prefix: str, names: set[str]) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'top'!r} must be a mapping")
    for key in mapping:
        if key not in names:
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r}; known: {', '.join(sorted(names))}"
            )


def build(cls: type[T], mapping: Any, prefix: str = "") -> T:
    """An instance of the config dataclass ``cls`` from a (partial) mapping: unset keys keep
    their defaults, sections recurse, values are coerced, and the domain objects validate."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_mapping(mapping, prefix, set(fields))
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        hint = hints[key]
        if _is_section(hint):
            values[key] = build(hint, value or {}, f"{prefix}{key}.")
        else:
            values[key] = _checked(fields[key], hint, value, prefix + key)
    return cls(**values)


def _merge(target: Any, mapping: dict[str, Any], prefix: str) -> None:
    """Set keys of a mutable dataclass in place (``train:`` sections use it)."""
    hints = typing.get_type_hints(type(target))
    fields = {f.name: f for f in dataclasses.fields(target)}
    _check_mapping(mapping, prefix, set(fields))
    for key, value in mapping.items():
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value or {}, f"{prefix}{key}.")
        else:
            setattr(target, key, _checked(fields[key], hints[key], value, prefix + key))


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested sections: ``{"attack.iterations": 50}`` -> ``{"attack": {...}}``."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Apply dotted-key overrides such as ``{"attack.iterations": 50}`` (returns a new config)."""
    return from_dict(_deep(config.to_dict(), nest(overrides)))


def _deep(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_dict(mapping: dict[str, Any] | None) -> RunConfig:
    return build(RunConfig, mapping or {})


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML config with a safe loader (a config file can never run code)."""
    mapping = read_yaml(path, "config file")
    if mapping is not None and not isinstance(mapping, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return from_dict(mapping)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
