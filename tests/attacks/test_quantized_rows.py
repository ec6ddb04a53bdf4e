"""Issue 12, goal 3: under unbiased stochastic quantization the wide layer's rows, grouped by
active set and averaged with their known scales, give each image's features (phantoms)."""

from __future__ import annotations

import itertools

import pytest
import torch

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.attacks.latent_inversion import LatentFit
from medleak.attacks.quantized_rows import groups_of, reconstruct
from medleak.data import DataSpec, open_dataset, select_batch
from medleak.defenses import build_chain
from medleak.fl import FLSettings
from medleak.metrics.psnr import psnr
from medleak.models import build_model

SIZE = 64
SPEC = "qsgd:levels=4,norm=max"


def _setting(spec: str = SPEC, settings: FLSettings | None = None):
    model = build_model("lenet", 1, SIZE, seed=0)
    batch = select_batch(open_dataset(DataSpec(image_size=SIZE), seed=0), 4, 0)
    update = build_chain([spec]).client_update(model, batch, settings or FLSettings(), seed=0)
    return model, batch, update, ServerKnowledge(model=model, image_size=SIZE, batch_size=4)


def test_row_groups_recover_active_sets_and_beat_a_blank_image() -> None:
    model, batch, update, knowledge = _setting()
    found = groups_of(knowledge, update, seed=0)
    assert found is not None
    layer, groups = found
    with torch.no_grad():
        hidden = model.features(batch.images).flatten(1) @ model.classifier[1].weight.T
    truth = (hidden > 0).double().T
    accuracy = max(
        float((groups.masks[:, list(p)] == truth).double().mean())
        for p in itertools.permutations(range(4))
    )
    assert accuracy > 0.9  # measured 0.96; all-active / all-inactive masks alone give < 0.85
    images, _, trace = reconstruct(knowledge, layer, groups, LatentFit(40, SIZE // 4, 1e-3, 0))
    assert trace[-1] < trace[0]
    blank = psnr(torch.full_like(batch.images, 0.5), batch.images)
    # each victim's best-matching reconstruction, in dB over the mid-gray image
    gains = [
        float(psnr(images, batch.images[j].expand_as(images)).max() - blank[j]) for j in range(4)
    ]
    assert sum(gains) / 4 > 3.0, gains
    assert min(gains) > 0.0, gains


@pytest.mark.slow
def test_rog_selects_row_groups_only_for_declared_unbiased_noise() -> None:
    _, _, update, knowledge = _setting()
    options = AttackOptions(iterations=2, labels="inferred")
    result = get_attack("rog")(update, knowledge, options, seed=0)
    assert result.info["stage"] == "row-groups"
    _, _, signed, knowledge = _setting("sign")
    assert groups_of(knowledge, signed, seed=0) is None
    _, _, fedavg, knowledge = _setting(SPEC, FLSettings("fedavg", 3, 1e-4))
    assert groups_of(knowledge, fedavg, seed=0) is None
    # QSGD with the L2 norm of the whole layer keeps too few entries to average: not used.
    _, _, sparse, knowledge = _setting("qsgd:levels=4")
    assert groups_of(knowledge, sparse, seed=0) is None
