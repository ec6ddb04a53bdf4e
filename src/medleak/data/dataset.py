"""A data set as an ordered list of small records, decoded only when a batch asks for them.

A Kaggle folder holds 5,856 JPEGs; an attack needs 4 of them and a re-identification gallery a
few hundred more. So opening a data set only lists files (and reads DICOM headers); ``load``
decodes exactly the images asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medleak.data.batch import Batch
from medleak.data.preprocess import prepare
from medleak.errors import DataError
from medleak.system_memory import available_bytes

Reader = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class Entry:
    """One image of a data set, before decoding.

    source: stable, non-identifying name (``NORMAL/x.jpeg``, ``dicom-<hash>``, ``phantom-0-7``).
    label: class index (0 NORMAL, 1 PNEUMONIA for chest X-rays).
    patient: who the image belongs to when known (Kaggle ``person123``, a DICOM PatientID hash),
        so that distractors can be drawn from other patients than the victims.
    """

    source: str
    label: int
    patient: str | None = None


class Dataset:
    """Ordered entries plus a way to decode any of them.

    ``entries[i]`` describes image i; ``load([i, j])`` decodes images i and j into a Batch of
    ``image_size`` x ``image_size`` gray images. Where each image lives (a path, an array index) is
    kept out of the entries, so they hold nothing but what may be shown or stored.
    """

    def __init__(
        self,
        name: str,
        entries: Sequence[Entry],
        locators: Sequence[Hashable],
        read: Reader,
        image_size: int,
        resize: str,
        classes: Sequence[str],
    ) -> None:
        if len(entries) != len(locators):
            raise ValueError("entries and locators differ in length")
        self.name = name
        self.entries: tuple[Entry, ...] = tuple(entries)
        self.image_size = image_size
        self.resize = resize
        self.classes: tuple[str, ...] = tuple(classes)
        self._locators = tuple(locators)
        self._read = read

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self)} images, {self.image_size} px, {self.resize})"

    def load(self, indices: Sequence[int]) -> Batch:
        """Decode and preprocess the images at ``indices`` (in that order) into a Batch."""
        chosen = [self._check_index(i) for i in indices]
        check_images_fit(len(chosen), self.image_size, self.name)
        images = np.zeros((len(chosen), 1, self.image_size, self.image_size), dtype=np.float32)
        for row, index in enumerate(chosen):
            entry = self.entries[index]
            raw = self._read(self._locators[index])
            images[row, 0] = prepare(raw, self.image_size, self.resize, entry.source)
        return Batch(
            images=torch.from_numpy(images),
            labels=torch.tensor([self.entries[i].label for i in chosen], dtype=torch.int64),
            sources=tuple(self.entries[i].source for i in chosen),
            patients=tuple(self.entries[i].patient for i in chosen),
        )

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise DataError(f"image index must be an integer, got {index!r}")
        if not 0 <= index < len(self):
            raise DataError(f"image index {index} is out of range: {self.name} has {len(self)}")
        return int(index)


#: Copies of a loaded image set alive at once: the float32 array, the model input (up to three
#: channels) and the working copies of training or scoring.
IMAGE_COPIES = 4


def check_images_fit(count: int, size: int, name: str) -> None:
    """Refuse, in one line and before allocating, a load that cannot fit in memory (a million
    phantoms at 1024 px would otherwise be killed by the kernel after minutes, without a word)."""
    need = IMAGE_COPIES * count * size * size * 4
    have = available_bytes()
    if have is not None and need > have:
        raise DataError(
            f"loading {count} images of {size} px from {name} needs about {need / 2**30:.1f} GiB "
            f"of memory, {have / 2**30:.1f} GiB is available; use fewer images "
            "(--phantom-count, --count) or a smaller --image-size"
        )


def select_batch(dataset: Dataset, batch_size: int, offset: int = 0) -> Batch:
    """The victims: ``batch_size`` consecutive images of the data set, starting at ``offset``."""
    total = len(dataset)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch size must be an integer >= 1, got {batch_size!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < total:
        raise DataError(
            f"offset {offset!r} is out of range: {dataset.name} has {total} images "
            f"(offsets 0 to {total - 1})"
        )
    if offset + batch_size > total:
        raise DataError(
            f"a batch of {batch_size} from offset {offset} needs {offset + batch_size} images, "
            f"but {dataset.name} has {total}"
        )
    return dataset.load(range(offset, offset + batch_size))
