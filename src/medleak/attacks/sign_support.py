"""Under a sign-only update: read each image's feature support from the wide layer, invert it.

At a wide bias-free linear layer fed by non-negative features f_k (ROG's LeNet: conv, ReLU,
max-pool, flatten), row i of the weight gradient is sum_{k in A_i} delta_k[i] f_k / B, where A_i
is the set of images whose unit i is active. A row whose only active image is k and whose
delta is negative has sign -1 exactly on the support {f_k > 0} and +1 elsewhere (sign(0) = +1):
the support of that image's features, 1 bit per feature, survives signSGD intact. Rows whose
active images all push the same way give unions of supports; rows mixing images that push both
ways give magnitude-dependent sets that are not unions. So, with no magnitude at all:

1. the distinct sign rows are few (at most 2 x 2^B active-set/sign combinations, ~20 at B = 4);
2. the B "atoms" are the B patterns whose unions explain the most other patterns exactly
   (mixed patterns explain nothing); an atom that contains another chosen atom is a union whose
   own singleton never appeared, so only its difference is known and the overlap is left free;
3. each atom is inverted on its own (no batch mixture): a low-resolution latent image (ROG's,
   bicubic upsampling) whose wide-layer input is positive on the support and zero off it, with a
   logistic loss on the pre-activations (the model's ReLUs made slightly leaky while inverting,
   so a dead unit still gets a gradient).

Only the sign of each coordinate is used, so a per-tensor scale (scaled sign) changes nothing.
Applies to FedSGD or a single local step (more steps move the weights between the summed
gradients, and the patterns stop being exact).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from math import comb

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medleak.attacks.analytic import exposed_layer
from medleak.attacks.aware_loss import loss_kind
from medleak.attacks.base import Progress, ServerKnowledge
from medleak.attacks.latent_inversion import Inversion, LatentFit, invert_features
from medleak.attacks.layers import LinearLayer
from medleak.fl import Update

# Leaky slope of the model's ReLUs while inverting: small enough that the support of the leaky
# model's features is that of the real model at the same image, large enough to move dead units.
LEAK = 0.01
# Logistic temperature relative to the mean |pre-activation| of the current image.
TEMPERATURE = 0.1
DEFAULT_TV = 1e-3
# Exhaustive choice of atoms up to this many subsets; beyond it, greedy (large batches).
MAX_SUBSETS = 50_000


@dataclass(frozen=True)
class Supports:
    """Per-image feature supports read from the sign pattern.

    positive: B x F bool, where the image's features are > 0 (as far as known).
    known: B x F bool, where the support is known (False on an overlap left free).
    patterns: distinct informative sign rows seen; explained: how many of them the atoms'
        unions reproduce exactly.
    """

    positive: torch.Tensor
    known: torch.Tensor
    patterns: int
    explained: int


def negative_patterns(signs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-empty negative sets of the rows (packed bits) and their row counts."""
    negative = (signs < 0).numpy()
    packed = np.packbits(negative, axis=1)
    rows = packed[negative.any(axis=1)]
    if len(rows) == 0:
        return rows, np.zeros(0, dtype=int)
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique, counts


def _explained(atoms: list[np.ndarray], patterns: set[bytes]) -> int:
    """How many distinct patterns equal the union of some non-empty subset of ``atoms``."""
    unions: set[bytes] = set()
    for size in range(1, len(atoms) + 1):
        for subset in itertools.combinations(atoms, size):
            unions.add(np.bitwise_or.reduce(subset).tobytes())
    return len(unions & patterns)


def choose_atoms(patterns: np.ndarray, counts: np.ndarray, batch_size: int) -> list[int]:
    """Indices of the patterns taken as the B per-image supports (fewer if fewer exist).

    Best = most patterns explained as unions; ties go to atoms that contain more patterns (a
    row where one image outweighs images pushing the other way is negative on part of that
    image's support), then to atoms seen on more rows.
    """
    count = min(batch_size, len(patterns))
    if count == 0:
        return []
    known = {p.tobytes() for p in patterns}
    mixed = mixed_patterns(patterns)
    # Mixed patterns go last: only when too few others are left are they taken at all.
    order = sorted(range(len(patterns)), key=lambda i: (bool(mixed[i]), -int(counts[i])))
    if len(patterns) - int(mixed.sum()) >= count:
        order = [i for i in order if not mixed[i]]
    combos = itertools.combinations(order, count)
    if comb(len(order), count) > MAX_SUBSETS:
        return _greedy(patterns, counts, order, count, known)
    within = _subsets(patterns)
    best, best_key = list(order[:count]), (-1, -1, -1)
    for combo in combos:
        inside = int(within[:, list(combo)].any(axis=1).sum())
        explained = _explained([patterns[i] for i in combo], known)
        key = (explained, inside, int(counts[list(combo)].sum()))
        if key > best_key:
            best, best_key = list(combo), key
    return best


