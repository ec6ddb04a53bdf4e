"""MedMNIST .npz files: both label shapes, splits, sources, bad files."""

import numpy as np
import pytest

from medleak.data import DataSpec, open_dataset, select_batch
from medleak.errors import DataError


def _write(path, labels_shape="column", n=5, size=16, rgb=False):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", n + 2), ("val", 2), ("test", n)):
        shape = (count, size, size, 3) if rgb else (count, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        labels = np.array([0, 0, 1, 0, 1, 1, 0][:count], dtype=np.uint8)
        arrays[f"{split}_labels"] = labels[:, None] if labels_shape == "column" else labels
    np.savez(path, **arrays)
    return path, arrays


def _open(path, **kwargs):
    return open_dataset(DataSpec(source=str(path), image_size=kwargs.pop("size", 16), **kwargs), 0)


@pytest.mark.parametrize("labels_shape", ["column", "flat"])
def test_both_label_shapes_load(tmp_path, labels_shape):
    path, arrays = _write(tmp_path / "pneumoniamnist_128.npz", labels_shape)
    dataset = _open(path, order="sorted")
    assert [e.label for e in dataset.entries] == [0, 0, 0, 1, 1]
    assert [e.source for e in dataset.entries][:3] == [
        "pneumoniamnist_128/test/0",
        "pneumoniamnist_128/test/1",
        "pneumoniamnist_128/test/3",
    ]
    assert all(e.patient is None for e in dataset.entries)
    batch = dataset.load([2])
    assert np.allclose(batch.images[0, 0].numpy(), arrays["test_images"][3] / 255.0, atol=1e-6)


def test_balanced_order_and_other_splits(tmp_path):
    path, _ = _write(tmp_path / "p.npz")
    assert [e.label for e in _open(path).entries] == [0, 1, 0, 1, 0]
    train = _open(path, split="train")
    assert len(train) == 7 and train.entries[0].source == "p/train/0"
    assert select_batch(_open(path, size=8), 2, 1).images.shape == (2, 1, 8, 8)


def test_rgb_images_become_gray(tmp_path):
    path, _ = _write(tmp_path / "rgb.npz", rgb=True)
    assert _open(path).load([0]).images.shape == (1, 1, 16, 16)


def test_missing_split_names_the_keys_present(tmp_path):
    path, _ = _write(tmp_path / "p.npz")
    with pytest.raises(DataError, match="no 'holdout' split.*keys present: train_images"):
        _open(path, split="holdout")


def test_unreadable_and_wrong_npz_files(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="broken.npz: not a readable .npz file"):
        _open(broken)
    single = tmp_path / "single.npz"
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(single)
    with pytest.raises(DataError, match="single.npz: not a .npz archive"):
        _open(single)


def test_multi_label_and_mismatched_arrays_are_rejected(tmp_path):
    images = np.zeros((3, 8, 8), np.uint8)
    np.savez(tmp_path / "multi.npz", test_images=images, test_labels=np.zeros((3, 14)))
    with pytest.raises(DataError, match="multi-label"):
        _open(tmp_path / "multi.npz")
    np.savez(tmp_path / "short.npz", test_images=images, test_labels=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="3 images but test_labels 2 labels"):
        _open(tmp_path / "short.npz")
