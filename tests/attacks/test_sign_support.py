"""Issue 12, goal 3: under signSGD the wide layer's sign pattern still gives each image's
feature support, and inverting the support recovers what a blank image cannot (phantoms)."""

from __future__ import annotations

import pytest
import torch

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.attacks.latent_inversion import LatentFit
from medleak.attacks.sign_support import invert_supports, read_supports, supports_of
from medleak.data import DataSpec, open_dataset, select_batch
from medleak.defenses import build_chain
from medleak.fl import FLSettings
from medleak.metrics.psnr import psnr
from medleak.models import build_model

SIZE = 64  # at 32 px one atom of this batch is a mixed pattern (measured)


def _setting(spec: str, settings: FLSettings | None = None):
    model = build_model("lenet", 1, SIZE, seed=0)
    batch = select_batch(open_dataset(DataSpec(image_size=SIZE), seed=0), 4, 0)
    update = build_chain([spec]).client_update(model, batch, settings or FLSettings(), seed=0)
    return model, batch, update, ServerKnowledge(model=model, image_size=SIZE, batch_size=4)


def _true_supports(model, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.features(images).flatten(1) > 0


@pytest.mark.parametrize("spec", ["sign", "sign:scaled=true"])
def test_the_sign_pattern_gives_feature_supports_exactly(spec: str) -> None:
    model, batch, update, knowledge = _setting(spec)
    found = supports_of(knowledge, update)
    assert found is not None
    layer, supports = found
    assert layer.weight_name == "classifier.1.weight"
    truth = _true_supports(model, batch.images)
    # Each support read is some image's support on every coordinate it claims to know.
    exact = {
        j
        for a in range(len(supports.positive))
        for j in range(4)
        if bool((supports.positive[a] == truth[j])[supports.known[a]].all())
        and int(supports.known[a].sum()) > truth.shape[1] // 4
    }
    assert len(exact) == 4
    # A mid-gray image's support is close to each image's, but not equal (what the bits add).
    gray = _true_supports(model, torch.full((1, 1, SIZE, SIZE), 0.5))
    assert all(bool((gray[0] != truth[j]).any()) for j in range(4))


def test_inverting_the_supports_beats_a_blank_image() -> None:
    model, batch, update, knowledge = _setting("sign")
    layer, supports = supports_of(knowledge, update)
    images, initial, trace = invert_supports(
        knowledge, layer, supports, LatentFit(40, SIZE // 4, 1e-3, 0)
    )
    assert trace[-1] < trace[0]
    blank = psnr(torch.full_like(batch.images, 0.5), batch.images)
    # each victim's best-matching reconstruction, in dB over the mid-gray image
    gains = [
        float(psnr(images, batch.images[j].expand_as(images)).max() - blank[j]) for j in range(4)
    ]
    assert sum(gains) / 4 > 3.0, gains
    assert min(gains) > 0.0, gains


def test_read_supports_refuses_patterns_without_information() -> None:
    assert read_supports(torch.ones(8, 16), 2) is None


def test_rog_selects_the_sign_stage_from_the_declaration() -> None:
    _, _, update, knowledge = _setting("sign")
    options = AttackOptions(iterations=2, labels="inferred")
    result = get_attack("rog")(update, knowledge, options, seed=0)
    assert result.info["stage"] == "sign-support"
    assert result.images.shape == (4, 1, SIZE, SIZE)
    # Several local steps: the patterns are no longer exact, so the stage is not used.
    _, _, fedavg, knowledge = _setting("sign", FLSettings("fedavg", 3, 1e-4))
    assert supports_of(knowledge, fedavg) is None
    # Without the sign declaration the stage is not used either.
    _, _, exact, knowledge = _setting("qsgd:levels=4")
    assert supports_of(knowledge, exact) is None
