"""Federated training for utility: how accurate a model gets when every update is obfuscated.

FedAvg (McMahan et al. 2017) over partitioned clients. Each sampled client runs local minibatch
SGD from the global weights and sends its pseudo-gradient (w0 - w_tau) / lr, the sum of its step
gradients, through the same defense chain as the attack runs, so a setting's accuracy and its
leakage come from the same obfuscation. A leading ``dp`` makes every local step a DP-SGD step
(per-example clipping + noise, ``fl.estimators.DpSgdGradient``); its epsilon is accounted by
one stateful ``fl.accountant.PrivacyAccountant`` per client (Opacus's RDP), stepped each round
the client takes part in, and the worst client's epsilon is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from medleak.data import DataSpec, open_dataset
from medleak.data.batch import Batch
from medleak.errors import ConfigError
from medleak.fl.accountant import PrivacyAccountant
from medleak.fl.client import buffers_of, parameters_of
from medleak.fl.estimators import GradientEstimator
from medleak.fl.partition import PARTITIONS, partition
from medleak.fl.update import FLSettings, Update
from medleak.fl.utility import roc_auc, utility_metrics
from medleak.models import to_model_input


class ClientTransform(Protocol):
    """What a training needs of the obfuscation its clients apply (``defenses.DefenseChain``
    satisfies it): fl sits below defenses and never imports them, so the chain comes in through
    this contract."""

    resolved: list[dict[str, Any]]

    @property
    def dp_params(self) -> dict[str, Any] | None: ...

    def estimator(self, generator: torch.Generator) -> GradientEstimator: ...

    def post_process(self, update: Update, seed: int) -> Update: ...


@dataclass
class TrainConfig:
    """The local training of a federation (distinct from ``fl.*``, the one update attacked)."""

    clients: int = 4
    rounds: int = 10
    partition: str = "iid"
    alpha: float = 0.5
    fraction: float = 1.0
    local_epochs: int | None = None
    local_steps: int = 50
    local_batch_size: int = 16
    local_lr: float = 0.1
    server_lr: float = 1.0
    eval_split: float = 0.2
    save_rounds: list[Any] = field(default_factory=list)

    def check(self) -> None:
        """Refuse a bad value before any work, naming the key."""
        positive = {
            "clients": self.clients,
            "rounds": self.rounds,
            "local_steps": self.local_steps,
            "local_batch_size": self.local_batch_size,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"train.{key} must be >= 1, got {value}")
        if self.local_epochs is not None and self.local_epochs < 1:
            raise ConfigError(f"train.local_epochs must be >= 1, got {self.local_epochs}")
        if self.partition not in PARTITIONS:
            raise ConfigError(
                f"train.partition must be one of {', '.join(PARTITIONS)}, got {self.partition!r}"
            )
        if not self.alpha > 0:
            raise ConfigError(f"train.alpha must be > 0, got {self.alpha}")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"train.fraction must be in (0, 1], got {self.fraction}")
        for key in ("local_lr", "server_lr"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"train.{key} must be > 0, got {getattr(self, key)}")
        if not 0 < self.eval_split < 1:
            raise ConfigError(f"train.eval_split must be in (0, 1), got {self.eval_split}")
        for r in self.save_rounds:
            if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= self.rounds:
                raise ConfigError(f"train.save_rounds: {r!r} is not a round in 0..{self.rounds}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Split:
    train: Batch
    test: Batch
    description: str

    @property
    def classes(self) -> int:
        """Classes the labels reach (highest label + 1): the model's default head size."""
        return int(torch.cat((self.train.labels, self.test.labels)).max()) + 1


@dataclass
class TrainResult:
    curves: dict[str, list[float | None]]
    metrics: dict[str, Any]
    states: dict[int, dict[str, torch.Tensor]]
    dp_history: list[list[tuple[float, float, int]]]


