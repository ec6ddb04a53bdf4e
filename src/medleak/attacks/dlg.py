"""DLG: Deep Leakage from Gradients (Zhu et al., NeurIPS 2019).

Full-resolution dummy images (and, optionally, soft labels) are optimised with L-BFGS so that
their update matches the received one in squared L2 over every layer. Near-exact on DLG's sigmoid
LeNet at 32x32, batch 1, within a few hundred iterations. As in the paper the images are not
boxed during optimisation; the result is clamped to [0, 1]. With ``--labels inferred`` and
``soft_labels`` the labels are optimised jointly as DLG does (a softmax over free logits), else
the known or iDLG/LLG+-inferred labels are used (iDLG showed that is more reliable).
``--aware`` swaps squared L2 for the obfuscation-aware loss.
"""

from __future__ import annotations

import torch

from medleak.attacks.aware_loss import aware_loss, loss_kind
from medleak.attacks.base import Progress, Reconstruction, ServerKnowledge
from medleak.attacks.dummy import (
    check_update_fits,
    dummy_update,
    reconstruction_channels,
    report,
    seeded_uniform,
    trainable_params,
)
from medleak.attacks.labels import resolve_labels
from medleak.attacks.options import AttackOptions
from medleak.attacks.priors import apply_prior
from medleak.attacks.restarts import Run, best_of
from medleak.fl import Update

HISTORY = 100


def _one_run(
    update: Update,
    knowledge: ServerKnowledge,
    options: AttackOptions,
    labels: torch.Tensor,
    seed: int,
    progress: Progress | None,
    found_labels: list[torch.Tensor],
) -> Run:
    size = knowledge.image_size
    channels = reconstruction_channels(knowledge, options)
    params = trainable_params(knowledge)
    target = {n: t.detach() for n, t in update.tensors.items()}
    loss_fn = aware_loss(update.declarations, options.aware)
    images = seeded_uniform((knowledge.batch_size, channels, size, size), seed)
    images.requires_grad_(True)
    variables = [images]
    joint = options.labels == "inferred" and options.soft_labels
    logits = None
    if joint:
        generator = torch.Generator().manual_seed(seed + 1)
        logits = torch.randn(
            (knowledge.batch_size, knowledge.num_classes), generator=generator
        ).requires_grad_(True)
        variables.append(logits)
    optimizer = torch.optim.LBFGS(
        variables,
        lr=options.lr or 1.0,
        max_iter=options.iterations,
        max_eval=options.iterations,
        history_size=HISTORY,
        line_search_fn="strong_wolfe",
    )
    trace: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        targets = torch.softmax(logits, dim=1) if logits is not None else labels
        dummy = dummy_update(knowledge, params, images, targets, update)
        loss = loss_fn(dummy, target)
        loss.backward(inputs=variables)
        trace.append(loss.item())
        report(progress, len(trace) - 1, trace[-1])
        return loss

    optimizer.step(closure)
    found_labels.append(logits.detach().argmax(1) if logits is not None else labels)
    result = images.detach().clamp(0, 1).mean(1, keepdim=True)
    return Run(result, trace, min(trace))


def attack(
    update: Update,
    knowledge: ServerKnowledge,
    options: AttackOptions,
    seed: int,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct the client's batch from ``update``; see the module docstring."""
    check_update_fits(update, knowledge)
    labels = resolve_labels(update, knowledge, options, seed)
    found: list[torch.Tensor] = []
    best, summary = best_of(
        lambda s: _one_run(update, knowledge, options, labels, s, progress, found),
        options.restarts,
        seed,
    )
    trace = summary.pop("trace")
    size = knowledge.image_size
    channels = reconstruction_channels(knowledge, options)
    initial = seeded_uniform(
        (knowledge.batch_size, channels, size, size), seed + summary["chosen_restart"]
    ).mean(1, keepdim=True)
    return Reconstruction(
        images=apply_prior(options.prior, best.images, loss_kind(update.declarations) != "exact"),
        labels=found[summary["chosen_restart"]].clone(),
        labels_source=options.labels,
        initial_images=initial,
        trace=trace,
        info={
            "soft_labels": options.labels == "inferred" and options.soft_labels,
            "gradient_evaluations": len(trace),
            "budget": len(trace),
            **summary,
        },
    )
