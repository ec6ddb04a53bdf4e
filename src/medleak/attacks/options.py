"""Options shared by the attacks, validated once so a bad value fails before any work starts.

Each attack declares its own options dataclass (in its own module) on these bases; the
registry (``attacks.ATTACKS``) records which, so an option the chosen attack does not have is
refused and never enters the run id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medleak.errors import ConfigError
from medleak.flags import option

ReconstructChannels = Literal["gray", "all"]
LabelsChoice = Literal["known", "inferred"]


@dataclass(frozen=True)
class CommonOptions:
    """What every attack takes (each attack's own options extend this; ``attacks.ATTACKS`` says
    which attack has which).

    iterations: optimisation steps per restart (ROG's and our default: 100).
    reconstruct_channels: ``gray`` optimises one channel and replicates it for a 3-channel model
        (an X-ray is gray); ``all`` optimises every channel as the ROG reference does.
    labels: ``known`` uses the true labels (the oracle ROG assumes); ``inferred`` recovers them
        from the update (iDLG / LLG+, or per image from the disaggregated features).
    lr: step size; None takes the attack's published default.
    prior: post-processing after optimisation: ``auto`` (classical on obfuscated updates, none
        otherwise), ``none``, ``classical`` or a ``.safetensors`` file from ``medleak
        train-prior``.
    aware: match the update the way its obfuscation allows (``attacks.aware_loss``); False
        uses the attack's own loss whatever the defense.
    restarts: independent random starts; the lowest final matching loss wins.
    fedavg_model: how the attacker models FedAvg's tau local steps: ``unroll`` them exactly, or
        ``first-order`` (tau times one gradient at the sent weights; tau times cheaper).
    """

    iterations: int = option(100, "--iterations", "optimisation steps", high=10**8)
    reconstruct_channels: ReconstructChannels = option(
        "gray",
        "--reconstruct-channels",
        "optimise one gray channel (default) or every channel",
    )
    labels: LabelsChoice = option("known", "--labels", "known = oracle; inferred = from the update")
    lr: float | None = option(
        None, "--attack-lr", "attack step size", default_text="published", high=1e3
    )
    prior: str = option(
        "auto",
        "--prior",
        "post-processing: auto (default), none, classical, or a prior.safetensors",
    )
    aware: bool = option(True, "--aware", "obfuscation-aware matching loss")
    restarts: int = option(1, "--restarts", "random starts, best by matching loss", high=1000)
    fedavg_model: Literal["unroll", "first-order"] = option(
        "unroll",
        "--fedavg-model",
        "attacker's model of FedAvg: unroll tau steps (default) or tau x one gradient",
    )

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"iterations must be a positive integer, got {self.iterations}")
        if self.reconstruct_channels not in ("gray", "all"):
            raise ConfigError(
                f"reconstruct-channels must be gray or all, got {self.reconstruct_channels!r}"
            )
        if self.labels not in ("known", "inferred"):
            raise ConfigError(f"labels must be 'known' or 'inferred', got {self.labels!r}")
        if self.fedavg_model not in ("unroll", "first-order"):
            raise ConfigError(
                f"fedavg model must be unroll or first-order, got {self.fedavg_model!r}"
            )
        if self.restarts < 1:
            raise ConfigError(f"restarts must be a positive integer, got {self.restarts}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"attack learning rate must be > 0, got {self.lr}")

    def check_setting(self, image_size: int) -> None:
        """Refuse a setting this attack cannot run (before any work); none by default."""


@dataclass(frozen=True)
class ImageMatchingOptions(CommonOptions):
    """Options of the attacks that optimise images against the update (ROG, Inverting Gradients).

    tv: total-variation weight (Inverting Gradients' alpha); None takes the attack's default.
    analytic: when the model has a wide linear layer on non-negative features and the update is
        not obfuscated, split the batch gradient into per-image features and invert them
        (``attacks.disaggregation``); otherwise the optimisation alone runs.
    bn_statistics: match the BatchNorm batch statistics recovered from the running statistics
        the client sent (``attacks.bn_statistics``); None = on when the update carries them.
    """

    tv: float | None = option(
        None, "--tv", "total-variation weight (Inverting Gradients)", high=1e6
    )
    analytic: bool = option(
        True, "--analytic", "ROG: disaggregate the batch at a wide linear layer"
    )
    bn_statistics: bool | None = option(
        None,
        "--bn-statistics",
        "match BatchNorm statistics from the sent buffers",
        default_text="when sent",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tv is not None and self.tv < 0:
            raise ConfigError(f"total-variation weight must be >= 0, got {self.tv}")
