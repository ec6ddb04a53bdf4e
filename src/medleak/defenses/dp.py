"""``dp``: DP-SGD on the client, with its (epsilon, delta) from Opacus's RDP accountant.

DP-SGD (Abadi et al., CCS 2016, "Deep Learning with Differential Privacy") is not a function of
the update: it changes how the client computes it. So the ``dp`` spec configures the client's
gradient estimator (``fl.estimators.DpSgdGradient``: per-example clipping to ``c``, noise of std
``z c``) and its privacy accountant (``fl.accountant.PrivacyAccountant``, stepped once per
round); a chain that starts with ``dp`` computes the update with that estimator, and its other
stages only transform updates. For FedAvg every local step is a noisy step and the update is
still the sum of the step gradients, (w0 - w_tau)/lr.

Accounting. One round releases ``tau`` noisy steps computed on the same batch, which the client
drew from its ``client_size`` images with rate q = B / client_size (q = 1 without client_size);
see ``fl.accountant`` for how the steps of a round compose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from medleak.data.batch import Batch
from medleak.defenses.spec import REQUIRED, Defense, Param, fail
from medleak.errors import ConfigError
from medleak.fl.accountant import PrivacyAccountant
from medleak.fl.client import compute_update
from medleak.fl.estimators import DpSgdGradient
from medleak.fl.update import Declaration, FLSettings, Update


def dp_estimator(params: Mapping[str, Any], generator: torch.Generator) -> DpSgdGradient:
    """The client's gradient estimator a resolved ``dp`` spec asks for."""
    return DpSgdGradient(float(params["c"]), float(params["z"]), generator)


def dp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """epsilon of ``steps`` sampled-Gaussian steps, from Opacus's RDP accountant (Mironov 2017).

    Noise multiplier 0 means no privacy at all: epsilon is infinite.
    """
    if not noise_multiplier >= 0 or not math.isfinite(noise_multiplier):
        raise fail("dp", "z", f"must be >= 0, got {noise_multiplier!r}")
    if not 0 < sample_rate <= 1:
        raise fail("dp", "sample_rate", f"must be in (0, 1], got {sample_rate!r}")
    if not 0 < delta < 1:
        raise fail("dp", "delta", f"must be in (0, 1), got {delta!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise fail("dp", "steps", f"must be an integer >= 1, got {steps!r}")
    if noise_multiplier == 0:
        return math.inf
    from opacus.accountants import RDPAccountant  # slow to import; only DP runs need it

    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
    return float(accountant.get_epsilon(delta=delta))


def dp_privacy(
    noise_multiplier: float, sample_rate: float, local_steps: int, rounds: int, delta: float
) -> dict[str, Any]:
    """The guarantee of ``rounds`` rounds of ``local_steps`` noisy steps each (module docstring)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"defense 'dp': rounds must be an integer >= 1, got {rounds!r}")
    accountant = PrivacyAccountant(delta)
    for _ in range(rounds):
        accountant.step_round(noise_multiplier, sample_rate, local_steps)
    return accountant.privacy()


def dp_client_update(
    model: nn.Module,
    batch: Batch,
    settings: FLSettings,
    params: Mapping[str, Any],
    generator: torch.Generator,
    client_size: int | None = None,
    rounds: int = 1,
) -> Update:
    """What a DP-SGD client sends for ``batch``, with ``privacy`` filled in.

    client_size: the number of images the client sampled ``batch`` from (for q); the spec's
    ``client_size`` and this argument must agree when both are given.
    """
    size = params.get("client_size")
    if client_size is not None and size is not None and client_size != size:
        raise fail("dp", "client_size", f"is {size} in the spec but {client_size} for this run")
    size = size if size is not None else client_size
    if size is not None and size < len(batch):
        raise fail("dp", "client_size", f"({size}) is smaller than the batch size ({len(batch)})")
    sample_rate = 1.0 if size is None else len(batch) / size
    privacy = dp_privacy(params["z"], sample_rate, settings.steps, rounds, params["delta"])
    update = compute_update(model, batch, settings, dp_estimator(params, generator))
    return update.replace(privacy=privacy)


DP = Defense(
    name="dp",
    summary="DP-SGD (Abadi et al. 2016): clip each example to c, add N(0, (z c)^2); RDP epsilon",
    params=(
        Param(
            "c",
            float,
            REQUIRED,
            "per-example L2 clipping norm",
            check=lambda x: x > 0,
            requirement="> 0",
        ),
        Param(
            "z",
            float,
            REQUIRED,
            "noise multiplier (noise std / c)",
            check=lambda x: x >= 0,
            requirement=">= 0",
        ),
        Param(
            "delta",
            float,
            1e-5,
            "delta of the reported (epsilon, delta)",
            check=lambda d: 0 < d < 1,
            requirement="in (0, 1)",
        ),
        Param(
            "client_size",
            int,
            None,
            "images the batch is sampled from (q = B / size)",
            check=lambda n: n >= 1,
            requirement=">= 1",
        ),
    ),
    transform=None,
    bits=None,
    bits_text="unchanged (32 n)",
    declares=lambda params: Declaration("noisy", zero_mean=True),
)
