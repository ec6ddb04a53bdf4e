"""The self-contained HTML report: one file, images embedded, opens offline, no script needed.

It reads only what a run folder holds (``metrics.json``, ``trace.csv``, ``tensors.safetensors``,
``reconstruction.png``, ``config.yaml``) and shows only the ``source`` strings written there; it
never opens an image or a DICOM file itself, so no header field can reach the page. Every string
inserted into the page is escaped.
"""

from __future__ import annotations

import base64
import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import torch
import yaml

from medleak.data.batch import CLASS_NAMES
from medleak.defenses import describe_chain
from medleak.errors import MedleakError
from medleak.experiments.stores import (
    CONFIG_FILE,
    GRID_FILE,
    METRICS_FILE,
    TENSORS_FILE,
    TRACE_FILE,
)
from medleak.metrics.registry import METRICS
from medleak.metrics.verdict import INCONCLUSIVE, LEAKS, NO_MEASURABLE_LEAKAGE, judge
from medleak.output_targets import claim_file, starts_with
from medleak.private_files import private_dir, write_private
from medleak.report.grid import grid_png
from medleak.report.plots import comparison_chart, side_by_side, trace_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIGNIFICANCE = 0.05  # below this p-value a re-identification rate is not luck


@dataclass
class RunView:
    """What the report knows about one run folder, with a note for every part that is missing."""

    name: str
    path: Path
    metrics: dict[str, Any]
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    trace: list[tuple[int, int, float]] = field(default_factory=list)
    config_text: str | None = None
    grid_file: bytes | None = None
    notes: dict[str, str] = field(default_factory=dict)


def _read_trace(path: Path) -> tuple[list[tuple[int, int, float]], str | None]:
    if not path.is_file():
        return [], f"no {TRACE_FILE} in this run folder"
    rows = []
    try:
        with path.open(newline="") as f:
            for i, row in enumerate(csv.DictReader(f)):
                try:
                    it = int(row.get("iteration") or i)
                    restart = int(row.get("restart") or 0)
                    rows.append((it, restart, float(row["loss"])))
                except (KeyError, TypeError, ValueError):
                    continue
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        return [], f"{TRACE_FILE} unreadable ({exc})"
    return rows, None if rows else f"{TRACE_FILE} holds no loss values"


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    if not path.is_file():
        return {}, f"no {TENSORS_FILE}: the grid below is the run's saved picture"
    try:
        from safetensors.torch import load_file

        return load_file(str(path)), None
    except Exception as exc:  # a truncated or foreign file: show what else we have
        return {}, f"{TENSORS_FILE} unreadable ({type(exc).__name__})"


def load_run_view(path: Path, name: str | None = None) -> RunView:
    """Read a run folder; only a missing or corrupt ``metrics.json`` is an error."""
    path = Path(path)
    metrics_path = path / METRICS_FILE
    if not metrics_path.is_file():
        raise MedleakError(f"{path} is not a medleak run folder (no {METRICS_FILE})")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise MedleakError(f"{metrics_path} is unreadable: {exc}") from None
    if not isinstance(metrics, dict):
        raise MedleakError(f"{metrics_path} does not hold a JSON object")
    view = RunView(name or path.resolve().name, path, metrics)
    view.trace, note = _read_trace(path / TRACE_FILE)
    if note:
        view.notes["trace"] = note
    view.tensors, note = _read_tensors(path / TENSORS_FILE)
    if note:
        view.notes["tensors"] = note
    grid_path = path / GRID_FILE
    if grid_path.is_file() and grid_path.read_bytes()[:8] == PNG_SIGNATURE:
        view.grid_file = grid_path.read_bytes()
    config_path = path / CONFIG_FILE
    if config_path.is_file():
        view.config_text = config_path.read_text(errors="replace")
    elif isinstance(metrics.get("config"), dict):
        view.config_text = yaml.safe_dump(metrics["config"], sort_keys=False)
    else:
        view.notes["config"] = f"no {CONFIG_FILE} and no configuration in {METRICS_FILE}"
    return view


