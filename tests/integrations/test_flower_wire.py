"""The wire encoding: what the server decodes is exactly what the chain computed, in fewer bits."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("flwr")

from medleak.data import DataSpec, open_dataset, select_batch  # noqa: E402
from medleak.defenses import build_chain  # noqa: E402
from medleak.fl import FLSettings  # noqa: E402
from medleak.fl.client import compute_update  # noqa: E402
from medleak.integrations.flower import wire  # noqa: E402
from medleak.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def update():
    model = build_model("lenet", 1, 32, seed=0)
    dataset = open_dataset(DataSpec(source="phantom", image_size=32, phantom_count=8), seed=0)
    batch = select_batch(dataset, 2)
    return compute_update(model, batch, FLSettings("fedavg", 2, 0.01))


CHAINS = [
    [],
    ["topk:ratio=0.1"],
    ["topk:ratio=0.02,scope=global"],
    ["randk:ratio=0.1"],
    ["sign"],
    ["sign:scaled=true"],
    ["uniform:levels=4"],
    ["qsgd:levels=4"],
    ["qsgd:levels=16,norm=max"],
    ["powersgd:rank=2"],
    ["fp16"],
    ["bf16"],
    ["gaussian:sigma=0.01"],
    ["clip:c=1", "topk:ratio=0.1"],
    ["gaussian:relative=0.1", "qsgd:levels=8"],
]


@pytest.mark.parametrize("specs", CHAINS, ids=lambda s: "+".join(s) or "none")
def test_decode_equals_chain(update, specs):
    chain = build_chain(specs)
    arrays, out = wire.encode(chain, update, seed=123)
    shapes = {n: tuple(t.shape) for n, t in update.tensors.items()}
    params = chain.resolved[-1]["params"] if len(chain) else {}
    decoded = wire.decode(arrays, shapes, wire.encoding_of(chain), params)
    assert list(decoded) == list(out.tensors)
    for name, tensor in out.tensors.items():
        assert torch.equal(decoded[name], tensor), name
    # Same seed, same obfuscation: the encoding is deterministic.
    again, _ = wire.encode(chain, update, seed=123)
    assert all((again[k] == arrays[k]).all() for k in arrays)


@pytest.mark.parametrize(
    "specs", [["topk:ratio=0.1"], ["sign"], ["uniform:levels=4"], ["qsgd:levels=4"]]
)
def test_payload_close_to_declared_bits(update, specs):
    """Packed indices/signs/levels: within a few bytes per tensor of the declared bit cost."""
    chain = build_chain(specs)
    arrays, out = wire.encode(chain, update, seed=0)
    sent = wire.payload_bits(arrays)
    assert sent < update.bits_raw / 4
    assert abs(sent - out.bits_sent) <= 16 * len(update.tensors)


def test_powersgd_sends_factors_not_matrices(update):
    arrays, _ = wire.encode(build_chain(["powersgd:rank=1"]), update, seed=0)
    assert any(k.endswith("::P") for k in arrays)
    assert wire.payload_bits(arrays) < update.bits_raw / 5


def test_pack_roundtrip():
    values = torch.randint(0, 1000, (37,)).numpy()
    packed = wire.pack_uint(values, 10)
    assert packed.nbytes == (37 * 10 + 7) // 8
    assert (wire.unpack_uint(packed, 10, 37) == values).all()


def test_the_wire_format_is_what_the_defense_declares(update, monkeypatch):
    """A new compressing defense declares its format and is encoded in it, never by its name."""
    import dataclasses

    from medleak.defenses import DEFENSES
    from medleak.defenses.topk import TOPK

    monkeypatch.setitem(DEFENSES, "mysparse", dataclasses.replace(TOPK, name="mysparse"))
    chain = build_chain(["mysparse:ratio=0.1"])
    assert wire.encoding_of(chain) == "sparse"
    arrays, out = wire.encode(chain, update, seed=1)
    assert wire.payload_bits(arrays) < 32 * sum(t.numel() for t in update.tensors.values()) / 4
    assert wire.encoding_of(build_chain(["gaussian:sigma=0.01"])) == "dense"
