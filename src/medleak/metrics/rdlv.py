"""Relative data leakage value (RDLV), NVIDIA FLARE's gradient-inversion leakage measure
(Hatamizadeh et al. 2023, "Do gradient inversion attacks make federated learning unsafe?",
IEEE TMI): how much closer the attack got to the image than where it started,
(SSIM(recon, x) - SSIM(init, x)) / SSIM(init, x).

When the start is almost unrelated to the image (SSIM(init, x) < 0.05, e.g. random noise), the ratio
explodes or flips sign and means nothing, so it is reported as absent with that reason.
"""

from __future__ import annotations

import torch

RDLV_MIN_INIT_SSIM = 0.05
RDLV_TINY_REASON = f"SSIM(init, x) < {RDLV_MIN_INIT_SSIM}"


def rdlv(
    ssim_recon: torch.Tensor, ssim_init: torch.Tensor
) -> tuple[list[float | None], list[str | None]]:
    """Per-image RDLV from the two per-image SSIMs; None with a reason where undefined."""
    values: list[float | None] = []
    reasons: list[str | None] = []
    for r, i in zip(ssim_recon.tolist(), ssim_init.tolist(), strict=True):
        if i < RDLV_MIN_INIT_SSIM:
            values.append(None)
            reasons.append(RDLV_TINY_REASON)
        else:
            values.append((r - i) / i)
            reasons.append(None)
    return values, reasons
