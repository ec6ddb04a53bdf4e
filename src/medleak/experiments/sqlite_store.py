"""The sweep store: one SQLite file (WAL mode), one row per run, committed as each run ends.

Only the driver writes. A row is keyed by the run id (the config hash), so re-running a sweep
skips what is finished and a crash can never duplicate a run. WAL keeps the file readable by
``medleak results``/``report`` while a sweep writes, and a SIGKILL loses at most the run that
was not yet committed. The file is private (0600): it holds patients' images.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from medleak.errors import MedleakError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  label TEXT,
  config TEXT NOT NULL,
  train_id TEXT,
  metrics TEXT,
  curves TEXT,
  error TEXT,
  started REAL,
  finished REAL,
  seconds REAL,
  medleak_version TEXT,
  git_commit TEXT,
  provenance TEXT,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS blobs (
  run_id TEXT NOT NULL,
  name TEXT NOT NULL,
  mime TEXT NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS leases (
  run_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  heartbeat REAL NOT NULL
);
"""
#: The tables a medleak store may hold, and the columns that make ``runs`` medleak's.
OWN_TABLES = {"runs", "blobs", "leases"}
RUN_COLUMNS = {"run_id", "kind", "status", "config", "metrics", "error"}
#: A lease not renewed for this long belongs to a sweep that died; another sweep may take it.
LEASE_SECONDS = 120.0

