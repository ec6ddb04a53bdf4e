"""Shared test settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tests use tiny models, where one thread beats two (less synchronisation) and runs are stable.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_medleak_home(tmp_path_factory, monkeypatch) -> None:
    """Tests keep their source-name key in a temp folder, never in the user's ~/.medleak."""
    monkeypatch.setenv("MEDLEAK_HOME", str(tmp_path_factory.getbasetemp() / "medleak-home"))


#: Real chest X-rays for the tests that check realism: MEDLEAK_SAMPLE=DIR (any folder of class
#: subfolders, e.g. a few Kaggle films per class), else ``shared/data/chest_xray_sample`` beside
#: the checkout. Without either those tests skip, and the header of the test run says so.
DEFAULT_SAMPLE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray_sample"
)
SAMPLE_DIR = Path(os.environ.get("MEDLEAK_SAMPLE") or DEFAULT_SAMPLE)


def pytest_report_header(config) -> str:  # noqa: ANN001
    if SAMPLE_DIR.is_dir():
        return f"real X-ray sample: {SAMPLE_DIR}"
    return (
        f"real X-ray sample: none at {SAMPLE_DIR}; the real-X-ray tests skip "
        "(set MEDLEAK_SAMPLE=DIR to a folder of NORMAL/ and PNEUMONIA/ images)"
    )


@pytest.fixture
def chest_xray_sample() -> Path:
    """Real X-rays (MEDLEAK_SAMPLE or the sample beside the checkout); skip when absent."""
    if not SAMPLE_DIR.is_dir():
        if os.environ.get("MEDLEAK_SAMPLE"):
            pytest.fail(f"MEDLEAK_SAMPLE={SAMPLE_DIR} is not a folder")
        pytest.skip(f"real X-ray sample not present at {SAMPLE_DIR} (set MEDLEAK_SAMPLE=DIR)")
    return SAMPLE_DIR
