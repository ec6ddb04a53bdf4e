"""The public Python API: docs/API.md lists exactly ``medleak.__all__``, every name resolves,
and ``medleak.attack`` / ``medleak.audit`` return the records the CLI writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import medleak

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


def test_the_api_page_lists_exactly_the_public_names() -> None:
    listed = re.findall(r"^### `([A-Za-z_]\w*)`", API_DOC.read_text(), flags=re.MULTILINE)
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(medleak.__all__)
    for name in medleak.__all__:
        assert getattr(medleak, name) is not None
    with pytest.raises(AttributeError):
        medleak.no_such_name  # noqa: B018


def test_importing_medleak_does_not_import_torch() -> None:
    code = "import sys, medleak; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_attack_and_audit_return_the_records(tmp_path) -> None:
    config = {
        "data": {"batch_size": 1, "image_size": 16},
        "model": {"channels": 1},
        "attack": {"iterations": 2, "labels": "inferred"},
        "metrics": {"gallery_size": 2},
    }
    record = medleak.attack(config, out=tmp_path / "a")
    assert isinstance(record, medleak.RunRecord) and record.metrics["iterations"] == 2
    assert (tmp_path / "a" / "metrics.json").is_file()
    with pytest.raises(medleak.MedleakError, match="already holds a run"):
        medleak.attack(config, out=tmp_path / "a")
    from medleak.models import build_model

    model = build_model("lenet", 1, 16, seed=0)
    settings = {"fl": {"algorithm": "fedsgd"}, "data": {"batch_size": 1, "image_size": 16}}
    path = medleak.save_update(
        model,
        dict(model.state_dict()),
        tmp_path / "u.safetensors",
        settings,
        form="pseudo_gradient",
    )
    found = medleak.audit(model, None, path, {"attack": {"iterations": 2}})
    assert found.metrics["verdict"] == "not scored"
    assert found.tensors["reconstructions"].shape == (1, 1, 16, 16)


def test_sweep_runs_a_spec_and_returns_its_stored_records(tmp_path) -> None:
    spec = {
        "base": {
            "data": {"source": "phantom", "image_size": 16, "batch_size": 1, "phantom_count": 8},
            "model": {"name": "lenet", "channels": 1},
            "attack": {"name": "rog", "iterations": 2, "prior": "none"},
            "metrics": {"gallery_size": 2},
        },
        "grid": {"seed": [0, 1]},
    }
    result = medleak.sweep(spec, tmp_path / "s.db")
    assert result.summary.finished == 2 and result.summary.failed == 0
    assert sorted(r.config["seed"] for r in result.runs) == [0, 1]
    assert all(r.status == "finished" and r.metrics["ssim"] is not None for r in result.runs)
    again = medleak.sweep(spec, tmp_path / "s.db")  # resumable: nothing left to run
    assert again.summary.skipped == 2 and len(again.runs) == 2
