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


def _band(n: int, g: torch.Tensor) -> torch.Tensor:
    """(n - k + 1) x n matrix whose rows are the shifted window: ``band @ v`` is a valid filter."""
    k = g.numel()
    rows = torch.arange(n - k + 1).unsqueeze(1)
    cols = rows + torch.arange(k)
    m = torch.zeros(n - k + 1, n, dtype=g.dtype, device=g.device)
    m[rows.expand(-1, k), cols] = g.expand(n - k + 1, -1)
    return m


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Valid separable Gaussian filter of B x H x W as two banded matrix products.

    Same numbers as two 1-D convolutions, but float64 convolutions are slow on CPU while
    float64 matrix products run through BLAS (about 5x faster here, which matters when ranking
    a gallery of hundreds of images).
    """
    return _band(x.shape[-2], g) @ x @ _band(x.shape[-1], g).T


def ssim_map_parts(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Luminance and contrast-structure maps over the valid region, each N x C x h x w float64.

    SSIM = luminance * contrast-structure; MS-SSIM needs the two separately.
    """
    _check_pair(x, y)
    n, c, h, w = x.shape
    if min(h, w) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW} px, got {h} x {w}")
    g = gaussian_window().to(x.device)
    a = x.double().reshape(n * c, h, w)
    b = y.double().reshape(n * c, h, w)
    # One filter pass over the five moments at once.
    stats = _filter(torch.cat([a, b, a * a, b * b, a * b]), g)
    mu_a, mu_b, aa, bb, ab = stats.split(n * c)
    var_a = aa - mu_a * mu_a
    var_b = bb - mu_b * mu_b
    cov = ab - mu_a * mu_b
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    lum = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    shape = (n, c, h - WINDOW + 1, w - WINDOW + 1)
    return lum.reshape(shape), cs.reshape(shape)


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The SSIM map over the valid region, N x C x (H-10) x (W-10), float64."""
    lum, cs = ssim_map_parts(x, y)
    return lum * cs


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (N x C x H x W in [0, 1] -> N float64): valid-region and channel mean."""
    with torch.no_grad():
        return ssim_map(x, y).flatten(1).mean(dim=1)


def pairwise_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of every image in ``a`` (N) against every image in ``b`` (M): an N x M float64 matrix.

    Each image's local mean and energy are filtered once; only the cross term is filtered per
    pair, so ranking a gallery costs one filter pass per pair instead of five.
    """
    if a.dim() != 4 or b.dim() != 4 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"cannot compare {tuple(a.shape)} with {tuple(b.shape)}")
    n, c, h, w = a.shape
    m = b.shape[0]
    if min(h, w) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW} px, got {h} x {w}")
    if n == 0 or m == 0:
        return torch.zeros(n, m, dtype=torch.float64)
    g = gaussian_window().to(a.device)
    a = a.detach().double().reshape(n, c, h, w)
    b = b.detach().double().reshape(m, c, h, w)
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = _filter(a * a, g) - mu_a * mu_a
    var_b = _filter(b * b, g) - mu_b * mu_b
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    rows = []
    for i in range(n):
        cov = _filter(a[i : i + 1] * b, g) - mu_a[i : i + 1] * mu_b
        num = (2 * mu_a[i : i + 1] * mu_b + c1) * (2 * cov + c2)
        den = (mu_a[i : i + 1] ** 2 + mu_b**2 + c1) * (var_a[i : i + 1] + var_b + c2)
        rows.append((num / den).flatten(1).mean(dim=1))
    return torch.stack(rows)
