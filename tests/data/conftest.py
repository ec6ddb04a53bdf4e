"""Builders for small image trees, npz files and DICOM files, written into tmp_path."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, kind: str = "gray", size: tuple[int, int] = (37, 29), value=None):
    """A small image file: kind gray (L), rgb, or 16 (16-bit PNG); size is (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    if kind == "gray":
        pixels = rng.integers(0, 256, (h, w), dtype=np.uint8)
        if value is not None:
            pixels = np.full((h, w), value, dtype=np.uint8)
        Image.fromarray(pixels).save(path)
    elif kind == "rgb":
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if value is not None:
            pixels = np.broadcast_to(np.asarray(value, dtype=np.uint8), (h, w, 3)).copy()
        Image.fromarray(pixels).save(path)
    elif kind == "16":
        pixels = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        if value is not None:
            pixels = np.full((h, w), value, dtype=np.uint16)
        Image.fromarray(pixels).save(path)
    else:
        raise ValueError(kind)
    return path


@pytest.fixture
def image_writer() -> Callable[..., Path]:
    return write_image


@pytest.fixture
def kaggle_tree(tmp_path: Path) -> Path:
    """chest_xray/{train,val,test}/{NORMAL,PNEUMONIA} with Kaggle names, mixed formats."""
    root = tmp_path / "chest_xray"
    files = {
        "test": {
            "NORMAL": ["IM-0001-0001.jpeg", "NORMAL2-IM-0105-0001.jpeg", "IM-0003-0001.png"],
            "PNEUMONIA": [
                "person1_bacteria_1.jpeg",
                "person1_bacteria_2.jpeg",
                "person2_virus_3.png",
                "person3_virus_4.jpeg",
                "person4_bacteria_5.png",
            ],
        },
        "train": {"NORMAL": ["IM-0900-0001.jpeg"], "PNEUMONIA": ["person9_virus_9.jpeg"]},
        "val": {"NORMAL": ["NORMAL2-IM-1427-0001.jpeg"], "PNEUMONIA": ["person8_bacteria_8.jpeg"]},
    }
    kinds = ["gray", "rgb", "16"]
    for split, classes in files.items():
        for label, names in classes.items():
            for i, name in enumerate(names):
                kind = kinds[i % 3] if name.endswith(".png") else ["gray", "rgb"][i % 2]
                write_image(root / split / label / name, kind, (31 + 7 * i, 23 + 5 * i))
    return root
