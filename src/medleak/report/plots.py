"""Plots for the report, rendered off-screen (matplotlib Agg) to PNG bytes for embedding."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from medleak.metrics.registry import METRICS  # noqa: E402

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def trace_plot(rows: Sequence[tuple[int, int, float]], title: str = "") -> bytes:
    """The attack's gradient-matching loss per iteration, one line per restart.

    Log scale when every loss is positive: the interesting part of the curve spans decades.
    """
    fig = new_figure(7.0, 3.0)
    ax = fig.add_subplot()
    restarts = sorted({r for _, r, _ in rows})
    for k, restart in enumerate(restarts):
        pts = [(i, loss) for i, r, loss in rows if r == restart and math.isfinite(loss)]
        if pts:
            label = f"restart {restart}" if len(restarts) > 1 else None
            ax.plot(*zip(*pts, strict=True), color=COLORS[k % len(COLORS)], lw=1.2, label=label)
    losses = [loss for _, _, loss in rows if math.isfinite(loss)]
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("gradient-matching loss")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    if len(restarts) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def comparison_chart(names: Sequence[str], records: Sequence[dict]) -> bytes:
    """One bar panel per main metric across runs; absent values are marked "n/a", never 0.

    The re-identification panel draws the chance level (1 / gallery size) as a dashed tick per run.
    """
    charted = [m for m in METRICS.values() if m.chart]
    shown = [m for m in charted if any(_number(r.get(m.name)) for r in records)]
    metrics = [(m.name, m.chart_title or m.label, m.limits, m.chart_digits) for m in shown]
    if not metrics:  # nothing measured: still one panel, every bar marked n/a
        metrics = [
            (m.name, m.chart_title or m.label, m.limits, m.chart_digits) for m in charted[:1]
        ]
    fig = new_figure(min(16.0, 3.2 * len(metrics)), 3.4 + 0.12 * max(len(n) for n in names))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x = list(range(len(names)))
    for ax, (key, title, limits, digits) in zip(axes, metrics, strict=True):
        values = [r.get(key) if isinstance(r.get(key), (int, float)) else None for r in records]
        heights = [v if v is not None else 0.0 for v in values]
        colors = [COLORS[i % len(COLORS)] for i in x]
        bars = ax.bar(x, heights, color=colors)
        top = limits[1] if limits else max([v for v in values if v is not None] or [1.0]) * 1.15
        for bar, v in zip(bars, values, strict=True):
            text = "n/a" if v is None else f"{v:.{digits}f}"
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                (v or 0) + 0.01 * top,
                text,
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if key == "reid_rate":
            for i, r in enumerate(records):
                chance = r.get("reid_chance")
                if isinstance(chance, (int, float)):
                    ax.hlines(chance, i - 0.4, i + 0.4, colors="k", linestyles="--")
        ax.set_ylim(0, top * 1.08 if not limits else limits[1] * 1.1)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x)
        ax.set_xticklabels(
            names,
            rotation=30 if len(names) > 2 else 0,
            ha="right" if len(names) > 2 else "center",
            fontsize=8,
        )
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def side_by_side(
    originals: torch.Tensor, names: Sequence[str], reconstructions: Sequence[torch.Tensor]
) -> bytes:
    """The same victims and what each run rebuilt: one row per run (at most 8 images shown)."""
    n = min(originals.shape[0], 8)
    rows = [("original", originals)] + list(zip(names, reconstructions, strict=True))
    tile = 1.4
    fig = new_figure(1.2 + n * tile, len(rows) * tile + 0.3)
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, images) in enumerate(rows):
        gray = images.detach().float().cpu().mean(dim=1).clamp(0, 1)
        for k in range(n):
            ax = axes[r, k]
            ax.imshow(gray[k].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(label if len(label) <= 18 else label[:17] + "…", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    return figure_png(fig)
