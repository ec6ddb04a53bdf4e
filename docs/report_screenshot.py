"""Regenerate docs/report-screenshot.png: the phantom demo's report as Chromium shows it.

Run with ``make screenshot``. The README only ever shows the phantom demo (synthetic images that
medleak generates itself, never real X-rays): this script runs the demo into a temporary folder
and refuses to go on if the run's data is anything but phantoms.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from medleak.cli import main as medleak
from medleak.report.browser import headless_chromium

OUT = Path(__file__).resolve().with_name("report-screenshot.png")
WIDTH = 1280


def shoot(report: Path, out: Path) -> None:
    """The report from its top to the end of the first image grid, at desktop width."""
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.goto(report.as_uri(), wait_until="load")
        bottom = page.evaluate(
            "() => { const g = document.querySelector('img.grid');"
            " return Math.ceil(g.getBoundingClientRect().bottom + window.scrollY + 16); }"
        )
        png = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": bottom})
    out.write_bytes(png)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="medleak-screenshot-") as tmp:
        run = Path(tmp) / "demo"
        if medleak(["demo", "--out", str(run), "--quiet"]) != 0:
            return 1
        source = yaml.safe_load((run / "config.yaml").read_text())["data"]["source"]
        if source != "phantom":
            print(f"refusing: the demo ran on {source!r}, not phantoms", file=sys.stderr)
            return 2
        shoot(run / "report.html", OUT)
    print(f"screenshot written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
