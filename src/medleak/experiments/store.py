"""A finished run as a typed record, saved through a ``Store`` (the run folder by default).

Experiments writes records and never renders them: the grid and the HTML report are the
report's job (``medleak.report.render_run``), called by the CLI after the record is saved.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import torch

from medleak.experiments.config import dump_config
from medleak.experiments.provenance import provenance
from medleak.experiments.records import RECORD_SCHEMA, RunRecord, run_id
from medleak.experiments.run import RunResult
from medleak.experiments.stores import RunFolderStore, Store
from medleak.metrics.verdict import judge, protection_ssim
from medleak.private_files import source_alias


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; a number that is not finite is reported as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _json_safe(value.tolist())
    return value


#: The baseline's per-image keys kept in ``metrics.json`` (no source names: nothing to alias).
BASELINE_ROW_KEYS = ("index", "label", "matched_to", "psnr", "ssim", "reid_rank", "reidentified")


def baseline_record(result: RunResult) -> dict[str, Any] | None:
    """The undefended baseline's scores as ``metrics.json`` nests them (``baseline``), judged by
    the same rule as any undefended run."""
    base = result.baseline
    if base is None:
        return None
    record = {
        "defenses": [],
        "labels_source": base.reconstruction.labels_source,
        "iterations": len(base.reconstruction.trace),
        "seconds": base.seconds,
        **base.scores,
    }
    record["per_image"] = [
        {k: row.get(k) for k in BASELINE_ROW_KEYS} for row in base.scores.get("per_image", [])
    ]
    record.update(judge(record).to_dict())
    return record


def metrics_record(result: RunResult) -> dict[str, Any]:
    """Everything ``metrics.json`` holds; see the README for what each number means."""
    plan, update = result.plan, result.update
    config = plan.config
    privacy = update.privacy or {}
    iterations = len(result.reconstruction.trace)
    record: dict[str, Any] = {
        **provenance(),
        "attack": config.attack.name,
        "model": config.model.name,
        "channels": config.model.channels,
        "fl": config.fl.algorithm,
        "labels_source": result.reconstruction.labels_source,
        "seed": config.seed,
        "iterations": iterations,
        "seconds": result.seconds,
        "seconds_per_iteration": result.seconds / max(iterations, 1),
        **result.scores,
        "defenses": list(update.defenses),
        "bits_sent": update.bits_sent,
        "bits_raw": update.bits_raw,
        # bandwidth, one name and one direction everywhere: bits sent / bits of the raw update
        "bits_ratio": update.bits_sent / update.bits_raw if update.bits_raw else None,
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "privacy": update.privacy,
        "attack_info": result.reconstruction.info,
        "config": config.to_dict(),
    }
    baseline = baseline_record(result)
    if baseline is not None:
        record.update(
            baseline=baseline,
            baseline_psnr=baseline["psnr"],
            baseline_ssim=baseline["ssim"],
            baseline_reid_count=baseline.get("reid_count"),
            baseline_verdict=baseline["verdict"],
            baseline_verdict_reason=baseline["verdict_reason"],
            baseline_seconds=baseline["seconds"],
            protection_ssim=protection_ssim(record, baseline),
        )
    record.update(judge(record).to_dict())
    if not config.metrics.show_sources:
        for row in record["per_image"]:
            row["source"] = source_alias(str(row["source"]))
    return _json_safe(record)


def _trace_csv(result: RunResult) -> str:
    trace = result.reconstruction.trace
    restarts = result.reconstruction.info.get("trace_restart", [0] * len(trace))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["iteration", "restart", "loss"])
    for i, (restart, loss) in enumerate(zip(restarts, trace)):
        writer.writerow([i, restart, repr(float(loss))])
    return buffer.getvalue()


def run_record(result: RunResult) -> RunRecord:
    """The typed record of a finished run (what a store saves)."""
    config = result.plan.config
    identity = run_id(config)
    metrics = {"run_id": identity, "record_schema": RECORD_SCHEMA, **metrics_record(result)}
    order = result.matched
    tensors = {
        "originals": result.plan.batch.images.contiguous(),
        "reconstructions": result.reconstruction.images[order].contiguous(),
        "initial": result.reconstruction.initial_images[order].contiguous(),
        "labels": result.plan.batch.labels.contiguous(),
        "used_labels": result.reconstruction.labels.contiguous(),
    }
    if result.prior is not None:
        tensors["prior"] = result.prior.float().contiguous()
    if result.baseline is not None:
        base = result.baseline
        tensors["baseline_reconstructions"] = base.reconstruction.images[base.matched].contiguous()
    return RunRecord(
        run_id=identity,
        metrics=metrics,
        tensors=tensors,
        trace_csv=_trace_csv(result),
        config_yaml=dump_config(config),
        provenance={k: metrics[k] for k in provenance()},
    )


def write_run(result: RunResult, out: Path, store: Store | None = None) -> RunRecord:
    """Save the run's record (into the run folder ``out`` unless another store is given)."""
    record = run_record(result)
    (store or RunFolderStore(out)).save(record)
    return record


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Reload a finished run: its metrics record and its tensors (originals, reconstructions...)."""
    record = RunFolderStore(run_dir).load()
    return record.metrics, record.tensors