# ---------------------------------------------------------------------------------------------
# formatting


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any, digits: int = 2, unit: str = "") -> str:
    """A number for people: fixed digits, "n/a" when absent (never a fake 0)."""
    if not _is_num(v):
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def fmt_bits(bits: Any) -> str:
    """A bit count in the bytes people reason in (8 bits a byte, binary prefixes)."""
    if not _is_num(bits):
        return "n/a"
    size = bits / 8
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def _label(v: Any) -> str:
    if isinstance(v, int) and 0 <= v < len(CLASS_NAMES):
        return f"{CLASS_NAMES[v]}"
    return "n/a" if v is None else str(v)


def _count(rate: Any, count: Any, total: Any) -> tuple[int, int] | None:
    """(hits, total) from an explicit count or from rate x total."""
    if not _is_num(total) or total <= 0:
        return None
    if _is_num(count):
        return int(count), int(total)
    if _is_num(rate):
        return round(rate * total), int(total)
    return None


def _num_images(m: dict[str, Any]) -> int | None:
    if _is_num(m.get("num_images")):
        return int(m["num_images"])
    per_image = m.get("per_image")
    return len(per_image) if isinstance(per_image, list) else None


def is_synthetic(m: dict[str, Any]) -> bool:
    """Phantoms are medleak's own synthetic images: never call them patients."""
    config = m.get("config")
    data = config.get("data") if isinstance(config, dict) else None
    return isinstance(data, dict) and data.get("source", "phantom") == "phantom"


def summary_line(m: dict[str, Any]) -> str:
    """One sentence a non-expert understands ("3 of 4 patients re-identified; mean SSIM 0.71")."""
    n = _num_images(m)
    parts = []
    patients = _count(
        m.get("patient_reid_rate"), m.get("patient_reid_count"), m.get("patient_count")
    )
    images = _count(m.get("reid_rate"), m.get("reid_count"), n)
    if patients and not is_synthetic(m):
        parts.append(f"{patients[0]} of {patients[1]} patients re-identified")
        if images:
            parts[-1] += f" ({images[0]} of {images[1]} images)"
    elif images:
        parts.append(f"{images[0]} of {images[1]} images re-identified")
    if parts and _is_num(m.get("gallery_size")):
        parts[-1] += f" among {int(m['gallery_size'])} candidates"
    if images and _is_num(m.get("reid_chance")):
        expected = m["reid_chance"] * images[1]
        p = m.get("reid_p_value")
        if _is_num(p) and images[0] > 0:
            judged = "well above" if p < SIGNIFICANCE else "no better than"
            parts[-1] += (
                f", {judged} random guessing ({expected:.1f} of {images[1]} expected, p = {p:.2g})"
            )
        else:
            parts[-1] += f" (random guessing: {expected:.1f} of {images[1]})"
    parts.append(f"mean SSIM {fmt(m.get('ssim'))}")
    if _is_num(m.get("psnr")):
        parts[-1] += f", PSNR {fmt(m.get('psnr'), 1)} dB"
    if _is_num(m.get("blank_ssim")) and _is_num(m.get("blank_psnr")):
        parts[-1] += (
            f" (a blank gray image scores SSIM {fmt(m.get('blank_ssim'))}, "
            f"PSNR {fmt(m.get('blank_psnr'), 1)} dB"
        )
        if _is_num(m.get("prior_ssim")) and _is_num(m.get("prior_psnr")):
            parts[-1] += (
                f"; the mean of other images SSIM {fmt(m.get('prior_ssim'))}, "
                f"PSNR {fmt(m.get('prior_psnr'), 1)} dB"
            )
        parts[-1] += ")"
    labels = _count(m.get("label_accuracy"), None, n)
    if labels:
        if m.get("labels_source") == "known":
            parts.append("the diagnosis labels were given to the attacker (an oracle)")
        else:
            parts.append(
                f"diagnosis label recovered from the update for {labels[0]} of {labels[1]} images"
            )
    return "; ".join(parts) + "."


BADGES = {LEAKS: "leak", NO_MEASURABLE_LEAKAGE: "ok", INCONCLUSIVE: "warn"}


def verdict(m: dict[str, Any]) -> tuple[str, str, str]:
    """Badge class, badge text and the one-sentence reason, from ``medleak.metrics.verdict``.

    A record written before the verdict existed is judged again from its numbers, so old runs
    get the same rule as new ones.
    """
    judged = judge(m)
    return BADGES[judged.outcome], judged.outcome, judged.reason