def _subsets(patterns: np.ndarray) -> np.ndarray:
    """within[p, q]: pattern p is a strict subset of pattern q."""
    bits = np.unpackbits(patterns, axis=1).astype(np.float32)
    overlap = bits @ bits.T
    sizes = bits.sum(1)
    within = (overlap == sizes[:, None]) & (sizes[:, None] < sizes[None, :])
    return within


def mixed_patterns(patterns: np.ndarray) -> np.ndarray:
    """True for each pattern disjoint from another one.

    A row mixing images that push both ways is negative where one side dominates; the same
    active set on a unit whose head weights have the other sign is negative exactly where the
    other side dominates: two disjoint patterns. Supports of different images overlap (every
    feature map has its always-on units), unions and single supports are never disjoint.
    """
    bits = np.unpackbits(patterns, axis=1).astype(np.float32)
    overlap = bits @ bits.T
    np.fill_diagonal(overlap, 1.0)
    return (overlap == 0).any(axis=1)


def _greedy(
    patterns: np.ndarray, counts: np.ndarray, order: list[int], count: int, known: set[bytes]
) -> list[int]:
    chosen: list[int] = []
    for _ in range(count):
        rest = [i for i in order if i not in chosen]
        chosen.append(
            max(
                rest,
                key=lambda i: (_explained([patterns[j] for j in [*chosen, i]], known), counts[i]),
            )
        )
    return chosen


def read_supports(signs: torch.Tensor, batch_size: int) -> Supports | None:
    """The per-image supports behind a sign-only weight gradient (rows x F), or None."""
    patterns, counts = negative_patterns(signs)
    chosen = choose_atoms(patterns, counts, batch_size)
    if not chosen:
        return None
    features = signs.shape[1]
    bits = [np.unpackbits(patterns[i])[:features].astype(bool) for i in chosen]
    positive, known = [], []
    for index, atom in enumerate(bits):
        inside = [other for j, other in enumerate(bits) if j != index and _subset(other, atom)]
        free = np.bitwise_or.reduce(inside) if inside else np.zeros_like(atom)
        positive.append(atom & ~free)
        known.append(~free)
    explained = _explained([patterns[i] for i in chosen], {p.tobytes() for p in patterns})
    return Supports(
        torch.from_numpy(np.stack(positive)),
        torch.from_numpy(np.stack(known)),
        len(patterns),
        explained,
    )


def _subset(small: np.ndarray, large: np.ndarray) -> bool:
    """``small`` a strict subset of ``large``."""
    return bool((small <= large).all() and (small != large).any())


@contextmanager
def leaky_relus(model: nn.Module, slope: float = LEAK) -> Iterator[None]:
    """Make every ``nn.ReLU`` of the model leaky for the duration (forward and backward)."""
    handles = [
        m.register_forward_hook(lambda _m, args, _out: F.leaky_relu(args[0], slope))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def support_loss(
    features: torch.Tensor, positive: torch.Tensor, known: torch.Tensor
) -> torch.Tensor:
    """Logistic loss of the support: pre-activations > 0 on it, < 0 off it, known coords only."""
    target = positive.float() * 2 - 1
    scale = features.detach().abs().mean(1, keepdim=True).clamp(min=1e-12) * TEMPERATURE
    losses = F.softplus(-target * features / scale) * known
    return (losses.sum(1) / known.sum(1).clamp(min=1)).sum()


def invert_supports(
    knowledge: ServerKnowledge,
    layer: LinearLayer,
    supports: Supports,
    fit: LatentFit,
    progress: Progress | None = None,
) -> Inversion:
    """Gray images whose wide-layer support is ``supports``; the start; the loss trace.

    Optimised as a low-resolution latent (upsampled bicubically): a support is one bit per
    feature, and a full-resolution image fits it with high-frequency noise.
    """

    def loss(features: torch.Tensor) -> torch.Tensor:
        return support_loss(features, supports.positive, supports.known)

    with leaky_relus(knowledge.model):
        return invert_features(knowledge, layer, len(supports.positive), loss, fit, progress)


def supports_of(knowledge: ServerKnowledge, update: Update) -> tuple[LinearLayer, Supports] | None:
    """The wide layer and the supports read from it, when the update declares signs only, came
    from one gradient evaluation (more steps move the weights between the summed gradients),
    and the model has a wide layer on non-negative features; else None."""
    if loss_kind(update.declarations) != "sign" or update.fl.steps != 1:
        return None
    layer = exposed_layer(knowledge, update)
    if layer is None:
        return None
    supports = read_supports(update.tensors[layer.weight_name].detach(), knowledge.batch_size)
    return None if supports is None else (layer, supports)


def reconstruct(
    knowledge: ServerKnowledge,
    layer: LinearLayer,
    supports: Supports,
    fit: LatentFit,
    progress: Progress | None = None,
) -> Inversion:
    """``invert_supports``, padded with mid-gray images when fewer than B supports were found."""
    images, initial, trace = invert_supports(knowledge, layer, supports, fit, progress)
    missing = knowledge.batch_size - len(images)
    if missing > 0:
        gray = torch.full((missing, *images.shape[1:]), 0.5)
        images, initial = torch.cat([images, gray]), torch.cat([initial, gray])
    return images, initial, trace
