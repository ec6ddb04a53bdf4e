"""One PNG per finding: a panel per data source, every point a mean over seeds with sd bars."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.findings.outcome import Panel
from medleak.report.plots import COLORS, _new_figure, figure_png


def finding_figure(title: str, panels: Sequence[Panel]) -> bytes | None:
    """The finding's figure (None when no panel has a point)."""
    panels = [p for p in panels if any(s.xs for s in p.series)]
    if not panels:
        return None
    fig = _new_figure(5.2 * len(panels), 3.9)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        count = max(1, len(panel.series))
        for i, series in enumerate(panel.series):
            if not series.xs:
                continue
            # categorical panels spread the series side by side so the bars do not overlap
            shift = (i - (count - 1) / 2) * 0.12 if panel.categories is not None else 0.0
            xs = [x + shift for x in series.xs]
            ax.errorbar(
                xs,
                [s.mean for s in series.stats],
                yerr=[s.sd for s in series.stats],
                label=series.label,
                color=COLORS[i % len(COLORS)],
                marker="o",
                markersize=4,
                capsize=3,
                linestyle="-" if panel.categories is None else "none",
            )
        if panel.hline is not None:
            ax.axhline(
                panel.hline, color="0.4", linestyle="--", linewidth=1, label=panel.hline_label
            )
        if panel.categories is not None:
            ax.set_xticks(range(len(panel.categories)))
            ax.set_xticklabels(panel.categories, rotation=25, ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(panel.categories) - 0.5)
        elif panel.xlog:
            ax.set_xscale("log")
            # ticks at the values run (batch sizes, tau x lr), written plainly: a range under a
            # decade would otherwise get minor ticks such as 2x10^0
            ticks = sorted({x for s in panel.series for x in s.xs if x > 0})
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{x:g}" for x in ticks])
            ax.minorticks_off()
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig)
