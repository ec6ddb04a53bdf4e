"""From any decoded image to the square gray float image the models see.

Steps: gray float in [0, 1] (RGB to luminance, 8/16-bit integers scaled by their range), square
(``crop`` the centre as MedMNIST does, or ``squash`` the whole image as the ROG reference code
does), then an antialiased resize (PIL's Lanczos filter on a 32-bit float image, so no 8-bit
rounding) and a final clamp to [0, 1]. torchvision is not used anywhere in medleak.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from medleak.errors import DataError

#: Below this side an image holds no anatomy worth attacking: an error, not a silent upscale.
MIN_IMAGE_SIDE = 16


class SmallImageWarning(UserWarning):
    """An image much smaller than the size it is resized to: its "reconstruction" is mostly blur."""


# ITU-R BT.601 luma weights, the ones PIL uses for RGB -> L
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def to_gray_float(pixels: np.ndarray, name: str = "image") -> np.ndarray:
    """H x W (gray), H x W x 3/4 (RGB/RGBA) or H x W x 1 array -> H x W float32 in [0, 1].

    Integers are divided by their type's maximum (uint8 / 255, uint16 / 65535); floats are taken
    as already in [0, 1] and clamped. ``name`` goes into the error message.
    """
    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        scale = _range_of(array, name)
        gray = array[:, :, :3].astype(np.float64) @ _LUMA / scale
    elif array.ndim == 2:
        gray = array.astype(np.float64) / _range_of(array, name)
    else:
        raise DataError(f"{name}: expected a gray or RGB image, got an array of {array.shape}")
    if gray.shape[0] < 1 or gray.shape[1] < 1:
        raise DataError(f"{name}: image is empty ({gray.shape[0]} x {gray.shape[1]} pixels)")
    if not np.isfinite(gray).all():
        raise DataError(f"{name}: image contains NaN or infinite values")
    return np.clip(gray, 0.0, 1.0).astype(np.float32)


def _range_of(array: np.ndarray, name: str) -> float:
    if array.dtype == np.bool_:
        return 1.0
    if np.issubdtype(array.dtype, np.integer):
        return float(np.iinfo(array.dtype).max)
    if np.issubdtype(array.dtype, np.floating):
        return 1.0
    raise DataError(f"{name}: unsupported pixel type {array.dtype}")


def square(image: np.ndarray, how: str) -> np.ndarray:
    """Centre-crop to the shorter side (``crop``), or keep all for a later stretch (``squash``)."""
    if how == "squash":
        return image
    if how != "crop":
        raise DataError(f"unknown resize {how!r}; choose crop or squash")
    h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased resize of an H x W float image to size x size (stretching if not square)."""
    if image.shape == (size, size):
        return image.astype(np.float32, copy=False)
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))  # mode "F"
    resized = picture.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.float32)


def prepare(image: np.ndarray, size: int, how: str, name: str = "image") -> np.ndarray:
    """Any decoded image array -> size x size float32 in [0, 1], as the models want it."""
    side = min(image.shape[:2])
    if side < MIN_IMAGE_SIDE:
        raise DataError(
            f"{name}: image is {image.shape[1]} x {image.shape[0]} px, below the "
            f"{MIN_IMAGE_SIDE} px minimum"
        )
    if side * 4 < size:
        warnings.warn(
            f"{name}: image is {image.shape[1]} x {image.shape[0]} px, upscaled more than 4x "
            f"to {size} px",
            SmallImageWarning,
            stacklevel=2,
        )
    gray = to_gray_float(image, name)
    out = resize(square(gray, how), size)
    # Lanczos rings slightly past the input range at sharp edges
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
