"""The picture that makes the point: originals on top, what the server rebuilt beneath."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless; set before any pyplot import elsewhere can pick a GUI backend

import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

MAX_COLUMNS = 8


def _as_gray(images: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x H x W in [0, 1] (channel mean, as scores use for 3-channel attacks)."""
    if images.dim() != 4:
        raise ValueError(f"expected N x C x H x W images, got {tuple(images.shape)}")
    return images.detach().float().cpu().mean(dim=1).clamp(0, 1)


def grid_figure(
    originals: torch.Tensor,
    reconstructions: torch.Tensor,
    captions: Sequence[str] | None = None,
) -> Figure:
    """The grid as a matplotlib Figure (Agg canvas attached); see ``save_grid``."""
    a, b = _as_gray(originals), _as_gray(reconstructions)
    if a.shape != b.shape:
        raise ValueError(f"originals {tuple(a.shape)} and reconstructions {tuple(b.shape)} differ")
    n = a.shape[0]
    if captions is not None and len(captions) != n:
        raise ValueError(f"{len(captions)} captions for {n} image pairs")
    cols = max(1, min(n, MAX_COLUMNS))
    blocks = max(1, math.ceil(n / cols))
    tile = min(2.4, max(1.5, a.shape[-1] / 64))  # inches per image: bigger images get more room
    lines = max((c.count("\n") + 1 for c in captions), default=0) if captions else 0
    caption_in = 0.1 + 0.22 * lines
    fig = Figure(figsize=(0.5 + cols * tile, blocks * (2 * tile + caption_in + 0.25)), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 * blocks, cols, squeeze=False)
    for k in range(blocks * cols):
        top, bottom = axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        if k >= n:
            top.set_axis_off()
            bottom.set_axis_off()
            continue
        top.imshow(a[k].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        bottom.imshow(b[k].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        top.set_title(f"#{k}", fontsize=9)
        if captions:
            bottom.set_xlabel(captions[k], fontsize=9)
        if k % cols == 0:
            top.set_ylabel("original", fontsize=9)
            bottom.set_ylabel("reconstruction", fontsize=9)
    fig.tight_layout(pad=0.4, h_pad=0.3, w_pad=0.3)
    return fig


def grid_png(
    originals: torch.Tensor,
    reconstructions: torch.Tensor,
    captions: Sequence[str] | None = None,
) -> bytes:
    """The grid as PNG bytes (for embedding in the HTML report)."""
    buffer = io.BytesIO()
    grid_figure(originals, reconstructions, captions).savefig(buffer, format="png")
    return buffer.getvalue()


def save_grid(
    originals: torch.Tensor,
    reconstructions: torch.Tensor,
    path: Path | str,
    captions: Sequence[str] | None = None,
) -> Path:
    """Write a PNG: each original above its (already matched) reconstruction, captions beneath.

    Row ``i`` of ``reconstructions`` must be the reconstruction matched to original ``i``. Both
    rows use the same fixed gray scale (0 black, 1 white) and nearest-neighbour display, so a
    brightness shift or a blur in the reconstruction is visible rather than normalised away.
    More than 8 images wrap into further original/reconstruction row pairs; a caption may hold
    several lines.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(grid_png(originals, reconstructions, captions))
    return out
