"""DP-SGD on the client: per-example clipping, equivalence to plain FedSGD/FedAvg, accounting."""

from __future__ import annotations

import math

import pytest
import torch
from opacus.accountants import RDPAccountant

from medleak.data.batch import Batch
from medleak.defenses import build_chain, dp_epsilon
from medleak.defenses.clip import global_norm
from medleak.errors import ConfigError
from medleak.fl.client import buffers_of, compute_update, parameters_of
from medleak.fl.estimators import clip_per_example, per_example_gradients, per_example_norms
from medleak.fl.update import FLSettings
from medleak.models import build_model


def make_batch(n: int = 4, size: int = 32, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, size, size, generator=g)
    labels = torch.arange(n) % 2
    return Batch(images, labels, tuple(f"img{i}" for i in range(n)), (None,) * n)


@pytest.fixture(scope="module")
def lenet() -> torch.nn.Module:
    return build_model("lenet-dlg", 1, 32, seed=0)


def test_clip_per_example_bounds_every_norm() -> None:
    g = torch.Generator().manual_seed(0)
    per_example = {"w": torch.randn(5, 3, 4, generator=g), "b": torch.randn(5, 3, generator=g)}
    per_example["w"][0] *= 100  # far above c
    per_example["w"][1] *= 0  # zero gradient must stay finite
    per_example["b"][1] *= 0
    per_example["w"][2] *= 1e-3  # far below c: untouched
    per_example["b"][2] *= 1e-3
    before = per_example_norms(per_example)
    clipped = clip_per_example(per_example, 1.0)
    after = per_example_norms(clipped)
    assert (after <= 1.0 + 1e-6).all()
    assert after[0] == pytest.approx(1.0, rel=1e-5)
    assert after[1] == 0
    assert after[2] == pytest.approx(float(before[2]), rel=1e-6)
    # Clipping rescales an example, never changes its direction.
    assert torch.allclose(clipped["w"][0] * before[0], per_example["w"][0] * after[0], rtol=1e-4)


def test_per_example_gradients_average_to_the_batch_gradient(lenet: torch.nn.Module) -> None:
    batch = make_batch()
    per_example = per_example_gradients(
        lenet, parameters_of(lenet), buffers_of(lenet), batch.images, batch.labels
    )
    plain = compute_update(lenet, batch, FLSettings())
    for name, g in per_example.items():
        assert g.shape == (4, *plain.tensors[name].shape)
        assert torch.allclose(g.mean(0), plain.tensors[name], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(
    "settings", [FLSettings(), FLSettings("fedavg", local_steps=3, local_lr=0.1)]
)
def test_dp_without_noise_or_clipping_is_the_plain_update(
    lenet: torch.nn.Module, settings: FLSettings
) -> None:
    batch = make_batch()
    dp = build_chain(["dp:c=1e9,z=0"]).client_update(lenet, batch, settings, seed=0)
    plain = compute_update(lenet, batch, settings)
    assert dp.kind == plain.kind and dp.bits_sent == plain.bits_sent
    for name, t in plain.tensors.items():
        assert torch.allclose(dp.tensors[name], t, atol=1e-6, rtol=1e-4), name
    assert dp.privacy is not None and dp.privacy["epsilon"] == math.inf


def test_dp_tiny_clip_bounds_the_update_norm(lenet: torch.nn.Module) -> None:
    c = 1e-3
    batch = make_batch()
    update = build_chain([f"dp:c={c},z=0"]).client_update(lenet, batch, FLSettings(), 0)
    assert global_norm(update.tensors) <= c * (1 + 1e-5)
    # Independent reference: each example's gradient from a one-image batch (no vmap), scaled to
    # norm c (all exceed it here), averaged.
    reference: dict[str, torch.Tensor] = {}
    for i in range(len(batch)):
        one = Batch(batch.images[i : i + 1], batch.labels[i : i + 1], ("x",), (None,))
        g = compute_update(lenet, one, FLSettings()).tensors
        assert global_norm(g) > c
        for name, t in g.items():
            reference[name] = reference.get(name, 0) + t * (c / global_norm(g)) / len(batch)
    for name, t in reference.items():
        assert torch.allclose(update.tensors[name], t, atol=1e-9, rtol=1e-3), name


def test_dp_noise_is_seeded_and_has_the_right_scale() -> None:
    model = build_model("lenet", 1, 32, seed=0)
    batch = make_batch()
    chain = build_chain(["dp:c=1e-6,z=10"])  # signal <= 1e-6, noise std 10 * 1e-6 / 4
    a = chain.client_update(model, batch, FLSettings(), seed=1)
    b = chain.client_update(model, batch, FLSettings(), seed=1)
    c = chain.client_update(model, batch, FLSettings(), seed=2)
    flat = torch.cat([t.reshape(-1) for t in a.tensors.values()])
    assert all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors)
    assert not torch.equal(a.tensors["classifier.1.weight"], c.tensors["classifier.1.weight"])
    assert float(flat.std()) == pytest.approx(10 * 1e-6 / 4, rel=0.05)


