"""One attack run: victims -> client update -> obfuscation -> attack -> scores.

Everything is validated and built before the expensive attack starts, so a bad option fails in
milliseconds rather than after minutes of optimisation.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
from medleak.metrics.prior import prior_image
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
class Baseline:
    """The same attack, budget and seed on the same batch's *undefended* update: how far this
    attack gets when no defense is in the way (``metrics.verdict.judge`` compares with it)."""

    reconstruction: Reconstruction
    scores: dict[str, Any]
    matched: list[int]
    seconds: float


@dataclass
class RunResult:
    plan: Plan
    update: Update
    reconstruction: Reconstruction
    scores: dict[str, Any]
    matched: list[int]
    seconds: float
    prior: torch.Tensor | None = None  # 1 x 1 x H x W, what the server knows without the update
    baseline: Baseline | None = None


@dataclass
class Distractors:
    """Images of other patients: the re-identification gallery and the prior image's source.

    available: how many eligible images the source holds (victims and their patients left out),
    so a verdict can say whether a larger ``--gallery-size`` would decide.
    """

    images: torch.Tensor | None
    patients: list[str | None]
    available: int


#: At most this many auxiliary images are averaged into the prior image (a seeded choice).
AUXILIARY_MAX = 1000


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
        normalize=config.model.normalize,
    )


def plan_run(config: RunConfig, model: torch.nn.Module | None = None) -> Plan:
    """Validate every option and load the victim batch; no attack work yet.

    ``model``: the victim as built elsewhere (``medleak audit``: a user's own model with the
    global weights loaded); None builds the registry model of ``config``."""
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
    for flag, path in (
        ("--gallery-source", config.metrics.gallery_source),
        ("--auxiliary", config.metrics.auxiliary),
    ):
        if path is not None and path != "phantom" and not Path(path).exists():
            raise ConfigError(f"{flag}: no such folder or file: {path}")
    dataset = open_dataset(config.data.spec(), seed=config.seed)
    if model is None:
        model = model_for(config, len(dataset.classes))
    exact_unroll = config.fl.algorithm == "fedavg" and config.attack.fedavg_model != "first-order"
    with batchnorm_refusal(config.model.name, config.data.batch_size, config.data.image_size):
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


def _other_images(
    plan: Plan, source: str | None, size: int, salt: int
) -> tuple[Dataset, list[int], int]:
    """A seeded choice of ``size`` images that are neither victims nor of a victim's patient,
    from the victims' data set or from ``source`` (another folder of the same modality)."""
    config = plan.config
    if source is None or source == config.data.source:  # the victims' own data: leave them out
        dataset, victims = plan.dataset, set(plan.victim_indices)
    else:
        spec = dataclasses.replace(config.data.spec(), source=source)
        dataset, victims = open_dataset(spec, seed=config.seed), set()
    patients = {p for p in plan.batch.patients if p is not None}
    eligible = [
        i
        for i, entry in enumerate(dataset.entries)
        if i not in victims and (entry.patient is None or entry.patient not in patients)
    ]
    generator = torch.Generator().manual_seed(config.seed + salt)
    order = torch.randperm(len(eligible), generator=generator).tolist()
    return dataset, sorted(eligible[i] for i in order[:size]), len(eligible)


def gallery_for(plan: Plan) -> Distractors:
    """Distractors for re-identification: same data set (or ``--gallery-source``), never a victim
    or a victim's patient.

    Chosen by a seeded permutation so the gallery is reproducible and not biased to one class.
    """
    size = plan.config.metrics.gallery_size
    source = plan.config.metrics.gallery_source
    if size <= 0 and source is None:
        return Distractors(None, [], len(plan.dataset) - len(plan.victim_indices))
    dataset, chosen, available = _other_images(plan, source, max(size, 0), 7919)
    if not chosen:
        return Distractors(None, [], available)
    distractors = dataset.load(chosen)
    return Distractors(distractors.images, list(distractors.patients), available)


