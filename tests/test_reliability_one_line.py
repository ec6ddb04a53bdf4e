"""Issue 23, class 7: every bad input is one line (exit 2): YAML that is not UTF-8, repeats a key
or breaks its syntax, a pickled --weights file, a run folder given to ``results``, and the
Flower example's bad arguments and data."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path

import pytest
import torch
import yaml

from medleak.cli import main
from medleak.errors import ConfigError
from medleak.yaml_input import loads_yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flower"


def _line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


BAD_YAML = {
    "latin-1": ("attack:\n  name: r\xf6g\n".encode("latin-1"), ["not UTF-8", "0xf6"]),
    "utf-16": ("seed: 1\n".encode("utf-16"), ["not UTF-8"]),
    "duplicate": (
        b"seed: 1\nattack:\n  iterations: 5\nseed: 2\n",
        ["duplicate key 'seed'", "line 4"],
    ),  # fmt: skip
    "nested duplicate": (
        b"attack:\n  iterations: 5\n  iterations: 6\n",
        ["'iterations'", "line 3"],
    ),  # fmt: skip
    "syntax": (b"attack:\n  name: [rog\nseed: 1\n", ["line", "column"]),
    "tab": (b"attack:\n\tname: rog\n", ["line 2", "column"]),
    "bad mapping": (b"seed: 1\n  bad: indent\n", ["line 2", "column"]),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
@pytest.mark.parametrize("command", ["attack", "train", "sweep"])
def test_bad_yaml_is_one_line_with_where(tmp_path, capsys, case, command):
    data, words = BAD_YAML[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    argv = {
        "attack": ["attack", "--config", str(path), "--check"],
        "train": ["train", "--config", str(path), "--out", str(tmp_path / "t"), "--check"],
        "sweep": ["sweep", str(path), "--store", str(tmp_path / "s.db"), "--check"],
    }[command]
    assert main(argv) == 2
    line = _line(capsys)
    assert all(w in line for w in words), line
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "t").exists()


def test_duplicate_keys_in_set_values_and_flow_mappings_are_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="duplicate key 'a' at line 1"):
        loads_yaml("{a: 1, a: 2}", "--set x")
    assert loads_yaml("a: 1\nb: {c: 2}\n", "t") == {"a": 1, "b": {"c": 2}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"base": {"attack": {"iterations": 1}}}))
    argv = ["sweep", str(spec), "--store", str(tmp_path / "s.db"), "--set",
            "attack={iterations: 1, iterations: 2}", "--check"]  # fmt: skip
    assert main(argv) == 2
    assert "duplicate key 'iterations'" in _line(capsys)


def test_weights_that_are_not_plain_tensors_never_repeat_torchs_unsafe_advice(tmp_path, capsys):
    files = {
        "objects.pt": lambda p: torch.save({"w": Path("not/a/tensor")}, p),
        "plain.pkl": lambda p: p.write_bytes(pickle.dumps({"w": [1, 2]})),
        "junk.pt": lambda p: p.write_bytes(b"certainly not a checkpoint"),
        "junk.safetensors": lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}"),
    }
    for name, make in files.items():
        path = tmp_path / name
        make(path)
        assert main(["attack", "--weights", str(path), "--check"]) == 2
        line = _line(capsys)
        assert "weights" in line and str(path) in line
        assert "weights_only" not in line and "trust" not in line


@pytest.fixture(scope="module")
def hospitals():
    pytest.importorskip("flwr")
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("hospitals")
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--clients", "0"], "--clients"),
        (["--rounds", "-1"], "--rounds"),
        (["--image-size", "nan"], "--image-size"),
        (["--guard-ssim-margin", "inf"], "--guard-ssim-margin"),
        (["--iterations", "many"], "--iterations"),
        (["--guard", "maybe"], "--guard"),
        (["--no-such-flag"], "unrecognized"),
    ],
)
def test_the_flower_example_bad_arguments_are_one_line(hospitals, capsys, argv, words):
    with pytest.raises(SystemExit) as exit_:
        hospitals.main(argv)
    assert exit_.value.code == 2
    assert words in _line(capsys)


def test_the_flower_example_bad_data_and_defenses_are_one_line(hospitals, tmp_path, capsys):
    broken = tmp_path / "xrays"
    for cls in ("NORMAL", "PNEUMONIA"):
        (broken / cls).mkdir(parents=True)
        (broken / cls / "person7_bacteria_1.jpeg").write_bytes(b"not a jpeg")
    cases = [
        (["--defense", "topk:ratio=7"], "ratio"),
        (["--defense", "nosuch"], "nosuch"),
        (["--data", str(tmp_path / "missing")], "missing"),
        (["--data", str(broken)], "img-"),  # the patient's file name is pseudonymised
        (["--image-size", "30"], "multiple of 4"),
    ]
    for argv, words in cases:
        assert hospitals.main(["--out", str(tmp_path / "fl"), *argv]) == 2
        line = _line(capsys)
        assert words in line and "person7" not in line
        assert not (tmp_path / "fl" / "audit.sqlite").exists()
