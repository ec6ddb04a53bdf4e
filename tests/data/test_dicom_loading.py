"""DICOM in class folders: display pipeline values, and no identifier in any output."""

import re

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from medleak.data import DataSpec, open_dataset
from medleak.data.dicom import window
from medleak.errors import DataError

NAME = "Doe^Jane"
PATIENT_ID = "MRN-4711-0815"
BIRTH = "19800101"
ACCESSION = "ACC-31337"

# raw stored values in four 8 x 8 quadrants of a 16 x 16 image
RAW = np.block(
    [
        [np.full((8, 8), 50), np.full((8, 8), 75)],
        [np.full((8, 8), 100), np.full((8, 8), 10)],
    ]
).astype(np.uint16)


def write_dicom(path, pixels=RAW, photometric="MONOCHROME2", patient_id=PATIENT_ID, **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientName = NAME
    if patient_id is not None:
        ds.PatientID = patient_id
    ds.PatientBirthDate = BIRTH
    ds.AccessionNumber = ACCESSION
    for key, value in tags.items():
        setattr(ds, key, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=pixels is not None)
    return path


def _load(root, index=0):
    dataset = open_dataset(DataSpec(source=str(root), image_size=16), seed=0)
    return dataset, dataset.load([index])


def _quadrants(image):
    return [float(image[4, 4]), float(image[4, 12]), float(image[12, 4]), float(image[12, 12])]


def test_rescale_and_window_give_the_expected_values(tmp_path):
    # value = 2 * raw - 100 -> 0, 50, 100, -80; window [0, 100] (centre 50.5, width 101)
    write_dicom(
        tmp_path / "NORMAL" / "a.dcm",
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=50.5,
        WindowWidth=101,
    )
    _, batch = _load(tmp_path)
    assert _quadrants(batch.images[0, 0]) == pytest.approx([0.0, 0.5, 1.0, 0.0], abs=1e-5)


def test_monochrome1_is_inverted(tmp_path):
    write_dicom(
        tmp_path / "NORMAL" / "a.dcm",
        photometric="MONOCHROME1",
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=50.5,
        WindowWidth=101,
    )
    _, batch = _load(tmp_path)
    assert _quadrants(batch.images[0, 0]) == pytest.approx([1.0, 0.5, 0.0, 1.0], abs=1e-5)


def test_first_window_of_several_is_used(tmp_path):
    write_dicom(tmp_path / "NORMAL" / "a.dcm", WindowCenter=[75.5, 5000], WindowWidth=[51, 10000])
    _, batch = _load(tmp_path)  # window [50, 100] on raw values
    assert _quadrants(batch.images[0, 0]) == pytest.approx([0.0, 0.5, 1.0, 0.0], abs=1e-5)


def test_without_a_window_the_image_range_is_used(tmp_path):
    write_dicom(tmp_path / "NORMAL" / "a.dcm")  # raw 10 .. 100
    _, batch = _load(tmp_path)
    expected = [(v - 10) / 90 for v in (50, 75, 100, 10)]
    assert _quadrants(batch.images[0, 0]) == pytest.approx(expected, abs=1e-5)


def test_window_follows_the_dicom_linear_formula():
    values = np.array([-1.0, -0.5, 0.0, 49.5, 99.5, 101.0])
    expected = [0.0, 0.0, 0.005, 0.5, 1.0, 1.0]  # (x - 49.5) / 100 + 0.5, clipped
    assert window(values, 50.0, 101.0).tolist() == pytest.approx(expected)


def test_no_identifier_reaches_entries_or_batches(tmp_path):
    # the file names themselves carry the patient's identity, as they often do
    write_dicom(tmp_path / "PNEUMONIA" / f"{PATIENT_ID}_Doe_Jane.dcm")
    write_dicom(tmp_path / "PNEUMONIA" / f"{PATIENT_ID}_Doe_Jane_2.dcm")
    write_dicom(tmp_path / "NORMAL" / "Roe_Richard.dcm", patient_id="MRN-0001")
    write_dicom(tmp_path / "NORMAL" / "anonymous.dcm", patient_id=None)
    dataset = open_dataset(DataSpec(source=str(tmp_path), image_size=8), seed=0)
    batch = dataset.load(range(len(dataset)))
    text = repr(dataset.entries) + repr(batch.sources) + repr(batch.patients)
    for secret in (
        PATIENT_ID,
        "4711",
        "Doe",
        "Jane",
        "Roe",
        "Richard",
        "MRN-0001",
        BIRTH,
        ACCESSION,
        "anonymous",
    ):
        assert secret not in text
    assert all(re.fullmatch(r"dicom-[0-9a-f]{12}", s) for s in batch.sources)
    patients = {e.source: e.patient for e in dataset.entries}
    assert len(set(patients)) == 4  # one source per file
    tokens = [p for p in patients.values() if p is not None]
    assert len(tokens) == 3 and len(set(tokens)) == 2  # the two films of one patient match
    assert all(re.fullmatch(r"patient-[0-9a-f]{12}", t) for t in tokens)
    assert list(patients.values()).count(None) == 1


def test_dicom_without_extension_is_recognised(tmp_path):
    write_dicom(tmp_path / "NORMAL" / "IM0001")
    dataset, batch = _load(tmp_path)
    assert dataset.entries[0].source.startswith("dicom-")
    assert batch.images.shape == (1, 1, 16, 16)


def test_dicom_without_pixel_data_is_a_data_error(tmp_path):
    write_dicom(tmp_path / "NORMAL" / "empty.dcm", pixels=None)
    dataset = open_dataset(DataSpec(source=str(tmp_path), image_size=16), seed=0)
    with pytest.raises(DataError, match="no pixel data"):
        dataset.load([0])


def test_corrupt_dicom_is_a_data_error(tmp_path):
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "NORMAL" / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 7)
    with pytest.raises(DataError, match=r"NORMAL/bad\.dcm"):
        open_dataset(DataSpec(source=str(tmp_path), image_size=16), seed=0).load([0])


def test_a_single_dicom_file_is_not_a_data_set(tmp_path):
    path = write_dicom(tmp_path / "one.dcm")
    with pytest.raises(DataError, match="single image, not a data set"):
        open_dataset(DataSpec(source=str(path)), seed=0)
