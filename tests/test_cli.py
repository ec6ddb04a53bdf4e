"""The command line end to end on phantoms, and one-line errors for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medleak.cli import main

SMALL = [
    "--image-size",
    "32",
    "--batch-size",
    "2",
    "--iterations",
    "3",
    "--gallery-size",
    "4",
    "--phantom-count",
    "12",
    "--quiet",
]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits for usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_attack_writes_every_output_and_reruns_from_its_config(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code, stdout, _ = _run(["attack", *SMALL, "--out", str(out)], capsys)
    assert code == 0 and "PSNR" in stdout
    for name in (
        "metrics.json",
        "trace.csv",
        "reconstruction.png",
        "config.yaml",
        "tensors.safetensors",
        "report.html",
    ):
        assert (out / name).is_file(), name
    record = json.loads((out / "metrics.json").read_text())
    for key in (
        "psnr",
        "ssim",
        "per_image",
        "seconds",
        "iterations",
        "attack",
        "model",
        "labels_source",
        "seed",
        "config",
        "schema",
        "medleak_version",
        "torch_version",
        "cpu",
        "threads",
    ):
        assert key in record, key
    assert record["labels_source"] == "known" and record["iterations"] == 3
    assert len(record["per_image"]) == 2
    sources = {p["source"] for p in record["per_image"]}
    assert len(sources) == 2 and all(s.startswith("img-") for s in sources)
    trace = (out / "trace.csv").read_text().splitlines()
    assert trace[0] == "iteration,restart,loss" and len(trace) == 4

    again = tmp_path / "again"
    code, _, _ = _run(
        ["attack", "--config", str(out / "config.yaml"), "--quiet", "--out", str(again)], capsys
    )
    assert code == 0
    rerun = json.loads((again / "metrics.json").read_text())
    assert rerun["psnr"] == record["psnr"] and rerun["ssim"] == record["ssim"]
    # The pseudonyms are stable within an installation, so runs stay comparable.
    assert [p["source"] for p in rerun["per_image"]] == [p["source"] for p in record["per_image"]]


def test_cli_options_override_the_config_file(tmp_path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"image_size": 32, "batch_size": 1},
                "attack": {"iterations": 5},
                "metrics": {"gallery_size": 2},
                "model": {"name": "lenet-dlg", "channels": 1},
            }
        )
    )
    out = tmp_path / "run"
    code, _, err = _run(
        [
            "attack",
            "--config",
            str(config),
            "--iterations",
            "2",
            "--quiet",
            "--attack",
            "ig",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    record = json.loads((out / "metrics.json").read_text())
    assert record["iterations"] == 2 and record["attack"] == "ig" and record["model"] == "lenet-dlg"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "/nonexistent/xrays"], "/nonexistent/xrays"),
        (["--batch-size", "500"], "500"),
        (["--image-size", "36", "--scale-factor", "8"], "divisible"),
        (["--model", "vgg"], "invalid choice: 'vgg'"),
        (["--attack", "gan"], "invalid choice: 'gan'"),
        (["--iterations", "0"], "iterations"),
        (["--iterations", "-3"], "iterations"),
        (["--local-steps", "0", "--fl", "fedavg"], "local steps"),
        (["--defense", "topk:ratio=2"], "ratio"),
        (["--defense", "nosuch"], "nosuch"),
        (["--weights", "/nonexistent/w.pt"], "weights"),
        (["--iterations", "many"], "invalid int"),
        (["--config", "/nonexistent/c.yaml"], "config file not found"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(argv, message, tmp_path, capsys) -> None:
    code, _, err = _run(["attack", *SMALL, "--out", str(tmp_path / "o"), *argv], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_empty_folder_and_corrupt_image(tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(["attack", *SMALL, "--data", str(empty)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    tree = tmp_path / "tree"
    for cls in ("NORMAL", "PNEUMONIA"):
        (tree / cls).mkdir(parents=True)
        (tree / cls / "a.jpeg").write_bytes(b"this is not a jpeg")
    code, _, err = _run(
        ["attack", *SMALL, "--data", str(tree), "--out", str(tmp_path / "o")], capsys
    )
    # the file's name is a patient's: the error names its pseudonym unless --show-sources
    assert code == 2 and "a.jpeg" not in err and "img-" in err
    assert len(err.strip().splitlines()) == 1
    argv = ["attack", *SMALL, "--data", str(tree), "--show-sources", "--out", str(tmp_path / "o")]
    code, _, err = _run(argv, capsys)
    assert code == 2 and "a.jpeg" in err and len(err.strip().splitlines()) == 1


def test_bad_config_values_are_one_line(tmp_path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("attack:\n  iterationz: 3\n")
    code, _, err = _run(["attack", "--config", str(config)], capsys)
    assert code == 2 and "attack.iterationz" in err
    config.write_text("attack: [1, 2\n")
    code, _, err = _run(["attack", "--config", str(config)], capsys)
    assert code == 2 and "YAML" in err


def test_defenses_lists_every_defense(capsys) -> None:
    from medleak.defenses import DEFENSES

    code, out, _ = _run(["defenses"], capsys)
    assert code == 0 and all(name in out for name in DEFENSES)


def test_real_xray_sample_runs_end_to_end(chest_xray_sample: Path, tmp_path, capsys) -> None:
    out = tmp_path / "real"
    code, _, err = _run(
        [
            "attack",
            "--data",
            str(chest_xray_sample),
            "--image-size",
            "32",
            "--batch-size",
            "4",
            "--iterations",
            "2",
            "--gallery-size",
            "4",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    record = json.loads((out / "metrics.json").read_text())
    labels = [p["label"] for p in record["per_image"]]
    assert labels == [0, 1, 0, 1]
    # Kaggle names carry patient numbers: on disk only their keyed pseudonyms appear.
    assert all(p["source"].startswith("img-") for p in record["per_image"])
    assert b".jpeg" not in (out / "report.html").read_bytes()


def test_a_diverged_attack_is_a_failed_run_with_its_own_exit_code(
    tmp_path, capsys, monkeypatch
) -> None:
    """Exit 3, not bad input's 2: a sweep must tell a failed run from a wrong configuration."""
    import torch

    from medleak.experiments import run as run_module

    real = run_module.get_attack

    def diverging(name: str):
        attack = real(name)

        def wrapped(*args, **kwargs):
            result = attack(*args, **kwargs)
            result.images = torch.full_like(result.images, float("nan"))
            return result

        return wrapped

    monkeypatch.setattr(run_module, "get_attack", diverging)
    code, _, err = _run(["attack", *SMALL, "--out", str(tmp_path / "run")], capsys)
    assert code == 3
    assert "run failed" in err and "diverged" in err and len(err.strip().splitlines()) == 1


