"""Under unbiased stochastic quantization: group the wide layer's rows by active set, average.

At a wide bias-free linear layer fed by non-negative features f_k and followed by a bias-free
two-class head, row i of the weight gradient is (w_i / B) sum_k m_ik c_k f_k, with
w_i = W2[0, i] - W2[1, i] known to the server (it sent the weights), m_ik = 1 when image k's
unit i is active, and c_k = p_0(x_k) - [y_k = 0]. A declared zero-mean stage (QSGD's stochastic
rounding) keeps every row an unbiased, very noisy copy: dividing by w_i leaves
Y_i ~ sum_k m_ik G_k with G_k = c_k f_k / B the same for every row.

1. Projected onto the rank-B row space, the noise shrinks by ~sqrt(B / F) and the rows sit on the
   lattice of subset sums of B generators (one per image).
2. Generators and binary masks are fitted by alternating least squares. The start matters (the
   fit has local minima): the densest cluster away from zero is the "all images active" point,
   the sum of all generators, so B - 1 generators are drawn from the cluster centres and their
   complements and the last one is what the sum leaves; every such start is refined a few steps
   and the lowest residual wins.
3. With the masks, a weighted least squares over all rows (weights |w_i|) estimates each G_k in
   the full feature space: many noisy rows averaged, each normalised by its own known scale.
4. Each estimated feature direction (oriented, clipped at zero) is inverted alone on ROG's
   low-resolution latent with a cosine feature loss and total variation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medleak.attacks.analytic import exposed_layer
from medleak.attacks.aware_loss import loss_kind
from medleak.attacks.base import Progress, ServerKnowledge
from medleak.attacks.disaggregation import row_space
from medleak.attacks.latent_inversion import Inversion, LatentFit, invert_features
from medleak.attacks.layers import LinearLayer
from medleak.fl import Update
from medleak.models import model_info

CENTRES = 12
START_STEPS = 6
FINAL_STEPS = 50
MAX_STARTS = 5_000
# Below this fraction of non-zero entries in the rows that carry any, the rows are too sparse to
# average (QSGD-4 with the L2 norm of a 33M-entry layer keeps ~0.015%: measured worse than the
# optimisation fallback, 7.7 vs ~10 dB; with the max norm ~3-14%: 19-26 dB).
MIN_DENSITY = 0.005
DEFAULT_TV = 1e-3


@dataclass(frozen=True)
class RowGroups:
    """Per-image feature directions averaged over the rows of each image's active set.

    directions: B x F, non-negative, unit norm. masks: rows x B active sets found.
    residual: the lattice fit's weighted squared residual (lower = better fit).
    """

    directions: torch.Tensor
    masks: torch.Tensor
    residual: float


def _subset_sums(count: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=count)), dtype=torch.float64)


def _fit(
    z: torch.Tensor, weights: torch.Tensor, generators: torch.Tensor, steps: int
) -> tuple[float, torch.Tensor, torch.Tensor] | None:
    """Alternate nearest-lattice-point masks and least-squares generators (B x B columns)."""
    sums = _subset_sums(generators.shape[1])
    for _ in range(steps):
        masks = sums[torch.cdist(z, sums @ generators.T).argmin(1)]
        normal = (masks.T * weights) @ masks
        if torch.linalg.matrix_rank(normal) < generators.shape[1]:
            return None
        generators = torch.linalg.solve(normal, (masks.T * weights) @ z).T
    distance = torch.cdist(z, sums @ generators.T).min(1)
    masks = sums[torch.cdist(z, sums @ generators.T).argmin(1)]
    return float((weights * distance.values**2).sum()), generators, masks


def _centres(points: torch.Tensor, weights: torch.Tensor, count: int, seed: int):
    """Weighted k-means (seeded); returns the centres and each centre's total weight."""
    generator = torch.Generator().manual_seed(seed)
    centres = points[torch.randperm(len(points), generator=generator)[:count]].clone()
    for _ in range(50):
        nearest = torch.cdist(points, centres).argmin(1)
        for k in range(len(centres)):
            chosen = nearest == k
            if chosen.any():
                w = weights[chosen]
                centres[k] = (points[chosen] * w[:, None]).sum(0) / w.sum()
    nearest = torch.cdist(points, centres).argmin(1)
    mass = torch.bincount(nearest, weights=weights, minlength=len(centres))
    return centres, mass