def prior_for(plan: Plan, distractors: Distractors) -> tuple[torch.Tensor | None, str | None]:
    """The prior image (``metrics.prior``): the mean of ``--auxiliary`` images when given, else
    of the distractors; None when there is neither."""
    auxiliary = plan.config.metrics.auxiliary
    if auxiliary is not None:
        dataset, chosen, _ = _other_images(plan, auxiliary, AUXILIARY_MAX, 104729)
        if not chosen:
            raise ConfigError(f"--auxiliary {auxiliary}: no usable images (victims excluded)")
        return prior_image(dataset.load(chosen).images), "auxiliary"
    if distractors.images is None:
        return None, None
    return prior_image(distractors.images), "distractors"


@contextmanager
def batchnorm_refusal(model: str, batch_size: int, image_size: int) -> Iterator[None]:
    """A BatchNorm layer in training mode that sees one value per channel (batch 1, features
    down to 1 x 1) cannot normalise: torch's ValueError as one line saying what to change."""
    try:
        yield
    except ValueError as exc:
        if "Expected more than 1 value per channel" not in str(exc):
            raise
        raise ConfigError(
            f"model {model} at {image_size} px reduces a batch of {batch_size} to one value per "
            "channel before a BatchNorm layer, which cannot normalise it in training mode; use a "
            "larger --image-size or --batch-size"
        ) from None


def baseline_wanted(config: RunConfig, auto: bool) -> bool:
    """Whether to attack the undefended update too: ``metrics.baseline`` when set, else ``auto``
    (``medleak attack``: on for a defended run; a sweep: off, its ``[]`` setting is the baseline).
    An undefended run is its own baseline."""
    if not config.defenses:
        return False
    return auto if config.metrics.baseline is None else config.metrics.baseline


def _attack(plan: Plan, update: Update, progress: Progress | None) -> tuple[Reconstruction, float]:
    config = plan.config
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
    return reconstruction, seconds


def execute(
    plan: Plan,
    progress: Progress | None = None,
    *,
    baseline: bool | None = None,
    update: Update | None = None,
) -> RunResult:
    """Compute the client's (obfuscated) update, attack it, and score the reconstruction.

    ``baseline``: also attack the undefended update of the same batch (None: ``metrics.baseline``,
    off when unset; see ``baseline_wanted``). It runs after the defended attack and shares
    nothing with it but the inputs, so the defended numbers are the same with or without it.
    ``update``: the update a client actually sent (``medleak audit``), attacked instead of one
    computed here from the batch.
    """
    config = plan.config
    if update is None:
        with batchnorm_refusal(config.model.name, len(plan.batch), config.data.image_size):
            update = plan.chain.client_update(
                plan.model, plan.batch, plan.settings, seed=config.seed
            )
    reconstruction, seconds = _attack(plan, update, progress)
    distractors = gallery_for(plan)
    prior, prior_source = prior_for(plan, distractors)
    lpips_dir = Path(config.metrics.lpips_weights) if config.metrics.lpips_weights else None

    def score(found: Reconstruction) -> Any:
        return evaluate(
            plan.batch.images,
            found.images,
            initial=found.initial_images,
            true_labels=plan.batch.labels,
            used_labels=found.labels,
            sources=list(plan.batch.sources),
            patients=list(plan.batch.patients),
            gallery=distractors.images,
            gallery_patients=distractors.patients,
            lpips_weights=lpips_dir,
            prior=prior,
            prior_source=prior_source,
        )

    scores = score(reconstruction)
    summary = {**scores.to_dict(), "gallery_available": distractors.available}
    result = RunResult(
        plan, update, reconstruction, summary, list(scores.matched), seconds, prior=prior
    )
    want = baseline_wanted(config, auto=False) if baseline is None else baseline
    if want and config.defenses:
        plain = build_chain([]).client_update(
            plan.model, plan.batch, plan.settings, seed=config.seed
        )
        found, took = _attack(plan, plain, progress)
        base_scores = score(found)
        base_summary = {**base_scores.to_dict(), "gallery_available": distractors.available}
        result.baseline = Baseline(found, base_summary, list(base_scores.matched), took)
    return result
