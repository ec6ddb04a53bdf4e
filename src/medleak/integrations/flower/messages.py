"""Between Flower's records and medleak's objects: global arrays, training settings, updates.

The conventions both sides of the federation share live here: the ConfigRecord keys that carry
the local training settings, the reply keys medleak adds (``medleak.wire``, ``medleak.originals``)
and how a FedAvg reply becomes a medleak ``Update``: (w0 - w) / lr over the model's parameters;
buffers (BatchNorm statistics) are not part of the update and travel unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from medleak.defenses import declare_chain
from medleak.errors import ConfigError, MedleakError
from medleak.fl.update import FLSettings, Update
from medleak.integrations.flower import wire

WIRE_KEY = "medleak.wire"
ORIGINALS_KEY = "medleak.originals"
BATCH_STATE_KEY = "medleak.batch"
NUM_EXAMPLES = "num-examples"


@dataclass(frozen=True)
class TrainKeys:
    """ConfigRecord keys of the local training settings the server sends.

    lr: local learning rate; steps: full-batch local SGD steps (medleak's FedAvg model of a
    client); epochs / batch_size: what most Flower clients do instead (shuffled minibatches).
    """

    lr: str = "lr"
    steps: str = "local-steps"
    epochs: str = "local-epochs"
    batch_size: str = "batch-size"


DEFAULT_KEYS = TrainKeys()


@dataclass(frozen=True)
class LocalTraining:
    """What the server told a client to do, read back from the ConfigRecord it sent."""

    lr: float
    steps: int | None
    epochs: int | None
    batch_size: int | None

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], keys: TrainKeys = DEFAULT_KEYS
    ) -> LocalTraining:
        if keys.lr not in config:
            raise ConfigError(f"the train config lacks the local learning rate {keys.lr!r}")

        def opt(key: str) -> int | None:
            return None if key not in config else int(config[key])

        return cls(float(config[keys.lr]), opt(keys.steps), opt(keys.epochs), opt(keys.batch_size))

    def minibatch(self, num_examples: int) -> bool:
        """True when the client trains shuffled minibatches (outside medleak's threat model)."""
        return self.batch_size is not None and self.batch_size < num_examples

    def total_steps(self, num_examples: int) -> int:
        if self.minibatch(num_examples):
            per_epoch = -(-num_examples // int(self.batch_size))  # type: ignore[arg-type]
            return per_epoch * (self.epochs or 1)
        return self.steps if self.steps is not None else (self.epochs or 1)

    def settings(self, num_examples: int) -> FLSettings:
        """The attacker's model of this client: full-batch FedAvg with the same step count."""
        return FLSettings("fedavg", self.total_steps(num_examples), self.lr)

    def threat_match(self, num_examples: int) -> tuple[bool, str]:
        """Whether the client's training is what the attack assumes, and why not."""
        if self.minibatch(num_examples):
            return False, (
                f"the client trains {self.epochs or 1} epoch(s) of shuffled minibatches of "
                f"{self.batch_size} from {num_examples} images; the attack models full-batch "
                "steps, so this reply is outside the modelled threat"
            )
        return True, "full-batch local steps, as the attack models them"


def single(records: Mapping[str, Any], what: str, skip: Sequence[str] = ()) -> tuple[str, Any]:
    """The one record of a kind in a message (ignoring medleak's own extras)."""
    items = [(k, v) for k, v in records.items() if k not in skip]
    if len(items) != 1:
        raise MedleakError(f"expected exactly one {what} in the message, found {len(items)}")
    return items[0]


def train_config(msg: Message) -> ConfigRecord:
    return single(msg.content.config_records, "ConfigRecord", skip=(WIRE_KEY,))[1]


def global_arrays(msg: Message) -> ArrayRecord:
    return single(msg.content.array_records, "ArrayRecord", skip=(ORIGINALS_KEY,))[1]


def reply_arrays(reply: Message) -> tuple[str, ArrayRecord]:
    return single(reply.content.array_records, "ArrayRecord", skip=(ORIGINALS_KEY,))


def num_examples(reply: Message) -> int:
    metrics = single(reply.content.metric_records, "MetricRecord")[1]
    if NUM_EXAMPLES not in metrics:
        raise MedleakError(f"the reply's MetricRecord lacks {NUM_EXAMPLES!r}")
    return int(metrics[NUM_EXAMPLES])


def to_tensors(record: ArrayRecord) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(a.numpy(), copy=True)) for k, a in record.items()}


def to_record(tensors: Mapping[str, torch.Tensor | np.ndarray]) -> ArrayRecord:
    record = ArrayRecord()
    for name, value in tensors.items():
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        record[name] = Array(np.ascontiguousarray(array))
    return record


