"""The pictures of one saved run: its grid and its HTML report, rendered from its record."""

from __future__ import annotations

from pathlib import Path

from medleak.experiments.records import RunRecord
from medleak.experiments.stores import GRID_FILE, REPORT_FILE
from medleak.private_files import make_private
from medleak.report.grid import save_grid
from medleak.report.html import write_report


def render_run(folder: str | Path, record: RunRecord) -> None:
    """Write ``reconstruction.png`` and ``report.html`` beside a run folder's record."""
    folder = Path(folder)
    captions = [f"PSNR {p['psnr']:.1f} / SSIM {p['ssim']:.2f}" for p in record.metrics["per_image"]]
    tensors = record.tensors
    make_private(
        save_grid(tensors["originals"], tensors["reconstructions"], folder / GRID_FILE, captions)
    )
    write_report([folder], folder / REPORT_FILE, force=True)
