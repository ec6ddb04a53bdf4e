"""No silent loss of results, private files, no patient file names on disk, clear refusals."""

from __future__ import annotations

import json
import stat

import pytest
import torch
from PIL import Image

from medleak.cli import main

TINY = ["--quiet", "--image-size", "32", "--batch-size", "2", "--iterations", "2",
        "--channels", "1", "--gallery-size", "2"]  # fmt: skip


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def jpeg_folder(tmp_path):
    """A folder of JPEGs named like Kaggle's, with patient numbers in the names."""
    root = tmp_path / "xrays"
    g = torch.Generator().manual_seed(0)
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            pixels = (torch.rand(48, 48, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / cls / f"person{1000 + i}_{cls.lower()}_{i}.jpeg")
    return root


def test_run_folder_and_files_are_private(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(["attack", *TINY, "--out", str(out)], capsys)
    assert code == 0, err
    assert _mode(out) == 0o700
    files = list(out.iterdir())
    assert {f.name for f in files} >= {
        "metrics.json",
        "report.html",
        "reconstruction.png",
        "tensors.safetensors",
        "config.yaml",
        "trace.csv",
    }
    assert all(_mode(f) == 0o600 for f in files), {f.name: oct(_mode(f)) for f in files}
    assert not [f for f in files if f.name.endswith(".tmp")]
    config = (out / "config.yaml").read_text()
    assert "threads: " in config and "threads: null" not in config


def test_out_holding_a_run_is_refused_unless_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(["attack", *TINY, "--out", str(out)], capsys)[0] == 0
    before = (out / "metrics.json").read_bytes()
    code, _, err = _run(["attack", *TINY, "--seed", "3", "--out", str(out)], capsys)
    assert code == 2 and "already holds a run" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "metrics.json").read_bytes() == before
    code, _, err = _run(["attack", *TINY, "--seed", "3", "--out", str(out), "--force"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["seed"] == 3


def test_report_never_overwrites_and_writes_into_a_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(["attack", *TINY, "--out", str(run)], capsys)[0] == 0
    target = tmp_path / "filed.html"
    target.write_text("a report someone filed")
    code, _, err = _run(["report", str(run), "--out", str(target)], capsys)
    assert code == 2 and str(target) in err
    assert target.read_text() == "a report someone filed"
    # --force replaces only medleak's own report, never a file someone else wrote
    code, _, err = _run(["report", str(run), "--out", str(target), "--force"], capsys)
    assert code == 2 and "not a report medleak wrote" in err
    assert target.read_text() == "a report someone filed"
    target = tmp_path / "ours.html"
    assert _run(["report", str(run), "--out", str(target)], capsys)[0] == 0
    assert _run(["report", str(run), "--out", str(target)], capsys)[0] == 2
    assert _run(["report", str(run), "--out", str(target), "--force"], capsys)[0] == 0
    assert "medleak report" in target.read_text() and _mode(target) == 0o600
    folder = tmp_path / "reports"
    folder.mkdir()
    assert _run(["report", str(run), "--out", str(folder)], capsys)[0] == 0
    assert (folder / "report.html").is_file()
    assert not list(tmp_path.glob(".*.tmp")) and not list(folder.glob(".*.tmp"))


def test_no_real_file_name_in_any_output(tmp_path, capsys, jpeg_folder):
    out = tmp_path / "run"
    code, _, err = _run(["attack", *TINY, "--data", str(jpeg_folder), "--out", str(out)], capsys)
    assert code == 0, err
    for f in out.iterdir():
        data = f.read_bytes()
        assert b"person100" not in data, f.name
        assert b"normal_0" not in data and b"pneumonia_1" not in data, f.name
    shown = tmp_path / "shown"
    code, _, err = _run(["attack", *TINY, "--data", str(jpeg_folder), "--out", str(shown),
                         "--show-sources"], capsys)  # fmt: skip
    assert code == 0, err
    sources = [p["source"] for p in json.loads((shown / "metrics.json").read_text())["per_image"]]
    assert all("person100" in s for s in sources)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--gallery-size", "-1"], "gallery size"),
        (["--image-size", "2048"], "1024"),
        (["--image-size", "100000"], "1024"),
    ],
)
def test_bad_sizes_are_one_line_errors(tmp_path, capsys, argv, words):
    code, _, err = _run(["attack", "--quiet", *argv, "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and words in err
    assert len(err.strip().splitlines()) == 1


def test_version_and_bare_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("medleak ")
    assert main([]) == 0
    assert "usage: medleak" in capsys.readouterr().out


def _folder_of(tmp_path, side):
    root = tmp_path / f"side{side}"
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray((torch.rand(side, side) * 255).to(torch.uint8).numpy()).save(
                root / cls / f"im{i}.png"
            )
    return root


def test_tiny_images_are_an_error_small_ones_a_warning(tmp_path, capsys):
    code, _, err = _run(
        ["attack", *TINY, "--data", str(_folder_of(tmp_path, 1)), "--out", str(tmp_path / "a")],
        capsys,
    )
    assert code == 2 and "below the 16 px minimum" in err
    with pytest.warns(UserWarning, match="upscaled more than 4x"):
        code = main(["attack", *TINY, "--image-size", "128", "--data",
                     str(_folder_of(tmp_path, 20)), "--out", str(tmp_path / "b")])  # fmt: skip
    assert code == 0


def test_unreadable_weights_file_says_why_in_words(tmp_path, capsys):
    weights = tmp_path / "weights.pt"
    weights.write_text("this is not a state dict")
    code, _, err = _run(["attack", *TINY, "--weights", str(weights), "--out",
                         str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 2 and str(weights) in err and "not a readable torch state dict" in err
