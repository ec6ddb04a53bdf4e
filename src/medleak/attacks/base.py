"""What crosses into and out of an attack: the server's knowledge in, a reconstruction out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn

from medleak.models import model_info

if TYPE_CHECKING:
    from medleak.attacks.options import CommonOptions
    from medleak.fl import Update

LabelsSource = Literal["known", "inferred"]
# progress(iteration, loss): called once per iteration so the CLI can draw a progress bar.
Progress = Callable[[int, float], None]


@dataclass(frozen=True)
class ServerKnowledge:
    """What an honest-but-curious server knows besides the update itself.

    model: the architecture with the weights it sent this round.
    image_size / batch_size / num_classes: part of the protocol.
    true_labels: only when the threat model grants the label oracle (``--labels known``).
    """

    model: nn.Module
    image_size: int
    batch_size: int
    num_classes: int = 2
    true_labels: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        return model_info(self.model).channels


@dataclass
class Reconstruction:
    """An attack's result.

    images: N x 1 x H x W in [0, 1] (gray; an all-channel attack reports the channel mean).
    labels: the labels the attack used (known or inferred), N int64.
    initial_images: the attack's starting point at image resolution (for relative-leakage scores).
    trace: the gradient-matching loss at every iteration (all restarts, in order).
    info: attack-specific facts worth keeping (restart losses, chosen restart, ...).
    """

    images: torch.Tensor
    labels: torch.Tensor
    labels_source: LabelsSource
    initial_images: torch.Tensor
    trace: list[float]
    info: dict[str, Any] = field(default_factory=dict)


class Attack(Protocol):
    """The one attack interface: the update and the server's knowledge in, a reconstruction out.

    Deterministic given ``seed``; ``progress`` is called once per iteration. Optimisation
    attacks build on ``attacks.skeleton.match_gradients``; a new attack is one file plus one line
    in ``ATTACKS``.
    """

    def __call__(
        self,
        update: Update,
        knowledge: ServerKnowledge,
        options: CommonOptions,
        seed: int,
        progress: Progress | None = None,
    ) -> Reconstruction: ...
