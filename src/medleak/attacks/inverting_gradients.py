"""Inverting Gradients (Geiping et al., NeurIPS 2020).

Full-resolution dummy images, loss = 1 - cosine similarity of the concatenated updates plus a
total-variation prior, Adam on the SIGN of the image gradient, step decay by 10x at 3/8, 5/8 and
7/8 of the iterations, images clamped to the valid box [0, 1] after every step; several random
restarts, best by loss.
medleak adds inferred labels, under an obfuscation the aware loss (``attacks.aware_loss``), the
BatchNorm statistics the client sent (``attacks.bn_statistics``) and, at batch 1 through a biased
head, the exact head features (``attacks.head_features``; switched with ``analytic``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medleak.attacks import bn_statistics, head_features
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
from medleak.attacks.gradient_matching import cosine
from medleak.attacks.options import ImageMatchingOptions
from medleak.attacks.regularizers import regularization
from medleak.attacks.restarts import Run
from medleak.attacks.skeleton import match_gradients
from medleak.fl import Update

# Geiping et al. use lr 0.1 on images normalised by the data set std (about 0.25 for X-rays); the
# same step in medleak's [0, 1] pixel space is about 0.03.
DEFAULT_LR = 0.03
DEFAULT_TV = 1e-4


@dataclass(frozen=True)
class IgOptions(ImageMatchingOptions):
    """Inverting Gradients takes the shared image-matching options and nothing of its own."""


def _one_run(
    update: Update,
    knowledge: ServerKnowledge,
    options: IgOptions,
    labels: torch.Tensor,
    seed: int,
    progress: Progress | None,
) -> Run:
    size = knowledge.image_size
    channels = reconstruction_channels(knowledge, options)
    params = trainable_params(knowledge)
    target = {n: t.detach() for n, t in update.tensors.items()}
    tv_weight = DEFAULT_TV if options.tv is None else options.tv
    # IG's own loss is already cosine; the aware loss replaces it only under an obfuscation.
    defended = options.aware and loss_kind(update.declarations) != "exact"
    match = aware_loss(update.declarations) if defended else cosine
    term = bn_statistics.term_for(knowledge, update, options.bn_statistics)
    first_order = options.fedavg_model == "first-order"
    head = head_features.exact_head_features(knowledge, update) if options.analytic else None

    images = seeded_uniform((knowledge.batch_size, channels, size, size), seed)
    initial = images.mean(1, keepdim=True)
    images.requires_grad_(True)
    optimizer = torch.optim.Adam([images], lr=options.lr or DEFAULT_LR)
    milestones = [int(options.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    trace: list[float] = []
    for iteration in range(options.iterations):
        optimizer.zero_grad(set_to_none=True)
        with bn_statistics.recording(term):
            dummy = dummy_update(knowledge, params, images, labels, update, first_order)
        loss = match(dummy, target) + regularization({"tv": tv_weight}, images)
        loss = loss + bn_statistics.penalty(term)
        if head is not None:
            loss = loss + head.loss(knowledge, images)
        loss.backward(inputs=[images])
        images.grad.sign_()  # type: ignore[union-attr]
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            images.clamp_(0, 1)
        trace.append(loss.item())
        report(progress, iteration, trace[-1])
    return Run(images.detach().mean(1, keepdim=True), trace, trace[-1], initial)


def attack(
    update: Update,
    knowledge: ServerKnowledge,
    options: IgOptions,
    seed: int,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct the client's batch from ``update``; see the module docstring."""
    check_update_fits(update, knowledge)  # before reading the head: refuse a foreign update
    kind = loss_kind(update.declarations)
    defended = options.aware and kind != "exact"
    info = {
        "tv": DEFAULT_TV if options.tv is None else options.tv,
        "aware": options.aware,
        "fedavg_model": options.fedavg_model,
        "loss": kind if defended else "cosine",
        "bn_statistics": bn_statistics.term_for(knowledge, update, options.bn_statistics)
        is not None,
        "head_features": options.analytic
        and head_features.exact_head_features(knowledge, update) is not None,
        "gradient_evaluations": options.iterations * options.restarts,
        "budget": options.iterations * options.restarts,
    }
    return match_gradients(
        update,
        knowledge,
        options,
        seed,
        lambda labels, s: _one_run(update, knowledge, options, labels, s, progress),
        info,
    )
