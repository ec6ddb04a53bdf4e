"""What a person looks at: image grids, plots and the self-contained HTML report."""

from medleak.report.grid import grid_png, save_grid
from medleak.report.html import load_run_view, render_report, summary_line, write_report
from medleak.report.run_folder import render_run, render_unscored

__all__ = [
    "grid_png",
    "load_run_view",
    "render_report",
    "render_run",
    "render_unscored",
    "save_grid",
    "summary_line",
    "write_report",
]
