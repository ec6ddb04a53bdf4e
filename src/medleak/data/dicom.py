"""DICOM images: pixels as a radiologist's viewer would show them, identities that leak nothing.

Display pipeline (DICOM PS3.3 C.11): the modality LUT (RescaleSlope, RescaleIntercept), then the
VOI window (WindowCenter/WindowWidth, the first pair when several are given; the LINEAR function of
C.11.2.1.2.1) or, without a window, the image's own min-max range; MONOCHROME1 (bright = low
values) is inverted so that bone is always bright.

Identities: DICOM file names often carry names or MRNs, so an image's ``source`` is
``dicom-<sha256 of its relative path, 12 hex>``. The patient is a keyed hash (HMAC-SHA256) of
PatientID under a key drawn once per process: two images of one patient match within a run, but
the token cannot be brute-forced back to a short MRN from a stored result, and the raw ID, name,
birth date or accession number is never kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from medleak.data.reason import short_reason
from medleak.errors import DataError

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})

# Immutable for the life of the process; never written anywhere.
_PATIENT_KEY = secrets.token_bytes(32)


def looks_like_dicom(path: Path) -> bool:
    """A ``.dcm``/``.dicom`` file, or a file with ``DICM`` after the 128-byte preamble."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def dicom_source(relative: str) -> str:
    """Stable, non-identifying name of a DICOM image, from its path relative to the data root."""
    return "dicom-" + hashlib.sha256(relative.encode("utf-8")).hexdigest()[:12]


def patient_token(patient_id: str) -> str:
    """Keyed hash of a PatientID: equal IDs give equal tokens within this process, and only here."""
    digest = hmac.new(_PATIENT_KEY, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "patient-" + digest[:12]


def read_patient(path: Path, name: str) -> str | None:
    """Hashed PatientID of a DICOM file (header only, pixels not read), None when absent."""
    pydicom = _pydicom()
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        raw = header.get("PatientID", None)
    except Exception as exc:  # pydicom raises many types on malformed files
        reason = short_reason(exc, path=path)
        raise DataError(f"{name}: not a readable DICOM file ({reason})") from None
    text = str(raw).strip() if raw is not None else ""
    return patient_token(text) if text else None


def read_dicom(path: Path, name: str) -> np.ndarray:
    """Pixels of a single-frame DICOM image as H x W float32 in [0, 1], ready to display."""
    pydicom = _pydicom()
    try:
        data = pydicom.dcmread(path, force=True)
    except Exception as exc:
        reason = short_reason(exc, path=path)
        raise DataError(f"{name}: not a readable DICOM file ({reason})") from None
    if not any(tag in data for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(f"{name}: DICOM file has no pixel data")
    if int(data.get("NumberOfFrames", 1) or 1) > 1:
        raise DataError(f"{name}: multi-frame DICOM is not supported (one image per file)")
    try:
        pixels = np.asarray(data.pixel_array)
    except Exception as exc:  # missing decoder plugin, truncated data, bad attributes
        reason = short_reason(exc, path=path)
        raise DataError(f"{name}: cannot decode DICOM pixel data ({reason})") from None
    photometric = str(data.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:
        if pixels.shape[2] != 3:
            raise DataError(f"{name}: unsupported DICOM pixel layout {pixels.shape}")
        # colour DICOM (rare for radiographs): luminance of the RGB values pydicom returns
        rgb = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return _min_max(rgb)
    if pixels.ndim != 2:
        raise DataError(f"{name}: unsupported DICOM pixel layout {pixels.shape}")
    values = pixels.astype(np.float64)
    slope = _first_number(data.get("RescaleSlope", None), 1.0)
    intercept = _first_number(data.get("RescaleIntercept", None), 0.0)
    values = values * slope + intercept
    center = _first_number(data.get("WindowCenter", None), None)
    width = _first_number(data.get("WindowWidth", None), None)
    if center is not None and width is not None and width >= 1.0:
        shown = window(values, center, width)
    else:
        shown = _min_max(values)
    if photometric == "MONOCHROME1":
        shown = 1.0 - shown
    return shown.astype(np.float32)


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM LINEAR VOI function (PS3.3 C.11.2.1.2.1) onto [0, 1]."""
    if width <= 1.0:  # the standard's degenerate case: a threshold at center - 0.5
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) / (high - low)


def _first_number(value: object, default: float | None) -> float | None:
    """A DS/IS attribute as a float; the first of several values; ``default`` if absent or bad."""
    if value is None or value == "":
        return default
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = list(value)  # pydicom's MultiValue: several windows, the first is the default
        if not items:
            return default
        value = items[0]
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if np.isfinite(number) else default


def _pydicom() -> ModuleType:
    # imported lazily: phantom and JPEG runs should not pay for pydicom's import
    try:
        import pydicom
    except ImportError:  # pragma: no cover - pydicom is a declared dependency
        raise DataError("reading DICOM needs pydicom: pip install pydicom") from None
    return pydicom
