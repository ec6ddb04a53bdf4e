"""Run folders shaped like the pipeline's output, built from synthetic images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from medleak.metrics import evaluate
from medleak.report import save_grid


def _smooth(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 6, 6, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(0, 1)


def make_run_dir(
    path: Path,
    *,
    noise: float = 0.05,
    sources: list[str] | None = None,
    defenses: list[dict] | None = None,
    epsilon: float | None = None,
    with_tensors: bool = True,
    with_trace: bool = True,
    with_config: bool = True,
    size: int = 48,
) -> Path:
    n = 4
    originals = _smooth(n, size, 0)
    g = torch.Generator().manual_seed(1)
    recon = (originals + noise * torch.randn(originals.shape, generator=g)).clamp(0, 1)
    sources = sources or [f"IM-{i:04d}.jpeg" for i in range(n)]
    labels = torch.tensor([0, 1, 0, 1])
    scores = evaluate(
        originals,
        recon,
        initial=torch.rand(originals.shape, generator=g),
        true_labels=labels,
        used_labels=labels,
        sources=sources,
        patients=["p0", "p1", "p2", "p2"],
        gallery=_smooth(6, size, 2),
        gallery_patients=[f"q{i}" for i in range(6)],
    )
    config = {
        "seed": 0,
        "data": {"source": "phantom", "image_size": size},
        "attack": {"name": "rog"},
    }
    record = {
        "schema": 1,
        "medleak_version": "0.1.0",
        "git_commit": "abc123",
        "torch_version": torch.__version__,
        "cpu": "test cpu",
        "threads": 1,
        "attack": "rog",
        "model": "lenet",
        "channels": 3,
        "fl": "fedsgd",
        "labels_source": "known",
        "seed": 0,
        "iterations": 20,
        "seconds": 1.5,
        **scores.to_dict(),
        "defenses": defenses or [],
        "bits_sent": 1.5e6 if defenses else 4.8e7,
        "bits_raw": 4.8e7,
        "bits_ratio": 1 / 32 if defenses else 1.0,
        "epsilon": epsilon,
        "delta": 1e-5 if epsilon else None,
        "config": config,
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(record, allow_nan=False))
    if with_trace:
        rows = ["iteration,restart,loss"] + [f"{i},0,{10.0 / (i + 1)}" for i in range(20)]
        (path / "trace.csv").write_text("\n".join(rows) + "\n")
    if with_config:
        (path / "config.yaml").write_text(yaml.safe_dump(config))
    matched = recon[scores.matched]
    if with_tensors:
        save_file(
            {"originals": originals, "reconstructions": matched, "initial": matched.clone()},
            str(path / "tensors.safetensors"),
        )
    save_grid(originals, matched, path / "reconstruction.png")
    return path


@pytest.fixture
def run_dir_factory(tmp_path):
    def factory(name: str, **kwargs) -> Path:
        return make_run_dir(tmp_path / name, **kwargs)

    return factory


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for every browser test; skipped only where none can be installed.

    ``make test`` and ``.ci/run`` install Debian's chromium when it is absent, so under CI a
    missing browser is a failure, not a skip.
    """
    from medleak.report.browser import BrowserUnavailable, headless_chromium

    try:
        with headless_chromium() as browser:
            yield browser
    except BrowserUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the reports in a real browser: {exc}")
        pytest.skip(str(exc))


def make_audit_store(path: Path, *, noise: float = 0.03, rounds: int = 2) -> Path:
    """A sweep store holding a Flower audit shaped like ``AuditStrategy``'s, without Flower.

    Per round: client 11 attacked and scored against its offered batch, client 12 attacked
    with nothing to score against; in the last round client 12 was blocked by its guard.
    """
    from medleak.experiments.audit_store import save_audit
    from medleak.metrics.verdict import judge

    originals = _smooth(2, 32, 0)
    labels = torch.tensor([0, 1])
    for r in range(1, rounds + 1):
        for client in ("11", "12"):
            g = torch.Generator().manual_seed(10 * r + int(client))
            recon = (originals + noise * torch.randn(originals.shape, generator=g)).clamp(0, 1)
            base = {
                "federation": "fed0",
                "round": r,
                "client": client,
                "strategy": "FedAvg",
                "attack": "rog",
                "image_size": 32,
                "data_note": "synthetic phantoms, not patient data",
                "secure_aggregation": False,
            }
            if client == "12" and r == rounds:
                reason = "LeakageGuardMod blocked the update: leaks; SSIM above the floor"
                save_audit(path, {**base, "status": "client-error", "reason": reason})
                continue
            scores = None
            if client == "11":
                scores = evaluate(
                    originals,
                    recon,
                    initial=torch.rand(originals.shape, generator=g),
                    true_labels=labels,
                    used_labels=labels,
                    sources=["image-0", "image-1"],
                    patients=None,
                ).to_dict()
            verdict = judge(scores) if scores else None
            record = {
                **base,
                "status": "attacked",
                "threat_model_match": True,
                "threat_model_reason": "full-batch local steps, as the attack models",
                "fl": {"algorithm": "fedavg", "local_steps": 1, "local_lr": 0.01},
                "num_examples": 2,
                "defenses": [{"name": "topk", "params": {"ratio": 0.5, "scope": "tensor"}}],
                "encoding": "topk",
                "payload_bits": 3.9e7,
                "raw_bits": 6.9e7,
                "scored_with_originals": scores is not None,
                "guard": {"verdict": "leaks", "reason": "SSIM high", "outcome": "re-obfuscated"},
                "seconds": 1.0,
                "wall_seconds": 1.1,
                "recovered_labels": [0, 1],
                "recovered_composition": {"NORMAL": 1, "PNEUMONIA": 1},
                "scores": scores,
                "verdict": verdict.outcome if verdict else "inconclusive",
                "verdict_reason": verdict.reason if verdict else "no originals to score against",
            }
            tensors = {"reconstructions": recon, "initial": recon.clone()}
            if scores is not None:
                tensors.update(originals=originals, labels=labels)
            save_audit(path, record, tensors)
    return path
