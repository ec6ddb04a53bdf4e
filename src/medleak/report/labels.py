"""Point labels that do not overlap: settings with the same accuracy or leakage sit on top of
each other in the frontier, and labels written at one fixed offset became unreadable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib loads only when a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.transforms import Bbox

# Directions around the marker (unit steps: right, left, above, below, diagonals); each is tried
# at the marker's edge first, then one and two text lines further out.
_DIRECTIONS = ((1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1), (0, 1), (0, -1))


def _overlap(box: Bbox, others: Sequence[Bbox]) -> float:
    total = 0.0
    for other in others:
        w = min(box.x1, other.x1) - max(box.x0, other.x0)
        h = min(box.y1, other.y1) - max(box.y0, other.y0)
        if w > 0 and h > 0:
            total += w * h
    return total


def place_labels(
    ax: Axes, items: Sequence[tuple[str, float, float, float]], fontsize: float = 7
) -> None:
    """Annotate each (text, x, y, marker radius in points) next to its marker, choosing the
    nearest position that overlaps no marker, no earlier label and not the axes' edge (the
    least-overlapping one when every position does)."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    frame = ax.get_window_extent(renderer)
    to_pixels = ax.figure.dpi / 72
    obstacles: list[Bbox] = []
    for _, x, y, radius in items:
        px, py = ax.transData.transform((x, y))
        r = radius * to_pixels
        obstacles.append(Bbox.from_extents(px - r, py - r, px + r, py + r))
    legend = ax.get_legend()
    if legend is not None:
        obstacles.append(legend.get_window_extent(renderer))
    for text, x, y, radius in sorted(items, key=lambda item: (-item[2], item[1])):
        best = None
        for extra in (0.0, fontsize + 2, 2 * (fontsize + 2)):
            for hx, vy in _DIRECTIONS:
                gap = radius + 2 + extra
                label = ax.annotate(
                    text,
                    (x, y),
                    textcoords="offset points",
                    xytext=(hx * gap, vy * gap),
                    fontsize=fontsize,
                    ha={1: "left", -1: "right", 0: "center"}[hx],
                    va={1: "bottom", -1: "top", 0: "center"}[vy],
                    # a leader line to the marker's centre: crowded labels stay unambiguous
                    arrowprops={"arrowstyle": "-", "color": "#777", "lw": 0.6, "shrinkA": 1},
                    zorder=2,
                )
                label.update_positions(renderer)  # where the offset puts it, in pixels
                box = Text.get_window_extent(label, renderer)  # the text, not its line
                outside = box.width * box.height - _overlap(box, [frame])
                cost = _overlap(box, obstacles) + outside
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, label, box)
                else:
                    label.remove()
                if cost == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        obstacles.append(best[2])
