"""A run's identity and its typed record: what a store saves and the report reads.

The run id is a hash of the canonical configuration: every default resolved, defense specs
resolved to ``{"name", "params"}`` with all parameters, keys sorted, a weights or learned-prior
file replaced by the SHA-256 of its bytes (a renamed file is the same run; an overwritten one is
not). Threads, output paths and the LPIPS folder are excluded: they change where or how fast a
run goes, never its numbers. The medleak version and git commit are recorded beside the id, not
in it, so the same experiment keeps its id across versions and a sweep can compare them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medleak.defenses import resolve_spec
from medleak.experiments.config import RunConfig

RECORD_SCHEMA = 1
EXCLUDED = (("threads",), ("metrics", "lpips_weights"))


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def canonical_config(config: RunConfig) -> dict[str, Any]:
    """The configuration that determines a run's numbers, in one canonical form."""
    data = config.to_dict()
    for path in EXCLUDED:
        node = data
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    data["defenses"] = [resolve_spec(s) for s in config.defenses]
    if config.model.weights:
        data["model"]["weights"] = _file_digest(config.model.weights)
    prior = config.attack.prior
    if prior.endswith(".safetensors") and Path(prior).is_file():
        data["attack"]["prior"] = _file_digest(prior)
    return data


def run_id(config: RunConfig) -> str:
    """16 hex digits of SHA-256 over the canonical configuration (sorted-key JSON)."""
    text = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
