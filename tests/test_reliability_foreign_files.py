"""Issue 23, class 1: medleak never writes into a file that is not medleak's.

Reading commands (``results``, ``report``) open a store read-only and never chmod it; writing
ones (``sweep``, the Flower audit) refuse a file of another schema in one line, untouched.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from medleak.cli import main
from medleak.errors import MedleakError
from medleak.experiments.audit_store import save_audit
from medleak.experiments.sqlite_store import SweepStore

SPEC = {
    "base": {
        "data": {"image_size": 16, "batch_size": 2, "phantom_count": 8},
        "model": {"channels": 1},
        "attack": {"iterations": 1, "prior": "none"},
        "metrics": {"gallery_size": 0},
    }
}


def _fingerprint(path: Path) -> tuple[str, int]:
    """The file's bytes (hashed) and its mode: what a reading command must leave as it was."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(path.stat().st_mode)


def _foreign_sqlite(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE patients (name TEXT, mrn TEXT)")
    db.execute("INSERT INTO patients VALUES ('someone', '12345')")
    db.commit()
    db.close()
    os.chmod(path, 0o644)
    return path


def _medleak_store(path: Path, mode: int) -> Path:
    with SweepStore(path) as store:
        store.mark_running("a1", "attack", "none", {"defenses": []}, None)
        store.finish("a1", {"ssim": 0.5, "psnr": 20.0}, None, {}, 1.0, {})
    for side in ("-wal", "-shm"):  # a cleanly closed store: the WAL was checkpointed
        Path(f"{path}{side}").unlink(missing_ok=True)
    os.chmod(path, mode)
    return path


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["results", "report"])
def test_reading_commands_leave_a_foreign_sqlite_file_as_it_was(tmp_path, capsys, command):
    path = _foreign_sqlite(tmp_path / "other-app.db")
    before = _fingerprint(path)
    argv = [command, str(path)] + (
        ["--out", str(tmp_path / "r.html")] if command == "report" else []
    )
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "not a medleak store" in line and "patients" in line
    assert _fingerprint(path) == before
    tables = sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute(
        "SELECT name FROM sqlite_master"
    )
    assert [t[0] for t in tables] == ["patients"]  # no runs/blobs table created in it
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", ["results", "report"])
def test_reading_commands_leave_a_read_only_store_as_it_was(tmp_path, capsys, command):
    path = _medleak_store(tmp_path / "shared.db", 0o400)
    before = _fingerprint(path)
    argv = [command, str(path)] + (
        ["--out", str(tmp_path / "r.html")] if command == "report" else []
    )
    assert main(argv) == 0, capsys.readouterr().err
    assert _fingerprint(path) == before  # bytes and mode 0400 unchanged (no chmod to 0600)
    if command == "results":
        assert "a1" in capsys.readouterr().out


def test_a_text_file_keeps_its_mode_and_gets_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    os.chmod(path, 0o644)
    before = _fingerprint(path)
    assert main(["results", str(path)]) == 2
    assert "not a medleak store" in _one_line(capsys.readouterr().err)
    assert _fingerprint(path) == before


def test_results_on_a_run_folder_points_to_report(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    assert main(["results", str(run)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "run folder" in line and "medleak report" in line
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["results", str(folder)]) == 2
    assert "is a folder, not a store" in _one_line(capsys.readouterr().err)


def test_writers_refuse_a_store_of_another_schema_untouched(tmp_path, capsys):
    path = _foreign_sqlite(tmp_path / "other-app.db")
    before = _fingerprint(path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    assert main(["sweep", str(spec), "--store", str(path), "--quiet"]) == 2
    assert "not a medleak store" in _one_line(capsys.readouterr().err)
    with pytest.raises(MedleakError, match="not a medleak store"):
        save_audit(path, {"federation": "f", "round": 1, "client": "1", "status": "leaks"})
    with pytest.raises(MedleakError, match="not a medleak store"):
        SweepStore(path)
    assert _fingerprint(path) == before
    text = tmp_path / "notes.txt"
    text.write_text("a user's notes\n")
    os.chmod(text, 0o644)
    before = _fingerprint(text)
    assert main(["sweep", str(spec), "--store", str(text), "--quiet"]) == 2
    assert "not a medleak store" in _one_line(capsys.readouterr().err)
    assert _fingerprint(text) == before  # mode 0644 kept: no chmod before the refusal


def test_a_new_or_empty_file_becomes_a_private_store(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    for path in (empty, tmp_path / "new.db"):
        with SweepStore(path) as store:
            assert store.runs() == []
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(MedleakError, match="not found"):
        SweepStore(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_a_store_in_a_folder_nobody_can_write_is_read(tmp_path, capsys):
    """A read-only mount: SQLite cannot create the WAL's -shm file beside the store."""
    folder = tmp_path / "mount"
    folder.mkdir()
    path = _medleak_store(folder / "s.db", 0o400)
    before = _fingerprint(path)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a supporting file system)")
    try:
        assert main(["results", str(path)]) == 0, capsys.readouterr().err
        assert "a1" in capsys.readouterr().out
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert _fingerprint(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["s.db"]
