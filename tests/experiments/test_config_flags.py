"""CLI flags are generated from the config fields: one declaration gives the YAML key, the flag,
its choices, its default and its help."""

from __future__ import annotations

import argparse
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from medleak.cli import OneLineParser, build_parser
from medleak.cli.flags import add_config_flags, config_overrides
from medleak.experiments.config import (
    AttackConfig,
    RunConfig,
    build,
    config_flags,
    config_keys,
    scalar_options,
)
from medleak.flags import option

README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass(frozen=True)
class _KnobAttack(AttackConfig):
    knob: Literal["soft", "hard"] = option("soft", "--knob", "a knob added by this test")
    dial: int = option(7, "--dial", "another one")
    hidden: float = 0.5  # no flag: YAML only


@dataclass
class _KnobRun(RunConfig):
    attack: _KnobAttack = field(default_factory=_KnobAttack)


def _attack_parser(cls: type = RunConfig) -> OneLineParser:
    parser = OneLineParser(prog="t")
    add_config_flags(parser, cls)
    return parser


def test_a_field_added_to_a_config_section_becomes_a_flag_with_its_choices_and_default() -> None:
    parser = _attack_parser(_KnobRun)
    args = parser.parse_args(["--knob", "hard", "--dial", "3", "--iterations", "2"])
    assert config_overrides(args, _KnobRun) == {
        "attack.knob": "hard",
        "attack.dial": 3,
        "attack.iterations": 2,
    }
    text = parser.format_help()
    assert re.search(r"--knob \{soft,hard\}\s+a knob added by this test \(default soft\)", text)
    assert "another one (default 7)" in text
    assert "--hidden" not in text
    with pytest.raises(SystemExit) as exc:  # the Literal's values are the choices
        parser.parse_args(["--knob", "medium"])
    assert exc.value.code == 2
    # unset flags stay unset, so a --config file is not overridden by defaults
    assert config_overrides(parser.parse_args([]), _KnobRun) == {}
    config = build(_KnobRun, {"attack": {"knob": "hard", "hidden": 0.25}})
    assert config.attack.knob == "hard" and config.attack.hidden == 0.25
    assert "attack.hidden" in config_keys(_KnobRun)


def test_every_config_flag_reaches_argparse_as_its_metadata_says() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    attack = commands.choices["attack"]
    actions = {a.option_strings[0]: a for a in attack._actions if a.option_strings}
    for flag in config_flags():
        action = actions[flag.flag.name]
        assert action.default is None, flag.key  # so YAML values survive unset flags
        literal = [o for o in scalar_options(flag.hint) if typing.get_origin(o) is Literal]
        expected = flag.flag.choices or (typing.get_args(literal[0]) if literal else None)
        assert (list(action.choices) if action.choices else None) == (
            list(expected) if expected else None
        ), flag.key
        assert action.help.startswith(flag.flag.help), flag.key
        if isinstance(flag.default, int) and not isinstance(flag.default, bool):
            assert f"(default {flag.default})" in action.help, flag.key


def _readme_options() -> dict[str, str]:
    """``--flag`` -> dotted key, from the README's option table."""
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"\| `(--[a-z-]+)(?:[^|\\]|\\\|)*\| `([a-z_.]+)`", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_readme_option_table_matches_the_generated_flags() -> None:
    documented = _readme_options()
    generated = {f.flag.name: f.key for f in config_flags()}
    assert documented == generated
    # today's flags keep their names (a rename would break every user's scripts)
    for name in ("--data", "--fl", "--attack", "--gallery-size", "--defense", "--attack-lr"):
        assert name in generated


def test_commands_other_than_attack_start_without_importing_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from medleak.cli import main\n"
        "try:\n    main(['results', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_train_prior_flags_come_from_its_config_fields() -> None:
    from dataclasses import fields

    from medleak.attacks.priors.learned import TrainConfig
    from medleak.experiments.config import build

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    prior = commands.choices["train-prior"]
    args = prior.parse_args(["--out", "p.safetensors", "--count", "5", "--split", "train"])
    config = build(TrainConfig, config_overrides(args, TrainConfig))
    assert config == TrainConfig(count=5, split="train")
    assert "(default 128)" in prior.format_help()
    flagged = {f.key for f in config_flags(TrainConfig)}
    assert flagged == {f.name for f in fields(TrainConfig)} - {"batch", "lr"}
