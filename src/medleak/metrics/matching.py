"""Which reconstruction belongs to which original.

A batch attack returns its images in an arbitrary order (the gradient of a mean loss is
permutation invariant), so before scoring we pair them up by a linear assignment that maximises
the total SSIM (Hungarian method, ``scipy.optimize.linear_sum_assignment``), as breaching and the
ROG evaluation do.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from medleak.metrics.ssim import pairwise_ssim


def match_reconstructions(originals: torch.Tensor, reconstructions: torch.Tensor) -> list[int]:
    """``matched[i]`` is the index of the reconstruction assigned to original ``i``.

    Both are N x C x H x W with the same N; the assignment maximises the summed SSIM.
    """
    if originals.shape != reconstructions.shape:
        raise ValueError(
            f"originals {tuple(originals.shape)} and reconstructions "
            f"{tuple(reconstructions.shape)} differ in shape"
        )
    sim = pairwise_ssim(originals, reconstructions).numpy()
    rows, cols = linear_sum_assignment(sim, maximize=True)
    matched = [0] * len(rows)
    for r, c in zip(rows, cols, strict=True):
        matched[int(r)] = int(c)
    return matched
