"""``powersgd``: rank-r approximation of every weight matrix by one power iteration.

PowerSGD (Vogels et al., NeurIPS 2019, "PowerSGD: Practical Low-Rank Gradient Compression for
Distributed Optimization"), one round, without error feedback: reshape the tensor to a matrix M
(conv kernels to (out, in * kh * kw)), draw Q (cols x r) from the shared seed, P = M Q,
orthonormalise P, Q = M^T P, and send P and Q; the server reads P Q^T. Vectors (biases) are sent
raw, as in the paper. The rank is clipped to min(rows, cols); where r (rows + cols) >= rows cols
the factors would cost at least as much as the matrix, so the matrix is sent raw instead (PyTorch's
DDP PowerSGD hook makes the same choice), which is also exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from medleak.defenses.spec import REQUIRED, Defense, Param, Tensors
from medleak.fl.update import Declaration


def matrix_shape(tensor: torch.Tensor) -> tuple[int, int] | None:
    """(rows, cols) the tensor is compressed as, or None for a vector / scalar (sent raw)."""
    if tensor.dim() < 2 or tensor.numel() == 0:
        return None
    rows = tensor.shape[0]
    return rows, tensor.numel() // rows


def effective_rank(tensor: torch.Tensor, rank: int) -> int | None:
    """The rank actually sent, or None when the tensor goes raw (vector, or factors too big)."""
    shape = matrix_shape(tensor)
    if shape is None:
        return None
    rows, cols = shape
    r = min(rank, rows, cols)
    return None if r * (rows + cols) >= rows * cols else r


def power_iteration(
    matrix: torch.Tensor, rank: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The factors (P, Q) PowerSGD sends: P (rows x r) orthonormal, Q (cols x r); M ~ P Q^T."""
    q = torch.randn(
        (matrix.shape[1], rank), generator=generator, device=matrix.device, dtype=matrix.dtype
    )
    p = torch.linalg.qr(matrix @ q, mode="reduced").Q
    return p, matrix.T @ p


def powersgd_tensor(tensor: torch.Tensor, rank: int, generator: torch.Generator) -> torch.Tensor:
    """What the server reads for one tensor: P Q^T reshaped back, or the tensor itself if raw."""
    r = effective_rank(tensor, rank)
    if r is None:
        return tensor.clone()
    p, q = power_iteration(tensor.reshape(tensor.shape[0], -1), r, generator)
    return (p @ q.T).reshape(tensor.shape)


def _apply(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> Tensors:
    return {name: powersgd_tensor(t, params["rank"], generator) for name, t in tensors.items()}


def _bits(tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]) -> int:
    total = 0
    for t in tensors.values():
        r = effective_rank(t, params["rank"])
        if r is None:
            total += 32 * t.numel()
        else:
            rows, cols = matrix_shape(t)  # type: ignore[misc]
            total += 32 * r * (rows + cols)
    return total


POWERSGD = Defense(
    name="powersgd",
    summary="PowerSGD (Vogels et al. 2019): rank-r factors P, Q from one power iteration",
    params=(
        Param(
            "rank",
            int,
            REQUIRED,
            "rank r of the approximation (clipped to min(rows, cols))",
            check=lambda r: r >= 1,
            requirement=">= 1",
        ),
    ),
    transform=_apply,
    bits=_bits,
    bits_text="32 r (rows + cols) per matrix; vectors, and matrices too small to gain, 32 n",
    declares=lambda params: Declaration("low_rank"),
    wire="low-rank",
)
