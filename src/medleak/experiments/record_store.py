"""A small SQLite store of typed records (kind + JSON + tensors), for audits of real federations.

Placeholder for the sweep store (issue 11) until it lands: one table, ``write_record`` and
``read_records`` only, so switching callers over is a one-line change. Tensors are stored as
safetensors bytes beside the JSON; the file is created 0600 in a 0700 folder (reconstructions of
patients' images are sensitive).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  created REAL NOT NULL,
  record TEXT NOT NULL,
  tensors BLOB
)
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = not path.exists()
    connection = sqlite3.connect(path, timeout=30)
    if fresh:
        os.chmod(path, 0o600)
    connection.execute(SCHEMA)
    return connection


def write_record(
    store: str | Path, kind: str, record: dict[str, Any], tensors: dict[str, torch.Tensor] | None
) -> int:
    """Append one record; returns its id."""
    blob = None
    if tensors:
        blob = save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    text = json.dumps(record, allow_nan=False, default=str)
    with _connect(Path(store)) as connection:
        cursor = connection.execute(
            "INSERT INTO records (kind, created, record, tensors) VALUES (?, ?, ?, ?)",
            (kind, time.time(), text, blob),
        )
        return int(cursor.lastrowid or 0)


def read_records(
    store: str | Path, kind: str | None = None
) -> list[tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """Every record (of ``kind``) in insertion order, with its tensors."""
    path = Path(store)
    if not path.is_file():
        return []
    with _connect(path) as connection:
        query = "SELECT record, tensors FROM records"
        rows = connection.execute(
            query + (" WHERE kind = ? ORDER BY id" if kind else " ORDER BY id"),
            (kind,) if kind else (),
        ).fetchall()
    return [(json.loads(text), load_tensors(blob) if blob else {}) for text, blob in rows]
