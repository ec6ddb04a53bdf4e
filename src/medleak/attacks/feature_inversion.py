"""Invert a feature vector to an image: find x whose features at a layer equal a target.

Used after ``disaggregation`` has split a batch gradient into per-image feature vectors. With
ROG's LeNet at 128 px the first linear layer sees 65,536 features of a 16,384-pixel image, so
matching them pins the image down far better than matching a batch-summed gradient (Mahendran &
Vedaldi, CVPR 2015, "Understanding Deep Image Representations by Inverting Them", invert features
the same way: a feature loss plus a total-variation prior). L-BFGS converges in a few hundred
steps on this smooth problem; the box [0, 1] is enforced by clamping inside the forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from medleak.attacks.base import Progress
from medleak.attacks.dummy import report
from medleak.attacks.gradient_matching import total_variation

DEFAULT_TV = 1e-4
MAX_LINE_SEARCH = 25


def feature_loss(features: torch.Tensor, target: torch.Tensor, scaled: bool) -> torch.Tensor:
    """Relative squared error when the target's scale is known, else 1 - cosine (per image)."""
    if scaled:
        return ((features - target) ** 2).sum(1).div(target.pow(2).sum(1).clamp(min=1e-30)).sum()
    return (1 - F.cosine_similarity(features, target, dim=1)).sum()


def invert_features(
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    initial: torch.Tensor,
    iterations: int,
    scaled: bool = True,
    tv: float = DEFAULT_TV,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, list[float], int]:
    """Images (shape of ``initial``, in [0, 1]) matching ``target``; the loss per iteration; and
    the number of feature evaluations (L-BFGS line searches take one or more per iteration)."""
    images = initial.detach().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [images],
        lr=1,
        max_iter=1,
        max_eval=MAX_LINE_SEARCH,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    trace: list[float] = []
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad(set_to_none=True)
        clamped = images.clamp(0, 1)
        loss = feature_loss(feature_fn(clamped), target, scaled) + tv * total_variation(clamped)
        loss.backward()
        return loss

    for iteration in range(iterations):
        trace.append(float(optimizer.step(closure).detach()))
        report(progress, iteration, trace[-1])
    return images.detach().clamp(0, 1), trace, evaluations
