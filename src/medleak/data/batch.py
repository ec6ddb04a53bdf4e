"""The object that leaves the data floor: a batch of gray images with labels and identities."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medleak.errors import DataError

CLASS_NAMES = ("NORMAL", "PNEUMONIA")


@dataclass(frozen=True)
class Batch:
    """Victim images as the client holds them.

    images: N x 1 x H x W float32 in [0, 1] (always gray; models replicate channels themselves).
    labels: N int64 class indices (0 NORMAL, 1 PNEUMONIA).
    sources: a stable identity per image (file name, a hash for DICOM, or ``phantom-<seed>-<i>``).
    patients: the patient each image belongs to when known (for patient-level re-identification),
        else None. For DICOM this is a hash, never the raw PatientID.
    """

    images: torch.Tensor
    labels: torch.Tensor
    sources: tuple[str, ...]
    patients: tuple[str | None, ...]

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dim() != 4 or self.images.shape[1] != 1:
            raise DataError(f"batch images must be N x 1 x H x W, got {tuple(self.images.shape)}")
        if self.labels.shape != (n,) or len(self.sources) != n or len(self.patients) != n:
            raise DataError("batch images, labels, sources and patients differ in length")
        if not torch.isfinite(self.images).all():
            raise DataError("batch images contain NaN or inf")

    def __len__(self) -> int:
        return int(self.images.shape[0])
