"""Which loader a DataSpec's ``source`` names: the phantom, a folder tree, or a ``.npz`` file."""

from __future__ import annotations

from pathlib import Path

from medleak.data.dataset import Dataset
from medleak.data.dicom import looks_like_dicom
from medleak.data.folder import folder_dataset
from medleak.data.npz import npz_dataset
from medleak.data.phantom import phantom_dataset
from medleak.data.raster import RASTER_SUFFIXES
from medleak.data.spec import DataSpec
from medleak.errors import DataError


def open_dataset(spec: DataSpec, seed: int) -> Dataset:
    """Open the data set a spec names; ``seed`` fixes the phantoms (files need none).

    Nothing is decoded here: files are listed (and DICOM headers read), phantoms are rendered
    when a batch is loaded.
    """
    if spec.is_phantom:
        return phantom_dataset(spec, seed)
    path = Path(spec.source).expanduser()
    if not path.exists():
        raise DataError(
            f"data source {spec.source!r} does not exist "
            "(give 'phantom', an image folder or a MedMNIST .npz file)"
        )
    if path.is_dir():
        return folder_dataset(path, spec)
    if path.suffix.lower() == ".npz":
        return npz_dataset(path, spec)
    if path.suffix.lower() in RASTER_SUFFIXES or looks_like_dicom(path):
        raise DataError(
            f"{path.name} is a single image, not a data set; put images in class folders "
            "(e.g. NORMAL/ and PNEUMONIA/) and give the folder"
        )
    raise DataError(
        f"{path.name}: unsupported data source (give 'phantom', an image folder or a .npz file)"
    )
