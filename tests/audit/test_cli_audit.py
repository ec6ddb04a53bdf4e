"""``medleak audit``: an update medleak computed itself, captured with save_update and audited,
gives what ``medleak attack`` gives; bad inputs are one line and exit 2."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from medleak.capture import save_update
from medleak.cli import main
from medleak.experiments.config import load_config
from medleak.experiments.run import plan_run


def _config(
    algorithm: str,
    model: str = "lenet",
    size: int = 16,
    defenses: list[str] | None = None,
    normalize: str | None = None,
) -> dict[str, Any]:
    return {
        "defenses": defenses or [],
        "seed": 3,
        "data": {"source": "phantom", "batch_size": 2, "image_size": size},
        "model": {"name": model, "channels": 1, "normalize": normalize},
        "fl": {"algorithm": algorithm, "local_steps": 2, "local_lr": 0.01},
        "attack": {"name": "rog", "iterations": 2, "labels": "inferred"},
        "metrics": {"gallery_size": 4, "baseline": False},
    }


def _capture(config_path: Path, full: dict[str, Any], out: Path) -> Path:
    """The update ``medleak attack`` attacks for this config, written by save_update."""
    plan = plan_run(load_config(config_path))
    update = plan.chain.client_update(plan.model, plan.batch, plan.settings, seed=full["seed"])
    client = {**update.tensors, **(update.buffers or {})}
    settings = {
        "fl": full["fl"],
        "data": {k: full["data"][k] for k in ("batch_size", "image_size")},
        "model": {k: v for k, v in full["model"].items() if k != "name"},
    }
    return save_update(plan.model, client, out, settings, form="pseudo_gradient")


@pytest.mark.parametrize(
    ("algorithm", "model", "defenses"),
    [
        ("fedsgd", "lenet", []),
        ("fedavg", "lenet", []),
        ("fedavg", "resnet18", []),
        ("fedsgd", "lenet", ["topk:ratio=0.3"]),  # a defense the client declares it applied
        ("fedavg", "lenet", "imagenet"),  # a model that normalises its input, declared
    ],
)
def test_audit_of_medleaks_own_update_equals_attack(
    tmp_path, capsys, algorithm, model, defenses
) -> None:
    normalize = defenses if isinstance(defenses, str) else None
    defenses = [] if normalize else defenses
    full = _config(algorithm, model, defenses=defenses, normalize=normalize)
    full_path = tmp_path / "full.yaml"
    full_path.write_text(yaml.safe_dump(full))
    assert (
        main(["attack", "--config", str(full_path), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    )
    update = _capture(full_path, full, tmp_path / "u.safetensors")
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump({k: full[k] for k in ("seed", "attack", "metrics", "defenses")})
    )
    argv = ["audit", "--update", str(update), "--model", model, "--config", str(extra)]
    out = tmp_path / "b"
    assert main([*argv, "--originals", "phantom", "--out", str(out), "--quiet"]) == 0
    attacked = json.loads((tmp_path / "a" / "metrics.json").read_text())
    audited = json.loads((out / "metrics.json").read_text())
    for key in ("psnr", "ssim", "blank_psnr", "prior_ssim", "reid_rate", "verdict", "defenses"):
        assert audited[key] == attacked[key], key
    assert audited["audit"]["update_buffers"] is (model == "resnet18")
    a = load_file(str(tmp_path / "a" / "tensors.safetensors"))
    b = load_file(str(out / "tensors.safetensors"))
    assert torch.equal(a["reconstructions"], b["reconstructions"])
    assert (out / "reconstruction.png").is_file() and (out / "report.html").is_file()
    # without originals: the same reconstructions, nothing scored
    unscored = tmp_path / "c"
    weights = tmp_path / "global.pt"  # the global weights as a separate file (--weights)
    torch.save(
        {
            k[len("global/") :]: v
            for k, v in load_file(str(update)).items()
            if k.startswith("global/")
        },
        weights,
    )
    assert main([*argv, "--weights", str(weights), "--out", str(unscored), "--quiet"]) == 0
    metrics = json.loads((unscored / "metrics.json").read_text())
    assert metrics["verdict"] == "not scored" and "psnr" not in metrics
    assert metrics["audit"]["global_weights"] == f"--weights {weights}"
    assert sum(metrics["audit"]["recovered_composition"].values()) == 2
    c = load_file(str(unscored / "tensors.safetensors"))
    # the same images, in the attack's own order (a scored run orders them by the originals)
    for row in c["reconstructions"]:
        assert any(torch.equal(row, other) for other in b["reconstructions"])
    assert "not scored" in (unscored / "report.html").read_text()
    assert "verdict: not scored" in capsys.readouterr().out


SETTINGS = {
    "fl": {"algorithm": "fedavg", "local_steps": 2, "local_lr": 0.01},
    "data": {"batch_size": 1, "image_size": 16},
    "model": {"channels": 1},
}


def _lenet_update(tmp_path: Path, settings: dict[str, Any] = SETTINGS, nan: bool = False) -> Path:
    from medleak.models import build_model

    model = build_model("lenet", 1, 16, seed=0)
    client = {n: t.clone() for n, t in model.state_dict().items()}
    if nan:
        client["features.0.bias"][0] = float("inf")
    return save_update(model, client, tmp_path / "u.safetensors", settings)


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch) -> None:
    from medleak.models import build_model

    monkeypatch.chdir(tmp_path)
    update = str(_lenet_update(tmp_path))
    out = ["--out", str(tmp_path / "r"), "--quiet"]
    err = _refused(
        ["audit", "--update", update, "--model-factory", "nosuch_mod:build", *out], capsys
    )
    assert "no module 'nosuch_mod'" in err
    err = _refused(["audit", "--update", update, "--model-factory", "no-colon", *out], capsys)
    assert "PKG.MODULE:FUNCTION" in err
    (tmp_path / "raising_factory.py").write_text(
        "def build(width=3):\n    raise ValueError(f'width {width} is not supported')\n"
    )
    (tmp_path / "args.yaml").write_text("model_args:\n  width: 7\n")
    argv = ["audit", "--update", update, "--model-factory", "raising_factory:build"]
    err = _refused([*argv, "--config", str(tmp_path / "args.yaml"), *out], capsys)
    assert "raised ValueError: width 7 is not supported" in err
    err = _refused(["audit", "--update", update, "--model", "resnet18", *out], capsys)
    assert "lacks the model's tensor 'stem.0.weight'" in err
    other = tmp_path / "other.pt"
    torch.save(build_model("lenet", 1, 32, seed=0).state_dict(), other)
    err = _refused(
        ["audit", "--update", update, "--model", "lenet", "--weights", str(other), *out], capsys
    )
    assert f"--weights {other}: weights tensor 'classifier.1.weight' has shape (512, 4096)" in err
    missing = {**SETTINGS, "data": {"image_size": 16}}
    (tmp_path / "m").mkdir()
    bad = str(_lenet_update(tmp_path / "m", missing))
    err = _refused(["audit", "--update", bad, "--model", "lenet", *out], capsys)
    assert "does not declare data.batch_size" in err and "set data.batch_size" in err
    (tmp_path / "n").mkdir()
    bad = str(_lenet_update(tmp_path / "n", nan=True))
    err = _refused(["audit", "--update", bad, "--model", "lenet", *out], capsys)
    assert "'features.0.bias' has 1 NaN/inf" in err
    (tmp_path / "conflict.yaml").write_text("model:\n  channels: 3\n")
    conflict = ["--config", str(tmp_path / "conflict.yaml")]
    err = _refused(["audit", "--update", update, "--model", "lenet", *conflict, *out], capsys)
    assert "model.channels: the update file declares 1, the config says 3" in err
    pickled = tmp_path / "u.pt"
    pickled.write_bytes(pickle.dumps({"w": torch.zeros(2)}))
    err = _refused(["audit", "--update", str(pickled), "--model", "lenet", *out], capsys)
    assert "not a safetensors file" in err
    assert not (tmp_path / "r").exists()  # every refusal came before any output
    assert main(["audit", "--update", update, "--model", "lenet", "--check", *out]) == 0
    assert capsys.readouterr().out.strip() == "the options are valid"
    assert not (tmp_path / "r").exists()
    err = _refused(["audit", "--update", bad, "--model", "lenet", "--check", *out], capsys)
    assert "NaN/inf" in err