def _concat(batches: Sequence[Batch]) -> Batch:
    return Batch(
        torch.cat([b.images for b in batches]),
        torch.cat([b.labels for b in batches]),
        tuple(s for b in batches for s in b.sources),
        tuple(p for b in batches for p in b.patients),
    )


def _load_all(dataset: Any) -> Batch:
    chunks = [
        dataset.load(list(range(i, min(i + 64, len(dataset))))) for i in range(0, len(dataset), 64)
    ]
    return _concat(chunks)


def _subset(batch: Batch, indices: Sequence[int]) -> Batch:
    index = torch.as_tensor(list(indices), dtype=torch.long)
    return Batch(
        batch.images[index].contiguous(),
        batch.labels[index].contiguous(),
        tuple(batch.sources[i] for i in indices),
        tuple(batch.patients[i] for i in indices),
    )


def load_split(spec: DataSpec, seed: int, eval_split: float) -> Split:
    """Training and held-out images for a data source (the rule is stated in ``description``).

    Phantoms: a seeded class-stratified held-out share of one generated set (distinct phantoms,
    chance 0.5). A Kaggle folder (train/ and test/) or a MedMNIST npz: its own train and test
    splits. Any other folder: a seeded patient-disjoint split (images of unknown patient count
    as their own patient).
    """
    path = Path(spec.source).expanduser()
    own_splits = not spec.is_phantom and (
        path.suffix.lower() == ".npz" or ((path / "train").is_dir() and (path / "test").is_dir())
    )
    if own_splits:
        train = _load_all(open_dataset(_with_split(spec, "train"), seed))
        test = _load_all(open_dataset(_with_split(spec, "test"), seed))
        return Split(train, test, f"{spec.source}: its own train/ and test/ splits")
    everything = _load_all(open_dataset(spec, seed))
    if spec.is_phantom:
        return _stratified_split(everything, seed, eval_split)
    groups: dict[str, list[int]] = {}
    for i, patient in enumerate(everything.patients):
        groups.setdefault(patient or f"#image-{i}", []).append(i)
    keys = sorted(groups)
    rng = np.random.default_rng([seed, 2718])
    order = [keys[i] for i in rng.permutation(len(keys))]
    held = max(1, round(eval_split * len(keys)))
    test_idx = sorted(i for k in order[:held] for i in groups[k])
    train_idx = sorted(i for k in order[held:] for i in groups[k])
    if not train_idx:
        raise ConfigError("too few images to hold out an evaluation split")
    what = "synthetic phantoms" if spec.is_phantom else str(spec.source)
    rule = (
        f"{what}: seeded patient-disjoint split, {len(train_idx)} train / {len(test_idx)} held out"
    )
    return Split(_subset(everything, train_idx), _subset(everything, test_idx), rule)


def _stratified_split(everything: Batch, seed: int, eval_split: float) -> Split:
    """Phantoms are distinct synthetic patients: hold out the same share of each class.

    A class-balanced held-out set keeps chance at the class share of the data (0.5 for
    phantoms), so 40 held-out images do not start a model at an accidental 0.675.
    """
    rng = np.random.default_rng([seed, 2718])
    test_idx: list[int] = []
    for label in sorted(set(everything.labels.tolist())):
        members = [i for i, y in enumerate(everything.labels.tolist()) if y == label]
        held = max(1, round(eval_split * len(members)))
        test_idx += [members[i] for i in rng.permutation(len(members))[:held]]
    test_set = set(test_idx)
    train_idx = [i for i in range(len(everything)) if i not in test_set]
    if not train_idx:
        raise ConfigError("too few images to hold out an evaluation split")
    rule = (
        f"synthetic phantoms: seeded class-stratified split, {len(train_idx)} train / "
        f"{len(test_idx)} held out"
    )
    return Split(_subset(everything, train_idx), _subset(everything, sorted(test_idx)), rule)


