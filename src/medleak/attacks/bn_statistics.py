"""BatchNorm statistics the client sends: exact targets for a GradInversion-style regularizer.

A FedAvg client sends its BatchNorm running statistics with the weights so the server can average
them. Each training-mode forward pass updates them as new = (1 - m) old + m s, with s the batch
mean and the UNBIASED batch variance of the layer's input and m the layer's momentum. The server
sent ``old`` and knows m, so after tau local steps (tau forward passes on the same batch)

    new = (1 - m)^tau old + sum_t m (1 - m)^(tau - 1 - t) s_t,

and the weighted mixture of the tau batch statistics is known exactly; at tau = 1 it is the batch
statistic itself. GradInversion (Yin et al., CVPR 2021) regularises with the distance of the
dummy batch's statistics to the running ones of a trained model; here the targets are the
victim batch's own, and the dummy's mixture is computed from the same tau forward passes the
unrolled client makes, so the term is exact at every tau.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from medleak.attacks.base import ServerKnowledge
from medleak.fl import Update

# Weight of the statistics term beside a cosine gradient distance (both are O(1) at the start).
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True)
class BatchStatistics:
    """Per BatchNorm layer: the mixture of the client's batch means and unbiased variances."""

    modules: dict[str, _BatchNorm]
    means: dict[str, torch.Tensor]
    variances: dict[str, torch.Tensor]
    mixture: tuple[float, ...]  # weight of forward pass t, summing to 1


def batchnorm_layers(model: nn.Module) -> dict[str, _BatchNorm]:
    """The layers whose running statistics a training-mode forward pass updates."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats
    }


def mixture_weights(momentum: float, passes: int) -> tuple[float, ...]:
    """Weight of each forward pass's statistic in (new - (1 - m)^tau old) / (1 - (1 - m)^tau)."""
    scale = 1 - (1 - momentum) ** passes
    return tuple(momentum * (1 - momentum) ** (passes - 1 - t) / scale for t in range(passes))


def recover(knowledge: ServerKnowledge, update: Update) -> BatchStatistics | None:
    """The client's batch statistics from the buffers it sent, or None when it sent none (or a
    layer uses a cumulative average, momentum None, whose count the attack would need too, or
    the client froze BatchNorm, ``fl.bn_mode`` eval: its buffers hold no batch statistic)."""
    if not update.buffers or update.fl.bn_mode == "eval":
        return None
    layers = batchnorm_layers(knowledge.model)
    if not layers:
        return None
    passes = update.fl.steps
    means: dict[str, torch.Tensor] = {}
    variances: dict[str, torch.Tensor] = {}
    momenta = set()
    for name, module in layers.items():
        prefix = f"{name}." if name else ""
        new_mean = update.buffers.get(f"{prefix}running_mean")
        new_var = update.buffers.get(f"{prefix}running_var")
        if module.momentum is None or new_mean is None or new_var is None:
            return None
        assert module.running_mean is not None and module.running_var is not None
        momenta.add(float(module.momentum))
        decay = (1 - float(module.momentum)) ** passes
        # float64: dividing by m = 0.1 amplifies the float32 rounding of the buffers tenfold.
        old_mean, old_var = module.running_mean.double(), module.running_var.double()
        means[name] = ((new_mean.double() - decay * old_mean) / (1 - decay)).float()
        variances[name] = ((new_var.double() - decay * old_var) / (1 - decay)).float()
    if len(momenta) != 1:
        return None
    return BatchStatistics(layers, means, variances, mixture_weights(momenta.pop(), passes))


def batch_statistics(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance over every dimension but the channel's."""
    dims = [d for d in range(inputs.dim()) if d != 1]
    return inputs.mean(dims), inputs.var(dims, correction=1)


@dataclass
class StatisticsTerm:
    """The regularizer: record the dummy's statistics during its forward passes, then score."""

    stats: BatchStatistics
    weight: float = DEFAULT_WEIGHT
    _recorded: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Capture each BatchNorm layer's input statistics in every forward pass inside."""
        self._recorded = {name: [] for name in self.stats.modules}
        handles = []
        for name, module in self.stats.modules.items():

            def hook(_: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
                self._recorded[name].append(batch_statistics(args[0]))

            handles.append(module.register_forward_pre_hook(hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def loss(self) -> torch.Tensor:
        """Mean over layers of the relative squared error of the mixed mean and variance."""
        total = torch.zeros(())
        for name, passes in self._recorded.items():
            # One pass for tau steps: a first-order attacker model, whose statistics at w0 stand
            # for all tau (the weights move little at FL's learning rates).
            mixture = (1.0,) if len(passes) == 1 else self.stats.mixture
            if len(passes) != len(mixture):
                raise RuntimeError(
                    f"BatchNorm layer {name!r} ran {len(passes)} times, expected {len(mixture)}"
                )
            mean = sum(w * m for w, (m, _) in zip(mixture, passes))
            var = sum(w * v for w, (_, v) in zip(mixture, passes))
            target_mean, target_var = self.stats.means[name], self.stats.variances[name]
            error = (mean - target_mean).pow(2).sum() + (var - target_var).pow(2).sum()
            scale = target_mean.pow(2).sum() + target_var.pow(2).sum()
            total = total + error / scale.clamp(min=1e-30)
        return self.weight * total / max(len(self._recorded), 1)


def term_for(
    knowledge: ServerKnowledge, update: Update, enabled: bool | None, scale: float = 1.0
) -> StatisticsTerm | None:
    """The statistics term when the switch allows it (None = on when buffers were sent).

    ``scale``: what the attack's matching loss gives for an all-zero dummy update (1 for a
    cosine, the squared norm of the update for ROG's L2), so the term keeps its weight relative
    to the matching loss whatever the update's magnitude.
    """
    if enabled is False:
        return None
    stats = recover(knowledge, update)
    return None if stats is None else StatisticsTerm(stats, DEFAULT_WEIGHT * max(scale, 1e-12))


def recording(term: StatisticsTerm | None) -> Any:
    """``term.recording()``, or a no-op without a term (so callers need no branch)."""
    return nullcontext() if term is None else term.recording()


def penalty(term: StatisticsTerm | None) -> torch.Tensor | float:
    """``term.loss()``, or 0 without a term."""
    return 0.0 if term is None else term.loss()
