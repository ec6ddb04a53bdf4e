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


def render_unscored(folder: str | Path, record: RunRecord) -> None:
    """``report.html`` of an audit without originals: what the server alone can tell (the
    reconstructions, the recovered labels and class composition), verdict "not scored"."""
    import base64
    from html import escape

    from medleak.private_files import write_private
    from medleak.report.audit import row_png

    folder = Path(folder)
    m = record.metrics
    audit = m.get("audit") or {}
    facts = [
        ("attack", m.get("attack")),
        ("model", m.get("model")),
        ("client algorithm", m.get("fl")),
        ("iterations", m.get("iterations")),
        ("recovered labels", ", ".join(str(v) for v in audit.get("recovered_labels", []))),
        (
            "class composition",
            ", ".join(f"{k}: {v}" for k, v in (audit.get("recovered_composition") or {}).items()),
        ),
        ("update form", audit.get("update_form")),
        ("update sha256", audit.get("update_sha256")),
    ]
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    png = base64.b64encode(row_png(record.tensors["reconstructions"])).decode("ascii")
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>medleak audit (not scored)</title></head><body>"
        f"<h1>medleak audit: {escape(str(m.get('verdict')))}</h1>"
        f"<p>{escape(str(m.get('verdict_reason')))}</p>"
        f"<table>{rows}</table><h2>What the server rebuilt</h2>"
        f'<img alt="reconstructions" src="data:image/png;base64,{png}">'
        "</body></html>"
    )
    write_private(folder / REPORT_FILE, page.encode("utf-8"))