def _with_split(spec: DataSpec, split: str) -> DataSpec:
    from dataclasses import replace

    return replace(spec, split=split)


def _logits(model: nn.Module, params: dict[str, torch.Tensor], test: Batch) -> torch.Tensor:
    buffers = buffers_of(model)
    was_training = model.training
    model.eval()
    logits = []
    with torch.no_grad():
        for start in range(0, len(test), 128):
            x = to_model_input(test.images[start : start + 128], model.in_channels)
            logits.append(functional_call(model, ({**params, **buffers},), (x,)))
    model.train(was_training)
    return torch.cat(logits)


def evaluate_model(model: nn.Module, params: dict[str, torch.Tensor], test: Batch) -> dict:
    """Held-out accuracy, ROC AUC (PNEUMONIA = positive) and mean cross-entropy."""
    out = _logits(model, params, test)
    loss = float(F.cross_entropy(out, test.labels))
    accuracy = int((out.argmax(1) == test.labels).sum()) / len(test)  # exact, as in the CI
    auc = roc_auc(torch.softmax(out, 1)[:, 1], test.labels)
    return {"accuracy": accuracy, "auc": auc, "loss": loss if math.isfinite(loss) else None}


def final_utility(
    model: nn.Module, params: dict[str, torch.Tensor], test: Batch, seed: int
) -> dict[str, Any]:
    """The final model's accuracy and AUC with 95% intervals, chance, majority rate, learned."""
    out = _logits(model, params, test)
    return utility_metrics(
        out.argmax(1).numpy(),
        test.labels.numpy(),
        torch.softmax(out, 1)[:, 1].numpy(),
        classes=int(out.shape[1]),
        seed=seed,
    )


def _mix(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFFFFFF)


def _local_update(
    model: nn.Module,
    global_params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    data: Batch,
    config: TrainConfig,
    chain: ClientTransform,
    seed: int,
) -> tuple[Update, int]:
    """The client's minibatch-SGD pseudo-gradient after the chain; returns it and its steps."""
    n = len(data)
    batch_size = min(config.local_batch_size, n)
    per_epoch = math.ceil(n / batch_size)
    steps = config.local_epochs * per_epoch if config.local_epochs else config.local_steps
    generator = torch.Generator().manual_seed(seed)
    estimator = chain.estimator(torch.Generator().manual_seed(_mix(seed, 1)))
    current = {k: v.detach().clone() for k, v in global_params.items()}
    names = list(current)
    total = {k: torch.zeros_like(v) for k, v in current.items()}
    order = torch.randperm(n, generator=generator)
    position = 0
    inputs_all = to_model_input(data.images, model.in_channels)
    for _ in range(steps):
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        index = order[position : position + batch_size]
        position += batch_size
        x, y = inputs_all[index], data.labels[index]
        grads = estimator.gradient(model, current, buffers, x, y)
        for k in names:
            total[k] += grads[k]
            current[k] = current[k] - config.local_lr * grads[k]
    update = Update(
        tensors=total,
        kind="pseudo_gradient",
        fl=FLSettings(algorithm="fedavg", local_steps=steps, local_lr=config.local_lr),
        batch_size=batch_size,
        bits_sent=32 * sum(t.numel() for t in total.values()),
    )
    return chain.post_process(update, seed=_mix(seed, 2)), steps


def dp_epsilon_of(history: Sequence[tuple[float, float, int]], delta: float) -> float:
    """epsilon of one client's history of (noise multiplier, sample rate, steps), Opacus RDP."""
    accountant = PrivacyAccountant(delta, resample_each_step=True)
    for z, q, steps in history:
        accountant.step_round(z, q, steps)
    return accountant.epsilon()


