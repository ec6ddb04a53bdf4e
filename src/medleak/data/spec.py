"""What data an experiment asks for: one small frozen object, validated once when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medleak.errors import ConfigError
from medleak.flags import option

Resize = Literal["crop", "squash"]
Order = Literal["balanced", "sorted"]

RESIZES: tuple[str, ...] = ("crop", "squash")
ORDERS: tuple[str, ...] = ("balanced", "sorted")


#: Largest image side (pixels) medleak reads or generates; gradient inversion beyond it needs far
#: more memory than a workstation has.
MAX_SIDE = 1024


@dataclass(frozen=True)
class DataSpec:
    """Which images, at what size, in what order.

    source: ``"phantom"`` (procedural chest radiographs, no download needed) or a path to a folder
        (Kaggle ``chest_xray`` layout, an ImageFolder tree, DICOM in class folders) or a MedMNIST
        ``.npz`` file.
    split: ``train``/``val``/``test`` for Kaggle folders and ``.npz`` files; None means ``test``.
    image_size: side of the square images handed to the models.
    resize: ``crop`` centre-crops to a square first (MedMNIST style, keeps the aspect ratio);
        ``squash`` stretches the whole image to a square (as the ROG reference code does).
    order: ``balanced`` interleaves the classes so any prefix is roughly half and half (a batch of 4
        holds both classes); ``sorted`` keeps each class in one block.
    phantom_count: how many images the phantom data set holds.
    """

    source: str = option("phantom", "--data", "'phantom' (synthetic, default), a folder, or a .npz")
    split: str | None = option(
        None, "--split", "Kaggle/MedMNIST split: train, val or test", default_text="test"
    )
    image_size: int = option(128, "--image-size", "side in pixels", low=8, high=MAX_SIDE)
    resize: Resize = option("crop", "--resize", "square by centre crop or stretch")
    order: Order = option("balanced", "--order", "interleave classes or not")
    phantom_count: int = option(
        200, "--phantom-count", "phantom data set size", low=1, high=1_000_000
    )

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError("data source must be 'phantom' or a path, got an empty value")
        if self.split is not None and (not isinstance(self.split, str) or not self.split.strip()):
            raise ConfigError(f"data split must be a name such as 'test', got {self.split!r}")
        if not _is_int(self.image_size) or self.image_size < 8:
            raise ConfigError(f"image size must be an integer >= 8, got {self.image_size!r}")
        if self.resize not in RESIZES:
            raise ConfigError(f"unknown resize {self.resize!r}; choose crop or squash")
        if self.order not in ORDERS:
            raise ConfigError(f"unknown order {self.order!r}; choose balanced or sorted")
        if not _is_int(self.phantom_count) or self.phantom_count < 1:
            raise ConfigError(f"phantom count must be an integer >= 1, got {self.phantom_count!r}")

    @property
    def is_phantom(self) -> bool:
        """True when the images are generated rather than read from disk."""
        return self.source.strip().lower() == "phantom"


def _is_int(value: object) -> bool:
    # bool is an int subclass; `image_size: true` in a YAML file is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)
