"""Outputs that hold patient images are private: folders 0700, files 0600, written atomically.

A run folder, a report, a store or a CSV can contain chest X-rays and the scores that say how
well they were rebuilt; on a shared hospital machine a default umask (0644) would let every
account read them. Every writer in medleak goes through these helpers, so no output is born
world-readable and an interrupted write never leaves a half-written file under the real name.
Source file names (Kaggle's ``personNNNN_...`` carry patient numbers) are replaced by a keyed
hash before anything is written; see :func:`source_alias`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from medleak.errors import MedleakError

DIR_MODE = 0o700
FILE_MODE = 0o600
KEY_FILE = "source-key"


def private_dir(path: Path | str) -> Path:
    """Create ``path`` (and parents) if needed; the folder itself ends up 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def temp_path(path: Path) -> Path:
    """The hidden sibling a file is written to before it is renamed into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_private(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` as a 0600 file, atomically (temp file, then rename)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def make_private(path: Path | str) -> Path:
    """Restrict a file another library wrote (safetensors, PNG, SQLite) to its owner."""
    os.chmod(path, FILE_MODE)
    return Path(path)


def medleak_home() -> Path:
    """The user's medleak folder: ``$MEDLEAK_HOME``, else ``~/.medleak``."""
    return Path(os.environ.get("MEDLEAK_HOME") or Path.home() / ".medleak")


def _source_key() -> bytes:
    """This installation's secret key, created on first use in a private file."""
    path = medleak_home() / KEY_FILE
    if path.is_file():
        key = path.read_bytes()
        if len(key) >= 16:
            return key
    try:
        private_dir(path.parent)
        write_private(path, secrets.token_bytes(32))
        return path.read_bytes()
    except OSError as exc:
        raise MedleakError(
            f"cannot keep the source-name key in {path}: {exc.strerror or exc}; "
            "set MEDLEAK_HOME to a writable folder"
        ) from None


def source_alias(name: str) -> str:
    """A stable pseudonym for a source file name: HMAC-SHA256 with this installation's key.

    A plain hash of ``person1234_bacteria_1.jpeg`` could be reversed by hashing every likely
    Kaggle name; a keyed one cannot without the key, yet the same image gets the same alias in
    every run on this machine, so results stay comparable.
    """
    digest = hmac.new(_source_key(), name.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"img-{digest[:16]}"


#: A data file's name in a message: a path-like token ending in an image suffix. The token is
#: aliased whole, so ``NORMAL/person1_bacteria_1.jpeg`` (a data set's relative source name) gets
#: the same pseudonym as in ``metrics.json``.
_DATA_FILE = re.compile(
    r"""(?<![\w.-])((?:[^\s'"():,;=\[\]]*/)?[^\s'"():,;=/\[\]]+\.(?:jpe?g|png|bmp|tiff?|dcm|dicom))\b""",
    re.IGNORECASE,
)


def redact_sources(text: str) -> str:
    """``text`` with every data file name replaced by its pseudonym (:func:`source_alias`).

    Error messages name the file that failed; Kaggle names carry patient numbers, so every
    message a person or a store sees goes through this unless ``--show-sources`` was given.
    """
    return _DATA_FILE.sub(lambda match: source_alias(match.group(1)), text)
