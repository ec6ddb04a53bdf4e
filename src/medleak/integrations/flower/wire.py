"""The compact wire encoding of an obfuscated update, and its exact decode.

Only the LAST stage of a chain decides what travels: top-k / rand-k send the kept indices
(bit-packed at ceil(log2 n) bits) and float32 values, sign sends packed sign bits (and the scale),
uniform / QSGD send packed sign bits, bit-packed level indices and one float32 scale, PowerSGD
sends its factors P and Q, fp16 / bf16 send 16-bit floats; every other chain ends in a dense
float32 tensor. ``decode`` gives back exactly (bit for bit) what the chain computed, so the server
attacks and aggregates what the client meant to send and nothing more.

Plain numpy in and out (name::part -> array), so this module needs no Flower and is unit-tested
on its own; ``messages`` puts the arrays into an ArrayRecord.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from medleak.defenses import DefenseChain
from medleak.defenses.chain import stage_generator
from medleak.defenses.powersgd import effective_rank, power_iteration
from medleak.errors import MedleakError
from medleak.fl.update import Update

SEP = "::"
SPARSE = ("sparse",)
LEVELLED = ("levels",)


def pack_uint(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers, ``width`` bits each, most significant first, packed into bytes."""
    if width == 0 or values.size == 0:
        return np.zeros(0, dtype=np.uint8)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)
    return np.packbits(bits.astype(np.uint8).reshape(-1))


def unpack_uint(packed: np.ndarray, width: int, count: int) -> np.ndarray:
    """Inverse of ``pack_uint`` for ``count`` values."""
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    bits = np.unpackbits(packed, count=count * width).reshape(count, width).astype(np.int64)
    return bits @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))


def index_width(numel: int) -> int:
    return max(1, math.ceil(math.log2(numel))) if numel > 1 else 1


def encoding_of(chain: DefenseChain) -> str:
    """Which wire format the chain's output travels in: the one its last stage declares
    (``Defense.wire``), dense without a stage."""
    if not len(chain):
        return "dense"
    return _registry()[chain.resolved[-1]["name"]].wire


def _scale(tensor: torch.Tensor, name: str, params: Mapping[str, Any]) -> torch.Tensor:
    """The per-tensor scale the quantizer used (it is not recoverable from its output alone)."""
    if tensor.numel() == 0:
        return tensor.new_zeros(())
    if params.get("norm") == "l2":  # a quantizer scaled by the L2 norm (QSGD's default)
        return torch.linalg.vector_norm(tensor)
    return tensor.abs().max()


def encode(chain: DefenseChain, update: Update, seed: int) -> tuple[dict[str, np.ndarray], Update]:
    """(wire arrays, the update the chain produces) for ``update`` obfuscated with ``seed``."""
    out = chain.apply(update, seed)
    encoding = encoding_of(chain)
    if encoding in (*LEVELLED, "low-rank"):
        prefix = DefenseChain(chain.resolved[:-1], _registry())
        before = prefix.apply(update, seed).tensors
    params = chain.resolved[-1]["params"] if len(chain) else {}
    if encoding == "low-rank":
        generator = stage_generator(seed, len(chain) - 1)
    wire: dict[str, np.ndarray] = {}
    for name, y in out.tensors.items():
        y = y.detach().cpu().contiguous()
        flat = y.reshape(-1)
        if encoding in SPARSE:
            index = torch.nonzero(flat, as_tuple=True)[0].numpy()
            wire[name + SEP + "index"] = pack_uint(index, index_width(flat.numel()))
            wire[name + SEP + "value"] = flat[index].numpy().astype(np.float32)
        elif encoding == "sign":
            wire[name + SEP + "negative"] = np.packbits((flat < 0).numpy())
            if params.get("scaled") and flat.numel():
                wire[name + SEP + "scale"] = flat[:1].abs().numpy().astype(np.float32)
        elif encoding in LEVELLED:
            steps = params["levels"] - 1
            scale = _scale(before[name].detach().cpu(), encoding, params)
            level = (
                torch.zeros_like(flat) if scale == 0 else torch.round(flat.abs() / scale * steps)
            )
            wire[name + SEP + "negative"] = np.packbits((flat < 0).numpy())
            width = math.ceil(math.log2(params["levels"]))
            wire[name + SEP + "level"] = pack_uint(level.numpy().astype(np.int64), width)
            wire[name + SEP + "scale"] = scale.reshape(1).numpy().astype(np.float32)
        elif encoding == "low-rank":
            source = before[name]
            rank = effective_rank(source, params["rank"])
            if rank is None:
                wire[name + SEP + "dense"] = y.numpy().astype(np.float32)
            else:
                p, q = power_iteration(source.reshape(source.shape[0], -1), rank, generator)
                wire[name + SEP + "P"] = p.detach().cpu().numpy()
                wire[name + SEP + "Q"] = q.detach().cpu().numpy()
        elif encoding == "fp16":
            wire[name + SEP + "half"] = y.to(torch.float16).numpy()
        elif encoding == "bf16":
            wire[name + SEP + "bf16"] = y.to(torch.bfloat16).view(torch.int16).numpy()
        else:
            wire[name + SEP + "dense"] = y.numpy().astype(np.float32)
    return wire, out


