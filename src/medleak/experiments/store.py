"""The persistent result of a run: a folder a person can open and a program can reload.

Files are written to a temporary name and renamed into place, so an interrupted run never
leaves a half-written file that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from medleak.errors import MedleakError
from medleak.experiments.config import dump_config
from medleak.experiments.provenance import provenance
from medleak.experiments.run import RunResult
from medleak.metrics.verdict import judge
from medleak.private_files import make_private, private_dir, source_alias, temp_path, write_private

METRICS_FILE = "metrics.json"
TRACE_FILE = "trace.csv"
TENSORS_FILE = "tensors.safetensors"
GRID_FILE = "reconstruction.png"
CONFIG_FILE = "config.yaml"
REPORT_FILE = "report.html"


RUN_FILES = (METRICS_FILE, TRACE_FILE, TENSORS_FILE, GRID_FILE, CONFIG_FILE, REPORT_FILE)


def holds_run(folder: Path) -> bool:
    """A folder "holds a run" when it has a ``metrics.json``."""
    return (folder / METRICS_FILE).is_file()


def prepare_run_folder(out: Path, *, force: bool) -> None:
    """Refuse to write over an earlier run unless ``force``; with it, clear that run's files.

    Checked before the attack starts, so a refusal costs nothing; only medleak's own file names
    are removed, never anything else a user keeps in the folder.
    """
    if out.exists() and not out.is_dir():
        raise MedleakError(f"--out {out} is a file, not a folder")
    if holds_run(out):
        if not force:
            raise MedleakError(
                f"{out} already holds a run (it has {METRICS_FILE}); choose another --out or "
                "pass --force to replace it"
            )
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)


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
        "compression_ratio": update.bits_raw / update.bits_sent if update.bits_sent else None,
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "privacy": update.privacy,
        "attack_info": result.reconstruction.info,
        "config": config.to_dict(),
    }
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


def write_run(result: RunResult, out: Path) -> dict[str, Any]:
    """Write every output file of a run into ``out`` and return the metrics record."""
    from medleak.report import save_grid, write_report

    private_dir(out)
    record = metrics_record(result)
    order = result.matched
    originals = result.plan.batch.images
    reconstructions = result.reconstruction.images[order].contiguous()
    initial = result.reconstruction.initial_images[order].contiguous()
    tensors = {
        "originals": originals.contiguous(),
        "reconstructions": reconstructions,
        "initial": initial,
        "labels": result.plan.batch.labels.contiguous(),
        "used_labels": result.reconstruction.labels.contiguous(),
    }
    tmp = temp_path(out / TENSORS_FILE)
    save_file(tensors, str(tmp))
    os.replace(make_private(tmp), out / TENSORS_FILE)
    write_private(out / TRACE_FILE, _trace_csv(result).encode())
    write_private(out / CONFIG_FILE, dump_config(result.plan.config).encode())
    captions = [f"PSNR {p['psnr']:.1f} / SSIM {p['ssim']:.2f}" for p in record["per_image"]]
    make_private(save_grid(originals, reconstructions, out / GRID_FILE, captions=captions))
    write_private(out / METRICS_FILE, json.dumps(record, indent=2, allow_nan=False).encode())
    write_report([out], out / REPORT_FILE, force=True)
    return record


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Reload a finished run: its metrics record and its tensors (originals, reconstructions...)."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise MedleakError(f"{run_dir} is not a medleak run folder (no {METRICS_FILE})")
    try:
        record = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as exc:
        raise MedleakError(f"{metrics_path} is corrupt: {exc}") from None
    tensors_path = run_dir / TENSORS_FILE
    tensors = load_file(str(tensors_path)) if tensors_path.is_file() else {}
    return record, tensors
