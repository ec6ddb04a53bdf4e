"""Chains: order, recorded specs, bit costs, seeding, and refusal of non-finite updates."""

from __future__ import annotations

import math

import pytest
import torch

from medleak.data.batch import Batch
from medleak.defenses import build_chain
from medleak.errors import MedleakError
from medleak.fl.client import compute_update
from medleak.fl.update import FLSettings, Update
from medleak.models import build_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model("lenet-dlg", 1, 32, seed=0)


@pytest.fixture(scope="module")
def batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        torch.rand(2, 1, 32, 32, generator=g), torch.tensor([0, 1]), ("a", "b"), (None,) * 2
    )


@pytest.fixture(scope="module")
def plain(model: torch.nn.Module, batch: Batch) -> Update:
    return compute_update(model, batch, FLSettings())


def same(a: Update, b: Update) -> bool:
    return all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors)


def test_order_is_honoured_and_recorded(plain: Update) -> None:
    clip_first = build_chain(["clip:c=0.01", "gaussian:sigma=0.1"]).apply(plain, seed=0)
    noise_first = build_chain(["gaussian:sigma=0.1", "clip:c=0.01"]).apply(plain, seed=0)
    assert [d["name"] for d in clip_first.defenses] == ["clip", "gaussian"]
    assert [d["name"] for d in noise_first.defenses] == ["gaussian", "clip"]
    norm = math.sqrt(sum(float(t.pow(2).sum()) for t in noise_first.tensors.values()))
    assert norm <= 0.01 * (1 + 1e-5)  # clipping last bounds the noise too
    clipped_norm = math.sqrt(sum(float(t.pow(2).sum()) for t in clip_first.tensors.values()))
    assert clipped_norm > 1.0  # noise last: 0.1 per coordinate over ~3k coordinates
    assert not same(clip_first, noise_first)


def test_chain_through_client_update(model: torch.nn.Module, batch: Batch, plain: Update) -> None:
    chain = build_chain(["topk:ratio=0.5", {"sign": {"scaled": True}}])
    update = chain.client_update(model, batch, FLSettings(), seed=3)
    assert update.defenses == tuple(chain.resolved)
    assert update.privacy is None
    expected = build_chain(["topk:ratio=0.5", "sign:scaled=true"]).apply(plain, seed=3)
    assert same(update, expected)


def n_of(update: Update) -> list[int]:
    return [t.numel() for t in update.tensors.values()]


def test_bit_costs_match_the_formulas(plain: Update) -> None:
    sizes = n_of(plain)
    total = sum(sizes)
    shapes = [tuple(t.shape) for t in plain.tensors.values()]

    def bits(*specs: str) -> int:
        return build_chain(list(specs)).apply(plain, seed=0).bits_sent

    assert bits() == bits("none") == 32 * total == plain.bits_raw
    assert bits("gaussian:sigma=1", "clip:c=1") == 32 * total
    assert bits("uniform:levels=5") == sum(n * (1 + 3) + 32 for n in sizes)
    assert bits("qsgd:levels=16") == sum(n * (1 + 4) + 32 for n in sizes)
    assert bits("sign") == total
    assert bits("sign:scaled=true") == total + 32 * len(sizes)
    per_tensor = sum(
        max(1, math.floor(0.1 * n + 0.5)) * (32 + math.ceil(math.log2(n))) for n in sizes
    )
    assert bits("topk:ratio=0.1") == per_tensor
    k = math.floor(0.1 * total + 0.5)
    assert bits("topk:ratio=0.1,scope=global") == k * (32 + math.ceil(math.log2(total)))
    assert bits("randk:ratio=0.1") == sum(
        32 * max(1, math.floor(0.1 * n + 0.5)) + 32 for n in sizes
    )
    assert bits("fp16") == bits("bf16") == 16 * total
    # PowerSGD rank 2: conv kernels (12, 25) and (12, 300) as matrices, (2, 768) too small to gain
    # (2 (2 + 768) >= 2 * 768), biases raw.
    expected = 0
    for shape in shapes:
        n = math.prod(shape)
        rows, cols = shape[0], n // shape[0]
        r = min(2, rows, cols)
        low_rank = len(shape) >= 2 and r * (rows + cols) < rows * cols
        expected += 32 * r * (rows + cols) if low_rank else 32 * n
    assert bits("powersgd:rank=2") == expected
    # In a chain the last transmitting stage sets the cost; noise after it keeps it.
    assert bits("topk:ratio=0.1", "qsgd:levels=4") == sum(n * 3 + 32 for n in sizes)
    assert bits("sign", "gaussian:sigma=0.1") == total
    assert bits("qsgd:levels=4", "fp16") == 16 * total


@pytest.mark.parametrize(
    "specs",
    [
        ["gaussian:relative=0.5"],
        ["qsgd:levels=4"],
        ["randk:ratio=0.3"],
        ["powersgd:rank=1"],
        ["clip:c=0.1", "gaussian:sigma=0.01", "qsgd:levels=8,norm=max"],
    ],
)
def test_same_seed_same_output_different_seed_different(plain: Update, specs: list[str]) -> None:
    chain = build_chain(specs)
    a, b, c = chain.apply(plain, seed=5), chain.apply(plain, seed=5), chain.apply(plain, seed=6)
    assert same(a, b)
    assert not same(a, c)
    assert not same(a, plain)


def test_seeding_leaves_the_global_rng_alone(plain: Update) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_chain(["gaussian:sigma=1", "randk:ratio=0.5"]).apply(plain, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_apply_keeps_earlier_record(plain: Update) -> None:
    once = build_chain(["topk:ratio=0.5"]).apply(plain, seed=0)
    twice = build_chain(["fp16"]).apply(once, seed=0)
    assert [d["name"] for d in twice.defenses] == ["topk", "fp16"]


def test_nan_update_is_refused(plain: Update) -> None:
    bad = dict(plain.tensors)
    name = next(iter(bad))
    bad[name] = bad[name].clone()
    bad[name].view(-1)[0] = float("nan")
    with pytest.raises(MedleakError, match=name):
        build_chain(["topk:ratio=0.5"]).apply(plain.replace(tensors=bad), seed=0)


def test_overflow_in_a_stage_is_refused(plain: Update) -> None:
    big = {n: t * 0 + 1e6 for n, t in plain.tensors.items()}
    with pytest.raises(MedleakError, match="NaN/inf"):
        build_chain(["fp16"]).apply(plain.replace(tensors=big), seed=0)
    assert build_chain(["bf16"]).apply(plain.replace(tensors=big), seed=0).bits_sent > 0


def test_fedavg_pseudo_gradient_passes_through(model: torch.nn.Module, batch: Batch) -> None:
    settings = FLSettings("fedavg", local_steps=2, local_lr=0.1)
    update = build_chain(["qsgd:levels=4"]).client_update(model, batch, settings, seed=0)
    assert update.kind == "pseudo_gradient" and update.fl == settings