def decode(
    wire: Mapping[str, np.ndarray],
    shapes: Mapping[str, tuple[int, ...]],
    encoding: str,
    params: Mapping[str, Any],
) -> dict[str, torch.Tensor]:
    """The dense tensors (name -> float32, in ``shapes``' order) the wire arrays stand for."""
    tensors: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        numel = math.prod(shape)

        def part(kind: str, name: str = name) -> np.ndarray:
            key = name + SEP + kind
            if key not in wire:
                raise MedleakError(f"the update on the wire lacks {key!r} ({encoding} encoding)")
            return np.asarray(wire[key])

        if name + SEP + "dense" in wire:
            tensors[name] = torch.from_numpy(part("dense").copy()).reshape(shape)
        elif encoding in SPARSE:
            values = torch.from_numpy(part("value").copy())
            index = unpack_uint(part("index"), index_width(numel), values.numel())
            flat = torch.zeros(numel, dtype=torch.float32)
            flat[torch.from_numpy(index)] = values
            tensors[name] = flat.reshape(shape)
        elif encoding == "sign":
            negative = torch.from_numpy(np.unpackbits(part("negative"), count=numel).astype(bool))
            signs = torch.where(negative, -1.0, 1.0).to(torch.float32)
            if params.get("scaled") and numel:
                signs = signs * torch.from_numpy(part("scale").copy()).reshape(())
            tensors[name] = signs.reshape(shape)
        elif encoding in LEVELLED:
            steps = params["levels"] - 1
            width = math.ceil(math.log2(params["levels"]))
            negative = np.unpackbits(part("negative"), count=numel).astype(bool)
            level = torch.from_numpy(unpack_uint(part("level"), width, numel)).to(torch.float32)
            sign = torch.from_numpy(np.where(negative, -1.0, 1.0).astype(np.float32))
            sign = torch.where(level == 0, torch.zeros_like(sign), sign)
            scale = torch.from_numpy(part("scale").copy()).reshape(())
            tensors[name] = (sign * level / steps * scale).reshape(shape)
        elif encoding == "low-rank":
            p = torch.from_numpy(part("P").copy())
            q = torch.from_numpy(part("Q").copy())
            tensors[name] = (p @ q.T).reshape(shape)
        elif encoding == "fp16":
            tensors[name] = torch.from_numpy(part("half").copy()).to(torch.float32).reshape(shape)
        elif encoding == "bf16":
            raw = torch.from_numpy(part("bf16").copy())
            tensors[name] = raw.view(torch.bfloat16).to(torch.float32).reshape(shape)
        else:
            raise MedleakError(f"unknown wire encoding {encoding!r}")
    return tensors


def payload_bits(wire: Mapping[str, np.ndarray]) -> int:
    """Bits of the arrays themselves (what the encoding costs, before any container overhead)."""
    return 8 * sum(int(np.asarray(a).nbytes) for a in wire.values())


def _registry() -> Mapping[str, Any]:
    from medleak.defenses import DEFENSES

    return DEFENSES
