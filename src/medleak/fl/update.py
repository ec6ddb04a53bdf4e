"""What a client sends to the server: one update, and the FL settings that produced it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from medleak.errors import ConfigError, MedleakError
from medleak.flags import option

Algorithm = Literal["fedsgd", "fedavg"]


@dataclass(frozen=True)
class FLSettings:
    """Client hyper-parameters the honest-but-curious server knows (it set them).

    fedsgd: the update is the gradient of the mean loss over the batch.
    fedavg: ``local_steps`` full-batch SGD steps at ``local_lr``; the update is (w0 - w_tau) / lr.
    send_buffers: whether the update carries the model's buffers after local training (BatchNorm
        running statistics, as FedAvg clients send them so the server can average them); None =
        FedAvg yes, FedSGD no.
    """

    algorithm: Algorithm = option("fedsgd", "--fl", "client algorithm")
    local_steps: int = option(1, "--local-steps", "FedAvg local SGD steps tau", high=100_000)
    local_lr: float = option(1e-4, "--local-lr", "FedAvg local learning rate", high=1e3)
    send_buffers: bool | None = option(
        None,
        "--send-buffers",
        "the update carries BatchNorm running statistics",
        default_text="FedAvg yes",
    )

    def __post_init__(self) -> None:
        if self.algorithm not in ("fedsgd", "fedavg"):
            raise ConfigError(f"unknown FL algorithm {self.algorithm!r}; choose fedsgd or fedavg")
        if self.local_steps < 1:
            raise ConfigError(f"local steps must be >= 1, got {self.local_steps}")
        if not self.local_lr > 0:
            raise ConfigError(f"local learning rate must be > 0, got {self.local_lr}")

    @property
    def sends_buffers(self) -> bool:
        if self.send_buffers is None:
            return self.algorithm == "fedavg"
        return self.send_buffers

    @property
    def steps(self) -> int:
        """Number of gradient evaluations the client makes (1 for FedSGD)."""
        return 1 if self.algorithm == "fedsgd" else self.local_steps


RelianceKind = Literal["exact", "noisy", "scaled", "quantized", "low_rank", "sparse", "sign"]


@dataclass(frozen=True)
class Declaration:
    """What the server can still rely on after one defense stage: the defense -> attack contract.

    An attack reads these, never a defense's name, so a new defense is attacked the way it
    declares, and one that declares nothing cannot be run (the chain refuses it).

    kind:
        exact: the values are the true update's.
        noisy: the true update plus random error (``zero_mean`` when unbiased: Gaussian, DP).
        scaled: the true update times an unknown per-tensor or global factor (clipping).
        quantized: each value rounded to a coarse grid (``zero_mean`` when rounding is stochastic).
        low_rank: a low-rank approximation of each matrix (PowerSGD).
        sparse: some coordinates transmitted, the rest zero and *unknown*; the transmitted ones
            multiplied by ``rescale`` (rand-k: n/k); ``bounded``: every dropped entry is no larger
            than every kept one of its tensor or of the update (top-k).
        sign: only the signs are known.
    """

    kind: RelianceKind
    zero_mean: bool = False
    rescale: float = 1.0
    bounded: bool = False

    def __post_init__(self) -> None:
        if self.kind not in RELIANCE_KINDS:
            raise ConfigError(f"unknown declaration kind {self.kind!r}")


RELIANCE_KINDS: tuple[str, ...] = (
    "exact",
    "noisy",
    "scaled",
    "quantized",
    "low_rank",
    "sparse",
    "sign",
)


@dataclass(frozen=True)
class Update:
    """One client update as the server receives it.

    tensors: parameter name -> tensor, the shapes of the model's parameters.
    kind: "gradient" (FedSGD) or "pseudo_gradient" ((w0 - w_tau) / lr, FedAvg).
    bits_sent: bits the client transmits for this representation (32 per float by default).
    defenses: the resolved obfuscations applied, in order, as {"name": ..., "params": {...}};
        an attacker may read these (the protocol is public) to be obfuscation-aware.
    declarations: what each stage of ``defenses`` declares the server can rely on, stage by
        stage (one ``Declaration`` per entry of ``defenses``); attacks read these.
    privacy: formal DP guarantee when a DP defense ran: epsilon, delta, sample_rate, steps.
    buffers: the client's buffers after local training (BatchNorm running statistics) when it
        sends them (``FLSettings.sends_buffers``), else None; obfuscations leave them as they are.
    """

    tensors: dict[str, torch.Tensor]
    kind: Literal["gradient", "pseudo_gradient"]
    fl: FLSettings
    batch_size: int
    bits_sent: int
    defenses: tuple[dict[str, Any], ...] = ()
    declarations: tuple[Declaration, ...] = ()
    privacy: dict[str, Any] | None = field(default=None)
    buffers: dict[str, torch.Tensor] | None = field(default=None)

    def __post_init__(self) -> None:
        # An obfuscation without its declaration would be attacked as if it were exact: refuse.
        if len(self.declarations) != len(self.defenses):
            raise MedleakError(
                f"update records {len(self.defenses)} defense stages but "
                f"{len(self.declarations)} declarations of what the server can rely on"
            )

    @property
    def num_coordinates(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    @property
    def bits_raw(self) -> int:
        """Bits of the unobfuscated float32 update."""
        return 32 * self.num_coordinates

    def replace(self, **changes: Any) -> Update:
        return dataclasses.replace(self, **changes)

    def check_finite(self) -> None:
        """Refuse NaN/inf: attacking such an update would give silently meaningless numbers."""
        for name, tensor in self.tensors.items():
            if not torch.isfinite(tensor).all():
                bad = int((~torch.isfinite(tensor)).sum())
                raise MedleakError(f"update tensor {name!r} contains {bad} NaN/inf values")
