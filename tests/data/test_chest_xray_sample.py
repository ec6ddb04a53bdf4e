"""Real X-rays (MEDLEAK_SAMPLE, or the 8 Kaggle films in shared/ beside the checkout)."""

from pathlib import Path

import pytest

from medleak.data import DataSpec, open_dataset, select_batch


@pytest.fixture
def sample(chest_xray_sample: Path) -> Path:
    return chest_xray_sample


def test_every_film_loads_gray_in_range_balanced_with_patients(sample: Path) -> None:
    """Holds for any real sample (MEDLEAK_SAMPLE), not only the 8 films beside the checkout."""
    dataset = open_dataset(DataSpec(source=str(sample), image_size=32), seed=0)
    count = len(dataset)
    assert count >= 2
    batch = select_batch(dataset, count)
    assert batch.images.shape == (count, 1, 32, 32)
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0
    labels = batch.labels.tolist()
    # balanced order: the classes alternate while both last
    both = 2 * min(labels.count(0), labels.count(1))
    assert labels[:both] == [0, 1] * (both // 2)
    assert all("/" in src for src in batch.sources)  # class folder / file
    kaggle = ("person", "NORMAL2-IM-", "IM-")
    if all(src.split("/")[-1].startswith(kaggle) for src in batch.sources):
        # Kaggle names carry the patient (personNNNN_..., NORMAL2-IM-NNNN-...)
        assert all(p is not None for p in batch.patients)


def test_crop_and_squash_differ_on_the_portrait_films(sample):
    def load(resize):
        spec = DataSpec(source=str(sample), image_size=32, resize=resize)
        return open_dataset(spec, seed=0).load([0]).images

    assert float((load("crop") - load("squash")).abs().mean()) > 0.02
