"""Split a batch's gradient at a wide bias-free linear layer into per-image feature vectors.

R-GAP (Zhu & Blaschko, ICLR 2021) and Geiping et al. (NeurIPS 2020) note that a linear layer's
weight gradient is sum_k delta_k f_k^T: rank <= B, its row space spanned by the inputs f_k. When
f_k are post-ReLU (non-negative, with many exact zeros, as after ROG's LeNet's conv+ReLU+pool),
each f_k is an EXTREME RAY of the cone {x in row space : x >= 0}: a mix of two images is zero
only where both are, and a difference of two has negative entries. So the B extreme rays of that
cone are the B individual feature vectors, up to scale. Each ray is the optimum of a small linear
programme (random positive objective over the cone cut by sum(x) = 1); a few random objectives
find all B. Under obfuscation noise the orthant constraint is relaxed by a small tolerance.

The scale and the label of each image then follow from the layer after it (2-layer head
h = ReLU(W1 f), logits = W2 h, cross-entropy): row i of the gradient is
sum_k [W1 f_k > 0]_i (W2^T e_k)_i f_k / B with e_k = softmax(logits_k) - y_k. The ReLU masks are
scale-free, so a least-squares fit gives x_k = |f_k| e_k / B; its most negative entry is the label,
and |f_k| solves x_k B = (softmax(|f_k| z_k) - y_k) |f_k| with z_k the logits of the unit ray.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog

# Enough sampled coordinates to hold thousands of each image's zeros, few enough for a fast LP.
MAX_LP_COORDINATES = 8192


@dataclass(frozen=True)
class Disaggregation:
    """Per-image feature vectors recovered from one layer's gradient.

    directions: B x F unit vectors, non-negative (up to obfuscation noise).
    features: B x F with the recovered scale (directions * norms).
    labels: the class of each image as the head's gradient reveals it (None without a head).
    rank_energy: fraction of the gradient's energy in its top-B singular values (1.0 = exact).
    """

    directions: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor | None
    rank_energy: float


def row_space(gradient: torch.Tensor, rank: int) -> tuple[torch.Tensor, float]:
    """Orthonormal basis (rank x F) of the top-``rank`` right singular vectors, and its energy.

    Computed from the small R x R Gram matrix (R = layer width << F features), much faster than
    a full SVD of the R x F gradient.
    """
    g = gradient.double()
    values, vectors = torch.linalg.eigh(g @ g.T)
    values, vectors = values.flip(0).clamp(min=0), vectors.flip(1)
    basis = vectors[:, :rank].T @ g
    basis = basis / basis.norm(dim=1, keepdim=True).clamp(min=1e-300)
    energy = float(values[:rank].sum() / values.sum().clamp(min=1e-300))
    return basis, energy


def extreme_rays(basis: torch.Tensor, count: int, seed: int, slack: float = 0.0, tries: int = 0):
    """Up to ``count`` distinct extreme rays of {x = basis^T c : x >= -slack/m, sum x = 1}.

    ``slack`` lets each coordinate go slightly negative (relative to the mean coordinate 1/m):
    obfuscation noise leaves the true rays a little outside the orthant, and without it the LP
    can only find interior mixtures. Returned as unit vectors in feature space.
    """
    rng = np.random.default_rng(seed)
    q_full = basis.numpy()
    n = q_full.shape[1]
    cols = np.sort(rng.choice(n, size=min(n, MAX_LP_COORDINATES), replace=False))
    q = q_full[:, cols]
    r, m = q.shape
    found: list[np.ndarray] = []
    for _ in range(tries or 4 * count):
        weights = rng.random(m) + 0.5
        result = linprog(
            q @ weights,
            A_ub=-q.T,
            b_ub=np.full(m, slack / m),
            A_eq=q.sum(1)[None],
            b_eq=[1.0],
            bounds=[(None, None)] * r,
            method="highs",
        )
        if result.status != 0:
            continue
        found.append(result.x / np.linalg.norm(result.x))
    chosen = most_distinct(found, count)
    rays = torch.tensor(np.stack(chosen)) @ basis if chosen else basis[:0]
    return rays / rays.norm(dim=1, keepdim=True)


def most_distinct(candidates: list[np.ndarray], count: int) -> list[np.ndarray]:
    """Farthest-point selection: noisy LP solutions cluster around each ray, pick one per
    cluster. Returns fewer than ``count`` when fewer than ``count`` clusters exist."""
    if not candidates:
        return []
    chosen = [candidates[0]]
    while len(chosen) < count:
        closeness = [max(abs(float(c @ g)) for g in chosen) for c in candidates]
        best = int(np.argmin(closeness))
        if closeness[best] > DUPLICATE_COSINE:
            break
        chosen.append(candidates[best])
    return chosen


# Two LP solutions closer than this (in the B-dimensional coordinates) are the same ray.
DUPLICATE_COSINE = 0.99999

# Tried in order until B distinct rays appear: exact first, then growing noise tolerance.
SLACKS = (0.0, 0.03, 0.1, 0.3, 1.0)


def head_scales(
    gradient: torch.Tensor,
    directions: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and feature norms from the 2-layer head (see the module docstring)."""
    g, d = gradient.double(), directions.double()
    w1, w2 = w1.double(), w2.double()
    masks = (d @ w1.T > 0).double()  # B x units
    coeffs = g @ torch.linalg.pinv(d)  # units x B: row i = sum_k coeffs[i, k] d_k
    labels, norms = [], []
    grid = torch.logspace(-4, 6, 4001, dtype=torch.float64)
    for k in range(len(d)):
        active = masks[k] > 0
        if int(active.sum()) < w2.shape[0]:
            labels.append(0)
            norms.append(float("nan"))
            continue
        x = torch.linalg.lstsq(w2.T[active], coeffs[active, k][:, None]).solution[:, 0]
        label = int(x.argmin())
        z = w2 @ torch.relu(w1 @ d[k])
        onehot = torch.nn.functional.one_hot(torch.tensor(label), w2.shape[0]).double()
        predicted = (torch.softmax(grid[:, None] * z[None], dim=1) - onehot) * grid[:, None]
        residual = (predicted - batch_size * x[None]).norm(dim=1)
        labels.append(label)
        norms.append(float(grid[residual.argmin()]))
    return torch.tensor(labels), torch.tensor(norms, dtype=torch.float64)


def disaggregate(
    gradient: torch.Tensor,
    batch_size: int,
    seed: int,
    w1: torch.Tensor | None = None,
    w2: torch.Tensor | None = None,
) -> Disaggregation | None:
    """Per-image features from a linear layer's weight gradient (rows x F), or None on failure."""
    basis, energy = row_space(gradient, batch_size)
    for slack in SLACKS:
        rays = extreme_rays(basis, batch_size, seed, slack)
        if len(rays) == batch_size:
            break
    else:
        return None
    # Orient each ray to be non-negative (the LP's x >= 0 already does, up to noise).
    rays = rays * torch.where(rays.sum(1, keepdim=True) >= 0, 1.0, -1.0)
    labels, features = None, rays
    if w1 is not None and w2 is not None:
        labels, norms = head_scales(gradient, rays, w1, w2, batch_size)
        if torch.isfinite(norms).all():
            features = rays * norms[:, None]
    return Disaggregation(rays.float(), features.float(), labels, energy)
