"""Where run records live: one small interface, the run folder as its first backend.

A ``Store`` saves a ``RunRecord`` and loads it back by where it put it; it never renders
anything (the report reads records, experiments never imports the report). The run-folder
backend is a folder a person can open: ``metrics.json``, ``trace.csv``, ``config.yaml`` and
``tensors.safetensors``; files are private (0600 in a 0700 folder: they hold patients' images)
and written to a temporary name and renamed into place, so an interrupted run never leaves a
half-written file that looks complete. A SQLite backend implements the same two methods.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from safetensors.torch import load_file, save_file

from medleak.errors import MedleakError
from medleak.experiments.records import RunRecord
from medleak.output_targets import claim_folder
from medleak.private_files import make_private, private_dir, temp_path, write_private

METRICS_FILE = "metrics.json"
TRACE_FILE = "trace.csv"
TENSORS_FILE = "tensors.safetensors"
CONFIG_FILE = "config.yaml"
# Written by the report from the record, beside the store's files.
GRID_FILE = "reconstruction.png"
REPORT_FILE = "report.html"
RUN_FILES = (METRICS_FILE, TRACE_FILE, TENSORS_FILE, GRID_FILE, CONFIG_FILE, REPORT_FILE)


def holds_run(folder: Path) -> bool:
    """A folder "holds a run" when its ``metrics.json`` is a record medleak wrote."""
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and {"attack", "config"} <= metrics.keys()


def prepare_run_folder(out: Path, *, force: bool) -> None:
    """Refuse to write over an earlier run unless ``force``, and over a user's files ever.

    Checked before the attack starts, so a refusal costs nothing; only medleak's own file names
    are removed (see ``medleak.output_targets``).
    """
    claim_folder(
        out,
        what="run",
        is_own=holds_run,
        own_files=lambda folder: [folder / name for name in RUN_FILES],
        force=force,
    )


class Store(Protocol):
    """Save a record; load it back from the key ``save`` returned."""

    def save(self, record: RunRecord) -> str: ...

    def load(self, key: str) -> RunRecord: ...


class RunFolderStore:
    """One folder per run, at the path given as its key (``--out``)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def save(self, record: RunRecord) -> str:
        out = private_dir(self.folder)
        if record.tensors:
            tmp = temp_path(out / TENSORS_FILE)
            save_file({k: v.contiguous() for k, v in record.tensors.items()}, str(tmp))
            os.replace(make_private(tmp), out / TENSORS_FILE)
        write_private(out / TRACE_FILE, record.trace_csv.encode())
        write_private(out / CONFIG_FILE, record.config_yaml.encode())
        text = json.dumps(record.metrics, indent=2, allow_nan=False)
        write_private(out / METRICS_FILE, text.encode())
        return str(out)

    def load(self, key: str | None = None) -> RunRecord:
        folder = Path(key) if key is not None else self.folder
        metrics_path = folder / METRICS_FILE
        if not metrics_path.is_file():
            raise MedleakError(f"{folder} is not a medleak run folder (no {METRICS_FILE})")
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            raise MedleakError(f"{metrics_path} is corrupt: {exc}") from None
        tensors_path = folder / TENSORS_FILE
        trace_path, config_path = folder / TRACE_FILE, folder / CONFIG_FILE
        return RunRecord(
            run_id=str(metrics.get("run_id", "")),
            metrics=metrics,
            tensors=load_file(str(tensors_path)) if tensors_path.is_file() else {},
            trace_csv=trace_path.read_text() if trace_path.is_file() else "",
            config_yaml=config_path.read_text() if config_path.is_file() else "",
            schema=int(metrics.get("record_schema", 1)),
        )
