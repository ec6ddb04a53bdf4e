"""Batch 1 through a biased head: the head's gradient gives the image's features exactly.

For a linear head z = W h + b with any loss, dL/dW = g h^T and dL/db = g (g = dL/dz), so every
row i with g_i != 0 gives h = dW_i / db_i (Phong et al., 2017, "Privacy-Preserving Deep Learning
via Additively Homomorphic Encryption"; used by R-GAP and by Geiping et al.'s analysis). The
least-squares estimate over all rows, h = dW^T db / ||db||^2, is the same vector and uses every
class. This holds for one image and one gradient evaluation: FedSGD, or FedAvg with tau = 1, on an
unobfuscated update. Those features are then an exact constraint beside gradient matching
(``FeatureTerm``), or, where the features determine the image (DLG's LeNet), inverted directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medleak.attacks.aware_loss import loss_kind
from medleak.attacks.base import Progress, ServerKnowledge
from medleak.attacks.bn_statistics import StatisticsTerm, penalty, recording
from medleak.attacks.dummy import dummy_update, report, seeded_uniform, trainable_params
from medleak.attacks.feature_inversion import MAX_LINE_SEARCH
from medleak.attacks.gradient_matching import cosine, total_variation
from medleak.attacks.layers import LinearLayer, layer_input, linear_layers
from medleak.fl import Update
from medleak.models import to_model_input

# A bias gradient this small relative to the weight gradient means g is ~0 (a confident correct
# prediction): the ratio would be noise, so the constraint is not offered.
MIN_BIAS_NORM = 1e-12
# Weight of the update's cosine distance beside the feature error: the features fix what the head
# sees, the earlier layers' gradients fix what pooling or striding threw away (DLG's LeNet at
# 32 px: features alone 28.8 dB, with the gradient 35.5 dB on a real X-ray).
GRADIENT_WEIGHT = 1.0


@dataclass(frozen=True)
class HeadFeatures:
    """The features the biased head ``layer`` received for the single image of the batch."""

    layer: LinearLayer
    features: torch.Tensor  # 1 x in_features

    def of(self, knowledge: ServerKnowledge, gray: torch.Tensor) -> torch.Tensor:
        """The head's input for ``gray`` images (N x 1 x H x W or N x C x H x W), differentiable."""
        inputs = to_model_input(gray, knowledge.channels)
        return layer_input(knowledge.model, self.layer.module, inputs)

    def loss(self, knowledge: ServerKnowledge, gray: torch.Tensor) -> torch.Tensor:
        """Relative squared error of the head input to the recovered features."""
        found = self.of(knowledge, gray)
        target = self.features.to(found.dtype)
        return (found - target).pow(2).sum() / target.pow(2).sum().clamp(min=1e-30)


def biased_head(knowledge: ServerKnowledge, update: Update) -> LinearLayer | None:
    """The last linear layer if it has a bias and both its gradients are in the update."""
    layers = linear_layers(knowledge.model)
    if not layers:
        return None
    head = layers[-1]
    if head.bias_name is None:
        return None
    if head.weight_name not in update.tensors or head.bias_name not in update.tensors:
        return None
    return head


def exact_head_features(knowledge: ServerKnowledge, update: Update) -> HeadFeatures | None:
    """The single image's head features from dW and db, or None where they are not exact.

    Exact needs batch 1, one gradient evaluation (FedSGD or FedAvg tau 1: (w0 - w1) / lr is the
    gradient itself) and no obfuscation.
    """
    if knowledge.batch_size != 1 or update.batch_size != 1 or update.fl.steps != 1:
        return None
    if loss_kind(update.declarations) != "exact":
        return None
    head = biased_head(knowledge, update)
    if head is None:
        return None
    assert head.bias_name is not None
    dw = update.tensors[head.weight_name].detach().double()
    db = update.tensors[head.bias_name].detach().double()
    norm = db.pow(2).sum()
    if not float(norm) > MIN_BIAS_NORM * max(float(dw.pow(2).sum()), 1e-300):
        return None
    features = (db @ dw / norm).unsqueeze(0).float()
    return HeadFeatures(head, features)


def reconstruct(
    knowledge: ServerKnowledge,
    update: Update,
    found: HeadFeatures,
    labels: torch.Tensor,
    iterations: int,
    tv: float,
    gradient_weight: float,
    term: StatisticsTerm | None,
    seed: int,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float], int]:
    """The gray image whose head features match ``found`` and whose update matches the received
    one (cosine, weight ``gradient_weight``; 0 inverts the features alone), plus the BatchNorm
    statistics ``term`` when given; its start; the trace; and the number of loss evaluations.

    L-BFGS from mid-gray with faint seeded noise: with an exact target the problem is smooth
    enough for a quasi-Newton method, which converges where sign-Adam (IG) stalls.
    """
    size = knowledge.image_size
    params = trainable_params(knowledge)
    target = {n: t.detach() for n, t in update.tensors.items()}
    initial = 0.5 + 0.05 * (seeded_uniform((1, 1, size, size), seed) - 0.5)
    images = initial.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [images],
        lr=1,
        max_iter=1,
        max_eval=MAX_LINE_SEARCH,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad(set_to_none=True)
        clamped = images.clamp(0, 1)
        loss = found.loss(knowledge, clamped) + tv * total_variation(clamped)
        if gradient_weight:
            with recording(term):
                dummy = dummy_update(knowledge, params, clamped, labels, update)
            loss = loss + gradient_weight * cosine(dummy, target) + penalty(term)
        loss.backward(inputs=[images])
        return loss

    trace: list[float] = []
    for iteration in range(iterations):
        trace.append(float(optimizer.step(closure).detach()))
        report(progress, iteration, trace[-1])
    return images.detach().clamp(0, 1), initial, trace, evaluations