def parameter_names(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def pseudo_gradient(
    w0: Mapping[str, torch.Tensor], w: Mapping[str, torch.Tensor], names: Sequence[str], lr: float
) -> dict[str, torch.Tensor]:
    """FedAvg's update (w0 - w) / lr, over the parameters only."""
    missing = [n for n in names if n not in w or n not in w0]
    if missing:
        raise MedleakError(f"the reply lacks parameter(s) {', '.join(missing[:3])}")
    return {n: ((w0[n].double() - w[n].double()) / lr).float() for n in names}


def as_update(
    tensors: dict[str, torch.Tensor],
    settings: FLSettings,
    batch_size: int,
    buffers: dict[str, torch.Tensor] | None = None,
) -> Update:
    """A FedAvg update; ``buffers`` are the client's buffers after training, kept as sent."""
    return Update(
        tensors=tensors,
        kind="pseudo_gradient",
        fl=settings,
        batch_size=batch_size,
        bits_sent=32 * sum(t.numel() for t in tensors.values()),
        buffers=buffers or None,
    )


def buffers_in(
    weights: Mapping[str, torch.Tensor], names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Everything the client sent besides the parameters (BatchNorm running statistics)."""
    return {k: v for k, v in weights.items() if k not in set(names)}


def wire_info(reply: Message) -> dict[str, Any] | None:
    """What the defense mod said about the encoding, or None for a plain (dense) reply."""
    if WIRE_KEY not in reply.content.config_records:
        return None
    info = dict(reply.content.config_records[WIRE_KEY])
    info["chain"] = json.loads(str(info["chain"]))
    return info


@dataclass
class DecodedReply:
    """A client reply as the server reads it: the update, the weights to aggregate, facts."""

    update: Update
    weights: dict[str, torch.Tensor]
    info: dict[str, Any]


def decode_reply(
    reply: Message, w0: ArrayRecord, names: Sequence[str], training: LocalTraining
) -> DecodedReply:
    """Turn a (possibly wire-encoded) FedAvg reply into an Update and weights to aggregate.

    For an encoded reply the weights are w0 - lr g of the decoded update g, the model the client
    meant the server to average; buffers are taken from the reply as they are.
    """
    n = num_examples(reply)
    settings = training.settings(n)
    base = to_tensors(w0)
    _, record = reply_arrays(reply)
    info = wire_info(reply)
    if info is None:
        weights = to_tensors(record)
        tensors = pseudo_gradient(base, weights, names, training.lr)
        update = as_update(tensors, settings, n, buffers_in(weights, names))
        info = {"encoding": "none", "chain": [], "payload_bits": update.bits_sent}
        info["message_bytes"] = int(record.count_bytes())
        return DecodedReply(update, weights, info)
    parts = {k: np.asarray(a.numpy()) for k, a in record.items()}
    # Measured here, from what arrived, rather than taken from the client's own claim.
    info["client_payload_bits"] = info.get("payload_bits")
    info["payload_bits"] = wire.payload_bits(parts)
    info["message_bytes"] = int(record.count_bytes())
    chain = info["chain"]
    params = chain[-1]["params"] if chain else {}
    shapes = {name: tuple(base[name].shape) for name in names}
    tensors = wire.decode(parts, shapes, str(info["encoding"]), params)
    weights = dict(base)
    for name, g in tensors.items():
        weights[name] = (base[name].double() - training.lr * g.double()).to(base[name].dtype)
    for key in base:
        if key not in tensors:
            buffer = key + wire.SEP + "buffer"
            if buffer not in parts:
                raise MedleakError(f"the encoded reply lacks buffer {key!r}")
            weights[key] = torch.from_numpy(parts[buffer].copy())
    update = as_update(tensors, settings, n, buffers_in(weights, names)).replace(
        defenses=tuple(chain),
        declarations=declare_chain(chain),
        bits_sent=int(info["payload_bits"]),
    )
    return DecodedReply(update, weights, dict(info))


def replace_arrays(reply: Message, weights: Mapping[str, torch.Tensor]) -> None:
    """Put dense weights back where the inner strategy expects them; drop medleak's extras."""
    key, _ = reply_arrays(reply)
    content = RecordDict()
    for name, record in reply.content.items():
        if name in (WIRE_KEY, ORIGINALS_KEY):
            continue
        content[name] = to_record(weights) if name == key else record
    reply.content = content


def originals_of(reply: Message) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The client's batch (images, labels) when it opted in to hand it over (simulation only)."""
    if ORIGINALS_KEY not in reply.content.array_records:
        return None
    record = reply.content.array_records[ORIGINALS_KEY]
    tensors = to_tensors(record)
    return tensors["images"].float(), tensors["labels"].long()


def metric(reply: Message, key: str) -> Any:
    metrics = single(reply.content.metric_records, "MetricRecord")[1]
    return metrics.get(key)


__all__ = [
    "BATCH_STATE_KEY",
    "ORIGINALS_KEY",
    "WIRE_KEY",
    "DecodedReply",
    "LocalTraining",
    "MetricRecord",
    "TrainKeys",
    "decode_reply",
    "global_arrays",
    "originals_of",
    "pseudo_gradient",
    "replace_arrays",
    "train_config",
]
