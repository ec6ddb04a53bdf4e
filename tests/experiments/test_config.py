"""Configs load from YAML safely, validate keys and types, and round-trip."""

from __future__ import annotations

import pytest
import yaml

from medleak.errors import ConfigError
from medleak.experiments.config import (
    RunConfig,
    apply_overrides,
    dump_config,
    from_dict,
    load_config,
)


def test_round_trip_through_yaml(tmp_path) -> None:
    config = apply_overrides(
        RunConfig(),
        {"attack.iterations": 7, "fl.local_lr": "1e-3", "defenses": ["sign"], "data.split": "val"},
    )
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config
    assert config.fl.local_lr == pytest.approx(1e-3) and config.attack.iterations == 7


def test_overrides_do_not_mutate_the_base() -> None:
    base = RunConfig()
    apply_overrides(base, {"attack.iterations": 3})
    assert base.attack.iterations == 100


def test_unknown_keys_and_bad_types_name_the_key() -> None:
    with pytest.raises(ConfigError, match="attack.iterationz"):
        from_dict({"attack": {"iterationz": 3}})
    with pytest.raises(ConfigError, match="data.batch_size"):
        from_dict({"data": {"batch_size": "four"}})
    with pytest.raises(ConfigError, match="'model' must be a mapping"):
        from_dict({"model": "lenet"})
    with pytest.raises(ConfigError, match="must not be empty"):
        from_dict({"seed": None})


def test_yaml_cannot_run_code(tmp_path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_a_top_level_list_is_refused(tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
