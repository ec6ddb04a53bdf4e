"""Frontier labels: settings at the same spot get labels that do not cover each other."""

from __future__ import annotations

from itertools import combinations

from matplotlib.text import Text

from medleak.report.labels import place_labels
from medleak.report.plots import new_figure


def test_labels_of_coinciding_points_do_not_overlap() -> None:
    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    items = [(f"setting {i}", 0.75 + 0.001 * i, 0.66, 8.0) for i in range(5)]
    items.append(("far away", 0.2, 0.1, 8.0))
    ax.scatter([x for _, x, _, _ in items], [y for _, _, y, _ in items])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    place_labels(ax, items)
    renderer = fig.canvas.get_renderer()
    for t in ax.texts:
        t.update_positions(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # text, not line
    assert sorted(t.get_text() for t in ax.texts) == sorted(text for text, *_ in items)
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b)
    frame = ax.get_window_extent(renderer)
    assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)
