"""Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004, IEEE TIP 13(4)).

Computed exactly as scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``: an 11 x 11 Gaussian window (sigma 1.5, truncated at
3.5 sigma and normalised, as ``scipy.ndimage.gaussian_filter`` does), K1 = 0.01, K2 = 0.03, and the
SSIM map averaged over the *valid* region only (5 px cropped from every border, where
scikit-image's reflect padding would otherwise matter). So a "valid" convolution gives the same
number without any padding. Several channels: the mean of the per-channel values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medleak.metrics.psnr import _check_pair

WINDOW = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03
DATA_RANGE = 1.0


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian taps (float64) used separably in both directions."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Valid separable Gaussian filter of B x 1 x H x W."""
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The SSIM map over the valid region, N x C x (H-10) x (W-10), float64."""
    _check_pair(x, y)
    n, c, h, w = x.shape
    if min(h, w) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW} px, got {h} x {w}")
    g = gaussian_window().to(x.device)
    a = x.double().reshape(n * c, 1, h, w)
    b = y.double().reshape(n * c, 1, h, w)
    # One filter pass over the five moments at once.
    stats = _filter(torch.cat([a, b, a * a, b * b, a * b]), g)
    mu_a, mu_b, aa, bb, ab = stats.split(n * c)
    var_a = aa - mu_a * mu_a
    var_b = bb - mu_b * mu_b
    cov = ab - mu_a * mu_b
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return (num / den).reshape(n, c, h - WINDOW + 1, w - WINDOW + 1)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (N x C x H x W in [0, 1] -> N float64): valid-region and channel mean."""
    with torch.no_grad():
        return ssim_map(x, y).flatten(1).mean(dim=1)


def pairwise_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of every image in ``a`` (N) against every image in ``b`` (M): an N x M matrix.

    Row by row, so memory stays at M images rather than N x M.
    """
    if a.dim() != 4 or b.dim() != 4 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"cannot compare {tuple(a.shape)} with {tuple(b.shape)}")
    rows = [ssim(a[i : i + 1].expand_as(b), b) for i in range(a.shape[0])]
    if not rows:
        return torch.zeros(0, b.shape[0], dtype=torch.float64)
    return torch.stack(rows)
