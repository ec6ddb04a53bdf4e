"""Folder trees of images: the Kaggle layout, any ImageFolder tree, DICOM in class folders.

One subfolder per class (searched recursively, like torchvision's ImageFolder). Classes named
NORMAL and PNEUMONIA (any case) get labels 0 and 1; any other set of names is labelled in sorted
order. Only file names are read when the data set is opened (plus DICOM headers, for the
patient); pixels are decoded when a batch is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medleak.data.batch import CLASS_NAMES
from medleak.data.dataset import Dataset, Entry
from medleak.data.dicom import dicom_source, looks_like_dicom, read_dicom, read_patient
from medleak.data.kaggle import patient_from_name, split_folder, visible_subfolders
from medleak.data.order import arrange
from medleak.data.raster import RASTER_SUFFIXES, read_raster
from medleak.data.spec import DataSpec
from medleak.errors import DataError

# files an operating system or a photo tool leaves behind; not images, not errors
_JUNK = frozenset({"thumbs.db", "desktop.ini", "license", "license.txt", "readme", "readme.md"})


@dataclass(frozen=True)
class _Located:
    """Where an image file is (kept out of the Entry) and what kind of decoder it needs."""

    path: Path
    relative: str  # relative to the class folder's parent, e.g. NORMAL/x.jpeg
    dicom: bool


def class_labels(names: list[str]) -> dict[str, int]:
    """Label of each class folder: NORMAL 0, PNEUMONIA 1 when so named, else sorted order."""
    upper = [n.upper() for n in names]
    if len(set(upper)) != len(upper):
        raise DataError(f"class folders differ only in case: {', '.join(sorted(names))}")
    if all(u in CLASS_NAMES for u in upper):
        return {n: CLASS_NAMES.index(n.upper()) for n in names}
    return {n: i for i, n in enumerate(sorted(names))}


def folder_dataset(root: Path, spec: DataSpec) -> Dataset:
    """Open an image folder tree, listing its images in the order ``spec.order`` asks for."""
    base, split = split_folder(root, spec.split)
    classes = visible_subfolders(base)
    if not classes:
        raise DataError(
            f"{base} has no class subfolders; expected one folder per class "
            "(NORMAL/ and PNEUMONIA/), or train/val/test/ folders holding them"
        )
    labels = class_labels([c.name for c in classes])
    found: list[tuple[Entry, _Located]] = []
    for folder in classes:
        for located in _image_files(folder):
            found.append((_entry(located, labels[folder.name]), located))
    if not found:
        names = ", ".join(c.name for c in classes)
        raise DataError(f"{base} holds no images (class folders: {names})")
    ordered = arrange(found, lambda pair: pair[0].label, lambda pair: pair[1].relative, spec.order)
    class_names = [""] * (max(labels.values()) + 1)
    for name, label in labels.items():
        class_names[label] = name.upper() if name.upper() in CLASS_NAMES else name
    return Dataset(
        name=str(root) + (f" [{split}]" if split else ""),
        entries=[entry for entry, _ in ordered],
        locators=[located for _, located in ordered],
        read=_read,
        image_size=spec.image_size,
        resize=spec.resize,
        classes=[c or str(i) for i, c in enumerate(class_names)],
    )


def _image_files(folder: Path) -> list[_Located]:
    """Every image below a class folder; a file that is neither image nor junk is an error."""
    out: list[_Located] = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith((".", "__MACOSX")))
        for file_name in sorted(files):
            path = Path(directory) / file_name
            relative = path.relative_to(folder.parent).as_posix()
            if file_name.startswith(".") or file_name.lower() in _JUNK:
                continue
            if path.suffix.lower() in RASTER_SUFFIXES:
                out.append(_Located(path, relative, dicom=False))
            elif looks_like_dicom(path):
                out.append(_Located(path, relative, dicom=True))
            else:
                raise DataError(
                    f"{relative}: not an image file (expected JPEG, PNG, BMP, TIFF or DICOM)"
                )
    return out


def _entry(located: _Located, label: int) -> Entry:
    if located.dicom:
        # never the file name: DICOM names often hold patient names or MRNs
        patient = read_patient(located.path, located.relative)
        return Entry(source=dicom_source(located.relative), label=label, patient=patient)
    return Entry(source=located.relative, label=label, patient=patient_from_name(located.path.name))


def _read(located: _Located) -> np.ndarray:
    if located.dicom:
        return read_dicom(located.path, located.relative)
    return read_raster(located.path, located.relative)
