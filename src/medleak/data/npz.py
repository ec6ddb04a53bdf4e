"""MedMNIST ``.npz`` files (Yang et al. 2023), e.g. ``pneumoniamnist_128.npz``.

Keys ``<split>_images`` (N x H x W, or N x H x W x 3) and ``<split>_labels`` (N x 1 or N), for
splits train/val/test; the default split is ``test``. PneumoniaMNIST labels are 0 normal and
1 pneumonia, the same as CLASS_NAMES. Only the labels and the image array's header are read when
the data set is opened; the pixels are loaded on the first batch.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile

from medleak.data.batch import CLASS_NAMES
from medleak.data.dataset import Dataset, Entry
from medleak.data.order import arrange
from medleak.data.reason import short_reason
from medleak.data.spec import DataSpec
from medleak.errors import DataError

DEFAULT_SPLIT = "test"


class _LazyImages:
    """The image array of one split, read from the file the first time a pixel is needed."""

    def __init__(self, path: Path, key: str) -> None:
        self._path = path
        self._key = key
        self._array: np.ndarray | None = None

    def __call__(self, index: int) -> np.ndarray:
        if self._array is None:
            with _open(self._path) as archive:
                self._array = _member(archive, self._key, self._path)
        return self._array[index]


def npz_dataset(path: Path, spec: DataSpec) -> Dataset:
    """Open one split of a MedMNIST-style ``.npz`` file."""
    split = (spec.split or DEFAULT_SPLIT).strip()
    image_key, label_key = f"{split}_images", f"{split}_labels"
    with _open(path) as archive:
        keys = list(archive.files)
        if image_key not in keys or label_key not in keys:
            present = ", ".join(keys) if keys else "none"
            raise DataError(
                f"{path.name}: no {split!r} split (needs {image_key} and {label_key}); "
                f"keys present: {present}"
            )
        labels = _labels(_member(archive, label_key, path), path.name, label_key)
        shape = _shape(archive, image_key, path)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3, 4)):
        raise DataError(
            f"{path.name}: {image_key} must be N x H x W (or N x H x W x 3), got {shape}"
        )
    if shape[0] != len(labels):
        raise DataError(
            f"{path.name}: {image_key} holds {shape[0]} images but {label_key} {len(labels)} labels"
        )
    if not len(labels):
        raise DataError(f"{path.name}: split {split!r} holds no images")
    stem = path.name[: -len(".npz")] if path.name.lower().endswith(".npz") else path.stem
    indices = arrange(range(len(labels)), lambda i: int(labels[i]), lambda i: i, spec.order)
    entries = [Entry(source=f"{stem}/{split}/{i}", label=int(labels[i])) for i in indices]
    top = int(labels.max())
    classes = CLASS_NAMES if top < len(CLASS_NAMES) else [str(c) for c in range(top + 1)]
    return Dataset(
        name=f"{path} [{split}]",
        entries=entries,
        locators=indices,
        read=_LazyImages(path, image_key),
        image_size=spec.image_size,
        resize=spec.resize,
        classes=classes,
    )


def _open(path: Path) -> NpzFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path.name}: not a readable .npz file ({short_reason(exc)})") from None
    if not isinstance(archive, NpzFile):
        raise DataError(f"{path.name}: not a .npz archive (a single array; expected MedMNIST keys)")
    return archive


def _member(archive: NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path.name}: cannot read {key} ({short_reason(exc)})") from None


def _shape(archive: NpzFile, key: str, path: Path) -> tuple[int, ...]:
    """Shape of an array in the archive from its .npy header, without reading the data."""
    try:
        with archive.zip.open(key + ".npy") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(handle)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path.name}: cannot read {key} ({short_reason(exc)})") from None
    return tuple(int(s) for s in shape)


def _labels(raw: np.ndarray, name: str, key: str) -> np.ndarray:
    labels = raw.reshape(-1) if raw.ndim == 2 and raw.shape[1] == 1 else raw
    if labels.ndim != 1:
        raise DataError(
            f"{name}: {key} must be N or N x 1 class indices, got shape {raw.shape} "
            "(multi-label data sets are not supported)"
        )
    if labels.size and (
        not np.issubdtype(labels.dtype, np.number)
        or not np.all(np.isfinite(labels))
        or np.any(labels < 0)
        or np.any(labels != np.round(labels))
    ):
        raise DataError(f"{name}: {key} must hold non-negative integer class indices")
    return labels.astype(np.int64)
