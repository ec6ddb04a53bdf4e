"""Audit records of a real federation, kept in the sweep store as runs of kind ``audit``.

An audit of one client's update in one round is one row of the same SQLite file sweeps write
(``SweepStore``), so ``medleak results`` and ``medleak report`` read both. Its config is what was
audited (federation, round, client, strategy, attack, the defense chain as ``--defense`` text);
its metrics are what the audit found (the audit's own status, bits, verdict, the scores, also
flattened so the results table shows PSNR/SSIM like a sweep's); its tensors are one safetensors
blob. An attack that failed is a failed run whose error is the reason.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from medleak.defenses.spec import format_spec
from medleak.experiments.provenance import provenance
from medleak.experiments.sqlite_store import SweepStore

AUDIT_KIND = "audit"
TENSORS_BLOB = "tensors.safetensors"
TENSORS_MIME = "application/x-safetensors"
#: Record keys that say what was audited (the run's config); everything else is what it found.
CONFIG_KEYS = (
    "federation",
    "round",
    "client",
    "strategy",
    "attack",
    "image_size",
    "data_note",
    "secure_aggregation",
    "defenses",
    "fl",
    "num_examples",
)
#: Scores copied to the top level of the metrics, where the results table looks for them.
FLAT_SCORES = ("psnr", "ssim", "blank_ssim", "blank_psnr", "reid_rate", "label_accuracy")
FAILED = "attack-failed"


@lru_cache(maxsize=1)
def _provenance() -> dict[str, Any]:
    return provenance()


def audit_id(record: dict[str, Any]) -> str:
    """One audit per (federation, round, client); ``all`` for a round-level record."""
    return f"audit-{record['federation']}-r{record['round']}-{record.get('client') or 'all'}"


def _spec_text(defense: Any) -> str:
    return defense if isinstance(defense, str) else format_spec(defense)


def save_audit(
    store: str | Path, record: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
) -> str:
    """Write one audit record (and its tensors) to the sweep store; returns its run id."""
    config = {k: record[k] for k in CONFIG_KEYS if k in record}
    if "defenses" in record:
        config["defenses"] = [_spec_text(d) for d in record["defenses"] or []]
    metrics = {k: v for k, v in record.items() if k not in CONFIG_KEYS and k != "status"}
    metrics["audit_status"] = record["status"]
    scores = record.get("scores") or {}
    for key in FLAT_SCORES:
        if key in scores:
            metrics[key] = scores[key]
    sent, raw = record.get("payload_bits"), record.get("raw_bits")
    if sent and raw:
        metrics.update(bits_sent=sent, bits_raw=raw, bits_ratio=sent / raw)
    run_id = audit_id(record)
    client = record.get("client") or "all"
    label = f"audit round {record['round']} client {client}"
    blobs = {}
    if tensors:
        data = save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        blobs[TENSORS_BLOB] = (TENSORS_MIME, data)
    with SweepStore(store) as db:
        db.mark_running(run_id, AUDIT_KIND, label, config, None)
        if record["status"] == FAILED:
            db.fail(run_id, str(record.get("reason", "attack failed")))
        else:
            seconds = float(record.get("wall_seconds") or 0.0)
            db.finish(run_id, metrics, None, blobs, seconds, _provenance())
    return run_id


def load_audits(store: str | Path) -> list[tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """Every audit record in the store, in the order written, with its tensors.

    A record reads back as it was saved (config and metrics merged, the audit's status under
    ``status``), except that defenses are their ``--defense`` text.
    """
    out = []
    with SweepStore(store, create=False) as db:
        for run in db.runs(kind=AUDIT_KIND):
            record = {**run.config, **run.metrics}
            if run.status == "failed":
                record.update(status=FAILED, reason=run.error)
            else:
                record["status"] = record.pop("audit_status", run.status)
            blob = db.blob(run.run_id, TENSORS_BLOB)
            out.append((record, load_tensors(blob) if blob else {}))
    return out