def test_defended_attack_stores_its_baseline_and_both_floors(tmp_path, capsys) -> None:
    """Issue 22: a defended run also attacks the undefended update (same id either way); the
    prior floor and the baseline reach metrics.json, the console and the report."""
    from medleak.experiments.stores import RunFolderStore

    defended = [*SMALL, "--channels", "1", "--defense", "gaussian:relative=10"]
    out, plain = tmp_path / "with", tmp_path / "without"
    code, stdout, err = _run(["attack", *defended, "--out", str(out)], capsys)
    assert code == 0, err
    record = json.loads((out / "metrics.json").read_text())
    assert record["prior_source"] == "distractors"
    assert len([p["prior_ssim"] for p in record["per_image"]]) == 2
    assert record["floor_ssim"] == max(record["blank_ssim"], record["prior_ssim"])
    assert record["floor_psnr"] == max(record["blank_psnr"], record["prior_psnr"])
    for key in ("baseline_psnr", "baseline_ssim", "baseline_reid_count", "protection_ssim"):
        assert isinstance(record[key], int | float), key
    assert record["baseline_verdict"] in ("leaks", "no measurable leakage", "inconclusive")
    assert record["baseline_verdict_reason"]
    assert "prior-image floor" in stdout and "baseline (same attack" in stdout
    tensors = RunFolderStore(out).load().tensors
    assert tensors["baseline_reconstructions"].shape == tensors["reconstructions"].shape
    html = (out / "report.html").read_text()
    assert "mean of other images" in html and "Without the defense (baseline)" in html

    code, _, err = _run(["attack", *defended, "--no-baseline", "--out", str(plain)], capsys)
    assert code == 0, err
    again = json.loads((plain / "metrics.json").read_text())
    # the baseline adds numbers beside the run's and changes none of them, nor its id
    assert again["run_id"] == record["run_id"]
    assert "baseline_ssim" not in again and again["verdict"] != "no measurable leakage"
    for key in ("psnr", "ssim", "reid_count", "prior_ssim", "floor_ssim"):
        assert again[key] == record[key], key
    assert "--no-baseline" in (plain / "report.html").read_text()


def test_gallery_source_and_auxiliary_must_exist(tmp_path, capsys) -> None:
    missing = str(tmp_path / "nowhere")
    for flag in ("--gallery-source", "--auxiliary"):
        code, _, err = _run(["attack", *SMALL, flag, missing, "--out", str(tmp_path / "r")], capsys)
        assert code == 2 and flag in err and len(err.strip().splitlines()) == 1
