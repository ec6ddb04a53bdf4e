"""Refuse an attack that cannot fit in memory, before it allocates, with one line.

Gradient inversion differentiates through the client's gradient (double backward), and FedAvg's
exact unroll keeps every local step's graph, so a run that fits at 128 px can need tens of GiB at
1024 px or with 10 local steps. Without a guard the kernel kills the process or torch prints a
long allocation traceback; with it the user learns "needs ~X GiB, Y GiB available" at once.

The estimate is deliberately simple: the process's current resident memory, plus the model's
parameters times a factor, plus one forward pass's activations (measured on the ``meta`` device,
so nothing is allocated) times a factor, times the local steps an exact FedAvg unroll keeps.
The factors were fitted to measured peaks (``tests/experiments/test_memory_guard.py`` checks the
estimate is within 2x of the measured peak on three settings).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from medleak.errors import ConfigError
from medleak.system_memory import available_bytes, current_rss_bytes

#: parameter copies alive at the peak: weights, the client's update, the dummy's gradient and
#: its derivative, the defense's output
PARAMETER_COPIES = 6.0
#: what the run allocates beyond the model and the attack: thread pools, allocator slack,
#: scoring, the report's figures
RUNTIME_OVERHEAD_BYTES = 256 * 2**20
#: activation copies alive at the peak of a double backward (forward, backward, their derivatives)
ACTIVATION_COPIES = 6.0


def _output_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of every submodule's output for one forward pass of ``x`` (no graph kept)."""
    total = 0

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def forward_activation_bytes(model: nn.Module, batch_size: int, channels: int, size: int) -> int:
    """Bytes of every module output of one forward pass, measured without allocating.

    A model with an op the ``meta`` device lacks is measured on one real image instead (no
    graph kept) and scaled by the batch.
    """
    try:
        shadow = copy.deepcopy(model).to("meta")
        return _output_bytes(shadow, torch.empty(batch_size, channels, size, size, device="meta"))
    except (RuntimeError, NotImplementedError):
        return _output_bytes(model, torch.zeros(1, channels, size, size)) * batch_size


def estimate_peak_bytes(
    model: nn.Module, *, batch_size: int, channels: int, image_size: int, unrolled_steps: int
) -> int:
    """Estimated peak resident memory of the whole process for one attack."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    activations = forward_activation_bytes(model, batch_size, channels, image_size)
    return int(
        current_rss_bytes()
        + RUNTIME_OVERHEAD_BYTES
        + PARAMETER_COPIES * params
        + ACTIVATION_COPIES * activations * max(1, unrolled_steps)
    )


def check_fits(
    model: nn.Module, *, batch_size: int, channels: int, image_size: int, unrolled_steps: int
) -> int:
    """Raise a one-line ConfigError when the attack cannot fit; return the estimate otherwise."""
    need = estimate_peak_bytes(
        model,
        batch_size=batch_size,
        channels=channels,
        image_size=image_size,
        unrolled_steps=unrolled_steps,
    )
    have = available_bytes()
    if have is not None and need > have:
        raise ConfigError(
            f"this attack needs about {need / 2**30:.1f} GiB of memory, {have / 2**30:.1f} GiB "
            "is available; lower --image-size, --batch-size or --local-steps "
            "(or use --fedavg-model first-order)"
        )
    return need
