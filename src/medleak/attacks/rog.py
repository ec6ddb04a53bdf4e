"""ROG: reconstruction from obfuscated gradients (Yue et al., USENIX Security 2023), completed.

The core (``--preset rog-core``) is the reference: the attacker optimises a LOW-RESOLUTION latent
image (side = image size / scale factor, ROG's default 4), upsamples it bicubically and matches
the resulting dummy update to the received one in squared L2, with the true labels. The low
dimension of the latent is what makes ROG robust to obfuscation noise. Published defaults:
latent uniform in [0, 1], Adam at lr 0.05 with cosine annealing to 0.1 lr, 100 iterations.

medleak's full attack adds, each switchable:
- labels inferred from the update (``attacks.labels``), not an oracle;
- a gray latent replicated to the model's channels (an X-ray is gray);
- an obfuscation-aware matching loss (``attacks.aware_loss``);
- random restarts, best by matching loss (``attacks.restarts``);
- an analytic stage for models with a wide linear layer on non-negative features: split the
  batch gradient into per-image features and invert them (``attacks.analytic``);
- post-processing by a prior (``attacks.priors``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F

from medleak.attacks import analytic, bn_statistics, head_features, quantized_rows, sign_support
from medleak.attacks.aware_loss import aware_loss, loss_kind
from medleak.attacks.base import Progress, Reconstruction, ServerKnowledge
from medleak.attacks.dummy import (
    check_image_size,
    check_update_fits,
    dummy_update,
    reconstruction_channels,
    report,
    seeded_uniform,
    trainable_params,
)
from medleak.attacks.feature_inversion import DEFAULT_TV
from medleak.attacks.labels import resolve_labels
from medleak.attacks.latent_inversion import Inversion, LatentFit
from medleak.attacks.layers import LinearLayer
from medleak.attacks.options import ImageMatchingOptions
from medleak.attacks.restarts import Run
from medleak.attacks.skeleton import finish, match_gradients
from medleak.errors import ConfigError
from medleak.fl import Update
from medleak.flags import option

DEFAULT_LR = 0.05


@dataclass(frozen=True)
class RogOptions(ImageMatchingOptions):
    """ROG's options: the shared ones plus its latent.

    scale_factor: ROG's latent is image_size / scale_factor pixels on a side (ROG: 4).
    feature_iterations: L-BFGS iterations of the analytic stage's feature inversion; None uses
        ``iterations``.
    init: the latent's start: ``uniform`` in [0, 1] (the reference) or ``gray`` (0.5 with faint
        seeded noise; medleak's default, steadier under heavy obfuscation).
    """

    scale_factor: int = option(4, "--scale-factor", "ROG latent downscale", high=64)
    feature_iterations: int | None = option(
        None,
        "--feature-iterations",
        "ROG analytic stage: feature-inversion steps",
        default_text="--iterations",
        high=10**8,
    )
    init: Literal["uniform", "gray"] = option(
        "gray", "--init", "ROG's latent start: uniform in [0, 1] (the reference) or gray"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scale_factor < 1:
            raise ConfigError(f"scale factor must be >= 1, got {self.scale_factor}")
        if self.init not in ("uniform", "gray"):
            raise ConfigError(f"init must be uniform or gray, got {self.init!r}")
        if self.feature_iterations is not None and self.feature_iterations < 1:
            raise ConfigError(
                f"feature iterations must be a positive integer, got {self.feature_iterations}"
            )

    def check_setting(self, image_size: int) -> None:
        if image_size % self.scale_factor:
            raise ConfigError(
                f"image size {image_size} is not divisible by scale factor {self.scale_factor}"
            )


def upsample(latent: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic upsampling from latent to image resolution, as ROG does before the model."""
    if latent.shape[-1] == size:
        return latent
    return F.interpolate(latent, size=(size, size), mode="bicubic", align_corners=False)


def start_latent(shape: tuple[int, ...], seed: int, init: str) -> torch.Tensor:
    """ROG's uniform [0, 1] start, or mid-gray with faint seeded noise (``gray``): under heavy
    obfuscation a uniform start leaves saturated blotches the weak signal never removes."""
    noise = seeded_uniform(shape, seed)
    return noise if init == "uniform" else 0.5 + 0.1 * (noise - 0.5)