def _img(png: bytes, alt: str, cls: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _is_numeric_cell(text: str) -> bool:
    try:
        float(text.split()[0])
    except (ValueError, IndexError):
        return text == "n/a"
    return True


def _td(cell: str | tuple[str, str]) -> str:
    """One cell: text, or (short text, the full text shown on hover)."""
    text, full = cell if isinstance(cell, tuple) else (cell, None)
    title = f' title="{escape(full)}"' if full else ""
    num = ' class="num"' if _is_numeric_cell(text) else ""
    return f"<td{num}{title}>{escape(text)}</td>"


def _table(
    cls: str, headers: Sequence[str], rows: Sequence[Sequence[str | tuple[str, str]]]
) -> str:
    """A table with escaped cells; numbers are right-aligned so their digits line up."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return (
        f'<table class="{cls} sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


# ---------------------------------------------------------------------------------------------
# sections


def _defense_text(m: dict[str, Any]) -> str:
    defenses = m.get("defenses")
    if not isinstance(defenses, list):
        return "n/a"
    return describe_chain(defenses)


def _facts(m: dict[str, Any]) -> list[tuple[str, str]]:
    """Attack, model, defense and privacy facts; only what the run recorded."""
    facts: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        if value is not None and value != "":
            facts.append((label, str(value)))

    add("attack", m.get("attack"))
    model = m.get("model")
    if model is not None and m.get("channels") is not None:
        model = f"{model} ({m['channels']} channel{'s' if m['channels'] != 1 else ''})"
    add("model", model)
    add("federated learning", m.get("fl"))
    add("labels", m.get("labels_source"))
    add("defense", _defense_text(m))
    if _is_num(m.get("bits_sent")):
        sent = fmt_bits(m.get("bits_sent"))
        raw = m.get("bits_raw")
        if _is_num(raw) and raw:
            sent += f", {m['bits_sent'] / raw:.0%} of the {fmt_bits(raw)} uncompressed update"
            if m["bits_sent"] and m["bits_sent"] != raw:
                sent += f" ({raw / m['bits_sent']:.1f}x smaller)"
        from medleak.report.plain import update_size_note

        if (why := update_size_note(m)) is not None:
            sent += f"; {why}"
        add("update size", sent)
    if _is_num(m.get("epsilon")):
        eps = f"epsilon = {m['epsilon']:.3g}"
        if _is_num(m.get("delta")):
            eps += f", delta = {m['delta']:.3g}"
        add("differential privacy", eps)
    add("iterations", m.get("iterations"))
    if _is_num(m.get("seconds")):
        add("attack time", f"{m['seconds']:.1f} s")
    add("seed", m.get("seed"))
    if _is_num(m.get("reid_chance")):
        add(
            "re-identification",
            f"similarity {m.get('similarity', 'n/a')}, gallery of {m.get('gallery_size', 'n/a')} "
            f"images; random guessing re-identifies {m['reid_chance']:.1%} on average"
            + (f" (p = {m['reid_p_value']:.2g})" if _is_num(m.get("reid_p_value")) else ""),
        )
    return facts


def developer_notes(m: dict[str, Any]) -> list[tuple[str, str]]:
    """Absent metrics and how to enable them: for whoever runs medleak, not for the finding."""
    notes: list[tuple[str, str]] = []
    for name, metric in METRICS.items():
        reason = m.get(f"{name}_reason")
        if m.get(name) is None and reason:
            notes.append((f"{metric.label} absent", str(reason)))
    if m.get("patient_reid_rate") is None and m.get("patient_reid_reason"):
        notes.append(("patient re-identification absent", str(m["patient_reid_reason"])))
    return notes


def cell_text(value: Any, digits: int | None) -> str:
    """A registered metric's number as the report shows it (yes/no for flags, n/a if absent)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "n/a"
    if digits is None or not isinstance(value, float):
        return str(value)
    return fmt(value, digits)


def _per_image_rows(m: dict[str, Any]) -> list[list[str]]:
    rows = []
    per_image = m.get("per_image") if isinstance(m.get("per_image"), list) else []
    cells = [c for metric in METRICS.values() for c in metric.cells]
    for p in per_image:
        if not isinstance(p, dict):
            continue
        rows.append(
            [
                str(p.get("index", "")),
                str(p.get("source", "")),
                _label(p.get("label")),
                str(p.get("matched_to", "")),
            ]
            + [cell_text(p.get(c.key), c.digits) for c in cells]
        )
    return rows


def per_image_headers() -> tuple[str, ...]:
    """The per-image table's headers: the image, then each registered metric's columns."""
    cells = [c.header for metric in METRICS.values() for c in metric.cells]
    return ("#", "source", "label", "matched to", *cells)


def _captions(m: dict[str, Any], n: int) -> list[str] | None:
    per_image = m.get("per_image")
    if not isinstance(per_image, list) or len(per_image) != n:
        return None
    captions = []
    for p in per_image:
        p = p if isinstance(p, dict) else {}
        line2 = (
            "re-identified" if p.get("reidentified") else f"re-id rank {p.get('reid_rank', 'n/a')}"
        )
        captions.append(f"PSNR {fmt(p.get('psnr'), 1)} / SSIM {fmt(p.get('ssim'))}\n{line2}")
    return captions


def _grid_html(view: RunView) -> str:
    originals, recon = view.tensors.get("originals"), view.tensors.get("reconstructions")
    if originals is not None and recon is not None and originals.shape == recon.shape:
        png = grid_png(originals, recon, _captions(view.metrics, originals.shape[0]))
        return _img(png, f"originals and reconstructions of {view.name}", "grid")
    if view.grid_file is not None:
        note = escape(view.notes.get("tensors", "tensors unavailable"))
        return (
            _img(view.grid_file, f"originals and reconstructions of {view.name}", "grid")
            + f'<p class="note">{note}; each pair\'s numbers are in the table below.</p>'
        )
    return f'<p class="note">No images to show: no {TENSORS_FILE} and no {GRID_FILE}.</p>'


def _gray_png(image: torch.Tensor, side: int = 128) -> bytes:
    """One C x H x W image in [0, 1] as a gray PNG, enlarged (nearest) to about ``side`` px."""
    import io

    import numpy as np
    from PIL import Image

    gray = image.detach().float().cpu().mean(dim=0).clamp(0, 1).numpy()
    picture = Image.fromarray((gray * 255).round().astype(np.uint8))
    scale = max(1, side // max(gray.shape))
    picture = picture.resize(
        (gray.shape[1] * scale, gray.shape[0] * scale), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _floors_html(view: RunView) -> str:
    """The two floors as images: a blank gray square and the prior image (the mean of images the
    server holds), each with the scores it gets against the originals."""
    m, originals = view.metrics, view.tensors.get("originals")
    if originals is None or not _is_num(m.get("blank_ssim")):
        return ""
    figures = [
        (
            torch.full_like(originals[0].float(), 0.5),
            "blank gray image",
            m.get("blank_ssim"),
            m.get("blank_psnr"),
        )
    ]
    prior = view.tensors.get("prior")
    if prior is not None and _is_num(m.get("prior_ssim")):
        held = "auxiliary images" if m.get("prior_source") == "auxiliary" else "other images"
        figures.append((prior[0], f"mean of {held}", m.get("prior_ssim"), m.get("prior_psnr")))
    cells = "".join(
        f'<figure class="floor">{_img(_gray_png(image), label, "floor")}<figcaption>'
        f"{escape(label)}<br>SSIM {fmt(ssim)}, PSNR {fmt(psnr_, 1)} dB</figcaption></figure>"
        for image, label, ssim, psnr_ in figures
    )
    return f"""
  <h3>What the server knows without the update (the floors)</h3>
  <p class="hint">A reconstruction shows a leak only above the stronger of these: floor SSIM
  {escape(fmt(m.get("floor_ssim", m.get("blank_ssim"))))}, PSNR
  {escape(fmt(m.get("floor_psnr", m.get("blank_psnr")), 1))} dB.</p>
  <div class="floors">{cells}</div>"""


def _baseline_html(view: RunView) -> str:
    """The same attack on the undefended update of the same batch, beside the defended run."""
    m = view.metrics
    if m.get("baseline_verdict") is None:
        if m.get("defenses"):
            return (
                '<p class="note">The undefended update was not attacked (--no-baseline), so this '
                "run cannot say how much the defense protected.</p>"
            )
        return ""
    protection = m.get("protection_ssim")
    bought = (
        f" The defense removed {fmt(protection)} of SSIM above the floor."
        if _is_num(protection) and protection >= 0
        else (
            f" The defended update leaked {fmt(-protection)} more SSIM above the floor than the "
            "undefended one: the attack budget, not the defense, decided."
            if _is_num(protection)
            else ""
        )
    )
    text = (
        f"Baseline: the same attack with the same budget on this batch's undefended update "
        f"rebuilt SSIM {fmt(m.get('baseline_ssim'))}, PSNR {fmt(m.get('baseline_psnr'), 1)} dB, "
        f"re-identified {m.get('baseline_reid_count', 'n/a')} of {m.get('num_images', 'n/a')}; "
        "its verdict: "
        f"{m.get('baseline_verdict')}.{bought}"
    )
    originals = view.tensors.get("originals")
    recon = view.tensors.get("baseline_reconstructions")
    grid = ""
    if originals is not None and recon is not None and originals.shape == recon.shape:
        png = grid_png(originals, recon)
        grid = _img(png, f"originals and the undefended baseline of {view.name}", "grid")
    badge = BADGES.get(str(m.get("baseline_verdict")), "warn")
    return f"""
  <h3>Without the defense (baseline): originals (top), rebuilt (bottom)
  <span class="badge {badge}">{escape(str(m.get("baseline_verdict")))}</span></h3>
  <p class="baseline">{escape(text)}</p>
  {grid}"""


def _provenance(m: dict[str, Any]) -> str:
    keys = ("schema", "medleak_version", "git_commit", "torch_version", "cpu", "threads")
    parts = [f"{k} {m[k]}" for k in keys if m.get(k) is not None]
    return "; ".join(parts) if parts else "no provenance recorded"


def run_section(view: RunView, index: int) -> str:
    """One run: summary, facts, grid, per-image table, loss trace, configuration."""
    m = view.metrics
    badge_cls, badge_text, verdict_reason = verdict(m)
    facts = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in _facts(m))
    notes = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in developer_notes(m))
    dev = (
        f'<details class="developer"><summary>Details for developers</summary>'
        f'<dl class="facts">{notes}</dl></details>'
        if notes
        else ""
    )
    rows = _per_image_rows(m)
    table = (
        _table("per-image", per_image_headers(), rows)
        if rows
        else '<p class="note">No per-image scores recorded.</p>'
    )
    if view.trace:
        trace = _img(trace_plot(view.trace), f"loss trace of {view.name}", "trace")
    else:
        trace = f'<p class="note">{escape(view.notes.get("trace", "no loss trace"))}</p>'
    config = (
        f"<pre>{escape(view.config_text)}</pre>"
        if view.config_text
        else f'<p class="note">{escape(view.notes.get("config", "no configuration"))}</p>'
    )
    return f"""
<section class="run" id="run-{index}">
  <h2>{escape(view.name)} <span class="badge {badge_cls}">{escape(badge_text)}</span></h2>
  <p class="verdict {badge_cls}">{escape(verdict_reason)}</p>
  <p class="summary">{escape(summary_line(m))}</p>
  <dl class="facts">{facts}</dl>
  {dev}
  <h3>Originals (top) and what the server rebuilt (bottom)</h3>
  {_grid_html(view)}
  {_floors_html(view)}
  {_baseline_html(view)}
  <h3>Per image</h3>
  <p class="hint">Ordered by image number. PSNR and SSIM: higher = closer to the original
  (SSIM 1 = identical). Re-id rank 1 = the reconstruction picks out this exact image among all
  candidates. RDLV: relative SSIM gain over the prior image (the mean of other images; the
  attack's starting image in runs without one).</p>
  {table}
  <h3>Attack loss</h3>
  {trace}
  <details class="config"><summary>Full configuration</summary>
  {config}
  <p class="provenance">{escape(_provenance(m))}; folder {escape(str(view.path))}</p>
  </details>
</section>"""


def comparison_headers() -> tuple[str, ...]:
    """The comparison table's headers: the run, each registered metric's cells, cost, privacy."""
    cells = [c.header for metric in METRICS.values() for c in metric.compare]
    return ("run", "attack", "model", "defense", *cells, "update size", "epsilon")


def comparison_section(views: Sequence[RunView]) -> str:
    """Several runs side by side: a table, a bar chart per metric, and the images per run."""
    rows = []
    for v in views:
        m = v.metrics
        rows.append(
            [
                v.name,
                str(m.get("attack", "n/a")),
                str(m.get("model", "n/a")),
                _defense_text(m),
            ]
            + [
                fmt(m.get(c.key), c.digits if c.digits is not None else 2)
                for metric in METRICS.values()
                for c in metric.compare
            ]
            + [fmt_bits(m.get("bits_sent")), fmt(m.get("epsilon"), 3)]
        )
    names = [v.name for v in views]
    chart = _img(comparison_chart(names, [v.metrics for v in views]), "metrics per run", "chart")
    strip = ""
    first = views[0].tensors.get("originals")
    recons = [v.tensors.get("reconstructions") for v in views]
    same = first is not None and all(
        v.tensors.get("originals") is not None
        and v.tensors["originals"].shape == first.shape
        and torch.equal(v.tensors["originals"], first)
        for v in views
    )
    if same and all(r is not None and r.shape == first.shape for r in recons):
        png = side_by_side(first, names, recons)
        strip = "<h3>Same images, each run's reconstruction</h3>" + _img(
            png, "reconstructions per run", "side-by-side"
        )
    summaries = "".join(
        f'<li><b>{escape(v.name)}</b> <span class="badge {verdict(v.metrics)[0]}">'
        f"{escape(verdict(v.metrics)[1])}</span>: {escape(summary_line(v.metrics))}</li>"
        for v in views
    )
    return f"""
<section id="comparison">
  <h2>Comparison of {len(views)} runs</h2>
  <ul class="summaries">{summaries}</ul>
  <p class="hint">Runs in the order given. Re-id rate: share of victim images the server could
  pick out of the gallery; chance: the rate random guessing reaches; p: how often random
  guessing would do at least as well (below 0.05: not luck).</p>
  {_table("comparison", comparison_headers(), rows)}
  {chart}
  {strip}
</section>"""


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1200px; padding: 1em 2em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
h3 { margin: 1.2em 0 0.4em; color: #444; }
.summary { font-size: 1.25em; background: #f4f6fa; border-left: 5px solid #4a6fa5;
  padding: 0.6em 0.9em; }
.badge { font-size: 0.55em; padding: 0.2em 0.6em; border-radius: 1em; vertical-align: middle;
  color: #fff; background: #777; }
.badge.leak { background: #c0392b; } .badge.warn { background: #d68910; }
.badge.ok { background: #1e8449; }
.verdict { font-size: 1.1em; font-weight: 600; border-left: 0.3em solid #888;
  padding: 0.3em 0.6em; } .verdict.leak { border-color: #c0392b; }
.verdict.warn { border-color: #d68910; } .verdict.ok { border-color: #1e8449; }
.conclusion { margin: 1em 0 2em; } details.glossary dt { font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em;
  font-size: 0.92em; }
dl.facts dt { font-weight: 600; color: #555; } dl.facts dd { margin: 0; }
img { max-width: 100%; height: auto; display: block; margin: 0.4em 0; }
img.grid, img.side-by-side, img.floor { image-rendering: pixelated; }
.floors { display: flex; flex-wrap: wrap; gap: 1em; }
figure.floor { margin: 0; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.4em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef1f5; cursor: pointer; } tr:nth-child(even) td { background: #fafafa; }
.note, .hint { color: #666; font-size: 0.9em; } .note { font-style: italic; }
details.config { margin: 1em 0 2em; } details.config pre { background: #f7f7f7;
  padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.provenance { color: #888; font-size: 0.8em; }
ul.summaries li { margin: 0.3em 0; } ul.summaries .badge { font-size: 0.8em; }
h1, h2, h3, dd, li, .summary, .hint, .note, .provenance { overflow-wrap: anywhere; }
table { display: block; max-width: 100%; overflow-x: auto; }
details.config summary { cursor: pointer; font-weight: 600; }
@media (max-width: 600px) {
  body { padding: 0.6em 0.8em; }
  .summary { font-size: 1.05em; }
  dl.facts { grid-template-columns: 1fr; } dl.facts dd { margin: 0 0 0.4em; }
  th, td { white-space: nowrap; }  /* a narrow table scrolls in its box, words stay whole */
}
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  section + section { break-before: page; }
  h2, h3 { break-after: avoid; }
  img, .summary, dl.facts { break-inside: avoid; }
  img { max-height: 24cm; width: auto; } img.chart { max-height: 11cm; }
  table { display: table; overflow: visible; font-size: 7.5pt; }
  thead { display: table-header-group; } tr { break-inside: avoid; }
  th { cursor: auto; }
  details.config summary { list-style: none; }
  details.config summary::-webkit-details-marker { display: none; }
  details.config pre { white-space: pre-wrap; overflow: visible; }
}
"""

# Optional: click a column header to sort (the tables are already ordered without it); printing
# opens the configuration, since paper cannot be clicked.
SORT_JS = """
window.addEventListener('beforeprint', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
});
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.title = 'click to sort'; th.tabIndex = 0;
  var sort = function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    th.parentNode.querySelectorAll('th').forEach(function (o) { o.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var key = function (tr) {
      var t = tr.children[idx].textContent.trim(), v = parseFloat(t);
      var bytes = /^(-?[0-9.]+) (Ki|Mi|Gi)?B$/.exec(t);  // update sizes in mixed units
      if (bytes) { v *= {Ki: 1024, Mi: 1048576, Gi: 1073741824}[bytes[2]] || 1; }
      return isNaN(v) ? t : v;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x !== typeof y) { return typeof x === 'number' ? -1 : 1; }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    }).forEach(function (tr) { body.appendChild(tr); });
  };
  th.addEventListener('click', sort);
  th.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); }
  });
});
"""


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """Folder names, lengthened with parent folders until they are distinct."""
    resolved = [p.resolve() for p in paths]
    depth = 1
    while True:
        names = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(names)) == len(names) or depth >= max(len(p.parts) for p in resolved):
            return names
        depth += 1


FRONTIER_COMMAND = "medleak sweep examples/frontier.yaml --store results.db"

GLOSSARY = """
<details class="glossary"><summary>Glossary</summary><dl>
<dt>honest-but-curious server</dt><dd>the federated-learning server follows the protocol but
looks at every update a hospital sends, to learn what it can about the images behind it</dd>
<dt>FedSGD / FedAvg</dt><dd>what a hospital sends each round: one gradient of its batch
(FedSGD), or the change of the model after several local training steps (FedAvg)</dd>
<dt>defense (obfuscation)</dt><dd>what the hospital does to its update before sending it: noise,
differential privacy, quantization, sparsification, compression</dd>
<dt>PSNR, SSIM</dt><dd>how close a rebuilt image is to the real one (PSNR in dB, SSIM from 0 to
1); a blank gray image already scores about 14 dB / 0.4 on chest X-rays, so only values above
that floor mean something leaked</dd>
<dt>re-identification</dt><dd>whether each rebuilt image picks out its own original among a
gallery of other images; ssim64-std is the similarity used (SSIM on standardised 64 px
copies)</dd>
<dt>p-value</dt><dd>how often random guessing would do at least as well; below 0.05 the result
is not luck</dd>
<dt>RDLV</dt><dd>relative leakage: how much closer the rebuilt image is than the prior image
(the mean of other images, what the server knows without the update)</dd>
<dt>floor</dt><dd>what an attacker scores without the update: the stronger of a blank gray image
and the mean of other images of the same source</dd>
<dt>baseline</dt><dd>the same attack on the same batch's undefended update; a defense is judged
against it</dd>
<dt>epsilon, delta</dt><dd>the differential-privacy guarantee; smaller epsilon = stronger</dd>
</dl></details>
"""


def conclusion_section(views: Sequence[RunView]) -> str:
    """The answer first, in plain words, then what to try next."""
    from medleak.report.plain import plain_sentence

    judged = [(v, judge(v.metrics)) for v in views]
    lines = []
    for view, verdict in judged:
        # the plain sentence leads; the verdict's reason, with its numbers, is in the run section
        prefix = f"{view.name}: " if len(views) > 1 else ""
        sentence = plain_sentence(view.metrics, is_synthetic(view.metrics))
        lines.append(
            f'<p class="verdict {BADGES[verdict.outcome]}">{escape(prefix)}{escape(sentence)}</p>'
        )
    if any(is_synthetic(v.metrics) for v in views):
        lines.append(
            '<p class="note">The images are <strong>synthetic</strong> chest-radiograph '
            "phantoms generated by medleak, not patients; run it on your own X-rays "
            "for a conclusion about real data.</p>"
        )
    leaking = [v for v, verdict in judged if verdict.outcome == LEAKS]
    safe = [v.name for v, verdict in judged if verdict.outcome == NO_MEASURABLE_LEAKAGE]
    if leaking and safe:
        advice = (
            "Next: the runs in this report that showed no measurable leakage were "
            f"{', '.join(safe)}; compare their model accuracy and bandwidth on the frontier "
            f"(<code>{escape(FRONTIER_COMMAND)}</code>)."
        )
    elif leaking or any(verdict.outcome == INCONCLUSIVE for _, verdict in judged):
        advice = (
            "Next: measure stronger defenses and their cost in accuracy and bandwidth "
            f"with the frontier sweep: <code>{escape(FRONTIER_COMMAND)}</code>."
        )
    else:
        advice = (
            "Next: try a stronger attack (more iterations, restarts, a learned prior) "
            "before trusting this defense."
        )
    lines.append(f'<p class="next">{advice}</p>')
    return '<div class="conclusion">' + "".join(lines) + "</div>"


def render_report(views: Sequence[RunView], stores: Sequence[Path] = ()) -> str:
    """The whole page as a string (run folders, and the frontier of each sweep store)."""
    if not views and not stores:
        raise MedleakError("no run folders given to the report")
    if views:
        title = views[0].name if len(views) == 1 else f"{len(views)} runs"
    else:
        title = ", ".join(p.name for p in stores)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>medleak report: {escape(title)}</title><style>{CSS}</style></head><body>",
        "<h1>medleak report</h1>",
        '<p class="hint">How much of the client\'s images an honest-but-curious federated-learning'
        " server rebuilt from one update, and whether it could tell whose images they are.</p>",
    ]
    if views:
        parts.append(conclusion_section(views))
    if stores:
        from medleak.report.audit import audit_section, store_kinds
        from medleak.report.frontier import frontier_section

        for p in stores:
            kinds = store_kinds(p)
            if "audit" in kinds:
                parts.append(audit_section(p))
            if kinds != {"audit"}:  # sweeps (or an empty store, which says so)
                parts.append(frontier_section(p))
    if len(views) > 1:
        parts.append(comparison_section(views))
    parts.extend(run_section(v, i) for i, v in enumerate(views))
    parts.append(GLOSSARY)
    parts.append(f"<script>{SORT_JS}</script></body></html>")
    return "\n".join(parts)


def report_path(out: Path | str, *, force: bool) -> Path:
    """Where the report goes: ``out`` itself, or ``out/report.html`` for a folder.

    An existing file is never replaced unless ``force``: it may be a report someone filed.
    """
    out = Path(out)
    if out.is_dir():
        out = out / "report.html"
    claim_file(
        out,
        what="report",
        is_own=lambda path: starts_with(path, b"<title>medleak report"),
        force=force,
    )
    return out


def report_page(run_dirs: Sequence[Path | str]) -> str:
    """The report page for one or more run folders (what ``write_report`` and the PDF print).

    A folder without ``metrics.json`` is a MedleakError; any other missing file only shortens its
    section, with a note saying what is missing.
    """
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise MedleakError("no run folders given to the report")
    from medleak.experiments.sqlite_store import is_store

    stores = [p for p in paths if is_store(p)]
    folders = [p for p in paths if not is_store(p)]
    views = [load_run_view(p, n) for p, n in zip(folders, _unique_names(folders), strict=True)]
    return render_report(views, stores)


def write_report(run_dirs: Sequence[Path | str], out: Path | str, *, force: bool = False) -> Path:
    """Write one self-contained HTML report for run folders and sweep stores; private (0600)."""
    page = report_page(run_dirs)
    out = report_path(out, force=force)
    if not out.parent.is_dir():
        private_dir(out.parent)
    return write_private(out, page.encode("utf-8"))
