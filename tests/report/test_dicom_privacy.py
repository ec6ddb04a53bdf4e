"""A patient's name in a DICOM header must never reach a report or metrics."""

import hashlib
import inspect
import json

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

import medleak.metrics as metrics_pkg
import medleak.report as report_pkg
from medleak.report import write_report

FAKE_NAME = "Zyxwvut^Qwertyuiop"
FAKE_ID = "PID-99887766"


def _write_dicom(path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = FAKE_NAME
    ds.PatientID = FAKE_ID
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = 48, 48
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.zeros((48, 48), dtype=np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_patient_name_never_reaches_the_report(run_dir_factory, tmp_path, monkeypatch):
    # the DICOM file sits right next to the run: the report must not go looking for it
    run_dir = tmp_path / "dicom-run"
    run_dir.mkdir()
    dicom = run_dir / "image0001.dcm"
    _write_dicom(dicom)
    assert pydicom.dcmread(dicom).PatientName == FAKE_NAME
    hashes = [hashlib.sha256(f"{dicom}-{i}".encode()).hexdigest()[:16] for i in range(4)]
    run_dir_factory("dicom-run", sources=hashes)

    def _forbidden(*args, **kwargs):
        raise AssertionError("the report read a DICOM file")

    monkeypatch.setattr(pydicom, "dcmread", _forbidden)
    out = write_report([run_dir], tmp_path / "report.html")
    text = out.read_text(encoding="utf-8")
    for secret in (FAKE_NAME, "Zyxwvut", "Qwertyuiop", FAKE_ID):
        assert secret not in text
        assert secret not in (run_dir / "metrics.json").read_text()
    assert all(h in text for h in hashes)  # the sources that were given are what is shown
    assert json.loads((run_dir / "metrics.json").read_text())["per_image"][0]["source"] == hashes[0]


def test_metrics_and_report_code_never_read_dicom():
    import pkgutil

    for pkg in (metrics_pkg, report_pkg):
        for info in pkgutil.iter_modules(pkg.__path__):
            module = __import__(f"{pkg.__name__}.{info.name}", fromlist=["_"])
            source = inspect.getsource(module)
            assert "pydicom" not in source and "dcmread" not in source, module.__name__
