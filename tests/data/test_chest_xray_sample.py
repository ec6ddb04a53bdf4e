"""The 8 real Kaggle films kept beside the checkout (shared/data/chest_xray_sample)."""

from pathlib import Path

import pytest

from medleak.data import DataSpec, open_dataset, select_batch

# tests/data/this_file -> parents[2] is the repository root; shared/ sits beside the checkout
SAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "chest_xray_sample"


@pytest.fixture
def sample() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip(f"real X-ray sample not present at {SAMPLE.resolve()}")
    return SAMPLE


def test_all_eight_films_load_balanced_with_patients(sample):
    dataset = open_dataset(DataSpec(source=str(sample), image_size=32), seed=0)
    assert len(dataset) == 8
    batch = select_batch(dataset, 8)
    assert batch.images.shape == (8, 1, 32, 32)
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0
    assert batch.labels.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert batch.sources[:2] == (
        "NORMAL/NORMAL2-IM-1427-0001.jpeg",
        "PNEUMONIA/person1946_bacteria_4874.jpeg",
    )
    assert batch.patients[:4] == ("NORMAL2-IM-1427", "person1946", "NORMAL2-IM-1430", "person1946")
    assert all(p is not None for p in batch.patients)


def test_crop_and_squash_differ_on_the_portrait_films(sample):
    def load(resize):
        spec = DataSpec(source=str(sample), image_size=32, resize=resize)
        return open_dataset(spec, seed=0).load([0]).images

    assert float((load("crop") - load("squash")).abs().mean()) > 0.02