def group_rows(
    gradient: torch.Tensor, scales: torch.Tensor, batch_size: int, seed: int
) -> RowGroups | None:
    """Per-image feature directions from a row-scaled noisy weight gradient (see module doc)."""
    g = gradient.double()
    usable = scales != 0
    if int(usable.sum()) <= batch_size:
        return None
    y = g[usable] / scales[usable, None].double()
    weights = scales[usable].abs().double()
    basis, _ = row_space(g, batch_size)
    z = y @ basis.T
    moving = (g[usable] != 0).any(1)
    if int(moving.sum()) <= batch_size:
        return None
    if float((g[usable][moving] != 0).double().mean()) < MIN_DENSITY:
        return None
    centres, mass = _centres(z[moving], weights[moving], min(CENTRES, int(moving.sum())), seed)
    total = centres[int(mass.argmax())]
    pool = torch.cat([centres, total[None] - centres])
    starts = list(itertools.combinations(range(len(pool)), batch_size - 1))
    if len(starts) > MAX_STARTS:
        order = torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))
        starts = [starts[i] for i in order[:MAX_STARTS].tolist()]
    best = None
    for start in starts:
        columns = pool[list(start)]
        generators = torch.cat([columns, (total - columns.sum(0))[None]]).T.clone()
        fitted = _fit(z, weights, generators, START_STEPS)
        if fitted is not None and (best is None or fitted[0] < best[0]):
            best = fitted
    if best is None:
        return None
    final = _fit(z, weights, best[1], FINAL_STEPS) or best
    residual, _, masks = final
    normal = (masks.T * weights) @ masks
    estimates = torch.linalg.lstsq(normal, (masks.T * weights) @ y).solution
    oriented = estimates * torch.where(estimates.sum(1, keepdim=True) >= 0, 1.0, -1.0)
    directions = oriented.clamp(min=0)
    directions = directions / directions.norm(dim=1, keepdim=True).clamp(min=1e-300)
    full = torch.zeros(len(scales), batch_size, dtype=torch.float64)
    full[usable] = masks
    return RowGroups(directions.float(), full, residual)


def _unbiased(update: Update) -> bool:
    """Every inexact stage declares zero-mean error, and none is sign or sparse."""
    if loss_kind(update.declarations) != "noise":
        return False
    return all(d.kind == "exact" or d.zero_mean for d in update.declarations)


def groups_of(
    knowledge: ServerKnowledge, update: Update, seed: int
) -> tuple[LinearLayer, RowGroups] | None:
    """The wide layer and its row groups when the update is unbiased-noisy, one gradient
    evaluation, and the model has a wide layer followed by a bias-free two-class head."""
    if not _unbiased(update) or update.fl.steps != 1 or knowledge.num_classes != 2:
        return None
    layer = exposed_layer(knowledge, update)
    head_path = model_info(knowledge.model).head
    if layer is None or head_path is None:
        return None
    head = knowledge.model.get_submodule(head_path)
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return None
    if head.in_features != layer.module.out_features or head.out_features != 2:
        return None
    scales = (head.weight[0] - head.weight[1]).detach()
    found = group_rows(
        update.tensors[layer.weight_name].detach(), scales, knowledge.batch_size, seed
    )
    return None if found is None else (layer, found)


def reconstruct(
    knowledge: ServerKnowledge,
    layer: LinearLayer,
    groups: RowGroups,
    fit: LatentFit,
    progress: Progress | None = None,
) -> Inversion:
    """Gray images whose wide-layer input points along each direction; the start; the trace."""

    def loss(features: torch.Tensor) -> torch.Tensor:
        return (1 - F.cosine_similarity(features, groups.directions, dim=1)).sum()

    return invert_features(knowledge, layer, len(groups.directions), loss, fit, progress)


__all__ = ["RowGroups", "group_rows", "groups_of", "reconstruct"]
