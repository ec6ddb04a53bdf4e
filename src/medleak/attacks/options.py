"""Options shared by the attacks, validated once so a bad value fails before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medleak.errors import ConfigError
from medleak.flags import option

ReconstructChannels = Literal["gray", "all"]
LabelsChoice = Literal["known", "inferred"]


@dataclass(frozen=True)
class AttackOptions:
    """What the user chose for an attack.

    iterations: optimisation steps per restart (ROG's and our default: 100).
    scale_factor: ROG's latent is image_size / scale_factor pixels on a side (ROG: 4).
    reconstruct_channels: ``gray`` optimises one channel and replicates it for a 3-channel model
        (an X-ray is gray); ``all`` optimises every channel as the ROG reference does.
    labels: ``known`` uses the true labels (the oracle ROG assumes); ``inferred`` recovers them
        from the update (iDLG / LLG+, or per image from the disaggregated features).
    lr: step size; None takes the attack's published default.
    tv: total-variation weight (Inverting Gradients' alpha); None takes the attack's default.
    prior: post-processing after optimisation: ``auto`` (classical on obfuscated updates, none
        otherwise), ``none``, ``classical`` or a ``.safetensors`` file from ``medleak
        train-prior``.
    aware: match the update the way its obfuscation allows (``attacks.aware_loss``); False
        uses the attack's own loss whatever the defense.
    restarts: independent random starts; the lowest final matching loss wins.
    analytic: when the model has a wide linear layer on non-negative features and the update is
        not obfuscated, split the batch gradient into per-image features and invert them
        (``attacks.disaggregation``); otherwise the optimisation alone runs.
    feature_iterations: L-BFGS iterations of the feature inversion (analytic path only);
        None uses ``iterations``.
    init: ROG's latent start: ``uniform`` in [0, 1] (the reference) or ``gray`` (0.5 with faint
        seeded noise; medleak's default, steadier under heavy obfuscation).
    soft_labels: DLG only: with ``labels="inferred"``, optimise soft labels jointly (as DLG).
    bn_statistics: match the BatchNorm batch statistics recovered from the running statistics
        the client sent (``attacks.bn_statistics``); None = on when the update carries them.
    fedavg_model: how the attacker models FedAvg's tau local steps: ``unroll`` them exactly, or
        ``first-order`` (tau times one gradient at the sent weights; tau times cheaper).
    """

    iterations: int = option(100, "--iterations", "optimisation steps", high=10**8)
    scale_factor: int = option(4, "--scale-factor", "ROG latent downscale", high=64)
    reconstruct_channels: ReconstructChannels = option(
        "gray",
        "--reconstruct-channels",
        "optimise one gray channel (default) or every channel",
    )
    labels: LabelsChoice = option("known", "--labels", "known = oracle; inferred = from the update")
    lr: float | None = option(
        None, "--attack-lr", "attack step size", default_text="published", high=1e3
    )
    tv: float | None = option(
        None, "--tv", "total-variation weight (Inverting Gradients)", high=1e6
    )
    prior: str = option(
        "auto",
        "--prior",
        "post-processing: auto (default), none, classical, or a prior.safetensors",
    )
    aware: bool = option(True, "--aware", "obfuscation-aware matching loss")
    restarts: int = option(1, "--restarts", "random starts, best by matching loss", high=1000)
    analytic: bool = option(
        True, "--analytic", "ROG: disaggregate the batch at a wide linear layer"
    )
    feature_iterations: int | None = option(
        None,
        "--feature-iterations",
        "ROG analytic stage: feature-inversion steps",
        default_text="--iterations",
        high=10**8,
    )
    soft_labels: bool = option(
        False, "--soft-labels", "DLG: optimise labels jointly", kind="switch"
    )
    init: Literal["uniform", "gray"] = option(
        "gray", "--init", "ROG's latent start: uniform in [0, 1] (the reference) or gray"
    )
    bn_statistics: bool | None = option(
        None,
        "--bn-statistics",
        "match BatchNorm statistics from the sent buffers",
        default_text="when sent",
    )
    fedavg_model: Literal["unroll", "first-order"] = option(
        "unroll",
        "--fedavg-model",
        "attacker's model of FedAvg: unroll tau steps (default) or tau x one gradient",
    )

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"iterations must be a positive integer, got {self.iterations}")
        if self.scale_factor < 1:
            raise ConfigError(f"scale factor must be >= 1, got {self.scale_factor}")
        if self.reconstruct_channels not in ("gray", "all"):
            raise ConfigError(
                f"reconstruct-channels must be gray or all, got {self.reconstruct_channels!r}"
            )
        if self.labels not in ("known", "inferred"):
            raise ConfigError(f"labels must be 'known' or 'inferred', got {self.labels!r}")
        if self.init not in ("uniform", "gray"):
            raise ConfigError(f"init must be uniform or gray, got {self.init!r}")
        if self.fedavg_model not in ("unroll", "first-order"):
            raise ConfigError(
                f"fedavg model must be unroll or first-order, got {self.fedavg_model!r}"
            )
        if self.restarts < 1:
            raise ConfigError(f"restarts must be a positive integer, got {self.restarts}")
        if self.feature_iterations is not None and self.feature_iterations < 1:
            raise ConfigError(
                f"feature iterations must be a positive integer, got {self.feature_iterations}"
            )
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"attack learning rate must be > 0, got {self.lr}")
        if self.tv is not None and self.tv < 0:
            raise ConfigError(f"total-variation weight must be >= 0, got {self.tv}")
