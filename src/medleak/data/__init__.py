"""Images in, tensors out: phantoms, image folders, MedMNIST files and DICOM, as Batches."""

from medleak.data.batch import CLASS_NAMES, Batch
from medleak.data.dataset import Dataset, Entry, select_batch
from medleak.data.phantom import render_phantom
from medleak.data.sources import open_dataset
from medleak.data.spec import DataSpec

__all__ = [
    "CLASS_NAMES",
    "Batch",
    "DataSpec",
    "Dataset",
    "Entry",
    "open_dataset",
    "render_phantom",
    "select_batch",
]
