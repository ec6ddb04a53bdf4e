"""Random restarts: run an attack from several seeds and keep the best by matching loss.

Inverting Gradients (Geiping et al., 2020) uses restarts because gradient matching is non-convex;
the lowest final gradient-matching loss is the only selection criterion a server has (it never
sees the images).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Run:
    """One restart's outcome: its images (image resolution, gray), loss trace, final loss, the
    start image it drew (same resolution, gray) and, when it optimised them, its labels."""

    images: torch.Tensor
    trace: list[float]
    final_loss: float
    initial: torch.Tensor
    labels: torch.Tensor | None = None


def best_of(run: Callable[[int], Run], restarts: int, seed: int) -> tuple[Run, dict]:
    """Run ``restarts`` times (seeds seed, seed+1, ...); return the lowest-loss run and a summary.

    The summary holds every restart's final loss, the chosen index, the concatenated trace and
    ``trace_restart`` (restart index per trace row, for trace.csv).
    """
    runs = [run(seed + r) for r in range(restarts)]
    losses = [r.final_loss for r in runs]
    chosen = min(range(restarts), key=lambda r: (losses[r] != losses[r], losses[r]))
    trace = [v for r in runs for v in r.trace]
    trace_restart = [i for i, r in enumerate(runs) for _ in r.trace]
    info = {
        "restarts": restarts,
        "restart_losses": losses,
        "chosen_restart": chosen,
        "trace_restart": trace_restart,
    }
    return runs[chosen], {"trace": trace, **info}
