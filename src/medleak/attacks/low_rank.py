"""Recover a rank-B gradient from its obfuscated version, before disaggregating it.

A bias-free linear layer's weight gradient has rank <= B (R-GAP, Zhu & Blaschko, ICLR 2021), a
constraint the obfuscations do not preserve but cannot hide:

- sparsification (top-k, rand-k) transmits some entries EXACTLY and zeroes the rest. Recovering
  the rest is low-rank matrix completion (Candes & Recht, 2009); we use alternating least squares
  on the transmitted entries (Jain, Netrapalli & Sanghavi, STOC 2013), started from the SVD of
  the zero-filled matrix. rand-k's n/k rescaling is undone first. Top-k says more: every entry
  it dropped is no larger in magnitude than the smallest one it kept. ALS ignores that, and when
  the B feature vectors are alike (X-rays are) it can settle on a wrong weakest direction; a few
  alternating projections between "rank B" and "agrees with the kept entries, every other entry
  within the bound" then pull it back (on ROG's LeNet, batch 0 of the real sample: the weakest
  principal cosine to the true feature span went from 0.77 to 0.97).
- additive noise and quantisation error are spread over all R x F entries while the signal lives
  in a B-dimensional row space, so the rank-B truncated SVD (Eckart-Young) removes most of it.
"""

from __future__ import annotations

import torch

ALS_ITERATIONS = 30
BOUNDED_ITERATIONS = 30
RIDGE = 1e-6


def truncated_svd(gradient: torch.Tensor, rank: int) -> torch.Tensor:
    """Best rank-``rank`` approximation in Frobenius norm."""
    g = gradient.double()
    _, vectors = torch.linalg.eigh(g @ g.T)
    left = vectors[:, -rank:]
    return (left @ (left.T @ g)).to(gradient.dtype)


def _solve(gram: torch.Tensor, rhs: torch.Tensor, rank: int) -> torch.Tensor:
    """Batched ridge-regularised solves of (rank x rank) systems, gram given flat (N x rank^2)."""
    g = gram.view(-1, rank, rank)
    scale = g.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-30)
    g = g + RIDGE * scale[:, None, None] * torch.eye(rank, dtype=g.dtype)
    return torch.linalg.solve(g, rhs.unsqueeze(-1)).squeeze(-1)


def complete(
    gradient: torch.Tensor,
    rank: int,
    iterations: int = ALS_ITERATIONS,
    rescale: float = 1.0,
    bounded: bool = False,
) -> torch.Tensor:
    """Rank-``rank`` completion from the non-zero (transmitted) entries of ``gradient``.

    ``bounded`` (top-k): the dropped entries are known to be no larger in magnitude than the
    smallest kept one, which alternating projections then enforce.
    """
    g = gradient.double() / rescale
    mask = (g != 0).double()
    _, vectors = torch.linalg.eigh(g @ g.T)
    q = vectors[:, -rank:].T @ g  # rank x F
    p = torch.zeros(g.shape[0], rank, dtype=g.dtype)
    for _ in range(iterations):
        qq = (q[:, None, :] * q[None, :, :]).reshape(rank * rank, -1)  # rank^2 x F
        p = _solve(mask @ qq.T, g @ q.T, rank)  # rows
        pp = (p[:, :, None] * p[:, None, :]).reshape(-1, rank * rank)  # R x rank^2
        q = _solve(mask.T @ pp, g.T @ p, rank).T  # columns
    estimate = p @ q
    if bounded and bool(mask.any()):
        kept = mask.bool()
        bound = float(g[kept].abs().min())
        for _ in range(BOUNDED_ITERATIONS):
            estimate = truncated_svd(torch.where(kept, g, estimate.clamp(-bound, bound)), rank)
    return estimate.to(gradient.dtype)
