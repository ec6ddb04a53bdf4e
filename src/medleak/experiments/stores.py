"""Where run records live: one small interface, the run folder as its first backend.

A ``Store`` saves a ``RunRecord`` and loads it back by where it put it; it never renders
anything (the report reads records, experiments never imports the report). The run-folder
backend is a folder a person can open: ``metrics.json``, ``trace.csv``, ``config.yaml`` and
``tensors.safetensors``; files are written to a temporary name and renamed into place, so an
interrupted run never leaves a half-written file that looks complete. A SQLite backend
implements the same two methods.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from safetensors.torch import load_file, save_file

from medleak.errors import MedleakError
from medleak.experiments.records import RunRecord

METRICS_FILE = "metrics.json"
TRACE_FILE = "trace.csv"
TENSORS_FILE = "tensors.safetensors"
CONFIG_FILE = "config.yaml"
# Written by the report from the record, beside the store's files.
GRID_FILE = "reconstruction.png"
REPORT_FILE = "report.html"


class Store(Protocol):
    """Save a record; load it back from the key ``save`` returned."""

    def save(self, record: RunRecord) -> str: ...

    def load(self, key: str) -> RunRecord: ...


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RunFolderStore:
    """One folder per run, at the path given as its key (``--out``)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def save(self, record: RunRecord) -> str:
        out = self.folder
        out.mkdir(parents=True, exist_ok=True)
        if record.tensors:
            tmp = out / f".{TENSORS_FILE}.tmp"
            save_file({k: v.contiguous() for k, v in record.tensors.items()}, str(tmp))
            os.replace(tmp, out / TENSORS_FILE)
        _atomic_write(out / TRACE_FILE, record.trace_csv.encode())
        _atomic_write(out / CONFIG_FILE, record.config_yaml.encode())
        text = json.dumps(record.metrics, indent=2, allow_nan=False)
        _atomic_write(out / METRICS_FILE, text.encode())
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