STATUSES = ("running", "finished", "failed")


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(_finite(value), allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@dataclass
class StoredRun:
    run_id: str
    kind: str
    status: str
    label: str
    config: dict[str, Any]
    train_id: str | None
    metrics: dict[str, Any]
    curves: dict[str, Any]
    error: str | None
    seconds: float | None
    medleak_version: str | None
    git_commit: str | None


class SweepStore:
    """A handle on one store file; create with ``SweepStore(path)`` (made 0600 on creation).

    ``create=False`` opens an existing store for reading only (``mode=ro``: a read never writes,
    never changes the file's mode, and works on a store the user cannot write). A writer opens a
    file only when its schema is medleak's (or the file is new/empty): another application's
    SQLite file is a one-line error and is left untouched.
    """

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        self.read_only = not create
        if self.path.is_dir():
            raise MedleakError(_folder_message(self.path))
        if not self.path.exists():
            if not create:
                raise MedleakError(f"store not found: {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        try:
            if self.read_only:
                uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            else:
                self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._check_schema()
        except sqlite3.Error as exc:
            raise MedleakError(f"{self.path} is not a medleak store ({exc})") from None
        if self.read_only:
            return
        os.chmod(self.path, 0o600)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise MedleakError(f"cannot write the store {self.path}: {exc}") from None
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)

    def _check_schema(self) -> None:
        """Refuse a file whose tables are not medleak's, before anything is written to it."""
        tables = {
            name
            for (name,) in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if not tables and not self.read_only:
            return  # a new (or empty) file: the writer creates medleak's tables
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        foreign = sorted(tables - OWN_TABLES)
        if not tables or foreign or not RUN_COLUMNS <= columns:
            what = (
                f"its tables ({', '.join(foreign or sorted(tables))}) are not medleak's"
                if tables
                else "it holds no runs table"
            )
            raise MedleakError(f"{self.path} is not a medleak store: {what}; it was left untouched")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self, run_id: str) -> tuple[str, str | None] | None:
        """(status, medleak version) of a stored run, or None when it is not in the store."""
        row = self._db.execute(
            "SELECT status, medleak_version FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def rekey(self, old: str, new: str) -> bool:
        """Move a run stored under an older id scheme to its current id (rows, blobs, links).

        Returns False when ``old`` is not stored or ``new`` already is. The caller reports a
        moved run as another version's, so it is kept or, with ``--rerun``, recomputed.
        """
        if old == new or self.status(new) is not None or self.status(old) is None:
            return False
        with self._transaction():
            self._db.execute("UPDATE runs SET run_id = ? WHERE run_id = ?", (new, old))
            self._db.execute("UPDATE blobs SET run_id = ? WHERE run_id = ?", (new, old))
            self._db.execute("UPDATE runs SET train_id = ? WHERE train_id = ?", (new, old))
        return True

    def mark_running(
        self, run_id: str, kind: str, label: str, config: dict, train_id: str | None
    ) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO runs (run_id, kind, status, label, config, train_id, started, attempts)"
            " VALUES (?, ?, 'running', ?, ?, ?, ?, 1)"
            " ON CONFLICT(run_id) DO UPDATE SET status='running', started=excluded.started,"
            " error=NULL, attempts=attempts+1",
            (run_id, kind, label, _json(config), train_id, now),
        )

    def finish(
        self,
        run_id: str,
        metrics: dict[str, Any],
        curves: dict[str, Any] | None,
        blobs: dict[str, tuple[str, bytes]],
        seconds: float,
        provenance: dict[str, Any],
    ) -> None:
        """Commit a finished run and its blobs in one transaction."""
        with self._transaction():
            self._db.execute("DELETE FROM blobs WHERE run_id = ?", (run_id,))
            self._db.executemany(
                "INSERT INTO blobs (run_id, name, mime, data) VALUES (?, ?, ?, ?)",
                [(run_id, name, mime, data) for name, (mime, data) in blobs.items()],
            )
            self._db.execute(
                "UPDATE runs SET status='finished', metrics=?, curves=?, error=NULL, finished=?,"
                " seconds=?, medleak_version=?, git_commit=?, provenance=? WHERE run_id = ?",
                (
                    _json(metrics),
                    _json(curves),
                    time.time(),
                    seconds,
                    provenance.get("medleak_version"),
                    provenance.get("git_commit"),
                    _json(provenance),
                    run_id,
                ),
            )

    def fail(self, run_id: str, error: str, seconds: float | None = None) -> None:
        self._db.execute(
            "UPDATE runs SET status='failed', error=?, finished=?, seconds=? WHERE run_id = ?",
            (error, time.time(), seconds, run_id),
        )

    def acquire(self, run_id: str, owner: str, ttl: float = LEASE_SECONDS) -> bool:
        """Take the lease on a run (False when another live sweep holds it).

        A lease is (owner, heartbeat). It is free when nobody holds it, when its heartbeat is
        older than ``ttl`` (its sweep died without a word), or when its owner is a process on
        this machine that no longer exists (killed: no need to wait out the ``ttl``).
        """
        now = time.time()
        with self._transaction():
            row = self._db.execute(
                "SELECT owner, heartbeat FROM leases WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is not None and row[0] != owner and now - row[1] < ttl and _alive(row[0]):
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO leases (run_id, owner, heartbeat) VALUES (?, ?, ?)",
                (run_id, owner, now),
            )
        return True

    def renew(self, owner: str) -> None:
        """The heartbeat: every lease ``owner`` holds is fresh again."""
        self._db.execute("UPDATE leases SET heartbeat = ? WHERE owner = ?", (time.time(), owner))

    def release(self, owner: str, run_id: str | None = None) -> None:
        """Give back one lease (or, with no ``run_id``, every lease ``owner`` holds)."""
        if run_id is None:
            self._db.execute("DELETE FROM leases WHERE owner = ?", (owner,))
        else:
            self._db.execute("DELETE FROM leases WHERE run_id = ? AND owner = ?", (run_id, owner))

    def finished_since(self, run_id: str, since: float) -> bool:
        """True when the run was finished (by any sweep) at or after ``since``."""
        row = self._db.execute(
            "SELECT 1 FROM runs WHERE run_id = ? AND status = 'finished' AND finished >= ?",
            (run_id, since),
        ).fetchone()
        return row is not None

    def _transaction(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind: object, *rest: object) -> None:
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    def runs(self, kind: str | None = None, status: str | None = None) -> list[StoredRun]:
        query = (
            "SELECT run_id, kind, status, label, config, train_id, metrics, curves, error,"
            " seconds, medleak_version, git_commit FROM runs"
        )
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if status:
            where.append("status = ?")
            args.append(status)
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = self._db.execute(query + " ORDER BY rowid", args).fetchall()
        return [
            StoredRun(
                r[0],
                r[1],
                r[2],
                r[3] or "",
                json.loads(r[4]),
                r[5],
                json.loads(r[6]) if r[6] else {},
                json.loads(r[7]) if r[7] else {},
                r[8],
                r[9],
                r[10],
                r[11],
            )
            for r in rows
        ]

    def span(self, run_ids: Iterable[str]) -> tuple[float, float] | None:
        """(first start, last finish) in Unix seconds over these finished runs, or None."""
        ids = list(run_ids)
        first = last = None
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            row = self._db.execute(
                f"SELECT MIN(started), MAX(finished) FROM runs WHERE status = 'finished'"
                f" AND run_id IN ({marks})",
                chunk,
            ).fetchone()
            if row and row[0] is not None:
                first = row[0] if first is None else min(first, row[0])
                last = row[1] if last is None else max(last, row[1])
        return None if first is None or last is None else (first, last)

    def blob(self, run_id: str, name: str) -> bytes | None:
        row = self._db.execute(
            "SELECT data FROM blobs WHERE run_id = ? AND name = ?", (run_id, name)
        ).fetchone()
        return bytes(row[0]) if row else None

    def blob_names(self, run_id: str) -> Iterator[str]:
        for (name,) in self._db.execute("SELECT name FROM blobs WHERE run_id = ?", (run_id,)):
            yield name


def is_store(path: str | Path) -> bool:
    """A file that starts with SQLite's header (what ``report`` accepts besides run folders)."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def lease_owner() -> str:
    """This process's name on a lease: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _alive(owner: str) -> bool:
    """False only when ``owner`` is a process on this machine that no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's sweep: only its heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is gone too
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _folder_message(path: Path) -> str:
    if (path / "metrics.json").is_file():
        return f"{path} is a run folder, not a store; use 'medleak report {path}'"
    return f"{path} is a folder, not a store (a SQLite file written by 'medleak sweep')"
