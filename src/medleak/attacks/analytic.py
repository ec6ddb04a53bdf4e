"""The analytic stage of the full attack: disaggregate the batch, then invert each image's features.

Applies when the victim model has a wide linear layer fed by non-negative features (ROG's LeNet:
conv features -> 512-unit bias-free linear -> ReLU -> linear), and the update is not obfuscated
(sign, sparsification and noise break the exact rank-B, non-negative structure the LP relies on).
Otherwise the caller falls back to optimisation alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medleak.attacks.aware_loss import loss_kind, sparse_rescale
from medleak.attacks.base import Progress, ServerKnowledge
from medleak.attacks.disaggregation import Disaggregation, disaggregate, row_space
from medleak.attacks.dummy import seeded_uniform
from medleak.attacks.feature_inversion import invert_features
from medleak.attacks.layers import LinearLayer, layer_input
from medleak.attacks.low_rank import complete, truncated_svd
from medleak.fl import Declaration, Update
from medleak.models import model_info, to_model_input

# The top-B singular values must hold this much of the gradient's energy: an unobfuscated
# FedSGD gradient holds ~1 - 1e-15, an obfuscated one visibly less.
MIN_RANK_ENERGY = 0.999
# Under noise the top-B share drops (Gaussian noise at 10% of the RMS: ~0.99; QSGD-4: ~0.08).
MIN_NOISY_ENERGY = 0.5


def _linear(model: torch.nn.Module, path: str | None) -> LinearLayer | None:
    if path is None:
        return None
    module = model.get_submodule(path)
    return LinearLayer(path, module) if isinstance(module, torch.nn.Linear) else None


def exposed_layer(knowledge: ServerKnowledge, update: Update) -> LinearLayer | None:
    """The model's declared exposed linear layer, if it is wider than the batch and its inputs
    are non-negative for this model's weights."""
    first = _linear(knowledge.model, model_info(knowledge.model).exposed_linear)
    if first is None:
        return None
    if first.weight_name not in update.tensors:
        return None
    if first.module.out_features <= knowledge.batch_size:
        return None
    probe = torch.full((1, 1, knowledge.image_size, knowledge.image_size), 0.5)
    with torch.no_grad():
        inputs = layer_input(
            knowledge.model, first.module, to_model_input(probe, knowledge.channels)
        )
    return first if bool((inputs >= 0).all()) else None


def denoised_gradient(
    gradient: torch.Tensor, declarations: Sequence[Declaration], rank: int
) -> torch.Tensor | None:
    """The rank-B gradient behind an obfuscated one (``low_rank``), or None for sign."""
    kind = loss_kind(declarations)
    if kind == "exact":
        return gradient
    if kind == "sparse":
        # Only sparse stages that all bound what they dropped guarantee that what was dropped is
        # smaller than what was kept (a pure top-k chain).
        bounded = all(d.kind == "sparse" and d.bounded for d in declarations)
        return complete(gradient, rank, rescale=sparse_rescale(declarations), bounded=bounded)
    if kind == "noise":
        # QSGD with few levels zeroes ~99.9% of this layer at random: the top-B singular
        # directions then hold little of the energy and are mostly noise, so give up.
        _, energy = row_space(gradient, rank)
        return truncated_svd(gradient, rank) if energy >= MIN_NOISY_ENERGY else None
    return None


def disaggregate_update(
    knowledge: ServerKnowledge, update: Update, seed: int
) -> tuple[LinearLayer, Disaggregation] | None:
    """Per-image features of the exposed layer, or None when the structure is not there."""
    layer = exposed_layer(knowledge, update)
    if layer is None:
        return None
    head = _linear(knowledge.model, model_info(knowledge.model).head)
    w1 = layer.module.weight.detach()
    w2 = head.module.weight.detach() if head is not None else None
    raw = update.tensors[layer.weight_name].detach() / update.fl.steps
    gradient = denoised_gradient(raw, update.declarations, knowledge.batch_size)
    if gradient is None:
        return None
    exact = loss_kind(update.declarations) == "exact"
    # The head's scale/label fit needs exact coefficients; under obfuscation it is unreliable,
    # so only directions are kept (cosine feature loss) and labels come from LLG+.
    result = disaggregate(gradient, knowledge.batch_size, seed, w1 if exact else None, w2)
    if result is None:
        return None
    if exact and result.rank_energy < MIN_RANK_ENERGY:
        return None
    return layer, result


def reconstruct(
    knowledge: ServerKnowledge,
    layer: LinearLayer,
    found: Disaggregation,
    iterations: int,
    tv: float,
    seed: int,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float], int]:
    """Gray images whose features match the disaggregated ones; their start; the trace; and
    the number of feature evaluations.

    The start is mid-gray plus faint seeded noise (so restarts and seeds differ).
    """
    size = knowledge.image_size
    scaled = found.labels is not None

    def features(gray: torch.Tensor) -> torch.Tensor:
        return layer_input(knowledge.model, layer.module, to_model_input(gray, knowledge.channels))

    shape = (len(found.features), 1, size, size)
    initial = 0.5 + 0.05 * (seeded_uniform(shape, seed) - 0.5)
    target = found.features if scaled else found.directions
    images, trace, evaluations = invert_features(
        features, target, initial, iterations, scaled, tv, progress
    )
    return images, initial, trace, evaluations
