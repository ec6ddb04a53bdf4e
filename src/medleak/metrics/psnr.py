"""Peak signal-to-noise ratio, the pixel-level closeness every gradient-inversion paper reports."""

from __future__ import annotations

import torch

PSNR_CAP_DB = 100.0


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(
            f"expected two N x C x H x W tensors of equal shape, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, 10 log10(1 / MSE), for images in [0, 1] (N x C x H x W -> N).

    The MSE is taken over channels and pixels of each image. An exact copy (MSE 0) would be
    +inf, which cannot go into JSON or a mean, so every value is capped at 100 dB
    (``PSNR_CAP_DB``): at that level the difference is below float32 resolution anyway.
    Computed in float64 so tiny errors are not rounded to 0.
    """
    _check_pair(x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(dim=1)
    with torch.no_grad():
        value = 10.0 * torch.log10(1.0 / mse)  # mse 0 -> +inf, capped below
    return value.clamp(max=PSNR_CAP_DB)