def optimise_latent(
    update: Update,
    knowledge: ServerKnowledge,
    options: RogOptions,
    labels: torch.Tensor,
    seed: int,
    progress: Progress | None,
) -> Run:
    """One ROG optimisation of the low-resolution latent from the seed's uniform start."""
    size = knowledge.image_size
    side = size // options.scale_factor
    channels = reconstruction_channels(knowledge, options)
    params = trainable_params(knowledge)
    target = {n: t.detach() for n, t in update.tensors.items()}
    loss_fn = aware_loss(update.declarations, options.aware)
    first_order = options.fedavg_model == "first-order"
    nothing = float(loss_fn({n: torch.zeros_like(t) for n, t in target.items()}, target))
    term = bn_statistics.term_for(knowledge, update, options.bn_statistics, nothing)

    latent = start_latent((knowledge.batch_size, channels, side, side), seed, options.init)
    initial = upsample(latent, size).clamp(0, 1).mean(1, keepdim=True)
    latent.requires_grad_(True)
    lr = options.lr or DEFAULT_LR
    optimizer = torch.optim.Adam([latent], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=options.iterations, eta_min=0.1 * lr
    )
    trace: list[float] = []
    for iteration in range(options.iterations):
        optimizer.zero_grad(set_to_none=True)
        with bn_statistics.recording(term):
            dummy = dummy_update(
                knowledge, params, upsample(latent, size), labels, update, first_order
            )
        loss = loss_fn(dummy, target) + bn_statistics.penalty(term)
        loss.backward(inputs=[latent])
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            latent.clamp_(0, 1)
        trace.append(loss.item())
        report(progress, iteration, trace[-1])
    with torch.no_grad():
        images = upsample(latent, size).clamp(0, 1).mean(1, keepdim=True)
    return Run(images, trace, trace[-1], initial)


@dataclass(frozen=True)
class LatentStage:
    """A stage that reads one target per image off a wide layer and inverts it on the latent:
    ``invert(fit, progress)`` -> images, start, trace (what was read is bound)."""

    name: str
    layer: LinearLayer
    invert: Callable[[LatentFit, Progress | None], Inversion]
    default_tv: float
    info: dict[str, Any]


def latent_stage(knowledge: ServerKnowledge, update: Update, seed: int) -> LatentStage | None:
    """The sign-support stage when the update declares signs, else the row-groups stage when it
    declares unbiased quantization; None when neither applies."""
    signs = sign_support.supports_of(knowledge, update)
    if signs is not None:
        layer, supports = signs
        info = {
            "sign_patterns": supports.patterns,
            "patterns_explained": supports.explained,
            "supports_found": len(supports.positive),
        }
        invert = partial(sign_support.reconstruct, knowledge, layer, supports)
        return LatentStage("sign-support", layer, invert, sign_support.DEFAULT_TV, info)
    rows = quantized_rows.groups_of(knowledge, update, seed)
    if rows is None:
        return None
    layer, groups = rows
    return LatentStage(
        "row-groups",
        layer,
        partial(quantized_rows.reconstruct, knowledge, layer, groups),
        quantized_rows.DEFAULT_TV,
        {"lattice_residual": groups.residual},
    )


@dataclass(frozen=True)
class StageInput:
    """What every stage reads: the update, the server's knowledge, the options and the labels."""

    update: Update
    knowledge: ServerKnowledge
    options: RogOptions
    seed: int
    progress: Progress | None
    labels: torch.Tensor

    @property
    def steps(self) -> int:
        return self.options.feature_iterations or self.options.iterations


@dataclass(frozen=True)
class StageResult:
    images: torch.Tensor
    initial: torch.Tensor
    trace: list[float]
    labels: torch.Tensor
    info: dict[str, Any]


@dataclass(frozen=True)
class AnalyticStage:
    """A closed-form stage of ROG, tried in ``ANALYTIC_STAGES`` order before the optimisation:
    ``prepare`` reads what it needs off the update (None when the stage does not apply: the
    model has no such layer, or the update's declaration rules it out), ``run`` inverts it."""

    name: str
    prepare: Callable[[StageInput], Any | None]
    run: Callable[[StageInput, Any], StageResult]


def _prepare_disaggregation(given: StageInput) -> Any | None:
    return analytic.disaggregate_update(given.knowledge, given.update, given.seed)


