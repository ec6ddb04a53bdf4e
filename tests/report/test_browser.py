"""The reports in a real headless Chromium: what a reader opening the file actually gets.

Each kind of report is opened from its file and checked for what a person would notice: errors
in the console, requests to the network, images that do not decode, a verdict that is not on the
first screen, tables that do not sort, a configuration that does not expand, a blank page, and a
page wider than a phone.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import make_audit_store, make_run_dir
from PIL import Image, ImageStat
from test_frontier import _store as make_sweep_store

from medleak.experiments.audit_store import load_audits
from medleak.experiments.sqlite_store import is_store
from medleak.metrics.verdict import OUTCOMES
from medleak.report import write_report
from medleak.report.audit import federation_verdict
from medleak.report.html import load_run_view, verdict

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, tuple[Path, list[Path]]]:
    """Each kind of report, with the run folders it shows."""
    base = tmp_path_factory.mktemp("reports")
    plain = make_run_dir(base / "plain", noise=0.03)
    topk = make_run_dir(
        base / "topk-with-a-long-run-name-that-must-wrap-on-a-phone",
        noise=0.25,
        defenses=[{"name": "topk", "params": {"ratio": 0.1}}],
    )
    dp = make_run_dir(
        base / "dp",
        noise=0.6,
        defenses=[{"name": "dp", "params": {"noise_multiplier": 1.0, "clip": 1.0}}],
        epsilon=3.0,
        with_tensors=False,
    )
    kinds = {"one run": [plain], "several runs": [plain, topk, dp]}
    store = make_sweep_store(base / "sweep.db")
    reports = {
        kind: (write_report(runs, base / f"{kind.replace(' ', '-')}.html"), runs)
        for kind, runs in kinds.items()
    }
    reports["store with frontier"] = (write_report([store], base / "store.html"), [])
    audit = make_audit_store(base / "audit.db")
    mixed = make_audit_store(make_sweep_store(base / "audit-and-sweep.db"))
    for kind, db in (("audit", audit), ("audit and sweep", mixed)):
        reports[kind] = (write_report([db], base / f"{db.stem}.html"), [db])
    return reports


class Opened:
    """A report loaded in a fresh page, with everything the page logged and requested."""

    def __init__(self, chromium, path: Path, viewport: dict[str, int]) -> None:
        self.context = chromium.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri(), wait_until="load")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def opened(chromium):
    pages: list[Opened] = []

    def open_report(path: Path, viewport: dict[str, int] = DESKTOP) -> Opened:
        pages.append(Opened(chromium, path, viewport))
        return pages[-1]

    yield open_report
    for p in pages:
        p.close()


KINDS = ["one run", "several runs", "store with frontier"]
RUN_KINDS = KINDS[:2]  # reports with run sections (a verdict badge and a configuration each)
AUDIT_KINDS = ["audit", "audit and sweep"]  # Flower audits in a sweep store, alone or mixed
PAGES = [*KINDS, *AUDIT_KINDS]


@pytest.mark.parametrize("kind", PAGES)
def test_loads_offline_without_errors_and_every_image_decodes(kind, reports, opened) -> None:
    path, _ = reports[kind]
    report = opened(path)
    assert report.errors == []
    remote = [u for u in report.requests if not u.startswith(("file:", "data:"))]
    assert remote == []
    images = report.page.evaluate(
        "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
    )
    assert len(images) == path.read_text().count("<img ")
    assert len(images) >= 2
    assert [alt for alt, complete, width in images if not (complete and width > 0)] == []


def _verdict_sentences(runs: list[Path]) -> list[str]:
    sentences = []
    for r in runs:
        if is_store(r):  # a Flower audit: one sentence for the federation
            sentences.append(federation_verdict([rec for rec, _ in load_audits(r)])[1])
        else:
            sentences.append(verdict(load_run_view(r).metrics)[1])
    return sentences


@pytest.mark.parametrize("kind", [*RUN_KINDS, *AUDIT_KINDS])
def test_every_verdict_is_on_the_first_screen(kind, reports, opened) -> None:
    path, runs = reports[kind]
    page = opened(path).page
    for sentence in _verdict_sentences(runs):
        first = page.get_by_text(sentence, exact=True).first
        assert first.is_visible(), sentence
        box = first.bounding_box()
        assert box is not None and box["y"] + box["height"] <= DESKTOP["height"], sentence


def _column(page, table: str, header: str) -> list[str]:
    headers = page.locator(f"{table} thead th").all_inner_texts()
    col = headers.index(header) + 1
    return page.locator(f"{table} tbody tr td:nth-child({col})").all_inner_texts()


def test_tables_sort_when_a_header_is_clicked(reports, opened) -> None:
    report = opened(reports["several runs"][0])
    page = report.page
    table = "table.comparison"
    before = [float(v) for v in _column(page, table, "PSNR (dB)")]
    assert len(set(before)) == 3
    page.locator(f"{table} thead th", has_text="PSNR (dB)").click()
    assert [float(v) for v in _column(page, table, "PSNR (dB)")] == sorted(before)
    page.locator(f"{table} thead th", has_text="PSNR (dB)").click()
    assert [float(v) for v in _column(page, table, "PSNR (dB)")] == sorted(before, reverse=True)
    # sizes in mixed units sort by their value, not by their digits
    page.locator(f"{table} thead th", has_text="update size").click()
    sizes = _column(page, table, "update size")
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    values = [float(s.split()[0]) * scale[s.split()[1].rstrip(",")] for s in sizes]
    assert sizes[0].split()[1].rstrip(",") in scale and values == sorted(values)
    # the per-image table too, and the keyboard reaches it
    per_image = "section.run#run-0 table.per-image"
    ssim = page.locator(f"{per_image} thead th", has_text="SSIM").first
    ssim.focus()
    page.keyboard.press("Enter")
    values = [float(v) for v in _column(page, per_image, "SSIM")]
    assert values == sorted(values) and ssim.get_attribute("aria-sort") == "ascending"
    assert report.errors == []


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_configuration_expands_when_clicked(kind, reports, opened) -> None:
    report = opened(reports[kind][0])
    config = report.page.locator("details.config").first
    body = config.locator("pre")
    assert not body.is_visible()
    config.locator("summary").click()
    assert body.is_visible() and "seed" in body.inner_text()
    config.locator("summary").click()
    assert not body.is_visible()


def _not_blank(png: bytes, size: dict[str, int]) -> None:
    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.width == size["width"]
    stat = ImageStat.Stat(image)
    assert stat.stddev[0] > 20  # text and X-ray grids, not a flat page
    dark = sum(image.histogram()[:128]) / (image.width * image.height)
    assert dark > 0.01


@pytest.mark.parametrize("kind", PAGES)
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_screenshots_are_not_blank_and_nothing_overflows(kind, viewport, reports, opened) -> None:
    report = opened(reports[kind][0], viewport)
    page = report.page
    _not_blank(page.screenshot(), viewport)
    width = page.evaluate("document.documentElement.clientWidth")
    assert width == viewport["width"]
    # the page itself never scrolls sideways; wide tables scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("document.body.scrollWidth") <= width
    wider = page.evaluate(
        """w => Array.from(document.querySelectorAll('body *'))
              .filter(e => !e.closest('table, pre') && e.getBoundingClientRect().right > w + 0.5)
              .map(e => e.tagName + '.' + e.className)""",
        width,
    )
    assert wider == []
    if viewport is PHONE:
        table = page.locator("table").first
        assert table.evaluate("t => t.scrollWidth > t.clientWidth")  # scrolls, not cut off


def test_print_view_opens_the_configuration_drops_widgets_and_breaks_between_runs(
    reports, opened
) -> None:
    page = opened(reports["several runs"][0]).page
    page.emulate_media(media="print")
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert page.evaluate("Array.from(document.querySelectorAll('details')).every(d => d.open)")
    style = page.evaluate(
        """() => ({
          breaks: Array.from(document.querySelectorAll('body > section'))
                  .map(s => getComputedStyle(s).breakBefore),
          marker: getComputedStyle(document.querySelector('details.config summary')).listStyleType,
          cursor: getComputedStyle(document.querySelector('th')).cursor,
          tables: Array.from(document.querySelectorAll('table'))
                  .map(t => getComputedStyle(t).display),
        })"""
    )
    assert style["breaks"][0] != "page" and set(style["breaks"][1:]) == {"page"}
    assert len(style["breaks"]) == 1 + 3  # the comparison, then one section per run
    assert style["marker"] == "none" and style["cursor"] == "auto"
    assert set(style["tables"]) == {"table"}  # whole tables on paper, not scroll boxes


def test_the_frontier_ranking_sorts_and_shows_a_verdict_per_defense(reports, opened) -> None:
    page = opened(reports["store with frontier"][0]).page
    table = "table.ranking"
    assert set(_column(page, table, "verdict")) <= set(OUTCOMES)
    page.locator(f"{table} thead th", has_text="accuracy").first.click()
    # a cell reads "0.860 (0.850-0.870 over 2 seeds), 95% CI [...]": it sorts by its mean
    accuracy = [float(v.split()[0]) for v in _column(page, table, "accuracy (95% CI)")]
    assert len(accuracy) == 5 and accuracy == sorted(accuracy)


def test_the_store_report_opens_with_each_defense_verdict(reports, opened) -> None:
    path, _ = reports["store with frontier"]
    page = opened(path).page
    sentences = page.locator(".conclusion p.verdict").all_inner_texts()
    assert len(sentences) == 6  # one per defense setting in the store, and the budget warning
    assert sentences[-1].startswith("The attack budget is too small")
    assert {s.split(": ")[0] for s in sentences[:-1]} == {
        "none",
        "topk:ratio=0.1",
        "dp:c=1,z=2",
        "gaussian:relative=0.1",
        "sign",
    }
    for sentence in sentences:
        box = page.get_by_text(sentence, exact=True).first.bounding_box()
        assert box is not None and box["y"] + box["height"] <= DESKTOP["height"], sentence
