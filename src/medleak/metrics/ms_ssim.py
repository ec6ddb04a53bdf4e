"""Multi-scale SSIM (Wang, Simoncelli, Bovik 2003, "Multiscale structural similarity for image
quality assessment", Asilomar): contrast/structure at five dyadic scales, luminance at the coarsest.

Each scale uses the same 11 x 11 Gaussian SSIM as ``medleak.metrics.ssim`` (valid region only);
between scales images are halved by 2 x 2 averaging (an odd edge averages the pixels it has). With
the standard five scales the coarsest image must still hold an 11 px window, so the shorter side
must exceed 160 px (161 -> 81 -> 41 -> 21 -> 11); below that MS-SSIM is undefined and callers
report it as absent rather than inventing a smaller variant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medleak.metrics.psnr import _check_pair
from medleak.metrics.ssim import WINDOW, ssim_map_parts

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_min_size(scales: int = len(WEIGHTS)) -> int:
    """The smallest side length at which ``scales`` scales are defined (161 for five)."""
    return (WINDOW - 1) * 2 ** (scales - 1) + 1


def ms_ssim_unavailable_reason(height: int, width: int, scales: int = len(WEIGHTS)) -> str | None:
    """Why MS-SSIM cannot be computed at this size, or None when it can."""
    need = ms_ssim_min_size(scales)
    if min(height, width) < need:
        return (
            f"MS-SSIM with {scales} scales needs images of at least {need} px "
            f"(> 160), got {height} x {width}"
        )
    return None


def _halve(x: torch.Tensor) -> torch.Tensor:
    # ceil_mode: an odd last row/column forms its own (smaller) window, averaged over what it has.
    return F.avg_pool2d(x, 2, ceil_mode=True)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, weights: Sequence[float] = WEIGHTS) -> torch.Tensor:
    """Per-image MS-SSIM (N x C x H x W in [0, 1] -> N float64), mean over channels.

    Negative per-scale terms are clipped to 0 before the fractional powers (as pytorch-msssim
    does), since a negative base has no real power. Raises ValueError when the images are too
    small for ``len(weights)`` scales; see ``ms_ssim_unavailable_reason``.
    """
    _check_pair(x, y)
    reason = ms_ssim_unavailable_reason(x.shape[-2], x.shape[-1], len(weights))
    if reason:
        raise ValueError(reason)
    a, b = x.double(), y.double()
    result = torch.ones(x.shape[0], x.shape[1], dtype=torch.float64)
    with torch.no_grad():
        for level, w in enumerate(weights):
            lum, cs = ssim_map_parts(a, b)
            last = level == len(weights) - 1
            term = (lum * cs if last else cs).flatten(2).mean(dim=2).clamp(min=0)
            result = result * term.pow(w)
            if not last:
                a, b = _halve(a), _halve(b)
    return result.mean(dim=1)
