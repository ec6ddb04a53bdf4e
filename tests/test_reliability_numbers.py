"""Issue 23, class 4: non-finite and absurd numbers are refused at parse time, naming the option;
a training or prior whose loss stops being finite is a failed run; every JSON file is strict.

The property-based test at the end feeds random values to every numeric option (and random
text to defense specs) through the CLI's validation path (``--check``, nothing is computed).
"""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medleak.attacks.priors.learned import TrainConfig as PriorConfig
from medleak.cli import main
from medleak.experiments.config import RunConfig, config_flags
from medleak.strict_json import finite_record, non_finite, strict_json

TRAIN = ["--quiet", "--threads", "1", "--set", "data.image_size=16", "--set",
         "data.phantom_count=16", "--set", "model.channels=1", "--set", "train.clients=2",
         "--set", "train.local_steps=1"]  # fmt: skip


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["attack", "--attack-lr", "inf"], "--attack-lr"),
        (["attack", "--attack-lr", "nan"], "--attack-lr"),
        (["attack", "--attack-lr", "1e30"], "--attack-lr"),
        (["attack", "--local-lr", "inf"], "--local-lr"),
        (["attack", "--local-lr", "-inf"], "--local-lr"),
        (["attack", "--tv", "inf"], "--tv"),
        (["attack", "--tv", "1e400"], "--tv"),
        (["attack", "--iterations", "1000000000000"], "--iterations"),
        (["attack", "--image-size", "0"], "--image-size"),
        (["attack", "--phantom-count", "1000000000"], "--phantom-count"),
        (["attack", "--batch-size", "0"], "--batch-size"),
        (["attack", "--seed", "-1"], "--seed"),
        (["attack", "--num-classes", "1000000000"], "--num-classes"),
        (["attack", "--gallery-size", "1000000000"], "--gallery-size"),
        (["attack", "--restarts", "100000"], "--restarts"),
        (["attack", "--threads", "0"], "--threads"),
        (["attack", "--defense", "dp:c=1e-320"], "'c'"),
        (["attack", "--defense", "dp:c=1,z=1e300"], "'z'"),
        (["attack", "--defense", "qsgd:levels=1e20"], "'levels'"),
        (["attack", "--defense", "qsgd:levels=100000000000"], "'levels'"),
        (["attack", "--defense", "topk:ratio=nan"], "'ratio'"),
        (["train", "--set", "train.server_lr=inf"], "train.server_lr"),
        (["train", "--set", "train.local_lr=.nan"], "train.local_lr"),
        (["train", "--set", "train.rounds=0"], "train.rounds"),
        (["train", "--set", "fl.local_lr=1e31"], "fl.local_lr"),
        (["train", "--set", "data.image_size=100000"], "data.image_size"),
        (["train-prior", "--epochs", "0"], "--epochs"),
        (["train-prior", "--epochs", "-1"], "--epochs"),
        (["train-prior", "--width", "0"], "--width"),
        (["train-prior", "--count", "0"], "--count"),
        (["train-prior", "--image-size", "18"], "--image-size"),
        (["sweep", "SPEC", "--max-runs", "0"], "--max-runs"),
        (["sweep", "SPEC", "--set", "attack.lr=.inf"], "attack.lr"),
        (["sweep", "SPEC", "--set", "seed=-5"], "seed"),
    ],
)
def test_a_bad_number_is_refused_naming_its_option(argv, words, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"base": {"attack": {"iterations": 1}}}))
    argv = [str(spec) if a == "SPEC" else a for a in argv]
    out = ["--out", str(tmp_path / "o")] if argv[0] in ("train", "train-prior") else []
    out = ["--store", str(tmp_path / "o")] if argv[0] == "sweep" else out
    assert main([*argv, *out, "--check"]) == 2
    assert words in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_yaml_configs_refuse_non_finite_values_naming_the_key(tmp_path, capsys):
    for section, key, value in [("attack", "lr", ".inf"), ("attack", "tv", ".nan"),
                                ("fl", "local_lr", "-.inf")]:  # fmt: skip
        config = tmp_path / "c.yaml"
        config.write_text(f"{section}:\n  {key}: {value}\n")
        assert main(["attack", "--config", str(config), "--check"]) == 2
        assert f"{section}.{key}" in _one_line(capsys.readouterr().err)


def test_an_absurd_learning_rate_is_refused_before_any_work(tmp_path, capsys):
    for value in ("1e30", "inf", "0"):
        argv = ["train", *TRAIN, "--set", f"train.local_lr={value}", "--out", str(tmp_path / "t")]
        assert main(argv) == 2
        assert "train.local_lr" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "t").exists()


