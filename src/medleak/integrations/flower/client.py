"""What a hospital's ClientApp calls: local training (plain or DP-SGD) and batch bookkeeping.

``train_local`` trains the way the server's config says: ``local-steps`` full-batch SGD steps
(what medleak's attacker models) or ``local-epochs`` of shuffled minibatches of ``batch-size``
(what most Flower clients do; the audit records that as outside the modelled threat).
``train_dp_sgd`` is the only way to use ``dp`` in Flower: DP-SGD clips each example inside the
training step, so it cannot be a mod applied afterwards; it runs medleak's estimator and RDP
accountant and reports epsilon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, Context, RecordDict

from medleak.data.batch import Batch
from medleak.defenses import resolve_spec
from medleak.defenses.chain import stage_generator
from medleak.defenses.dp import dp_client_update
from medleak.errors import ConfigError
from medleak.integrations.flower import messages as m
from medleak.models import to_model_input


def load_global(model: torch.nn.Module, record: ArrayRecord) -> None:
    """Load the server's arrays into the model (strict: a mismatch is a protocol error)."""
    model.load_state_dict({k: v for k, v in m.to_tensors(record).items()}, strict=True)


def train_local(
    model: torch.nn.Module, batch: Batch, config: Mapping[str, Any], seed: int = 0
) -> dict[str, Any]:
    """Train in place as configured; returns the metrics the reply should carry."""
    training = m.LocalTraining.from_config(config)
    inputs = to_model_input(batch.images, model.in_channels)
    n = len(batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=training.lr)
    shuffled = training.minibatch(n)
    if shuffled:
        generator = torch.Generator().manual_seed(seed)
        size = int(training.batch_size)  # type: ignore[arg-type]
        groups = [
            torch.randperm(n, generator=generator).split(size) for _ in range(training.epochs or 1)
        ]
        order = [g for epoch in groups for g in epoch]
    else:
        order = [torch.arange(n)] * training.total_steps(n)
    loss = torch.zeros(())
    for index in order:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs[index]), batch.labels[index])
        loss.backward()
        optimizer.step()
    return {
        m.NUM_EXAMPLES: n,
        "train-loss": float(loss.detach()),
        "medleak-steps": len(order),
        "medleak-shuffled": int(shuffled),
    }


def train_dp_sgd(
    model: torch.nn.Module,
    batch: Batch,
    config: Mapping[str, Any],
    spec: str | Mapping[str, Any],
    seed: int,
    rounds: int = 1,
) -> dict[str, Any]:
    """Train in place with DP-SGD (a ``dp:c=...,z=...`` spec) as full-batch local steps.

    Each step is medleak's clipped, noised per-example gradient (the same estimator the attack
    suite evaluates), so the weights sent are w0 - lr * (sum of noisy steps); epsilon is the RDP
    guarantee over ``rounds`` rounds.
    """
    resolved = resolve_spec(spec)
    if resolved["name"] != "dp":
        raise ConfigError(f"train_dp_sgd needs a 'dp' spec, got {resolved['name']!r}")
    training = m.LocalTraining.from_config(config)
    if training.minibatch(len(batch)):
        raise ConfigError("train_dp_sgd runs full-batch steps; drop 'batch-size' from the config")
    settings = training.settings(len(batch))
    update = dp_client_update(
        model, batch, settings, resolved["params"], stage_generator(seed, 0), rounds=rounds
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in update.tensors:
                p.sub_(training.lr * update.tensors[name])
    privacy = update.privacy or {}
    epsilon = privacy.get("epsilon")
    return {
        m.NUM_EXAMPLES: len(batch),
        "medleak-steps": settings.steps,
        "medleak-shuffled": 0,
        "dp-epsilon": float(epsilon) if epsilon is not None and math.isfinite(epsilon) else -1.0,
        "dp-delta": float(privacy.get("delta", 0.0)),
    }


def batch_record(batch: Batch) -> ArrayRecord:
    return m.to_record({"images": batch.images, "labels": batch.labels})


def remember_batch(context: Context, batch: Batch) -> None:
    """Keep this round's batch in the client's own state, for ``LeakageGuardMod`` (stays local)."""
    context.state[m.BATCH_STATE_KEY] = batch_record(batch)


def offer_originals(content: RecordDict, batch: Batch) -> None:
    """Hand the batch to the server's audit log (simulation only: a real client never would)."""
    content[m.ORIGINALS_KEY] = batch_record(batch)


def remembered_batch(context: Context) -> tuple[torch.Tensor, torch.Tensor] | None:
    if m.BATCH_STATE_KEY not in context.state.array_records:
        return None
    tensors = m.to_tensors(context.state.array_records[m.BATCH_STATE_KEY])
    return tensors["images"].float(), tensors["labels"].long()
