"""Procedural chest-radiograph phantoms: deterministic, two classes, chest-like."""

import numpy as np
import pytest

from medleak.data import DataSpec, open_dataset, render_phantom, select_batch
from medleak.errors import ConfigError


def test_same_seed_and_index_give_identical_pixels():
    a, label_a = render_phantom(3, 5, 32)
    b, label_b = render_phantom(3, 5, 32)
    assert np.array_equal(a, b) and label_a == label_b


def test_other_seed_or_index_gives_another_image():
    base, _ = render_phantom(0, 4, 32)
    assert np.abs(base - render_phantom(1, 4, 32)[0]).mean() > 0.01
    assert np.abs(base - render_phantom(0, 6, 32)[0]).mean() > 0.01


@pytest.mark.parametrize("size", [8, 32, 48])
def test_shape_dtype_and_range(size):
    image, _ = render_phantom(0, 1, size)
    assert image.shape == (size, size) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05


def test_classes_alternate_so_both_are_produced():
    labels = [render_phantom(0, i, 8)[1] for i in range(6)]
    assert labels == [0, 1, 0, 1, 0, 1]


def test_same_patient_at_two_sizes():
    # anatomy does not depend on the pixel grid: a 64 px phantom, box-downsampled, is the 32 px one
    big, _ = render_phantom(2, 3, 64)
    small, _ = render_phantom(2, 3, 32)
    corr = np.corrcoef(big.reshape(32, 2, 32, 2).mean(axis=(1, 3)).ravel(), small.ravel())[0, 1]
    assert corr > 0.9


def _lung_zones(images: np.ndarray) -> np.ndarray:
    # mid-lung boxes left and right of the mediastinum on a 32 px image
    left, right = images[:, 10:22, 5:12], images[:, 10:22, 20:27]
    return (left.mean(axis=(1, 2)) + right.mean(axis=(1, 2))) / 2


def test_pneumonia_phantoms_have_more_lung_opacity():
    images = np.stack([render_phantom(7, i, 32)[0] for i in range(64)])
    zones = _lung_zones(images)
    normal, pneumonia = zones[0::2].mean(), zones[1::2].mean()
    assert pneumonia - normal > 0.025


def test_phantoms_look_like_chest_films():
    images = np.stack([render_phantom(11, i, 32)[0] for i in range(8)])
    # dark lungs either side of a bright mediastinum, as on a PA film
    mediastinum = images[:, 8:24, 14:18].mean(axis=(1, 2))
    assert np.all(mediastinum - _lung_zones(images) > 0.15)
    # overall gray levels like the Kaggle films (mean about 0.4-0.7, not a binary mask)
    assert 0.4 < images.mean() < 0.75
    assert 0.1 < np.median(images.std(axis=(1, 2))) < 0.35


@pytest.mark.parametrize(("seed", "index", "size"), [(-1, 0, 32), (0, -1, 32), (0, 0, 4)])
def test_bad_arguments_raise_config_errors(seed, index, size):
    with pytest.raises(ConfigError):
        render_phantom(seed, index, size)


def test_phantom_dataset_names_and_loads_phantoms():
    dataset = open_dataset(DataSpec(image_size=32, phantom_count=6), seed=4)
    assert len(dataset) == 6
    assert [e.source for e in dataset.entries] == [f"phantom-4-{i}" for i in range(6)]
    assert all(e.patient == e.source for e in dataset.entries)
    batch = select_batch(dataset, 2, offset=3)
    assert batch.images.shape == (2, 1, 32, 32)
    assert batch.labels.tolist() == [1, 0] and batch.sources == ("phantom-4-3", "phantom-4-4")
    assert np.array_equal(batch.images[0, 0].numpy(), render_phantom(4, 3, 32)[0])


def test_phantom_dataset_sorted_order_keeps_classes_in_blocks():
    dataset = open_dataset(DataSpec(image_size=16, phantom_count=5, order="sorted"), seed=0)
    assert [e.label for e in dataset.entries] == [0, 0, 0, 1, 1]
    assert [e.source for e in dataset.entries][:3] == ["phantom-0-0", "phantom-0-2", "phantom-0-4"]


def test_phantom_dataset_needs_a_non_negative_seed():
    with pytest.raises(ConfigError, match="seed"):
        open_dataset(DataSpec(image_size=16), seed=-3)
