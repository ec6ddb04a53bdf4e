"""Label recovery from the update: the server need not be told the diagnoses.

- Batch of one: iDLG (Zhao et al., 2020, "iDLG: Improved Deep Leakage from Gradients"). With
  cross-entropy, the last layer's gradient for class c is (p_c - y_c) times its (non-negative,
  post-ReLU) input, so only the true class has a negative bias gradient / weight-row sum.
- Batches: LLG+ (Wainakh et al., PETS 2022, "User-Level Label Leakage from Gradients in Federated
  Learning"). The row sums r_c of the last layer's weight gradient (its bias gradient when there
  is one) are (1/B) sum_k (p_kc - y_kc) m_k with m_k = ||h_k||_1 the "impact". Assuming equal
  impacts m and mean predictions p_bar, r_c = m (p_bar_c - n_c / B), so
  n_c = B (p_bar_c - r_c / m). LLG+ estimates m and p_bar by feeding the server's model dummy
  images (here: seeded uniform noise and flat gray), which needs no data. Counts are rounded by
  largest remainder to sum to B, and a class with negative mass gets at least one image (LLG's
  first observation).

For FedAvg the pseudo-gradient (w0 - w_tau)/eta is a sum of tau such gradients at nearby weights;
with the small local learning rates of FL the same estimates hold (tested in tests/attacks).
"""

from __future__ import annotations

import torch
from torch import nn

from medleak.attacks.base import ServerKnowledge
from medleak.attacks.dummy import labels_for
from medleak.attacks.layers import layer_input, linear_layers
from medleak.attacks.options import CommonOptions
from medleak.errors import MedleakError
from medleak.fl import Update
from medleak.models import model_info, to_model_input


def _last_layer_mass(update: Update, model: nn.Module) -> tuple[torch.Tensor, bool]:
    """Per-class gradient mass r_c of the last linear layer, and whether it came from a bias."""
    layers = linear_layers(model)
    if not layers:
        raise MedleakError("label inference needs a model whose last layer is linear")
    last = layers[-1]
    if last.bias_name is not None and last.bias_name in update.tensors:
        return update.tensors[last.bias_name].detach().double(), True
    if last.weight_name not in update.tensors:
        raise MedleakError("label inference needs the last layer's gradient in the update")
    return update.tensors[last.weight_name].detach().double().sum(1), False


def idlg_label(update: Update, model: nn.Module) -> int:
    """iDLG: the class whose last-layer gradient mass is the most negative."""
    mass, _ = _last_layer_mass(update, model)
    return int(mass.argmin())


def dummy_statistics(
    model: nn.Module, image_size: int, count: int, seed: int
) -> tuple[torch.Tensor, float]:
    """LLG+'s estimates from dummy images: mean softmax prediction and mean impact ||h||_1."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand((count, 1, image_size, image_size), generator=generator)
    gray = torch.full((count, 1, image_size, image_size), 0.5)
    images = to_model_input(torch.cat([noise, gray]), model_info(model).channels)
    last = linear_layers(model)[-1].module
    with torch.no_grad():
        probs = torch.softmax(model(images).double(), dim=1).mean(0)
        impact = float(layer_input(model, last, images).double().abs().sum(1).mean())
    return probs, impact


def round_counts(estimate: torch.Tensor, total: int, present: torch.Tensor) -> torch.Tensor:
    """Counts summing to ``total``: each class in ``present`` gets >= 1, then largest remainder."""
    est = estimate.clamp(min=0)
    counts = torch.zeros_like(est, dtype=torch.long)
    if int(present.sum()) <= total:
        counts[present] = 1
    remaining = est - counts.double()
    while int(counts.sum()) < total:
        c = int(remaining.argmax())
        counts[c] += 1
        remaining[c] -= 1
    while int(counts.sum()) > total:
        c = int(torch.where(counts > 0, remaining, torch.full_like(remaining, 1e9)).argmin())
        counts[c] -= 1
        remaining[c] += 1
    return counts


def llg_counts(update: Update, model: nn.Module, image_size: int, batch_size: int, seed: int):
    """LLG+: estimated number of images of each class (a C-vector of ints summing to B)."""
    mass, from_bias = _last_layer_mass(update, model)
    probs, impact = dummy_statistics(model, image_size, max(batch_size, 4), seed)
    # A bias gradient is the weight-row sum with unit impact.
    impact = 1.0 if from_bias else impact
    # FedAvg's pseudo-gradient sums tau step gradients.
    mass = mass / update.fl.steps
    estimate = batch_size * (probs - mass / max(impact, 1e-12))
    return round_counts(estimate, batch_size, mass < 0)


def counts_to_labels(counts: torch.Tensor) -> torch.Tensor:
    """Labels sorted by class, e.g. counts [2, 2] -> [0, 0, 1, 1] (order is unknowable)."""
    return torch.repeat_interleave(torch.arange(len(counts)), counts)


def infer_labels(
    update: Update, model: nn.Module, image_size: int, batch_size: int, seed: int = 0
) -> torch.Tensor:
    """The batch's labels as the server can infer them: iDLG for B = 1, LLG+ counts otherwise."""
    if batch_size == 1:
        return torch.tensor([idlg_label(update, model)])
    return counts_to_labels(llg_counts(update, model, image_size, batch_size, seed))


def resolve_labels(
    update: Update, knowledge: ServerKnowledge, options: CommonOptions, seed: int
) -> torch.Tensor:
    """The labels an attack starts from: the oracle's, or inferred from the update."""
    if options.labels == "known":
        return labels_for(knowledge, options)
    return infer_labels(update, knowledge.model, knowledge.image_size, knowledge.batch_size, seed)
