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

from dataclasses import dataclass

import torch

from medleak.attacks.aware_loss import aware_loss
from medleak.attacks.base import Progress, Reconstruction, ServerKnowledge
from medleak.attacks.dummy import (
    dummy_update,
    reconstruction_channels,
    report,
    seeded_uniform,
    trainable_params,
)
from medleak.attacks.options import CommonOptions
from medleak.attacks.restarts import Run
from medleak.attacks.skeleton import match_gradients
from medleak.fl import Update
from medleak.flags import option

HISTORY = 100


@dataclass(frozen=True)
class DlgOptions(CommonOptions):
    """DLG's options: the shared ones plus soft labels.

    soft_labels: with ``labels="inferred"``, optimise soft labels jointly (as DLG).
    """

    soft_labels: bool = option(
        False, "--soft-labels", "DLG: optimise labels jointly", kind="switch"
    )


def _one_run(
    update: Update,
    knowledge: ServerKnowledge,
    options: DlgOptions,
    labels: torch.Tensor,
    seed: int,
    progress: Progress | None,
) -> Run:
    size = knowledge.image_size
    channels = reconstruction_channels(knowledge, options)
    params = trainable_params(knowledge)
    target = {n: t.detach() for n, t in update.tensors.items()}
    loss_fn = aware_loss(update.declarations, options.aware)
    images = seeded_uniform((knowledge.batch_size, channels, size, size), seed)
    initial = images.mean(1, keepdim=True)
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
    found = logits.detach().argmax(1) if logits is not None else labels
    result = images.detach().clamp(0, 1).mean(1, keepdim=True)
    return Run(result, trace, min(trace), initial, found)


def attack(
    update: Update,
    knowledge: ServerKnowledge,
    options: DlgOptions,
    seed: int,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct the client's batch from ``update``; see the module docstring."""
    result = match_gradients(
        update,
        knowledge,
        options,
        seed,
        lambda labels, s: _one_run(update, knowledge, options, labels, s, progress),
        {"soft_labels": options.labels == "inferred" and options.soft_labels},
    )
    # L-BFGS evaluates the objective a variable number of times: the budget is what it used.
    result.info = {
        "soft_labels": result.info.pop("soft_labels"),
        "gradient_evaluations": len(result.trace),
        "budget": len(result.trace),
        **result.info,
    }
    return result
