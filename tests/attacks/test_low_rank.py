"""Rank-B recovery of a sparsified linear-layer gradient (the analytic stage's first step)."""

from __future__ import annotations

import torch

from medleak.attacks.low_rank import complete
from medleak.defenses.topk import topk_tensor


def _alike_rank_two(seed: int) -> torch.Tensor:
    """delta_1 f_1^T + delta_2 f_2^T with f_1, f_2 non-negative and alike, as two X-rays are."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(400, generator=g, dtype=torch.float64).clamp(min=0.3) - 0.3
    f = torch.stack([base + 0.05 * torch.rand(400, generator=g, dtype=torch.float64)] * 2)
    f[1] = f[1] * (1 + 0.3 * torch.rand(400, generator=g, dtype=torch.float64))
    deltas = torch.randn(60, 2, generator=g, dtype=torch.float64)
    return deltas @ f


def _relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return float((estimate - truth).norm() / truth.norm())


def test_the_topk_bound_is_enforced_without_losing_accuracy() -> None:
    truth = _alike_rank_two(1)
    sparse = topk_tensor(truth, 0.15)
    kept = sparse != 0
    bound = float(sparse[kept].abs().min())
    plain = complete(sparse, 2)
    bounded = complete(sparse, 2, bounded=True)
    # Plain ALS puts dropped entries well above what top-k allows; the bounded completion keeps
    # them within the bound (up to the last rank-2 projection's slack).
    assert float(plain[~kept].abs().max()) > 1.3 * bound
    assert float(bounded[~kept].abs().max()) < 1.1 * bound
    assert _relative_error(bounded, truth) <= _relative_error(plain, truth) + 1e-3
    # The kept entries still agree with what was sent.
    assert _relative_error(bounded[kept], truth[kept]) < 0.05
