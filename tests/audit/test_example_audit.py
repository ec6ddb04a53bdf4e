"""examples/audit: a user's own model trained two FedAvg steps in a plain loop, captured with
save_update and audited by ``medleak audit``, with and without the originals (32 px)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import yaml

from medleak.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audit"


def test_the_example_captures_and_audits_its_own_model(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(EXAMPLE)  # the factory is imported from the working folder, as a user runs it
    monkeypatch.syspath_prepend(str(EXAMPLE))
    example = importlib.import_module("train_and_capture")
    update = example.main(["--out", str(tmp_path / "update.safetensors"), "--size", "32"])
    config = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
    config["attack"]["iterations"] = 3  # the example's budget, cut for the test
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    argv = ["audit", "--update", str(update), "--model-factory", "my_model:build"]
    argv += ["--config", str(tmp_path / "audit.yaml"), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "server")]) == 0
    server = json.loads((tmp_path / "server" / "metrics.json").read_text())
    assert server["verdict"] == "not scored" and server["model"] == "my_model:build"
    assert server["audit"]["update_form"] == "weights" and server["iterations"] == 3
    assert main([*argv, "--originals", "phantom", "--out", str(tmp_path / "scored")]) == 0
    scored = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert scored["verdict"] in ("leaks", "no measurable leakage", "inconclusive")
    assert scored["blank_ssim"] is not None and scored["prior_ssim"] is not None
    assert scored["num_images"] == 2 and (tmp_path / "scored" / "reconstruction.png").is_file()
    assert "verdict:" in capsys.readouterr().out