def test_a_diverging_training_is_a_failed_run_not_a_final_accuracy(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["train", *TRAIN, "--set", "train.rounds=2", "--set", "train.local_lr=100",
            "--set", "train.server_lr=100"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 3
    captured = capsys.readouterr()
    assert "diverged" in _one_line(captured.err) and "final accuracy" not in captured.out
    assert not (out / "train.json").exists()


def test_a_diverging_sweep_training_is_recorded_failed(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    base = {"data": {"image_size": 16, "phantom_count": 16}, "model": {"channels": 1}}
    train = {"clients": 2, "rounds": 2, "local_steps": 1, "local_lr": 100, "server_lr": 100}
    spec.write_text(yaml.safe_dump({"base": base, "train": train, "list": [{"seed": 0}]}))
    store = tmp_path / "s.db"
    # the attack on the base config runs too; the training's failure makes the sweep exit 3
    code = main(["sweep", str(spec), "--store", str(store), "--quiet", "--set",
                 "attack.iterations=1", "--set", "metrics.gallery_size=0"])  # fmt: skip
    assert code == 3
    _one_line(capsys.readouterr().err)
    rows = sqlite3.connect(store).execute("SELECT kind, status, error FROM runs").fetchall()
    trains = [r for r in rows if r[0] == "train"]
    assert trains and trains[0][1] == "failed" and "diverged" in trains[0][2]


def test_a_diverging_prior_is_a_failed_run_and_writes_no_file(tmp_path, capsys, monkeypatch):
    from medleak.attacks.priors import learned

    real = learned.train_prior

    def diverging(images, config, quiet=True):
        net, _ = real(images, config, quiet)
        return net, math.nan

    monkeypatch.setattr(learned, "train_prior", diverging)
    out = tmp_path / "p.safetensors"
    argv = ["train-prior", "--quiet", "--image-size", "16", "--count", "2", "--epochs", "1",
            "--width", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 3
    assert "run failed" in _one_line(capsys.readouterr().err) and not out.exists()


def test_strict_json_writes_null_plus_a_reason():
    record = {"loss": math.nan, "curve": [1.0, math.inf], "ok": 2.0, "nested": {"x": -math.inf}}
    text = strict_json(record)
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not strict JSON"))
    assert back["loss"] is None and back["curve"] == [1.0, None] and back["ok"] == 2.0
    assert back["non_finite"] == {"loss": "nan", "curve[1]": "inf", "nested.x": "-inf"}
    assert finite_record([math.nan]) == [None]
    assert non_finite({"a": 1.0}, [2.0]) is None
    assert non_finite({"a": {"b": math.nan}}) == "a.b = nan"


# --- property-based: random values to every numeric option, random text to defense specs ---


def _number_flags(cls: type) -> list[str]:
    return [
        f.flag.name for f in config_flags(cls) if f.bounds is not None and f.flag.choices is None
    ]


#: (command, flag) for every numeric option of the commands whose flags come from config fields.
NUMBER_FLAGS = [("attack", f) for f in _number_flags(RunConfig)] + [
    ("train-prior", f) for f in _number_flags(PriorConfig)
]
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "1e-320", "0x10", "", " ", "1_000", "٣"]),
)
FAST = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _check_outcome(code: int, err: str) -> None:
    assert code in (0, 2, 3), (code, err)
    assert "Traceback" not in err
    if code:
        assert len([line for line in err.splitlines() if line.strip()]) <= 1, err


@FAST
@given(option=st.sampled_from(NUMBER_FLAGS), value=NUMBERS)
def test_any_value_of_any_numeric_option_is_accepted_or_one_line(capsys, tmp_path, option, value):
    command, flag = option
    argv = [command, f"{flag}={value}", "--check"]
    if command == "train-prior":
        argv += ["--out", str(tmp_path / "p.safetensors")]
    code = main(argv)
    _check_outcome(code, capsys.readouterr().err)
    assert not (tmp_path / "p.safetensors").exists()


@FAST
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda name, key, value: f"{name}:{key}={value}",
            st.sampled_from(["dp", "qsgd", "topk", "gaussian", "sign", "randk", "clip", "nosuch"]),
            st.sampled_from(["c", "z", "levels", "ratio", "sigma", "relative", "k", "x"]),
            NUMBERS,
        ),
    )
)
def test_any_defense_spec_is_accepted_or_one_line(capsys, text):
    code = main(["attack", f"--defense={text}", "--check"])
    _check_outcome(code, capsys.readouterr().err)


@FAST
@given(
    key=st.sampled_from(
        [
            "train.local_lr",
            "train.server_lr",
            "train.rounds",
            "train.clients",
            "train.alpha",
            "train.fraction",
            "train.eval_split",
            "fl.local_lr",
            "attack.tv",
            "data.image_size",
            "seed",
        ]
    ),  # fmt: skip
    value=NUMBERS,
)
def test_any_value_of_a_training_key_is_accepted_or_one_line(capsys, tmp_path, key, value):
    code = main(["train", "--set", f"{key}={value}", "--out", str(tmp_path / "t"), "--check"])
    _check_outcome(code, capsys.readouterr().err)
    assert not (tmp_path / "t").exists()


@FAST
@given(
    option=st.sampled_from(
        [
            ("sweep", "--workers"),
            ("sweep", "--threads"),
            ("sweep", "--max-runs"),
            ("train", "--threads"),
            ("train-prior", "--threads"),
        ]  # fmt: skip
    ),
    value=NUMBERS,
)
def test_any_value_of_a_hand_declared_count_is_accepted_or_one_line(
    capsys, tmp_path, option, value
):
    command, flag = option
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {attack: {iterations: 1}}\n")
    target = tmp_path / "target"
    where = {
        "sweep": [str(spec), "--store", str(target)],
        "train": ["--out", str(target)],
        "train-prior": ["--out", str(target)],
    }[command]
    code = main([command, *where, f"{flag}={value}", "--check"])
    _check_outcome(code, capsys.readouterr().err)
    assert not target.exists()
