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


def test_every_domain_option_is_a_config_key_the_latent_start_included(tmp_path) -> None:
    from dataclasses import fields

    from medleak.attacks import AttackOptions
    from medleak.data import DataSpec
    from medleak.experiments.config import config_keys
    from medleak.fl import FLSettings

    keys = set(config_keys())
    for section, cls in (("attack", AttackOptions), ("data", DataSpec), ("fl", FLSettings)):
        assert {f"{section}.{f.name}" for f in fields(cls)} <= keys
    path = tmp_path / "c.yaml"
    path.write_text("attack:\n  init: uniform\n")
    assert load_config(path).attack.options().init == "uniform"
    path.write_text("attack:\n  init: noise\n")
    with pytest.raises(ConfigError, match="init must be uniform or gray"):
        load_config(path)


def _tiny(**sections) -> RunConfig:
    base = {
        "data": {"image_size": 16, "batch_size": 2, "phantom_count": 8},
        "attack": {"iterations": 1, "analytic": False, "prior": "none"},
        "metrics": {"gallery_size": 0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return from_dict(base)


def test_the_latent_start_from_yaml_reaches_the_attack() -> None:
    from medleak.experiments.run import execute, plan_run

    starts = {}
    for init in ("uniform", "gray"):
        plan = plan_run(_tiny(attack={"init": init}))
        assert plan.options.init == init
        starts[init] = execute(plan).reconstruction.initial_images
    assert starts["uniform"].std() > 0.2  # uniform in [0, 1]
    assert starts["gray"].std() < 0.1  # 0.5 with faint noise
    # the preset still wins over the key, as it does for every option it names
    assert plan_run(_tiny(attack={"preset": "rog-core"})).options.init == "uniform"


def _three_class_folder(root) -> str:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("A", "B", "C"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            pixels = (rng.random((24, 24)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name.lower()}{i}.png")
    return str(root)


def test_model_classes_default_from_the_data_and_too_few_are_refused(tmp_path, capsys) -> None:
    from medleak.cli import main
    from medleak.experiments.run import plan_run
    from medleak.models import model_info

    def head_outputs(config: RunConfig) -> int:
        model = plan_run(config).model
        return model.get_submodule(model_info(model).head).out_features

    tree = _three_class_folder(tmp_path / "three")
    assert head_outputs(_tiny(data={"source": tree})) == 3
    assert head_outputs(_tiny(data={"source": tree}, model={"num_classes": 5})) == 5
    assert head_outputs(_tiny()) == 2  # the phantoms' two classes, as before
    argv = ["attack", "--data", tree, "--num-classes", "2", "--image-size", "16", "--quiet"]
    code = main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "3 classes" in err[0] and "model.num_classes is 2" in err[0]
    with pytest.raises(ConfigError, match="num_classes must be >= 2"):
        from_dict({"model": {"num_classes": 1}})


def test_sweep_axes_are_checked_by_the_domain_objects_before_anything_runs() -> None:
    from medleak.experiments.sweep_spec import expand

    base = {"data": {"image_size": 16}, "attack": {"iterations": 1}}
    sweep = expand({"base": base, "grid": {"attack.init": ["uniform", "gray"]}}, "s.yaml")
    assert [job.config["attack"]["init"] for job in sweep.jobs] == ["uniform", "gray"]
    # values the old string-typed sections let through to fail as runs, an hour later
    for key, value, needle in (
        ("attack.labels", "bogus", "labels"),
        ("attack.init", "noise", "init"),
        ("fl.algorithm", "fedprox", "fedprox"),
        ("data.resize", "zoom", "resize"),
        ("model.num_classes", 1, "num_classes"),
    ):
        with pytest.raises(ConfigError, match=needle) as info:
            expand({"base": base, "grid": {key: [value]}}, "s.yaml")
        assert str(info.value).startswith("s.yaml") and "\n" not in str(info.value)
