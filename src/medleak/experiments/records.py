"""A run's identity and its typed record: what a store saves and the report reads.

The run id is a hash of the canonical configuration: every default resolved, defense specs
resolved to ``{"name", "params"}`` with all parameters, keys sorted, a weights or learned-prior
file replaced by the SHA-256 of its bytes (a renamed file is the same run; an overwritten one is
not). A key at its declared neutral value (``flags.option(..., neutral=...)``: the value that
reproduces the behaviour from before the key existed) is left out, so adding an option never
re-keys a store. Threads, output paths, the LPIPS folder and ``metrics.baseline`` are excluded:
they change where or how fast a run goes, or add the undefended baseline's numbers beside a
run's, never the run's own numbers. The medleak version and git commit are recorded beside
the id, not in it, so the same experiment keeps its id across versions and a sweep can compare
them.

One id function serves every store: a run folder's ``metrics.json``, and the sweep's SQLite
rows (an attack, or a federated training identified by what it depends on). ``RUN_ID_SCHEME``
names the canonical form; a store written under an older scheme is matched through
``legacy_sweep_id`` and reported as another version, never silently reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medleak.defenses import resolve_spec
from medleak.experiments.config import RunConfig, keys_added_after, neutral_keys

RECORD_SCHEMA = 1
# 1: the first sweep store's ids (sha256 of the raw config dict); 2: the canonical config;
# 3: the canonical config with only the chosen attack's options in its attack section.
RUN_ID_SCHEME = 3
# metrics.baseline adds the undefended attack's numbers beside a run's and never changes them.
EXCLUDED = (("threads",), ("metrics", "lpips_weights"), ("metrics", "baseline"))
# Keys of ``data`` that choose the attacked batch, not the federation: a training ignores them.
BATCH_ONLY = ("offset", "order", "batch_size", "split")


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def canonical_config(config: RunConfig, scheme: int = RUN_ID_SCHEME) -> dict[str, Any]:
    """The configuration that determines a run's numbers, in one canonical form.

    From scheme 3 on, the attack section holds only the chosen attack's options (an option of
    another attack cannot change this run's numbers)."""
    data = config.full_dict()
    if scheme >= 3:
        own = set(config.attack.own_keys())
        data["attack"] = {k: v for k, v in data["attack"].items() if k in own}
    for path in EXCLUDED:
        node = data
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    for path, neutral in neutral_keys():
        node = data
        for key in path[:-1]:
            node = node[key]
        if path[-1] in node and node[path[-1]] == neutral:
            del node[path[-1]]
    data["defenses"] = [resolve_spec(s) for s in config.defenses]
    if config.model.weights:
        data["model"]["weights"] = _file_digest(config.model.weights)
    prior = config.attack.prior
    if prior.endswith(".safetensors") and Path(prior).is_file():
        data["attack"]["prior"] = _file_digest(prior)
    return data


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _training_identity(train: dict[str, Any]) -> dict[str, Any]:
    # Which rounds are saved is an output choice, not part of what the training computes.
    return {k: v for k, v in train.items() if k != "save_rounds"}


def run_id(
    config: RunConfig,
    kind: str = "attack",
    train: dict[str, Any] | None = None,
    scheme: int = RUN_ID_SCHEME,
) -> str:
    """16 hex digits of SHA-256 over the canonical configuration (sorted-key JSON).

    ``kind="attack"``: the whole canonical config (plus the training, when the attacked weights
    come from one of its rounds). ``kind="train"``: what a federated training depends on (data
    without the batch choice, model without the round, defenses, seed, the training settings).
    """
    canonical = canonical_config(config, scheme)
    if kind == "train":
        if train is None:
            raise ValueError("a training's id needs its training settings")
        payload = {
            "data": {k: v for k, v in canonical["data"].items() if k not in BATCH_ONLY},
            "model": {k: v for k, v in canonical["model"].items() if k != "round"},
            "defenses": canonical["defenses"],
            "seed": canonical["seed"],
            "train": _training_identity(train),
        }
    else:
        payload = {"config": canonical}
        if train is not None and config.model.round is not None:
            payload["train"] = _training_identity(train)
    return _digest({"kind": kind, **payload})


def legacy_ids(
    config: RunConfig,
    kind: str,
    train: dict[str, Any] | None = None,
    current: str | None = None,
) -> tuple[str, ...]:
    """The ids older schemes gave this run, newest first (those that differ from today's): a
    store written by an earlier version is found and re-keyed, never recomputed. ``current``:
    today's id when the caller has it (each id hashes any weights file again)."""
    current = current if current is not None else run_id(config, kind, train)
    older = (run_id(config, kind, train, scheme=2), legacy_sweep_id(config, kind, train))
    return tuple(i for i in dict.fromkeys(older) if i != current)


def legacy_sweep_id(config: RunConfig, kind: str, train: dict[str, Any] | None = None) -> str:
    """The id the first sweep store (scheme 1) gave this run: found only to report it."""
    raw = config.full_dict()
    raw["metrics"].pop("baseline", None)  # never part of an id (EXCLUDED)
    # keys added after scheme 1 (declared on their fields): at these values the run is the one
    # scheme 1 described
    for path, implicit in keys_added_after(1):
        node = raw
        for key in path[:-1]:
            node = node.get(key, {})
        if node.get(path[-1], implicit) == implicit:
            node.pop(path[-1], None)
    if kind == "train":
        assert train is not None
        payload = {
            "data": {k: v for k, v in raw["data"].items() if k not in BATCH_ONLY},
            "model": {k: v for k, v in raw["model"].items() if k != "round"},
            "defenses": raw["defenses"],
            "seed": raw["seed"],
            "train": _training_identity(train),
        }
    else:
        inner = {k: v for k, v in raw.items() if k != "threads"}
        if raw["model"].get("round") is not None and train is not None:
            inner["train"] = _training_identity(train)
        payload = {"config": inner}
    return _digest({"kind": kind, **payload})


@dataclass
class RunRecord:
    """One finished run as a store keeps it.

    metrics: what ``metrics.json`` holds. tensors: originals, reconstructions, initial, labels,
    used_labels. trace_csv / config_yaml: the trace and the config that reruns it.
    provenance: version, commit, machine (beside the id, not part of it).
    """

    run_id: str
    metrics: dict[str, Any]
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    trace_csv: str = ""
    config_yaml: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    schema: int = RECORD_SCHEMA
