"""Preprocessing: gray float in [0, 1], square, antialiased resize."""

import numpy as np
import pytest

from medleak.data.preprocess import prepare, resize, square, to_gray_float
from medleak.errors import DataError


def test_integer_types_are_scaled_by_their_range():
    assert to_gray_float(np.full((2, 2), 255, np.uint8)).max() == pytest.approx(1.0)
    assert to_gray_float(np.full((2, 2), 65535 // 4, np.uint16)).mean() == pytest.approx(0.25, 1e-3)


def test_rgb_and_rgba_become_luminance():
    rgb = np.zeros((3, 3, 3), np.uint8)
    rgb[..., 1] = 255
    assert to_gray_float(rgb).mean() == pytest.approx(0.587, abs=1e-4)
    rgba = np.concatenate([rgb, np.zeros((3, 3, 1), np.uint8)], axis=2)
    assert np.allclose(to_gray_float(rgba), to_gray_float(rgb))
    assert to_gray_float(np.ones((3, 3, 1), np.float32)).shape == (3, 3)


def test_floats_are_clamped_and_bad_arrays_rejected():
    assert to_gray_float(np.array([[-0.5, 2.0]])).tolist() == [[0.0, 1.0]]
    with pytest.raises(DataError, match="x.png: expected a gray or RGB image"):
        to_gray_float(np.zeros((2, 2, 2)), "x.png")
    with pytest.raises(DataError, match="NaN"):
        to_gray_float(np.array([[np.nan]]))


def test_crop_takes_the_centre_square_and_squash_keeps_all():
    image = np.arange(6 * 10, dtype=np.float32).reshape(6, 10)
    assert np.array_equal(square(image, "crop"), image[:, 2:8])
    assert square(image.T, "crop").shape == (6, 6)
    assert square(image, "squash") is image


def test_resize_is_antialiased_and_clamped():
    # a one-pixel checkerboard averages to gray when shrunk (nearest-neighbour would alias)
    board = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    small = resize(board, 8)
    assert small.shape == (8, 8) and np.allclose(small, 0.5, atol=0.05)
    sharp = np.zeros((17, 17), np.float32)
    sharp[:, 8:] = 1.0
    out = prepare(sharp, 64, "crop")
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