def _run_disaggregation(given: StageInput, found: Any) -> StageResult:
    layer, parts = found
    tv = DEFAULT_TV if given.options.tv is None else given.options.tv
    images, initial, trace, evaluations = analytic.reconstruct(
        given.knowledge, layer, parts, given.steps, tv, given.seed, given.progress
    )
    labels = given.labels
    if given.options.labels == "inferred" and parts.labels is not None:
        labels = parts.labels
    info = {
        "stage": "analytic",
        "layer": layer.weight_name,
        "rank_energy": parts.rank_energy,
        "feature_iterations": given.steps,
        "feature_evaluations": evaluations,
        "gradient_evaluations": 0,
        "budget": 0,
    }
    return StageResult(images, initial, trace, labels, info)


def _prepare_head(given: StageInput) -> Any | None:
    return head_features.exact_head_features(given.knowledge, given.update)


def _run_head(given: StageInput, head: Any) -> StageResult:
    options = given.options
    images, initial, trace, evaluations = head_features.reconstruct(
        given.knowledge,
        given.update,
        head,
        given.labels,
        given.steps,
        DEFAULT_TV if options.tv is None else options.tv,
        head_features.GRADIENT_WEIGHT,
        bn_statistics.term_for(given.knowledge, given.update, options.bn_statistics),
        given.seed,
        given.progress,
    )
    info = {
        "stage": "head-features",
        "layer": head.layer.weight_name,
        "gradient_evaluations": evaluations,
        "budget": evaluations,
    }
    return StageResult(images, initial, trace, given.labels, info)


def _prepare_latent(given: StageInput) -> LatentStage | None:
    return latent_stage(given.knowledge, given.update, given.seed)


def _run_latent(given: StageInput, latent: LatentStage) -> StageResult:
    size = given.knowledge.image_size
    tv = latent.default_tv if given.options.tv is None else given.options.tv
    fit = LatentFit(given.steps, size // given.options.scale_factor, tv, given.seed)
    images, initial, trace = latent.invert(fit, given.progress)
    info = {
        "stage": latent.name,
        "layer": latent.layer.weight_name,
        **latent.info,
        "feature_iterations": given.steps,
        "gradient_evaluations": 0,
        "budget": 0,
    }
    return StageResult(images, initial, trace, given.labels, info)


#: ROG's closed-form stages in the order they are tried (``--analytic``); the first that applies
#: runs, otherwise the latent optimisation does.
ANALYTIC_STAGES: tuple[AnalyticStage, ...] = (
    AnalyticStage("analytic", _prepare_disaggregation, _run_disaggregation),
    AnalyticStage("head-features", _prepare_head, _run_head),
    AnalyticStage("latent", _prepare_latent, _run_latent),
)


def attack(
    update: Update,
    knowledge: ServerKnowledge,
    options: RogOptions,
    seed: int,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct the client's batch from ``update``; see the module docstring."""
    check_update_fits(update, knowledge)
    check_image_size(knowledge, options.scale_factor)
    size = knowledge.image_size
    labels = resolve_labels(update, knowledge, options, seed)
    info: dict = {
        "latent_size": size // options.scale_factor,
        "reconstruct_channels": options.reconstruct_channels,
        "aware": options.aware,
        "fedavg_model": options.fedavg_model,
        "loss": loss_kind(update.declarations) if options.aware else "exact",
        "bn_statistics": bn_statistics.term_for(knowledge, update, options.bn_statistics)
        is not None,
    }
    given = StageInput(update, knowledge, options, seed, progress, labels)
    for stage in ANALYTIC_STAGES if options.analytic else ():
        prepared = stage.prepare(given)
        if prepared is None:
            continue
        result = stage.run(given, prepared)
        info.update(result.info, trace_restart=[0] * len(result.trace))
        if options.restarts > 1:  # said, not silently ignored
            info["restarts_note"] = (
                f"the {result.info['stage']} stage is deterministic: --restarts applies to "
                "the optimisation only"
            )
        return finish(
            update, options, result.images, result.labels, result.initial, result.trace, info
        )
    info.update(
        stage="optimisation",
        gradient_evaluations=options.iterations * options.restarts,
        budget=options.iterations * options.restarts,
    )
    return match_gradients(
        update,
        knowledge,
        options,
        seed,
        lambda used, s: optimise_latent(update, knowledge, options, used, s, progress),
        info,
        labels,
    )
