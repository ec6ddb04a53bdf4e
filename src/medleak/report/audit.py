"""The audit report of a Flower federation: one page over the ``audit`` records of a store.

It only reads records (``experiments.record_store``); every string is escaped and images are
embedded, so the page opens offline. Scores appear only where the simulation's clients handed
their batch over; otherwise the page shows what the server alone learned (reconstructions, the
recovered labels and class composition).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medleak.errors import MedleakError
from medleak.experiments.record_store import read_records
from medleak.report.grid import grid_png
from medleak.report.html import CSS, fmt, fmt_bits

AUDIT_KIND = "audit"


def row_png(images: torch.Tensor) -> bytes:
    """One row of images (the server's reconstructions when there is nothing to compare to)."""
    gray = images.detach().float().cpu().mean(dim=1).clamp(0, 1)
    n = gray.shape[0]
    fig = Figure(figsize=(0.5 + 1.6 * n, 1.9), dpi=110)
    FigureCanvasAgg(fig)
    for k, ax in enumerate(fig.subplots(1, n, squeeze=False)[0]):
        ax.imshow(gray[k].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.4)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _picture(record: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    recon = tensors.get("reconstructions")
    if recon is None:
        return ""
    if "originals" in tensors and record.get("scores"):
        order = [p["matched_to"] for p in record["scores"]["per_image"]]
        captions = [
            f"PSNR {p['psnr']:.1f} / SSIM {p['ssim']:.2f}" for p in record["scores"]["per_image"]
        ]
        png = grid_png(tensors["originals"], recon[order], captions)
        alt = "client images (top) and what the server rebuilt (bottom)"
    else:
        png, alt = row_png(recon), "what the server rebuilt"
    data = base64.b64encode(png).decode()
    return f'<img class="grid" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _chain(record: dict[str, Any]) -> str:
    chain = record.get("defenses") or []
    return " -> ".join(d["name"] for d in chain) or "none"


def _row(record: dict[str, Any]) -> list[str]:
    scores = record.get("scores") or {}
    guard = record.get("guard") or {}
    match = record.get("threat_model_match")
    return [
        str(record.get("round")),
        str(record.get("client") or "all"),
        str(record.get("status")),
        _chain(record),
        fmt_bits(record.get("payload_bits")) + " / " + fmt_bits(record.get("raw_bits")),
        "" if match is None else ("yes" if match else "no"),
        ", ".join(f"{k} {v}" for k, v in (record.get("recovered_composition") or {}).items()),
        fmt(scores.get("psnr"), 1, " dB"),
        fmt(scores.get("ssim"), 3),
        fmt(scores.get("blank_ssim"), 3),
        str(record.get("verdict") or ""),
        str(guard.get("outcome") or ""),
    ]


HEADERS = (
    "round",
    "client",
    "status",
    "defense",
    "bits sent / raw",
    "threat model",
    "recovered labels",
    "PSNR",
    "SSIM",
    "blank SSIM",
    "verdict",
    "guard",
)


def render_audit(records: Sequence[tuple[dict[str, Any], dict[str, torch.Tensor]]]) -> str:
    if not records:
        raise MedleakError("the store holds no audit records")
    data = {r.get("data") for r, _ in records if r.get("data")}
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in _row(r)) + "</tr>" for r, _ in records
    )
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>medleak audit of a Flower federation</title><style>{CSS}</style></head><body>",
        "<h1>medleak audit of a Flower federation</h1>",
        '<p class="hint">Every client update the server received, attacked as an '
        "honest-but-curious server could, round by round.</p>",
    ]
    if data:
        parts.append(f"<p><strong>Data: {escape(', '.join(sorted(data)))}</strong></p>")
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    for record, tensors in records:
        title = f"Round {record.get('round')}, client {record.get('client') or 'all'}"
        parts.append(f"<section><h2>{escape(title)}</h2>")
        for key in ("reason", "threat_model_reason", "verdict_reason"):
            if record.get(key):
                parts.append(f"<p>{escape(key.replace('_', ' '))}: {escape(str(record[key]))}</p>")
        guard = record.get("guard") or {}
        if guard:
            parts.append(
                f"<p>guard at the hospital: {escape(str(guard.get('verdict')))}, "
                f"{escape(str(guard.get('outcome')))} ({escape(str(guard.get('reason')))})</p>"
            )
        parts.append(_picture(record, tensors))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_audit_report(store: str | Path, out: str | Path) -> Path:
    """Write the audit report of every ``audit`` record in ``store`` to ``out``."""
    page = render_audit(read_records(store, AUDIT_KIND))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
