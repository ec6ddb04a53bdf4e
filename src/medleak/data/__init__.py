"""Images in, tensors out."""

from medleak.data.batch import CLASS_NAMES, Batch

__all__ = ["CLASS_NAMES", "Batch"]
