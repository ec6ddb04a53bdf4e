"""``dp``: DP-SGD on the client, with its (epsilon, delta) from Opacus's RDP accountant.

DP-SGD (Abadi et al., CCS 2016, "Deep Learning with Differential Privacy"): per-example gradients,
each clipped to L2 norm ``c``, summed, Gaussian noise of std ``z c`` added, divided by the batch
size. Unlike the other defenses this is not a function of the update: it changes how the client
computes it, so a chain runs it first, in place of ``fl.compute_update``. For FedAvg every local
step is such a noisy step and the update is still the sum of the step gradients, (w0 - w_tau)/lr.

Per-example gradients are torch.func ``vmap(grad(...))`` over the same ``batch_loss`` the honest
client uses; BatchNorm mixes the examples of a batch, so they are undefined there and ``dp``
refuses such models (Opacus does the same).

Accounting. One round releases ``tau`` noisy steps computed on the same batch, which the client
drew from its ``client_size`` images with rate q = B / client_size (q = 1 without client_size).
With q = 1 that is tau Gaussian mechanisms, accounted as tau accountant steps at noise z. With
q < 1 the batch is sampled once per round, not once per step, so charging tau independently
subsampled steps would understate epsilon; the tau steps compose to one Gaussian mechanism of
noise z / sqrt(tau) (the Gaussian's RDP is additive), which is then subsampled once per round.
With q = 1 both readings give the same epsilon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.func import grad, vmap

from medleak.data.batch import Batch
from medleak.defenses.spec import REQUIRED, Defense, Param, Tensors, fail
from medleak.errors import ConfigError
from medleak.fl.client import batch_loss, buffers_of, parameters_of
from medleak.fl.update import Declaration, FLSettings, Update
from medleak.models import has_batchnorm, model_info, to_model_input

# Per-example gradients of this many floats at most are held at once (256 MB in float32).
_CHUNK_FLOATS = 2**26


def per_example_gradients(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> Tensors:
    """name -> B x (parameter shape): the gradient of each example's own loss."""

    def example_loss(p: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
        return batch_loss(model, p, buffers, x.unsqueeze(0), y.unsqueeze(0))

    return vmap(grad(example_loss), in_dims=(None, 0, 0))(dict(params), inputs, targets)


def per_example_norms(per_example: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """B norms, each over all parameters of one example's gradient."""
    squares = [g.reshape(g.shape[0], -1).pow(2).sum(1) for g in per_example.values()]
    return torch.stack(squares).sum(0).sqrt()


def clip_per_example(per_example: Mapping[str, torch.Tensor], c: float) -> Tensors:
    """Scale each example's gradient by min(1, c / ||g_i||), so every example has norm <= c."""
    norms = per_example_norms(per_example)
    factor = (c / norms).clamp(max=1.0)  # a zero gradient gives c / 0 = inf, clamped to 1
    return {name: g * factor.reshape(-1, *([1] * (g.dim() - 1))) for name, g in per_example.items()}


def noisy_clipped_gradient(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    c: float,
    z: float,
    generator: torch.Generator,
) -> Tensors:
    """One DP-SGD gradient: (sum_i clip_c(g_i) + N(0, (z c)^2)) / B."""
    batch = inputs.shape[0]
    floats = sum(p.numel() for p in params.values())
    chunk = max(1, _CHUNK_FLOATS // max(1, floats))
    total: Tensors = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, batch, chunk):
        grads = per_example_gradients(
            model, params, buffers, inputs[start : start + chunk], targets[start : start + chunk]
        )
        for name, g in clip_per_example(grads, c).items():
            total[name] += g.sum(0)
    out = {}
    for name, t in total.items():
        noise = torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)
        out[name] = (t + z * c * noise) / batch
    return out


def dp_client_tensors(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    settings: FLSettings,
    c: float,
    z: float,
    generator: torch.Generator,
) -> Tensors:
    """The client's update when every local step is a DP-SGD step (mirrors fl.client)."""
    if has_batchnorm(model):
        raise ConfigError(
            "defense 'dp': per-example gradients are undefined with BatchNorm (it mixes the "
            "examples of a batch); use a model without BatchNorm, e.g. lenet or resnet18-rog"
        )
    buffers = buffers_of(model)
    current = {n: p.detach() for n, p in params.items()}
    total: Tensors | None = None
    for _ in range(settings.steps):
        step = noisy_clipped_gradient(model, current, buffers, inputs, targets, c, z, generator)
        total = step if total is None else {n: total[n] + step[n] for n in total}
        if settings.algorithm == "fedavg":
            current = {n: current[n] - settings.local_lr * step[n] for n in current}
    assert total is not None
    return total


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
    if sample_rate == 1:
        epsilon = dp_epsilon(noise_multiplier, 1.0, local_steps * rounds, delta)
    else:
        epsilon = dp_epsilon(noise_multiplier / math.sqrt(local_steps), sample_rate, rounds, delta)
    return {
        "epsilon": epsilon,
        "delta": delta,
        "sample_rate": sample_rate,
        "steps": local_steps * rounds,
        "rounds": rounds,
        "noise_multiplier": noise_multiplier,
        "accountant": "rdp",
    }


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
    model_params = parameters_of(model)
    inputs = to_model_input(batch.images, model_info(model).channels)
    tensors = dp_client_tensors(
        model, model_params, inputs, batch.labels, settings, params["c"], params["z"], generator
    )
    return Update(
        tensors={n: t.detach() for n, t in tensors.items()},
        kind="gradient" if settings.algorithm == "fedsgd" else "pseudo_gradient",
        fl=settings,
        batch_size=len(batch),
        bits_sent=32 * sum(t.numel() for t in tensors.values()),
        privacy=privacy,
    )


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
