"""Regenerate docs/report-screenshot.png: the phantom demo's report as Chromium shows it.

Run with ``make screenshot``. The README only ever shows the phantom demo (synthetic images that
medleak generates itself, never real X-rays): this script runs the demo into a temporary folder
(or, with ``--run DIR``, reuses a folder ``medleak demo`` wrote) and refuses any run whose data
is anything but phantoms.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from medleak.cli import main as medleak
from medleak.report.browser import headless_chromium
from medleak.report.html import report_page

OUT = Path(__file__).resolve().with_name("report-screenshot.png")
WIDTH = 1280


def shoot(run: Path, out: Path) -> None:
    """The run's report (rendered by this checkout) from its top to the end of the image grid."""
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.set_content(report_page([run]), wait_until="load")
        bottom = page.evaluate(
            "() => { const g = document.querySelector('img.grid');"
            " return Math.ceil(g.getBoundingClientRect().bottom + window.scrollY + 16); }"
        )
        png = page.screenshot(
            full_page=True, clip={"x": 0, "y": 0, "width": WIDTH, "height": bottom}
        )
    out.write_bytes(png)


def from_phantoms(run: Path) -> bool:
    config = yaml.safe_load((run / "config.yaml").read_text())
    return config["data"]["source"] == "phantom"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a folder written by 'medleak demo' to reuse")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medleak-screenshot-") as tmp:
        run = args.run or Path(tmp) / "demo"
        if args.run is None and medleak(["demo", "--out", str(run), "--quiet"]) != 0:
            return 1
        if not from_phantoms(run):
            print(f"refusing: {run} is not a run on phantoms", file=sys.stderr)
            return 2
        shoot(run, OUT)
    print(f"screenshot written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
