"""The HTML report printed to PDF by headless Chromium, for people who file and forward documents.

The page is the same one ``report.html`` holds; its print styles drop the interactive parts,
open the configuration, keep the images and start each run on a new page. The browser context is
offline: the report is self-contained, and a page that holds patient images must not reach out.
The file is private (0600), like every output that may hold patient images.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from medleak.errors import MedleakError
from medleak.output_targets import claim_file, starts_with
from medleak.private_files import private_dir, write_private
from medleak.report.browser import headless_chromium
from medleak.report.html import report_page

# A4 with margins a printer keeps; the page numbers let a reader cite "page 3 of 7".
PAGE_FORMAT = "A4"
MARGIN = {"top": "14mm", "bottom": "16mm", "left": "12mm", "right": "12mm"}
FOOTER = (
    '<div style="font-size:8px;width:100%;text-align:center;color:#666">'
    'medleak report, page <span class="pageNumber"></span> of <span class="totalPages"></span>'
    "</div>"
)


def html_to_pdf(html: str) -> bytes:
    """Print a self-contained HTML page with headless Chromium; returns the PDF bytes.

    Printing runs in its own thread: Playwright's synchronous API refuses to start in a thread
    that already runs an event loop (a notebook, or another Playwright session).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medleak-pdf") as pool:
        return pool.submit(_print, html).result()


def _print(html: str) -> bytes:
    with headless_chromium() as browser:
        context = browser.new_context(offline=True, java_script_enabled=True)
        try:
            page = context.new_page()
            page.set_content(html, wait_until="load")
            page.emulate_media(media="print")
            # The page's own print hook (what Ctrl+P runs): opens the configuration sections.
            page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
            return page.pdf(
                format=PAGE_FORMAT,
                print_background=True,
                margin=MARGIN,
                display_header_footer=True,
                header_template="<div></div>",
                footer_template=FOOTER,
            )
        finally:
            context.close()


def is_report_pdf(path: Path) -> bool:
    """A PDF medleak printed: Chromium writes the page's title, "medleak report: ...", first."""
    return starts_with(path, b"%PDF") and starts_with(path, b"/Title (medleak report")


def write_pdf(html: str, out: Path | str, *, force: bool = False) -> Path:
    """Print ``html`` to the PDF file ``out`` (0600); an existing file only with ``force``."""
    out = Path(out)
    if out.is_dir():
        raise MedleakError(f"{out} is a folder; give a file name for the PDF")
    # the one overwrite rule: only a PDF medleak printed (its title says so) is replaced
    claim_file(out, what="PDF report", is_own=is_report_pdf, force=force, flag="--pdf")
    if not out.parent.is_dir():
        private_dir(out.parent)
    return write_private(out, html_to_pdf(html))


def write_report_pdf(
    run_dirs: Sequence[Path | str], out: Path | str, *, force: bool = False
) -> Path:
    """The report over ``run_dirs`` as a PDF file ``out`` (0600); no HTML file is written."""
    return write_pdf(report_page(run_dirs), out, force=force)
