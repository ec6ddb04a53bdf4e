"""The prior image: what a server can draw without any update, the pixel-wise mean of images it
already holds (distractors from the same source, or auxiliary images).

A chest X-ray has a typical anatomy, so the average of *other* patients' radiographs already scores
well above a blank gray image (17.5 dB against 15.1 dB on the Kaggle sample at 128 px; SSIM 0.75
against 0.12 on 32 px phantoms). A reconstruction has leaked something about *these* patients only
when it beats that too; NVIDIA FLARE's RDLV (Hatamizadeh et al. 2023) is defined against such a
prior image.
"""

from __future__ import annotations

import torch

#: Where the prior image came from, as ``metrics.json`` records it (``prior_source``).
PRIOR_SOURCES = ("distractors", "auxiliary")


def prior_image(images: torch.Tensor) -> torch.Tensor:
    """The 1 x C x H x W pixel-wise mean of N x C x H x W images (the images are not victims)."""
    if images.dim() != 4 or images.shape[0] == 0:
        shape = tuple(images.shape)
        raise ValueError(f"a prior image needs N x C x H x W images, N > 0; got {shape}")
    return images.detach().double().mean(dim=0, keepdim=True)
