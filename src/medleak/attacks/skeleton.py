"""The gradient-matching skeleton every optimisation attack shares.

An attack supplies one restart: from a seed, its start image and its optimisation (its
parametrisation, objective, regularizers and optimiser), returning a ``Run``. The skeleton does
the rest once, the same way for every attack: refuse an update that does not fit the model,
resolve the labels, run the restarts (each keeps the start image it drew, so the relative
leakage scores compare against the start the chosen restart really had), keep the best by
matching loss, apply the prior and assemble the ``Reconstruction``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from medleak.attacks.aware_loss import loss_kind
from medleak.attacks.base import Progress, Reconstruction, ServerKnowledge
from medleak.attacks.dummy import check_update_fits
from medleak.attacks.labels import resolve_labels
from medleak.attacks.options import CommonOptions
from medleak.attacks.priors import apply_prior, choose_prior
from medleak.attacks.restarts import Run, best_of
from medleak.fl import Update

# one_restart(labels, seed) -> Run
OneRestart = Callable[[torch.Tensor, int], Run]


def obfuscated(update: Update) -> bool:
    """True when a stage declared anything short of the exact update."""
    return loss_kind(update.declarations) != "exact"


def finish(
    update: Update,
    options: CommonOptions,
    images: torch.Tensor,
    labels: torch.Tensor,
    initial: torch.Tensor,
    trace: list[float],
    info: dict[str, Any],
) -> Reconstruction:
    """Apply the prior (``auto`` resolved from the declarations, recorded in ``info``) and build
    the ``Reconstruction``."""
    info["prior"] = choose_prior(options.prior, obfuscated(update))
    return Reconstruction(
        images=apply_prior(info["prior"], images),
        labels=labels.clone(),
        labels_source=options.labels,
        initial_images=initial,
        trace=trace,
        info=info,
    )


def match_gradients(
    update: Update,
    knowledge: ServerKnowledge,
    options: CommonOptions,
    seed: int,
    one_restart: OneRestart,
    info: dict[str, Any],
    labels: torch.Tensor | None = None,
) -> Reconstruction:
    """Run ``options.restarts`` restarts of ``one_restart`` and return the best reconstruction.

    info: the attack's own facts; the restart summary and the prior are added to it.
    labels: already resolved labels (when the attack resolved them earlier), else resolved here.
    """
    check_update_fits(update, knowledge)
    if labels is None:
        labels = resolve_labels(update, knowledge, options, seed)
    best, summary = best_of(lambda s: one_restart(labels, s), options.restarts, seed)
    trace = summary.pop("trace")
    used = best.labels if best.labels is not None else labels
    return finish(update, options, best.images, used, best.initial, trace, {**info, **summary})


__all__ = ["OneRestart", "Progress", "finish", "match_gradients", "obfuscated"]
