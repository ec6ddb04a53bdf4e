import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from medleak.errors import MedleakError
from medleak.report import summary_line, write_report


class _Collector(HTMLParser):
    """Collects tags with their attributes and the text inside elements with a class."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text_by_class: dict[str, list[str]] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        self._open.append(a.get("class", ""))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for cls in self._open:
            for c in cls.split():
                self.text_by_class.setdefault(c, []).append(data)

    def with_class(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and cls in a.get("class", "").split()]


def _parse(path: Path) -> _Collector:
    c = _Collector()
    c.feed(path.read_text(encoding="utf-8"))
    return c


def test_two_run_report_has_every_section_and_no_remote_resources(run_dir_factory, tmp_path):
    a = run_dir_factory("none", noise=0.03)
    b = run_dir_factory(
        "dp", noise=0.4, defenses=[{"name": "gaussian", "params": {"sigma": 0.1}}], epsilon=8.0
    )
    out = write_report([a, b], tmp_path / "out" / "report.html")
    page = _parse(out)
    assert len(page.with_class("p", "summary")) == 2
    assert len(page.with_class("img", "grid")) == 2
    assert len(page.with_class("table", "per-image")) == 2
    assert len(page.with_class("img", "trace")) == 2
    assert len(page.with_class("details", "config")) == 2
    assert len(page.with_class("table", "comparison")) == 1
    assert len(page.with_class("img", "chart")) == 1
    assert len(page.with_class("img", "side-by-side")) == 1
    # every image is embedded; nothing is fetched from a network
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key, "")
            assert not value.lower().startswith(("http://", "https://", "//")), (tag, value)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
    text = out.read_text()
    assert "http://" not in text and "https://" not in text
    # facts of the defended run, and its summary line in words
    facts = " ".join(page.text_by_class["facts"])
    assert "gaussian:sigma=0.1" in facts and "epsilon = 8" in facts
    summary = " ".join(page.text_by_class["summary"])
    # the fixture's data are phantoms: synthetic images are never called patients
    assert "images re-identified" in summary and "patients" not in summary
    assert "mean SSIM" in summary
    # per-image table is in image order
    rows = [t for t, _ in page.tags if t == "tr"]
    assert len(rows) >= 2 * 5 + 3  # two 4-image tables with headers + comparison


def test_summary_line_in_words():
    m = {
        "reid_rate": 0.75, "reid_count": 3, "num_images": 4, "patient_reid_rate": 0.75,
        "patient_reid_count": 3, "patient_count": 4, "gallery_size": 104, "ssim": 0.7123,
        "psnr": 21.34, "label_accuracy": 1.0, "labels_source": "known",
    }  # fmt: skip
    line = summary_line(m)
    assert line.startswith("3 of 4 patients re-identified (3 of 4 images) among 104 candidates")
    assert "mean SSIM 0.71" in line and "PSNR 21.3 dB" in line
    assert "given to the attacker (an oracle)" in line and "recovered" not in line
    assert "blank gray" not in line  # only said when the record has it
    floor = summary_line({**m, "blank_ssim": 0.518, "blank_psnr": 15.06})
    assert "(a blank gray image scores SSIM 0.52, PSNR 15.1 dB)" in floor
    assert "n/a" in summary_line({})  # an empty record still gives a sentence
    significant = summary_line({**m, "reid_chance": 0.0379, "reid_p_value": 1e-6})
    assert "well above random guessing (0.2 of 4 expected" in significant
    lucky = summary_line({**m, "gallery_size": 8, "reid_chance": 0.41, "reid_p_value": 0.13})
    assert "no better than random guessing (1.6 of 4 expected, p = 0.13)" in lucky


def test_missing_optional_files_degrade_with_notes(run_dir_factory, tmp_path):
    run = run_dir_factory("bare", with_tensors=False, with_trace=False, with_config=False)
    record = json.loads((run / "metrics.json").read_text())
    for key in ("bits_sent", "epsilon", "defenses", "config", "per_image", "lpips"):
        record.pop(key, None)
    (run / "metrics.json").write_text(json.dumps(record))
    out = write_report([run], tmp_path / "r.html")
    page = _parse(out)
    assert len(page.with_class("img", "grid")) == 1  # falls back to reconstruction.png
    notes = " ".join(page.text_by_class.get("note", []))
    assert "trace.csv" in notes and "tensors.safetensors" in notes and "config" in notes
    assert not page.with_class("table", "comparison")
    # compared with a complete run: the chart marks the missing values instead of failing
    full = run_dir_factory("full")
    page = _parse(write_report([run, full], tmp_path / "both.html"))
    assert len(page.with_class("img", "chart")) == 1
    assert not page.with_class("img", "side-by-side")  # one run has no tensors to line up
    # even without reconstruction.png the page renders
    (run / "reconstruction.png").unlink()
    (run / "trace.csv").write_text("garbage\n\x00\n")
    assert write_report([run], tmp_path / "r2.html").is_file()


def test_folder_without_metrics_is_a_one_line_error(tmp_path):
    with pytest.raises(MedleakError, match="no metrics.json"):
        write_report([tmp_path], tmp_path / "r.html")
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(MedleakError, match="unreadable"):
        write_report([tmp_path], tmp_path / "r.html")


def test_inserted_strings_are_escaped(run_dir_factory, tmp_path):
    evil = '<script>alert("x")</script>'
    run = run_dir_factory("evil", sources=[evil, "b", "c", "d"])
    record = json.loads((run / "metrics.json").read_text())
    record["attack"] = "<b>rog</b>"
    (run / "metrics.json").write_text(json.dumps(record))
    text = write_report([run], tmp_path / "r.html").read_text()
    assert evil not in text and "<b>rog</b>" not in text
    assert "&lt;script&gt;" in text
