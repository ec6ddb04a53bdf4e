"""`medleak report --pdf`: the same report printed by headless Chromium, read back with pypdf."""

from __future__ import annotations

import re
import stat
import unicodedata

import pytest
from conftest import make_run_dir
from pypdf import PdfReader

from medleak.cli import main
from medleak.report.html import load_run_view, verdict


def _words(text: str) -> str:
    """Extracted text as a reader sees it: ligatures ("fi") undone, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("pdf-runs")
    return [
        make_run_dir(base / "plain", noise=0.03),
        make_run_dir(
            base / "topk", noise=0.3, defenses=[{"name": "topk", "params": {"ratio": 0.1}}]
        ),
    ]


def test_one_run_pdf_is_private_and_holds_the_verdict_images_and_configuration(
    chromium, runs, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "filed" / "report.pdf"
    assert main(["report", str(runs[0]), "--pdf", str(out)]) == 0
    assert "PDF written to" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not (tmp_path / "report.html").exists()  # asked for a PDF only
    assert [p.name for p in out.parent.iterdir()] == ["report.pdf"]  # no temp file left
    reader = PdfReader(out)
    assert len(reader.pages) > 0
    text = _words(" ".join(page.extract_text() for page in reader.pages))
    assert verdict(load_run_view(runs[0]).metrics)[1] in text
    assert "git_commit abc123" in text  # the configuration section is printed open
    assert sum(len(page.images) for page in reader.pages) >= 2  # grid and loss trace


def test_several_runs_start_on_new_pages_and_html_is_still_written_when_asked(
    chromium, runs, tmp_path
) -> None:
    html, pdf = tmp_path / "both.html", tmp_path / "both.pdf"
    assert main(["report", *map(str, runs), "--out", str(html), "--pdf", str(pdf)]) == 0
    assert html.is_file()
    pages = [_words(p.extract_text()) for p in PdfReader(pdf).pages]
    assert len(pages) >= 3  # the comparison, then one page (at least) per run
    for name in ("plain", "topk"):
        starts = [i for i, t in enumerate(pages) if t.startswith(name + " ")]
        assert len(starts) == 1, (name, [t[:40] for t in pages])
    for run in runs:
        assert any(verdict(load_run_view(run).metrics)[1] in t for t in pages)


def test_pdf_without_a_browser_is_one_line_naming_how_to_get_one(
    runs, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MEDLEAK_CHROMIUM", str(tmp_path / "no-such-chromium"))
    out = tmp_path / "report.pdf"
    assert main(["report", str(runs[0]), "--pdf", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install chromium" in err[0] and "MEDLEAK_CHROMIUM" in err[0]
    assert not out.exists()
    monkeypatch.delenv("MEDLEAK_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on PATH either
    assert main(["report", str(runs[0]), "--pdf", str(out)]) == 2
    assert "apt-get install chromium" in capsys.readouterr().err


def test_a_sweep_store_prints_with_its_frontier_and_verdicts(chromium, tmp_path) -> None:
    from test_frontier import _store

    store = _store(tmp_path / "sweep.db")
    pdf = tmp_path / "frontier.pdf"
    assert main(["report", str(store), "--pdf", str(pdf)]) == 0
    reader = PdfReader(pdf)
    text = _words(" ".join(page.extract_text() for page in reader.pages))
    assert "Frontier: sweep.db" in text
    assert "topk:ratio=0.1:" in text  # the setting's verdict sentence, at the top
    assert sum(len(page.images) for page in reader.pages) >= 1  # the frontier plot


def test_pdf_replaces_only_a_pdf_medleak_printed(chromium, runs, tmp_path, capsys) -> None:
    """The one overwrite rule: a user's own file is never replaced, not even with --force;
    medleak's earlier PDF only with --force."""
    own = tmp_path / "notes.pdf"
    own.write_bytes(b"%PDF-1.4 the user's own file")
    assert main(["report", str(runs[0]), "--pdf", str(own), "--force"]) == 2
    assert own.read_bytes() == b"%PDF-1.4 the user's own file"
    assert "is not a PDF report medleak wrote" in capsys.readouterr().err
    ours = tmp_path / "report.pdf"
    assert main(["report", str(runs[0]), "--pdf", str(ours)]) == 0
    assert main(["report", str(runs[0]), "--pdf", str(ours)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["report", str(runs[0]), "--pdf", str(ours), "--force"]) == 0
