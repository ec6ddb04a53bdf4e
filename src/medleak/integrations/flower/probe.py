"""One medleak attack on one Flower update, and its scores: what the audit and the guard share.

The attack sees what an honest-but-curious server sees: the architecture with the global weights
it sent, the local training settings, the number of images, and the (decoded) update. Labels are
inferred from the update unless the caller grants the label oracle and has the true labels.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from medleak.attacks import AttackOptions, Reconstruction, ServerKnowledge, get_attack
from medleak.errors import MedleakError
from medleak.fl.update import Update
from medleak.metrics import evaluate
from medleak.metrics.prior import prior_image
from medleak.metrics.verdict import INCONCLUSIVE
from medleak.metrics.verdict import judge as judge_metrics


@dataclass(frozen=True)
class AttackPlan:
    """Which attack the server (or the hospital testing itself) runs, and how hard."""

    attack: str = "rog"
    image_size: int = 32
    options: AttackOptions = field(default_factory=lambda: AttackOptions(labels="inferred"))

    def __post_init__(self) -> None:
        get_attack(self.attack)


@dataclass
class Probe:
    reconstruction: Reconstruction
    seconds: float
    scores: dict[str, Any] | None


def run_probe(
    update: Update,
    model: torch.nn.Module,
    plan: AttackPlan,
    seed: int,
    originals: tuple[torch.Tensor, torch.Tensor] | None = None,
    distractors: torch.Tensor | None = None,
) -> Probe:
    """Attack ``update`` on ``model`` (already holding the global weights); score if possible.

    ``distractors``: images of other patients the scorer holds (N x 1 x H x W, e.g. the server's
    auxiliary pool). They join the re-identification gallery, so a hospital's 2 images can still
    reach significance, and their mean is the prior-image floor (``metrics.prior``).
    """
    labels = originals[1] if originals is not None and plan.options.labels == "known" else None
    options = plan.options
    if options.labels == "known" and labels is None:
        options = dataclasses.replace(options, labels="inferred")
    knowledge = ServerKnowledge(
        model=model, image_size=plan.image_size, batch_size=update.batch_size, true_labels=labels
    )
    start = time.perf_counter()
    reconstruction = get_attack(plan.attack)(update, knowledge, options, seed=seed)
    seconds = time.perf_counter() - start
    if not torch.isfinite(reconstruction.images).all():
        raise MedleakError("the attack diverged (NaN in the reconstruction)")
    scores = None
    if originals is not None:
        images, true_labels = originals
        scores = evaluate(
            images,
            reconstruction.images,
            initial=reconstruction.initial_images,
            true_labels=true_labels,
            used_labels=reconstruction.labels,
            sources=[f"image-{i}" for i in range(images.shape[0])],
            patients=None,
            gallery=distractors,
            prior=None if distractors is None else prior_image(distractors),
            prior_source=None if distractors is None else "auxiliary",
        ).to_dict()
    return Probe(reconstruction, seconds, scores)


def composition(labels: torch.Tensor, names: tuple[str, ...] = ("NORMAL", "PNEUMONIA")) -> dict:
    """How many images of each class the server believes the batch holds."""
    counts = torch.bincount(labels.flatten().long(), minlength=len(names)).tolist()
    return {names[i] if i < len(names) else str(i): int(c) for i, c in enumerate(counts)}


def judge(scores: dict[str, Any] | None) -> tuple[str, str]:
    """(verdict, reason) from ``medleak.metrics.verdict``, the rule every medleak output uses.

    Without the client's originals nothing can be scored, which is never "safe".
    """
    if scores is None:
        return INCONCLUSIVE, "no originals to score against"
    verdict = judge_metrics(scores)
    return verdict.outcome, verdict.reason


ModelFactory = Callable[[], torch.nn.Module]
