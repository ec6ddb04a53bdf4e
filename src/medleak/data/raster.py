"""Decode one JPEG/PNG/BMP/TIFF file into a pixel array, with errors that name the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medleak.data.reason import short_reason
from medleak.errors import DataError

RASTER_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"})

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def read_raster(path: Path, name: str) -> np.ndarray:
    """Pixels of an image file: H x W (uint8, uint16 or float32) or H x W x 3 uint8 (RGB).

    16-bit files keep their 16 bits (scaled by 65535 later, not truncated to 8); palette, CMYK
    and other modes become RGB. Any decoding failure is a DataError naming ``name``.
    """
    try:
        with warnings.catch_warnings():
            # a truncated or huge file should be a DataError, not a warning on stderr
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                picture.load()
                return _pixels(picture)
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{name}: not a readable image ({short_reason(exc, path=path)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{name}: image is too large to decode safely") from None


def _pixels(picture: Image.Image) -> np.ndarray:
    mode = picture.mode
    if mode == "L":
        return np.asarray(picture, dtype=np.uint8)
    if mode in _SIXTEEN_BIT:
        return np.asarray(picture).astype(np.uint16)
    if mode == "I":
        # 32-bit integer mode; PNG/TIFF 16-bit data often arrives this way
        values = np.asarray(picture, dtype=np.int64)
        if values.min() >= 0 and values.max() <= 65535:
            return values.astype(np.uint16)
        low, high = float(values.min()), float(values.max())
        return ((values - low) / max(high - low, 1.0)).astype(np.float32)
    if mode == "F":
        values = np.asarray(picture, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            return values
        return (values - low) / max(high - low, 1e-12)
    if mode in ("1", "LA", "La"):
        return np.asarray(picture.convert("L"), dtype=np.uint8)
    return np.asarray(picture.convert("RGB"), dtype=np.uint8)
