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
from medleak.report.cells import BADGES, fmt, fmt_bits, is_num, table
from medleak.report.grid import grid_png
from medleak.report.plots import comparison_chart, side_by_side, trace_plot
from medleak.report.templates import Markup, render

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


def _label(v: Any) -> str:
    if isinstance(v, int) and 0 <= v < len(CLASS_NAMES):
        return f"{CLASS_NAMES[v]}"
    return "n/a" if v is None else str(v)


def _count(rate: Any, count: Any, total: Any) -> tuple[int, int] | None:
    """(hits, total) from an explicit count or from rate x total."""
    if not is_num(total) or total <= 0:
        return None
    if is_num(count):
        return int(count), int(total)
    if is_num(rate):
        return round(rate * total), int(total)
    return None


def _num_images(m: dict[str, Any]) -> int | None:
    if is_num(m.get("num_images")):
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
    if parts and is_num(m.get("gallery_size")):
        parts[-1] += f" among {int(m['gallery_size'])} candidates"
    if images and is_num(m.get("reid_chance")):
        expected = m["reid_chance"] * images[1]
        p = m.get("reid_p_value")
        if is_num(p) and images[0] > 0:
            judged = "well above" if p < SIGNIFICANCE else "no better than"
            parts[-1] += (
                f", {judged} random guessing ({expected:.1f} of {images[1]} expected, p = {p:.2g})"
            )
        else:
            parts[-1] += f" (random guessing: {expected:.1f} of {images[1]})"
    parts.append(f"mean SSIM {fmt(m.get('ssim'))}")
    if is_num(m.get("psnr")):
        parts[-1] += f", PSNR {fmt(m.get('psnr'), 1)} dB"
    if is_num(m.get("blank_ssim")) and is_num(m.get("blank_psnr")):
        parts[-1] += (
            f" (a blank gray image scores SSIM {fmt(m.get('blank_ssim'))}, "
            f"PSNR {fmt(m.get('blank_psnr'), 1)} dB"
        )
        if is_num(m.get("prior_ssim")) and is_num(m.get("prior_psnr")):
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
    if is_num(m.get("bits_sent")):
        sent = fmt_bits(m.get("bits_sent"))
        raw = m.get("bits_raw")
        if is_num(raw) and raw:
            sent += f", {m['bits_sent'] / raw:.0%} of the {fmt_bits(raw)} uncompressed update"
            if m["bits_sent"] and m["bits_sent"] != raw:
                sent += f" ({raw / m['bits_sent']:.1f}x smaller)"
        from medleak.report.plain import update_size_note

        if (why := update_size_note(m)) is not None:
            sent += f"; {why}"
        add("update size", sent)
    if is_num(m.get("epsilon")):
        eps = f"epsilon = {m['epsilon']:.3g}"
        if is_num(m.get("delta")):
            eps += f", delta = {m['delta']:.3g}"
        add("differential privacy", eps)
    add("iterations", m.get("iterations"))
    if is_num(m.get("seconds")):
        add("attack time", f"{m['seconds']:.1f} s")
    add("seed", m.get("seed"))
    if is_num(m.get("reid_chance")):
        add(
            "re-identification",
            f"similarity {m.get('similarity', 'n/a')}, gallery of {m.get('gallery_size', 'n/a')} "
            f"images; random guessing re-identifies {m['reid_chance']:.1%} on average"
            + (f" (p = {m['reid_p_value']:.2g})" if is_num(m.get("reid_p_value")) else ""),
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
    if originals is None or not is_num(m.get("blank_ssim")):
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
    if prior is not None and is_num(m.get("prior_ssim")):
        held = "auxiliary images" if m.get("prior_source") == "auxiliary" else "other images"
        figures.append((prior[0], f"mean of {held}", m.get("prior_ssim"), m.get("prior_psnr")))
    return render(
        "floors.html.j2",
        figures=[
            (Markup(_img(_gray_png(image), label, "floor")), label, fmt(ssim), fmt(psnr_, 1))
            for image, label, ssim, psnr_ in figures
        ],
        floor_ssim=fmt(m.get("floor_ssim", m.get("blank_ssim"))),
        floor_psnr=fmt(m.get("floor_psnr", m.get("blank_psnr")), 1),
    )


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
        if is_num(protection) and protection >= 0
        else (
            f" The defended update leaked {fmt(-protection)} more SSIM above the floor than the "
            "undefended one: the attack budget, not the defense, decided."
            if is_num(protection)
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
    return render(
        "baseline.html.j2",
        badge=BADGES.get(str(m.get("baseline_verdict")), "warn"),
        outcome=str(m.get("baseline_verdict")),
        text=text,
        grid=Markup(grid),
    )


def _provenance(m: dict[str, Any]) -> str:
    keys = ("schema", "medleak_version", "git_commit", "torch_version", "cpu", "threads")
    parts = [f"{k} {m[k]}" for k in keys if m.get(k) is not None]
    return "; ".join(parts) if parts else "no provenance recorded"


def run_section(view: RunView, index: int) -> str:
    """One run: summary, facts, grid, per-image table, loss trace, configuration."""
    m = view.metrics
    badge_cls, badge_text, verdict_reason = verdict(m)
    rows = _per_image_rows(m)
    return render(
        "run.html.j2",
        index=index,
        name=view.name,
        badge_cls=badge_cls,
        badge_text=badge_text,
        verdict_reason=verdict_reason,
        summary=summary_line(m),
        facts=_facts(m),
        notes=developer_notes(m),
        grid=Markup(_grid_html(view)),
        floors=Markup(_floors_html(view)),
        baseline=Markup(_baseline_html(view)),
        per_image=Markup(table("per-image", per_image_headers(), rows)) if rows else None,
        trace=Markup(_img(trace_plot(view.trace), f"loss trace of {view.name}", "trace"))
        if view.trace
        else None,
        trace_note=view.notes.get("trace", "no loss trace"),
        config_text=view.config_text,
        config_note=view.notes.get("config", "no configuration"),
        provenance=f"{_provenance(m)}; folder {view.path}",
    )


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
    return render(
        "comparison.html.j2",
        count=len(views),
        summaries=[
            (v.name, verdict(v.metrics)[0], verdict(v.metrics)[1], summary_line(v.metrics))
            for v in views
        ],
        table=Markup(table("comparison", comparison_headers(), rows)),
        chart=Markup(chart),
        strip=Markup(strip),
    )


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


def conclusion_section(views: Sequence[RunView]) -> str:
    """The answer first, in plain words, then what to try next."""
    from medleak.report.plain import plain_sentence

    judged = [(v, judge(v.metrics)) for v in views]
    leaking = [v for v, verdict in judged if verdict.outcome == LEAKS]
    safe = [v.name for v, verdict in judged if verdict.outcome == NO_MEASURABLE_LEAKAGE]
    if leaking and safe:
        advice = "compare"
    elif leaking or any(verdict.outcome == INCONCLUSIVE for _, verdict in judged):
        advice = "measure"
    else:
        advice = "stronger"
    return render(
        "conclusion.html.j2",
        # the plain sentence leads; the verdict's reason, with its numbers, is in the run section
        lines=[
            (
                BADGES[verdict.outcome],
                f"{view.name}: " if len(views) > 1 else "",
                plain_sentence(view.metrics, is_synthetic(view.metrics)),
            )
            for view, verdict in judged
        ],
        synthetic=any(is_synthetic(v.metrics) for v in views),
        advice=advice,
        safe=", ".join(safe),
        command=FRONTIER_COMMAND,
    )


def render_report(views: Sequence[RunView], stores: Sequence[Path] = ()) -> str:
    """The whole page as a string (run folders, and the frontier of each sweep store)."""
    if not views and not stores:
        raise MedleakError("no run folders given to the report")
    if views:
        title = views[0].name if len(views) == 1 else f"{len(views)} runs"
    else:
        title = ", ".join(p.name for p in stores)
    sections: list[str] = []
    if views:
        sections.append(conclusion_section(views))
    if stores:
        from medleak.report.audit import audit_section, store_kinds
        from medleak.report.frontier import frontier_section

        for p in stores:
            kinds = store_kinds(p)
            if "audit" in kinds:
                sections.append(audit_section(p))
            if kinds != {"audit"}:  # sweeps (or an empty store, which says so)
                sections.append(frontier_section(p))
    if len(views) > 1:
        sections.append(comparison_section(views))
    sections.extend(run_section(v, i) for i, v in enumerate(views))
    sections.append(render("glossary.html.j2"))
    return render("page.html.j2", title=title, sections=[Markup(x) for x in sections])


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
