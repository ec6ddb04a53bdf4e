"""One attack run: victims -> client update -> obfuscation -> attack -> scores.

Everything is validated and built before the expensive attack starts, so a bad option fails in
milliseconds rather than after minutes of optimisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medleak.attacks import (
    AttackOptions,
    Progress,
    Reconstruction,
    ServerKnowledge,
    check_prior,
    get_attack,
)
from medleak.data import Batch, Dataset, open_dataset, select_batch
from medleak.defenses import DefenseChain, build_chain
from medleak.errors import ConfigError, RunFailed
from medleak.experiments.config import RunConfig
from medleak.experiments.memory_guard import check_fits
from medleak.fl import FLSettings, Update
from medleak.metrics import evaluate
from medleak.models import build_model


@dataclass
class Plan:
    """A validated run, ready to execute."""

    config: RunConfig
    dataset: Dataset
    batch: Batch
    victim_indices: list[int]
    model: torch.nn.Module
    settings: FLSettings
    chain: DefenseChain
    options: AttackOptions


@dataclass
class RunResult:
    plan: Plan
    update: Update
    reconstruction: Reconstruction
    scores: dict[str, Any]
    matched: list[int]
    seconds: float


#: Largest image side medleak attacks; ROG's own experiments stop at 256 px.
MAX_IMAGE_SIZE = 1024


def model_for(config: RunConfig, data_classes: int) -> torch.nn.Module:
    """The seeded model of a run config: attack runs and trainings of one setting share it."""
    return build_model(
        config.model.name,
        config.model.channels,
        config.data.image_size,
        seed=config.seed,
        num_classes=config.model.classes_for(data_classes),
        weights=config.model.weights,
    )


def plan_run(config: RunConfig) -> Plan:
    """Validate every option and load the victim batch; no attack work yet."""
    get_attack(config.attack.name)
    if config.metrics.gallery_size < 0:
        raise ConfigError(
            "gallery size must be >= 0 (0 = no re-identification), "
            f"got {config.metrics.gallery_size}"
        )
    if config.data.image_size > MAX_IMAGE_SIZE:
        raise ConfigError(
            f"image size {config.data.image_size} is above the supported {MAX_IMAGE_SIZE} px "
            "(gradient inversion at that size needs far more memory than a workstation has)"
        )
    options = config.attack.options()
    check_prior(options.prior)
    options.check_setting(config.data.image_size)
    chain = build_chain(config.defenses)
    dataset = open_dataset(config.data.spec(), seed=config.seed)
    model = model_for(config, len(dataset.classes))
    exact_unroll = config.fl.algorithm == "fedavg" and config.attack.fedavg_model != "first-order"
    check_fits(
        model,
        batch_size=config.data.batch_size,
        channels=config.model.channels,
        image_size=config.data.image_size,
        unrolled_steps=config.fl.local_steps if exact_unroll else 1,
    )
    batch = select_batch(dataset, config.data.batch_size, config.data.offset)
    victim_indices = list(range(config.data.offset, config.data.offset + config.data.batch_size))
    return Plan(config, dataset, batch, victim_indices, model, config.fl, chain, options)


def gallery_for(plan: Plan) -> tuple[torch.Tensor | None, list[str | None]]:
    """Distractors for re-identification: same data set, never a victim or a victim's patient.

    Chosen by a seeded permutation so the gallery is reproducible and not biased to one class.
    """
    size = plan.config.metrics.gallery_size
    if size <= 0:
        return None, []
    victims = set(plan.victim_indices)
    patients = {p for p in plan.batch.patients if p is not None}
    eligible = [
        i
        for i, entry in enumerate(plan.dataset.entries)
        if i not in victims and (entry.patient is None or entry.patient not in patients)
    ]
    generator = torch.Generator().manual_seed(plan.config.seed + 7919)
    order = torch.randperm(len(eligible), generator=generator).tolist()
    chosen = sorted(eligible[i] for i in order[:size])
    if not chosen:
        return None, []
    distractors = plan.dataset.load(chosen)
    return distractors.images, list(distractors.patients)


def execute(plan: Plan, progress: Progress | None = None) -> RunResult:
    """Compute the client's (obfuscated) update, attack it, and score the reconstruction."""
    config = plan.config
    update = plan.chain.client_update(plan.model, plan.batch, plan.settings, seed=config.seed)
    knowledge = ServerKnowledge(
        model=plan.model,
        image_size=config.data.image_size,
        batch_size=len(plan.batch),
        true_labels=plan.batch.labels if plan.options.labels == "known" else None,
    )
    attack = get_attack(config.attack.name)
    start = time.perf_counter()
    try:
        reconstruction = attack(
            update, knowledge, plan.options, seed=config.seed, progress=progress
        )
    except torch.OutOfMemoryError as exc:
        raise RunFailed(f"out of memory during the attack: {exc}") from None
    seconds = time.perf_counter() - start
    if not torch.isfinite(reconstruction.images).all():
        raise RunFailed("the attack diverged (NaN in the reconstruction); lower --attack-lr")
    gallery, gallery_patients = gallery_for(plan)
    lpips_dir = Path(config.metrics.lpips_weights) if config.metrics.lpips_weights else None
    scores = evaluate(
        plan.batch.images,
        reconstruction.images,
        initial=reconstruction.initial_images,
        true_labels=plan.batch.labels,
        used_labels=reconstruction.labels,
        sources=list(plan.batch.sources),
        patients=list(plan.batch.patients),
        gallery=gallery,
        gallery_patients=gallery_patients,
        lpips_weights=lpips_dir,
    )
    return RunResult(plan, update, reconstruction, scores.to_dict(), list(scores.matched), seconds)
