"""Issue 12, goal 4: a biased head's gradient gives a single image's features exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.attacks.head_features import exact_head_features
from medleak.data import Batch
from medleak.defenses import build_chain
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model


def _batch(n: int, size: int, seed: int = 1) -> Batch:
    coarse = torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))
    images = F.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1)
    labels = torch.arange(n) % 2
    return Batch(images, labels, tuple(f"s{i}" for i in range(n)), (None,) * n)


# ResNet-18 at 64 px: at 32 px its last BatchNorm would see a single value per channel.
@pytest.mark.parametrize(("name", "size"), [("lenet-dlg", 32), ("resnet18", 64)])
@pytest.mark.parametrize("settings", [FLSettings(), FLSettings("fedavg", 1, 0.1)])
def test_head_features_are_exact_at_batch_1(name: str, size: int, settings: FLSettings) -> None:
    model = build_model(name, 3, size, seed=2)
    batch = _batch(1, size)
    update = compute_update(model, batch, settings)
    knowledge = ServerKnowledge(model=model, image_size=size, batch_size=1)
    found = exact_head_features(knowledge, update)
    assert found is not None
    with torch.no_grad():
        truth = found.of(knowledge, batch.images)
        assert truth.shape == found.features.shape
        assert torch.allclose(found.features, truth, rtol=1e-4, atol=1e-6)
        assert float(found.loss(knowledge, batch.images)) < 1e-8
        other = _batch(1, size, seed=5).images
        assert float(found.loss(knowledge, other)) > 1e-4


def test_head_features_are_refused_where_they_are_not_exact() -> None:
    model = build_model("lenet-dlg", 3, 32, seed=2)
    one, two = _batch(1, 32), _batch(2, 32)
    knowledge = ServerKnowledge(model=model, image_size=32, batch_size=2)
    assert exact_head_features(knowledge, compute_update(model, two, FLSettings())) is None
    single = ServerKnowledge(model=model, image_size=32, batch_size=1)
    fedavg = compute_update(model, one, FLSettings("fedavg", 3, 0.1))
    assert exact_head_features(single, fedavg) is None
    signed = build_chain(["sign"]).client_update(model, one, FLSettings(), seed=0)
    assert exact_head_features(single, signed) is None
    # ROG's LeNet has a bias-free head: nothing to divide by.
    rog = build_model("lenet", 3, 32, seed=2)
    assert exact_head_features(single, compute_update(rog, one, FLSettings())) is None


def test_rog_uses_the_head_features_at_batch_1() -> None:
    model = build_model("lenet-dlg", 3, 32, seed=2)
    batch = _batch(1, 32)
    update = compute_update(model, batch, FLSettings())
    knowledge = ServerKnowledge(model=model, image_size=32, batch_size=1)
    options = AttackOptions(iterations=5, labels="inferred", prior="none")
    result = get_attack("rog")(update, knowledge, options, seed=0)
    assert result.info["stage"] == "head-features"
    assert result.images.shape == (1, 1, 32, 32)
    assert result.trace[-1] < result.trace[0]
    plain = AttackOptions(iterations=2, labels="inferred", analytic=False)
    off = get_attack("rog")(update, knowledge, plain, seed=0)
    assert off.info["stage"] == "optimisation"


def test_rog_names_the_stage_it_ran_and_says_restarts_do_not_apply_to_it() -> None:
    """ROG's stages are tried in order; the analytic head stage is deterministic, so --restarts
    is reported as not applying rather than silently ignored."""
    from medleak.attacks.rog import ANALYTIC_STAGES

    assert [s.name for s in ANALYTIC_STAGES] == ["analytic", "head-features", "latent"]
    model = build_model("lenet-dlg", 1, 16, seed=2)
    update = compute_update(model, _batch(1, 16), FLSettings())
    knowledge = ServerKnowledge(model=model, image_size=16, batch_size=1)
    options = AttackOptions(iterations=3, restarts=2, prior="none", labels="inferred")
    result = get_attack("rog")(update, knowledge, options, seed=0)
    assert result.info["stage"] == "head-features"
    assert "optimisation only" in result.info["restarts_note"]
    off = AttackOptions(iterations=3, analytic=False, labels="inferred")
    plain = get_attack("rog")(update, knowledge, off, 0)
    assert plain.info["stage"] == "optimisation" and "restarts_note" not in plain.info
