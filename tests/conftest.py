"""Shared test settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tests use tiny models, where one thread beats two (less synchronisation) and runs are stable.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_medleak_home(tmp_path_factory, monkeypatch) -> None:
    """Tests keep their source-name key in a temp folder, never in the user's ~/.medleak."""
    monkeypatch.setenv("MEDLEAK_HOME", str(tmp_path_factory.getbasetemp() / "medleak-home"))


SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray_sample"


@pytest.fixture
def chest_xray_sample() -> Path:
    """The 8 real Kaggle X-rays beside the checkout; skip when a user's clone lacks them."""
    if not SAMPLE_DIR.is_dir():
        pytest.skip(f"real X-ray sample not present at {SAMPLE_DIR}")
    return SAMPLE_DIR