def test_privacy_record(lenet: torch.nn.Module) -> None:
    chain = build_chain(["dp:c=1,z=1.1,delta=1e-6"])
    update = chain.client_update(lenet, make_batch(), FLSettings(), seed=0, client_size=400)
    assert update.privacy == {
        "epsilon": pytest.approx(dp_epsilon(1.1, 0.01, 1, 1e-6)),
        "delta": 1e-6,
        "sample_rate": 0.01,
        "steps": 1,
        "rounds": 1,
        "noise_multiplier": 1.1,
        "accountant": "rdp",
    }
    assert update.defenses == (
        {"name": "dp", "params": {"c": 1.0, "z": 1.1, "delta": 1e-6, "client_size": None}},
    )


def test_fedavg_accounting_rounds_and_steps(lenet: torch.nn.Module) -> None:
    chain = build_chain(["dp:c=1,z=1"])
    fedavg = FLSettings("fedavg", local_steps=3, local_lr=0.1)
    update = chain.client_update(lenet, make_batch(), fedavg, seed=0, rounds=5)
    assert update.privacy is not None
    assert update.privacy["steps"] == 15 and update.privacy["sample_rate"] == 1.0
    assert update.privacy["epsilon"] == pytest.approx(dp_epsilon(1.0, 1.0, 15, 1e-5))
    # Subsampled: one batch per round reused for 3 steps = one Gaussian of noise z / sqrt(3).
    sub = chain.client_update(lenet, make_batch(), fedavg, seed=0, client_size=40, rounds=5)
    assert sub.privacy is not None and sub.privacy["sample_rate"] == 0.1
    assert sub.privacy["epsilon"] == pytest.approx(dp_epsilon(1 / math.sqrt(3), 0.1, 5, 1e-5))
    assert sub.privacy["epsilon"] > dp_epsilon(1.0, 0.1, 15, 1e-5)


@pytest.mark.parametrize(("z", "q", "steps", "delta"), [(1.0, 1.0, 1, 1e-5), (0.8, 0.02, 50, 1e-6)])
def test_epsilon_equals_opacus(z: float, q: float, steps: int, delta: float) -> None:
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=z, sample_rate=q)
    assert dp_epsilon(z, q, steps, delta) == pytest.approx(accountant.get_epsilon(delta))


def test_epsilon_grows_with_steps_and_shrinks_with_noise() -> None:
    assert dp_epsilon(1.0, 0.1, 10, 1e-5) < dp_epsilon(1.0, 0.1, 100, 1e-5)
    assert dp_epsilon(2.0, 0.1, 10, 1e-5) < dp_epsilon(1.0, 0.1, 10, 1e-5)
    assert dp_epsilon(0.0, 0.1, 10, 1e-5) == math.inf


def test_dp_refuses_batchnorm() -> None:
    model = build_model("resnet18", 1, 32, seed=0)
    with pytest.raises(ConfigError, match="dp.*BatchNorm"):
        build_chain(["dp:c=1,z=1"]).client_update(model, make_batch(), FLSettings(), seed=0)


def test_dp_client_size_checks(lenet: torch.nn.Module) -> None:
    batch = make_batch()
    with pytest.raises(ConfigError, match="'dp'.*'client_size'.*batch size"):
        build_chain(["dp:c=1,z=1,client_size=2"]).client_update(lenet, batch, FLSettings(), 0)
    with pytest.raises(ConfigError, match="'dp'.*'client_size'"):
        build_chain(["dp:c=1,z=1,client_size=10"]).client_update(
            lenet, batch, FLSettings(), 0, client_size=20
        )


def test_dp_must_come_first_and_cannot_be_applied_post_hoc(lenet: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="'dp' must be the first"):
        build_chain(["clip:c=1", "dp:c=1,z=1"])
    update = compute_update(lenet, make_batch(), FLSettings())
    with pytest.raises(ConfigError, match="'dp'"):
        build_chain(["dp:c=1,z=1"]).apply(update, seed=0)


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ((-1.0, 1.0, 1, 1e-5), "z"),
        ((1.0, 0.0, 1, 1e-5), "sample_rate"),
        ((1.0, 1.5, 1, 1e-5), "sample_rate"),
        ((1.0, 1.0, 0, 1e-5), "steps"),
        ((1.0, 1.0, 1, 0.0), "delta"),
    ],
)
def test_dp_epsilon_bad_input(args: tuple, param: str) -> None:
    with pytest.raises(ConfigError, match=f"'dp'.*'{param}'"):
        dp_epsilon(*args)
