"""The Kaggle "Chest X-Ray Images (Pneumonia)" layout: split folders and patient names.

Layout: ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg`` (Kermany et al. 2018, pediatric
films from Guangzhou). File names carry the patient: ``person1946_bacteria_4874.jpeg`` is patient
``person1946``; ``NORMAL2-IM-1427-0001.jpeg`` and ``IM-0115-0001.jpeg`` are patients
``NORMAL2-IM-1427`` and ``IM-0115``. Several films of one child must not end up on both sides of
a re-identification test, hence the parsing.
"""

from __future__ import annotations

import re
from pathlib import Path

from medleak.errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = "test"

_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_NORMAL = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)-\d+", re.IGNORECASE)


def patient_from_name(file_name: str) -> str | None:
    """Patient named by a Kaggle file name, or None for any other naming scheme."""
    for pattern in (_PERSON, _NORMAL):
        match = pattern.match(file_name)
        if match:
            return match.group(1)
    return None


def visible_subfolders(folder: Path) -> list[Path]:
    """Subfolders, sorted by name, without hidden ones and macOS zip debris (``__MACOSX``)."""
    try:
        children = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"cannot list {folder}: {exc.strerror or exc}") from None
    return [
        child
        for child in children
        if child.is_dir() and not child.name.startswith((".", "__MACOSX"))
    ]


def split_folder(root: Path, split: str | None) -> tuple[Path, str | None]:
    """The folder holding the class subfolders, and the split it is (None for a plain tree).

    A folder with ``train``/``val``/``test`` subfolders is the Kaggle layout; its default split
    is ``test`` (the held-out films a hospital would not have trained on). A folder holding a
    single such Kaggle folder (how the archive unzips) is looked through.
    """
    splits = _splits_in(root)
    if not splits:
        inner = visible_subfolders(root)
        if len(inner) == 1 and _splits_in(inner[0]):
            return split_folder(inner[0], split)
    if split is None:
        if not splits:
            return root, None
        if DEFAULT_SPLIT not in splits:
            raise DataError(
                f"{root} has splits {', '.join(sorted(splits))} but no {DEFAULT_SPLIT}/; "
                "choose one with the data split option"
            )
        return splits[DEFAULT_SPLIT], DEFAULT_SPLIT
    wanted = split.strip().lower()
    if wanted in splits:
        return splits[wanted], wanted
    present = ", ".join(sorted(splits)) if splits else "none"
    raise DataError(f"split {split!r} not found in {root}; splits present: {present}")


def _splits_in(folder: Path) -> dict[str, Path]:
    return {p.name.lower(): p for p in visible_subfolders(folder) if p.name.lower() in SPLITS}
