"""Issue 23, class 3: a data file's name (Kaggle's carry patient numbers) never reaches a message,
the console or a store; it goes through the same pseudonym as the outputs unless --show-sources.
A data error inside a sweep run is a failed run, and the sweep exits 3 at the end.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import yaml
from PIL import Image

from medleak.cli import main
from medleak.cli import one_line_warning as _one_line_warning
from medleak.private_files import redact_sources, source_alias

PATIENT = "person1234_bacteria_99"


def _folder(tmp_path: Path, broken: str = "truncated") -> Path:
    """A Kaggle-layout folder whose PNEUMONIA image of one patient cannot be read."""
    root = tmp_path / "xrays"
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (40, 40), 60 + 40 * i).save(root / cls / f"IM-000{i}-0001.jpeg")
    bad = root / "PNEUMONIA" / f"{PATIENT}.jpeg"
    if broken == "truncated":
        Image.new("L", (40, 40), 90).save(bad)
        bad.write_bytes(bad.read_bytes()[:60])
    else:
        bad.write_bytes(b"not an image at all")
    return root


def test_an_attack_error_names_the_pseudonym_not_the_file(tmp_path, capsys):
    for broken in ("truncated", "garbage"):
        data = _folder(tmp_path / broken, broken)
        argv = ["attack", "--quiet", "--image-size", "32", "--batch-size", "5", "--channels",
                "1", "--data", str(data), "--out", str(tmp_path / "o")]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert PATIENT not in err and "person" not in err and len(err.strip().splitlines()) == 1
        assert source_alias(f"PNEUMONIA/{PATIENT}.jpeg") in err  # the outputs' pseudonym
        assert main([*argv, "--show-sources"]) == 2  # the user asked for real names
        assert PATIENT in capsys.readouterr().err


def test_a_sweep_records_a_data_error_as_a_failed_run_without_the_name(tmp_path, capsys):
    data = _folder(tmp_path)
    base = {
        "data": {"source": str(data), "image_size": 16, "batch_size": 5},
        "model": {"channels": 1},
        "attack": {"iterations": 1, "prior": "none"},
        "metrics": {"gallery_size": 0},
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"base": base}))
    store = tmp_path / "s.db"
    assert main(["sweep", str(spec), "--store", str(store), "--quiet"]) == 3
    captured = capsys.readouterr()
    assert PATIENT not in captured.out + captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "1 of 1 runs failed" in captured.err
    ((status, error),) = sqlite3.connect(store).execute("SELECT status, error FROM runs")
    assert status == "failed" and PATIENT not in error and "img-" in error
    assert main(["results", str(store)]) == 0
    assert PATIENT not in capsys.readouterr().out


def test_every_form_of_a_data_file_name_is_replaced():
    cases = {
        f"NORMAL/{PATIENT}.jpeg: not a readable image": f"NORMAL/{PATIENT}.jpeg",
        f"cannot identify image file '/data/chest_xray/test/PNEUMONIA/{PATIENT}.JPG'": (
            f"/data/chest_xray/test/PNEUMONIA/{PATIENT}.JPG"
        ),
        f"{PATIENT}.png: image is 4 x 4 px": f"{PATIENT}.png",
        f"scans/{PATIENT}.dcm: DICOM file has no pixel data": f"scans/{PATIENT}.dcm",
        f"({PATIENT}.tiff) broken": f"{PATIENT}.tiff",
    }
    for text, name in cases.items():
        out = redact_sources(text)
        assert PATIENT not in out and source_alias(name) in out, out
    for text in ("see report.html and config.yaml", "store results.db", "3.5 dB"):
        assert redact_sources(text) == text  # not data files: left as they are


def test_a_warning_that_names_a_file_is_pseudonymised_too():
    with warnings.catch_warnings():
        line = _one_line_warning(
            UserWarning(f"NORMAL/{PATIENT}.jpeg: image is 20 x 20 px, upscaled more than 4x"),
            UserWarning,
            "x.py",
            1,
        )
    assert PATIENT not in line and line.count("\n") == 1


def test_results_hides_a_name_an_older_store_kept(tmp_path, capsys):
    from medleak.experiments.sqlite_store import SweepStore

    store = tmp_path / "old.db"
    with SweepStore(store) as db:  # as a sweep before issue 23 recorded a data error
        db.mark_running("r1", "attack", "", {"metrics": {"show_sources": False}}, None)
        db.fail("r1", f"DataError: NORMAL/{PATIENT}.jpeg: not a readable image")
        db.mark_running("r2", "attack", "", {"metrics": {"show_sources": True}}, None)
        db.fail("r2", f"DataError: NORMAL/{PATIENT}_shown.jpeg: not a readable image")
    assert main(["results", str(store), "--csv"]) == 0  # --csv lists finished runs only
    assert main(["results", str(store)]) == 0
    out = capsys.readouterr().out
    # r1's error shows the pseudonym; only r2 (run with --show-sources) shows the real name
    assert out.count("person1234") == 1 and "img-" in out