def train_federated(
    model: nn.Module,
    split: Split,
    chain: ClientTransform,
    config: TrainConfig,
    seed: int,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Run ``config.rounds`` FedAvg rounds; evaluate the global model after each (and before)."""
    config.check()
    labels = split.train.labels.tolist()
    parts = partition(
        labels, config.clients, config.partition, config.alpha, seed, split.train.patients
    )
    clients = [_subset(split.train, p) for p in parts]
    params = {k: v.clone() for k, v in parameters_of(model).items()}
    buffers = buffers_of(model)
    dp = chain.dp_params
    if dp is not None and math.isinf(dp["z"]) is False and dp["z"] == 0:
        dp = dp  # z = 0: epsilon is infinite, recorded as None below
    # one stateful accountant per client, stepped each round it takes part in (fresh minibatch
    # every local step: each step is a subsampled Gaussian)
    delta = dp["delta"] if dp is not None else 0.5
    accountants = [PrivacyAccountant(delta, resample_each_step=True) for _ in clients]
    curves: dict[str, list[float | None]] = {
        "round": [],
        "accuracy": [],
        "auc": [],
        "loss": [],
        "epsilon": [],
        "bits_sent": [],
    }
    states: dict[int, dict[str, torch.Tensor]] = {}
    bits_raw = 32 * sum(t.numel() for t in params.values())

    def record(r: int, bits: float | None, epsilon: float | None) -> None:
        scores = evaluate_model(model, params, split.test)
        curves["round"].append(r)
        for key in ("accuracy", "auc", "loss"):
            curves[key].append(scores[key])
        curves["epsilon"].append(epsilon)
        curves["bits_sent"].append(bits)
        if r in config.save_rounds:
            states[r] = {k: v.detach().clone() for k, v in {**params, **buffers}.items()}
        if progress is not None:
            progress(r, scores)

    record(0, None, 0.0 if dp is not None else None)
    sampled = max(1, round(config.fraction * len(clients)))
    epsilon: float | None = None
    for r in range(1, config.rounds + 1):
        rng = np.random.default_rng([seed, r, 99])
        chosen = sorted(int(c) for c in rng.choice(len(clients), size=sampled, replace=False))
        updates, bits = [], []
        client_buffers = []
        for c in chosen:
            local_buffers = {k: v.clone() for k, v in buffers.items()}
            update, steps = _local_update(
                model, params, local_buffers, clients[c], config, chain, _mix(seed, r, c)
            )
            updates.append(update)
            bits.append(update.bits_sent)
            client_buffers.append(local_buffers)
            if dp is not None:
                rate = min(1.0, min(config.local_batch_size, len(clients[c])) / len(clients[c]))
                accountants[c].step_round(float(dp["z"]), rate, steps)
        for k in params:
            mean = torch.stack([u.tensors[k] for u in updates]).mean(0)
            params[k] = params[k] - config.server_lr * config.local_lr * mean
        for k in buffers:
            if buffers[k].is_floating_point():
                buffers[k] = torch.stack([b[k] for b in client_buffers]).mean(0)
        if dp is not None:
            if dp["z"] == 0:
                epsilon = None
            else:
                epsilon = max(a.epsilon() for a in accountants)
        record(r, float(np.mean(bits)), epsilon)
    final = {k: curves[k][-1] for k in ("accuracy", "auc", "loss")}
    utility = final_utility(model, params, split.test, seed)
    metrics = {
        **{f"test_{k}": v for k, v in final.items()},
        **utility,
        "epsilon": epsilon,
        "delta": dp["delta"] if dp is not None else None,
        "bits_sent": curves["bits_sent"][-1],
        "bits_raw": bits_raw,
        "bits_ratio": (curves["bits_sent"][-1] or bits_raw) / bits_raw,
        # the majority-class rate under its first name (older readers use it)
        "chance": utility["majority_rate"],
        "train_images": len(split.train),
        "test_images": len(split.test),
        "client_sizes": [len(c) for c in clients],
        "data_split": split.description,
        "defenses": chain.resolved,
    }
    return TrainResult(curves, metrics, states, [a.rounds for a in accountants])
