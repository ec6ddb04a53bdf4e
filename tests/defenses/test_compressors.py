"""The math of each post-hoc defense, on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from medleak.defenses.gaussian import add_gaussian, tensor_rms
from medleak.defenses.halfprecision import cast_roundtrip
from medleak.defenses.powersgd import power_iteration, powersgd_tensor
from medleak.defenses.qsgd import qsgd_quantize
from medleak.defenses.randk import randk_tensor
from medleak.defenses.sign import sign_compress
from medleak.defenses.topk import kept_count, topk_global, topk_tensor
from medleak.defenses.uniform import uniform_quantize


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sample(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed))


@pytest.mark.parametrize("norm", ["l2", "max"])
def test_qsgd_is_unbiased(norm: str) -> None:
    x = sample(50, seed=1)
    g = gen(2)
    draws = torch.stack([qsgd_quantize(x, 3, norm, g) for _ in range(4000)])
    scale = float(torch.linalg.vector_norm(x)) if norm == "l2" else float(x.abs().max())
    # Rounding error per draw is within scale / (s-1); the mean's std within half that / sqrt(N).
    tolerance = 5 * scale / 2 / math.sqrt(len(draws))
    assert (draws.mean(0) - x).abs().max() < tolerance
    # And it really is random: the draws differ from each other and from round-to-nearest.
    assert not torch.equal(draws[0], draws[1])


def test_qsgd_lands_on_its_grid_with_signs_kept() -> None:
    x = sample(200, seed=3)
    out = qsgd_quantize(x, 5, "max", gen())
    levels = out.abs() / x.abs().max() * 4
    assert torch.allclose(levels, levels.round(), atol=1e-5)
    nonzero = out != 0
    assert torch.equal(torch.sign(out[nonzero]), torch.sign(x[nonzero]))


def test_uniform_lands_on_grid_and_rounds_to_nearest() -> None:
    x = sample(6, 7, seed=4)
    s = 4
    out = uniform_quantize(x, s)
    scale = x.abs().max()
    levels = out.abs() / scale * (s - 1)
    assert torch.allclose(levels, levels.round(), atol=1e-5)
    assert set(levels.round().unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    # Round to nearest: the error is at most half a grid step.
    assert (out - x).abs().max() <= scale / (s - 1) / 2 + 1e-6
    assert torch.equal(torch.sign(out[out != 0]), torch.sign(x[out != 0]))
    assert torch.equal(uniform_quantize(torch.zeros(3), 4), torch.zeros(3))


def test_uniform_hand_values() -> None:
    x = torch.tensor([-1.0, 0.2, 0.4, 0.9])
    # s = 3: grid {0, 0.5, 1} of max |g| = 1.
    assert torch.equal(uniform_quantize(x, 3), torch.tensor([-1.0, 0.0, 0.5, 1.0]))


def test_sign_outputs_only_plus_minus_one_and_sign_of_zero_is_plus() -> None:
    x = torch.tensor([-2.0, 0.0, 3.0, -0.5])
    assert torch.equal(sign_compress(x, False), torch.tensor([-1.0, 1.0, 1.0, -1.0]))
    scaled = sign_compress(x, True)
    mean_abs = x.abs().mean()
    assert torch.allclose(scaled, torch.tensor([-1.0, 1.0, 1.0, -1.0]) * mean_abs)


@pytest.mark.parametrize(
    ("ratio", "numel", "k"), [(0.1, 30, 3), (0.25, 10, 3), (0.01, 10, 1), (1.0, 7, 7)]
)
def test_kept_count(ratio: float, numel: int, k: int) -> None:
    assert kept_count(ratio, numel) == k


def test_topk_per_tensor_keeps_exactly_k_largest() -> None:
    x = sample(8, 5, seed=5)
    out = topk_tensor(x, 0.2)
    kept = out != 0
    assert int(kept.sum()) == 8
    assert torch.equal(out[kept], x[kept])
    assert x[kept].abs().min() >= x[~kept].abs().max()


def test_topk_global_ranks_across_tensors() -> None:
    tensors = {"small": sample(20, seed=6) * 0.01, "big": sample(4, 5, seed=7)}
    out = topk_global(tensors, 0.25)
    flat_in = torch.cat([t.reshape(-1) for t in tensors.values()])
    flat_out = torch.cat([t.reshape(-1) for t in out.values()])
    kept = flat_out != 0
    assert int(kept.sum()) == 10
    assert flat_in[kept].abs().min() >= flat_in[~kept].abs().max()
    # The tiny tensor loses everything: global scope is not per-tensor scope.
    assert int((out["small"] != 0).sum()) == 0
    assert out["big"].shape == (4, 5)


def test_randk_is_unbiased_and_seeded() -> None:
    x = sample(40, seed=8)
    assert torch.equal(randk_tensor(x, 0.25, gen(3)), randk_tensor(x, 0.25, gen(3)))
    assert not torch.equal(randk_tensor(x, 0.25, gen(3)), randk_tensor(x, 0.25, gen(4)))
    one = randk_tensor(x, 0.25, gen(3))
    assert int((one != 0).sum()) == 10
    assert torch.allclose(one[one != 0], x[one != 0] * 4)
    g = gen(9)
    mean = torch.stack([randk_tensor(x, 0.25, g) for _ in range(4000)]).mean(0)
    # Per coordinate: value x * 4 w.p. 1/4, std = |x| sqrt(3); mean's std |x| sqrt(3 / 4000).
    assert ((mean - x).abs() <= 5 * x.abs() * math.sqrt(3 / 4000) + 1e-6).all()


def test_powersgd_exact_on_rank_r_matrix() -> None:
    rank = 3
    m = sample(12, rank, seed=10) @ sample(rank, 9, seed=11)
    p, q = power_iteration(m, rank, gen())
    assert p.shape == (12, rank) and q.shape == (9, rank)
    assert torch.allclose(p.T @ p, torch.eye(rank), atol=1e-5)
    assert torch.allclose(p @ q.T, m, atol=1e-4)


def test_powersgd_error_decreases_with_rank() -> None:
    m = sample(40, 30, seed=12)
    errors = [float((powersgd_tensor(m, r, gen()) - m).norm()) for r in (1, 2, 4, 8)]
    assert errors == sorted(errors, reverse=True) and errors[0] > errors[-1] * 1.05


def test_powersgd_reshapes_conv_kernels_and_sends_vectors_raw() -> None:
    kernel = sample(4, 1, 1, 1, seed=13) * sample(1, 3, 5, 5, seed=14)  # rank 1 as (4, 75)
    out = powersgd_tensor(kernel, 1, gen())
    assert out.shape == kernel.shape
    assert torch.allclose(out, kernel, atol=1e-5)
    bias = sample(7, seed=15)
    assert torch.equal(powersgd_tensor(bias, 1, gen()), bias)


def test_gaussian_noise_scale_and_relative_rms() -> None:
    x = torch.zeros(20000)
    noisy = add_gaussian(x, 0.5, gen())
    assert abs(float(noisy.std()) - 0.5) < 0.02
    assert tensor_rms(torch.tensor([3.0, -4.0])) == pytest.approx(math.sqrt(12.5))


def test_half_precision_roundtrip() -> None:
    x = torch.tensor([1.0 + 2**-12, 1e-3, 70000.0])
    fp16 = cast_roundtrip(x, torch.float16)
    assert fp16.dtype == torch.float32
    assert fp16[0] == 1.0 and torch.isinf(fp16[2])
    bf16 = cast_roundtrip(x, torch.bfloat16)
    assert torch.isfinite(bf16).all() and bf16[0] == 1.0
