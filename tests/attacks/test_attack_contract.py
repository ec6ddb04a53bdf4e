"""Every registered attack honours the one attack protocol on a tiny input."""

from __future__ import annotations

import pytest
import torch

from medleak.attacks import ATTACKS, AttackOptions, Reconstruction, ServerKnowledge
from medleak.attacks.regularizers import REGULARIZERS, regularization
from medleak.data import Batch
from medleak.errors import ConfigError
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model

SIZE, N = 16, 2


def _case():
    model = build_model("lenet-dlg", 1, SIZE, seed=0)
    images = torch.rand(N, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    batch = Batch(images, torch.tensor([0, 1]), ("a", "b"), (None, None))
    update = compute_update(model, batch, FLSettings())
    return update, ServerKnowledge(model, SIZE, N, true_labels=batch.labels)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_returns_a_well_formed_reproducible_reconstruction(name: str) -> None:
    update, knowledge = _case()
    options = AttackOptions(iterations=3, restarts=2)
    result = ATTACKS[name](update, knowledge, options, seed=5)
    assert isinstance(result, Reconstruction)
    assert result.images.shape == result.initial_images.shape == (N, 1, SIZE, SIZE)
    assert 0 <= float(result.images.min()) and float(result.images.max()) <= 1
    assert result.labels.dtype == torch.int64 and result.labels.shape == (N,)
    assert result.trace and all(isinstance(v, float) for v in result.trace)
    assert len(result.info["trace_restart"]) == len(result.trace)
    assert result.info["prior"] in ("none", "classical")
    again = ATTACKS[name](update, knowledge, options, seed=5)
    assert torch.equal(result.images, again.images) and result.trace == again.trace

    # Each restart keeps the start it drew: the reported start is that of the chosen restart,
    # i.e. the start a single run from that restart's seed has.
    chosen = result.info["chosen_restart"]
    alone = ATTACKS[name](update, knowledge, AttackOptions(iterations=3), seed=5 + chosen)
    assert torch.equal(result.initial_images, alone.initial_images)
    assert torch.equal(result.images, alone.images)


def test_regularizers_are_a_registry_and_unknown_names_fail() -> None:
    images = torch.rand(1, 1, 8, 8)
    assert "tv" in REGULARIZERS
    assert torch.equal(regularization({"tv": 2.0}, images), 2.0 * REGULARIZERS["tv"](images))
    assert regularization({}, images) is None
    with pytest.raises(ConfigError, match="unknown regularizer"):
        regularization({"nope": 1.0}, images)
