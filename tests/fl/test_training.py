"""Federated training: partitions, DP accounting across rounds, learning on phantoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medleak.data.batch import Batch
from medleak.defenses import build_chain
from medleak.fl.partition import partition
from medleak.fl.training import (
    Split,
    TrainConfig,
    dp_epsilon_of,
    roc_auc,
    train_federated,
)
from medleak.models import build_model


def test_iid_and_patient_partitions_cover_every_image_once() -> None:
    labels = [i % 2 for i in range(40)]
    patients = [f"p{i // 4}" for i in range(40)]
    for kind in ("iid", "dirichlet", "patient"):
        parts = partition(labels, 4, kind, alpha=0.3, seed=1, patients=patients)
        flat = sorted(i for p in parts for i in p)
        assert flat == list(range(40)) and all(parts)
    by_patient = partition(labels, 4, "patient", seed=1, patients=patients)
    owner = {patients[i]: c for c, p in enumerate(by_patient) for i in p}
    assert all(owner[patients[i]] == c for c, p in enumerate(by_patient) for i in p)


def _skew(alpha: float) -> float:
    labels = [i % 2 for i in range(2000)]
    parts = partition(labels, 10, "dirichlet", alpha=alpha, seed=3)
    shares = [np.mean([labels[i] for i in p]) for p in parts]
    return float(np.std(shares))


def test_dirichlet_skew_follows_alpha() -> None:
    # Class-1 share per client: Beta(alpha, alpha)-like, std 1 / (2 sqrt(2 alpha + 1)).
    assert _skew(100.0) < 0.05
    low = _skew(0.1)
    assert 0.3 < low < 0.5  # 1 / (2 sqrt(1.2)) = 0.456
    assert _skew(1.0) == pytest.approx(1 / (2 * np.sqrt(3)), abs=0.12)


def _toy_split(n: int = 48, size: int = 16, seed: int = 0) -> Split:
    """A separable toy problem (bright vs dark centre) so training is fast and decisive."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2 * n) % 2
    images = 0.4 + 0.05 * torch.randn(2 * n, 1, size, size, generator=g)
    images[labels == 1, :, 4:12, 4:12] += 0.3
    images = images.clamp(0, 1)

    def batch(sl: slice) -> Batch:
        idx = range(2 * n)[sl]
        return Batch(images[sl], labels[sl], tuple(f"t{i}" for i in idx), tuple(None for _ in idx))

    return Split(batch(slice(0, n)), batch(slice(n, 2 * n)), "toy")


def test_dp_epsilon_over_rounds_equals_opacus_called_directly() -> None:
    from opacus.accountants import RDPAccountant

    split = _toy_split()
    config = TrainConfig(clients=3, rounds=3, fraction=2 / 3, local_steps=2, local_batch_size=4)
    chain = build_chain(["dp:c=1.0,z=1.1,delta=1e-5"])
    model = build_model("lenet", 1, 16, seed=0)
    result = train_federated(model, split, chain, config, seed=0)
    worst = 0.0
    for history in result.dp_history:
        if not history:
            continue
        accountant = RDPAccountant()
        for z, q, steps in history:
            assert z == 1.1 and q == pytest.approx(4 / 16)
            for _ in range(steps):
                accountant.step(noise_multiplier=z, sample_rate=q)
        worst = max(worst, accountant.get_epsilon(delta=1e-5))
    assert sum(len(h) for h in result.dp_history) == 2 * 3  # 2 of 3 clients, 3 rounds
    assert result.metrics["epsilon"] == pytest.approx(worst)
    assert result.curves["epsilon"][-1] == pytest.approx(worst)
    assert result.curves["epsilon"][1] < result.curves["epsilon"][-1]
    assert dp_epsilon_of([(1.1, 0.25, 2)], 1e-5) > 0


def test_training_rises_above_chance_and_defenses_apply() -> None:
    split = _toy_split()
    config = TrainConfig(clients=3, rounds=4, local_steps=20, local_batch_size=8, local_lr=0.05)
    model = build_model("lenet", 1, 16, seed=0)
    result = train_federated(model, split, build_chain([]), config, seed=0)
    assert result.curves["accuracy"][-1] >= 0.9 > result.metrics["chance"]
    assert result.metrics["auc"] > 0.9
    m = result.metrics  # 48 held-out images: the intervals, and learned above both rates
    assert m["accuracy_ci_low"] <= m["accuracy"] <= m["accuracy_ci_high"]
    assert m["auc_ci_low"] <= m["auc"] <= m["auc_ci_high"]
    assert m["chance_rate"] == 0.5 and m["majority_rate"] == 0.5 and m["learned"] is True
    topk = train_federated(
        build_model("lenet", 1, 16, seed=0), split, build_chain(["topk:ratio=0.1"]), config, 0
    )
    assert topk.metrics["bits_ratio"] < 0.5
    again = train_federated(build_model("lenet", 1, 16, seed=0), split, build_chain([]), config, 0)
    assert again.curves == result.curves  # same config + seed = same numbers


def test_roc_auc_matches_pairwise_definition() -> None:
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4])
    labels = torch.tensor([0, 0, 1, 1, 1])
    pairs = [
        (s1, s0) for s1, l1 in zip(scores, labels) if l1 for s0, l0 in zip(scores, labels) if not l0
    ]
    expected = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert roc_auc(scores, labels) == pytest.approx(expected)
    assert roc_auc(scores, torch.zeros(5, dtype=torch.long)) is None


def test_training_on_phantoms_rises_above_chance() -> None:
    """Synthetic phantoms (no patient data), 32 px, 4 iid clients, 3 rounds of 20 local steps."""
    from medleak.data import DataSpec
    from medleak.fl.training import load_split

    spec = DataSpec(source="phantom", split=None, image_size=32, phantom_count=120)
    split = load_split(spec, 0, 0.2)
    assert "class-stratified" in split.description and len(split.test) == 24
    assert split.test.labels.sum() == 12  # balanced held-out set: chance is 0.5
    config = TrainConfig(clients=4, rounds=3, local_steps=20)
    result = train_federated(build_model("lenet", 1, 32, seed=0), split, build_chain([]), config, 0)
    assert result.metrics["chance"] == 0.5
    assert result.curves["accuracy"][0] == 0.5  # the initial model answers one class
    assert result.metrics["accuracy"] >= 0.65
    assert result.metrics["auc"] >= result.curves["auc"][0] + 0.2
