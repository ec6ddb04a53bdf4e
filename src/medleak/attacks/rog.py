"""ROG: reconstruction from obfuscated gradients (Yue et al., USENIX Security 2023).

The attacker optimises a LOW-RESOLUTION latent image (side = image size / scale factor, ROG's
default 4), upsamples it bicubically and matches the resulting dummy update to the received one
in squared L2. The low dimension of the latent is what makes ROG robust to obfuscation noise:
there are far fewer unknowns than constraints. Published defaults: latent uniform in [0, 1], Adam
at lr 0.05 with cosine annealing to 0.1 lr, 100 iterations. Post-processing (ROG's learned
refinement) plugs in through ``medleak.attacks.priors``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medleak.attacks.base import Progress, Reconstruction, ServerKnowledge
from medleak.attacks.dummy import (
    check_image_size,
    check_update_fits,
    dummy_update,
    labels_for,
    reconstruction_channels,
    report,
    seeded_uniform,
    trainable_params,
)
from medleak.attacks.gradient_matching import squared_l2
from medleak.attacks.options import AttackOptions
from medleak.attacks.priors import apply_prior
from medleak.fl import Update

DEFAULT_LR = 0.05


def upsample(latent: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic upsampling from latent to image resolution, as ROG does before the model."""
    if latent.shape[-1] == size:
        return latent
    return F.interpolate(latent, size=(size, size), mode="bicubic", align_corners=False)


def attack(
    update: Update,
    knowledge: ServerKnowledge,
    options: AttackOptions,
    seed: int,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct the client's batch from ``update``; see the module docstring."""
    check_update_fits(update, knowledge)
    check_image_size(knowledge, options.scale_factor)
    size = knowledge.image_size
    side = size // options.scale_factor
    channels = reconstruction_channels(knowledge, options)
    labels = labels_for(knowledge, options)
    params = trainable_params(knowledge)
    target = {n: t.detach() for n, t in update.tensors.items()}

    latent = seeded_uniform((knowledge.batch_size, channels, side, side), seed)
    initial = upsample(latent, size).clamp(0, 1).mean(1, keepdim=True)
    latent.requires_grad_(True)
    lr = options.lr or DEFAULT_LR
    optimizer = torch.optim.Adam([latent], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=options.iterations, eta_min=0.1 * lr
    )
    trace: list[float] = []
    for iteration in range(options.iterations):
        optimizer.zero_grad(set_to_none=True)
        dummy = dummy_update(knowledge, params, upsample(latent, size), labels, update)
        loss = squared_l2(dummy, target)
        loss.backward(inputs=[latent])
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            latent.clamp_(0, 1)
        trace.append(loss.item())
        report(progress, iteration, trace[-1])

    with torch.no_grad():
        images = upsample(latent, size).clamp(0, 1).mean(1, keepdim=True)
    images = apply_prior(options.prior, images)
    return Reconstruction(
        images=images,
        labels=labels.clone(),
        labels_source=options.labels,
        initial_images=initial,
        trace=trace,
        info={"latent_size": side, "reconstruct_channels": options.reconstruct_channels},
    )
