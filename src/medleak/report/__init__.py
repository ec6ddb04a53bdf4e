"""What a person looks at: image grids, plots and the self-contained HTML report."""

from medleak.report.grid import save_grid

__all__ = ["save_grid"]
