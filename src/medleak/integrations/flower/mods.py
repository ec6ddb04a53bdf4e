"""Client-side Flower mods: a medleak defense chain applied to what a ClientApp sends.

``DefenseMod(["topk:ratio=0.1"], model)`` goes into ``ClientApp(mods=[...])``. It reads the global
arrays and the local learning rate from the incoming train message, lets the ClientApp train,
turns the reply's weights into FedAvg's update (w0 - w) / lr, applies the chain with a per-round,
per-client seed that never leaves the hospital (so the server cannot subtract the noise), and
replaces the weights by the chain's compact wire encoding plus a ``medleak.wire`` ConfigRecord
saying how to decode it and how many bits were sent, measured from the arrays in the message.
The server must decode (``DecodeStrategy`` or ``AuditStrategy``) before aggregating.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from logging import INFO
from typing import Any

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore import log

from medleak.defenses import DefenseChain, build_chain
from medleak.errors import ConfigError
from medleak.integrations.flower import messages as m
from medleak.integrations.flower import wire

DP_REFUSAL = (
    "defense 'dp' cannot run after training (DP-SGD clips each example inside it); train with "
    "medleak.integrations.flower.train_dp_sgd in the ClientApp instead"
)


def client_seed(seed: int, server_round: int, node_id: int) -> int:
    """The chain's seed for one client in one round: distinct per (round, node), reproducible."""
    state = np.random.SeedSequence([seed, server_round, node_id]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def defended_chain(defenses: Sequence[str | Mapping[str, Any]]) -> DefenseChain:
    """The chain of the specs, refusing ``dp`` (which is a way of training, not a filter)."""
    chain = build_chain(list(defenses))
    if chain.has_dp:
        raise ConfigError(DP_REFUSAL)
    return chain


def encode_reply(
    reply: Message,
    msg: Message,
    chain: DefenseChain,
    names: Sequence[str],
    seed: int,
    keys: m.TrainKeys,
) -> dict[str, Any]:
    """Replace the reply's weights by the chain's wire encoding of its update; returns the info."""
    training = m.LocalTraining.from_config(m.train_config(msg), keys)
    n = m.num_examples(reply)
    base = m.to_tensors(m.global_arrays(msg))
    key, record = m.reply_arrays(reply)
    weights = m.to_tensors(record)
    update = m.as_update(
        m.pseudo_gradient(base, weights, names, training.lr),
        training.settings(n),
        n,
        m.buffers_in(weights, names),
    )
    arrays, out = wire.encode(chain, update, seed)
    for name, value in weights.items():
        if name not in out.tensors:
            arrays[name + wire.SEP + "buffer"] = value.numpy()
    encoded = m.to_record(arrays)
    info = {
        "encoding": wire.encoding_of(chain),
        "chain": json.dumps(chain.resolved),
        "payload_bits": wire.payload_bits(arrays),
        "declared_bits": int(out.bits_sent),
        "raw_bits": int(update.bits_raw),
        "message_bytes": int(encoded.count_bytes()),
        "dense_message_bytes": int(record.count_bytes()),
    }
    reply.content[key] = encoded
    reply.content[m.WIRE_KEY] = ConfigRecord(info)
    return info


class DefenseMod:
    """A Flower mod applying a medleak defense chain (same specs as ``--defense``) to updates.

    model: the ClientApp's model (or a factory): which arrays are parameters (obfuscated) and
    which are buffers (sent as they are). seed: the hospital's secret base seed.
    """

    def __init__(
        self,
        defenses: Sequence[str | Mapping[str, Any]],
        model: torch.nn.Module | Callable[[], torch.nn.Module],
        seed: int = 0,
        keys: m.TrainKeys = m.DEFAULT_KEYS,
    ) -> None:
        self.chain = defended_chain(defenses)
        module = model if isinstance(model, torch.nn.Module) else model()
        self.names = m.parameter_names(module)
        self.seed = seed
        self.keys = keys

    def __call__(self, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, context)
        reply = call_next(msg, context)
        if reply.has_error():
            return reply
        server_round = int(m.train_config(msg).get("server-round", 0))
        seed = client_seed(self.seed, server_round, int(context.node_id))
        info = encode_reply(reply, msg, self.chain, self.names, seed, self.keys)
        log(
            INFO,
            "DefenseMod: %s sent as %s, %d of %d bits",
            " -> ".join(s["name"] for s in self.chain.resolved) or "none",
            info["encoding"],
            info["payload_bits"],
            info["raw_bits"],
        )
        return reply
