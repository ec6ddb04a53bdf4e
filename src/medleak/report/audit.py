"""The audit of a Flower federation in the report: the ``audit`` runs of a sweep store.

It only reads the store (``experiments.audit_store``); every string is escaped and images are
embedded, so the page opens offline. The answer comes first (one verdict sentence per
federation), then a table of every client update per round, then the images. Scores appear
only where the simulation's clients handed their batch over; otherwise the page shows what the
server alone learned (reconstructions, the recovered labels and class composition).
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

from medleak.experiments.audit_store import FAILED, load_audits
from medleak.experiments.sqlite_store import SweepStore
from medleak.metrics.verdict import INCONCLUSIVE, LEAKS, NO_MEASURABLE_LEAKAGE, floors
from medleak.report.grid import grid_png
from medleak.report.html import BADGES, _table, fmt, fmt_bits

Records = Sequence[tuple[dict[str, Any], dict[str, torch.Tensor]]]


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


def _rounds(records: Sequence[dict[str, Any]]) -> str:
    rounds = sorted({int(r["round"]) for r in records})
    if not rounds:
        return ""
    span = str(rounds[0]) if len(rounds) == 1 else f"{rounds[0]}-{rounds[-1]}"
    return f"round{'s' if len(rounds) > 1 else ''} {span}"


def federation_verdict(records: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(outcome, one sentence) for one federation's audit records; the worst update decides.

    Under secure aggregation nothing was attacked, which is never "no measurable leakage".
    """
    attacked = [r for r in records if r.get("status") == "attacked"]
    if not attacked:
        if any(r.get("status") == "not-visible" for r in records):
            return INCONCLUSIVE, (
                "Not attacked: under secure aggregation the server saw only the sum of each "
                f"round's updates ({_rounds(records)}), so no individual update was visible; "
                "this audit cannot say what the sum reveals."
            )
        if records and all(r.get("status") == "client-error" for r in records):
            return NO_MEASURABLE_LEAKAGE, (
                f"Nothing reached the server: every update ({len(records)}) was stopped at the "
                "hospital (an error reply instead, e.g. the leakage guard blocked it), so there "
                "was nothing to attack."
            )
        return INCONCLUSIVE, "Inconclusive: the server's attack failed on every update."
    n, span = len(attacked), _rounds(attacked)
    leaks = [r for r in attacked if r.get("verdict") == LEAKS]
    if leaks:
        best = max(leaks, key=lambda r: (r.get("scores") or {}).get("ssim") or -1.0)
        scores = best.get("scores") or {}
        return LEAKS, (
            f"Leaks: the server rebuilt the images of {len(leaks)} of the {n} client updates "
            f"it attacked ({span}); best mean SSIM {fmt(scores.get('ssim'))} against the "
            f"floor's {fmt(floors(scores)['floor_ssim'])} (the stronger of a blank image and the "
            "mean of other images)."
        )
    if not any(r.get("scores") for r in attacked):
        return INCONCLUSIVE, (
            f"Inconclusive: the server attacked {n} client updates ({span}) but had none of "
            "the hospitals' images to score them against; below is what it rebuilt and the "
            "labels it recovered."
        )
    unsure = [r for r in attacked if r.get("verdict") != NO_MEASURABLE_LEAKAGE]
    if unsure:
        why = str(unsure[0].get("verdict_reason") or "").removeprefix("Inconclusive: ")
        return INCONCLUSIVE, (
            f"Inconclusive: no update clearly leaked, but for {len(unsure)} of the {n} the "
            f"server attacked ({span}) a leak could not be ruled out"
            + (f"; first reason: {why}" if why else ".")
        )
    return NO_MEASURABLE_LEAKAGE, (
        f"No measurable leakage: none of the {n} client updates the server attacked ({span}) "
        "gave back images closer to the hospitals' than a blank image is."
    )


def _side_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    notes = []
    blocked = sum(1 for r in records if r.get("status") == "client-error")
    failed = sum(1 for r in records if r.get("status") == FAILED)
    guards = [(r.get("guard") or {}).get("outcome") for r in records]
    reobfuscated = guards.count("re-obfuscated")
    if blocked:
        notes.append(f"{blocked} update(s) never left the hospital (an error reply instead).")
    if reobfuscated:
        notes.append(
            f"The hospitals' leakage guard re-obfuscated {reobfuscated} update(s) with its "
            "stronger chain before sending them; the table shows what was actually sent."
        )
    if failed:
        notes.append(f"The attack failed on {failed} update(s) (reason in the table).")
    outside = sum(1 for r in records if r.get("threat_model_match") is False)
    if outside:
        notes.append(
            f"{outside} update(s) came from training the attack does not model (e.g. shuffled "
            "minibatches); their result understates what a matched attack could do."
        )
    return notes


def _chain(record: dict[str, Any]) -> str:
    if "defenses" not in record:
        return "-"  # nothing was received (an error reply, or secure aggregation)
    chain = record["defenses"] or []
    return " then ".join(d if isinstance(d, str) else str(d.get("name")) for d in chain) or "none"


def client_labels(records: list[dict[str, Any]]) -> dict[str, str]:
    """Short labels ("client 1", ...) in order of first appearance: Flower's node ids are
    20-digit numbers that make the table wider than a screen (the id is kept on hover)."""
    labels: dict[str, str] = {}
    for record in records:
        client = str(record.get("client") or "all")
        if client not in labels:
            labels[client] = "all" if client == "all" else f"client {len(labels) + 1}"
    return labels


def _size(record: dict[str, Any]) -> str:
    sent, raw = record.get("payload_bits"), record.get("raw_bits")
    if sent is None:
        return "-"
    return fmt_bits(sent) + (f" of {fmt_bits(raw)}" if raw is not None else "")


def _row(record: dict[str, Any], labels: dict[str, str]) -> list[str | tuple[str, str]]:
    scores = record.get("scores") or {}
    guard = record.get("guard") or {}
    match = record.get("threat_model_match")
    client = str(record.get("client") or "all")
    return [
        str(record.get("round")),
        (labels.get(client, client), f"node id {client}"),
        str(record.get("status")),
        _chain(record),
        _size(record),
        "" if match is None else ("yes" if match else "no"),
        ", ".join(f"{k} {v}" for k, v in (record.get("recovered_composition") or {}).items()),
        fmt(scores.get("psnr"), 1),
        fmt(scores.get("ssim"), 3),
        fmt(floors(scores)["floor_ssim"], 3),
        str(record.get("verdict") or ""),
        str(guard.get("outcome") or ""),
    ]


HEADERS = (
    "round",
    "client",
    "status",
    "defense sent",
    "size sent (of raw)",
    "threat model",
    "recovered labels",
    "PSNR (dB)",
    "SSIM",
    "floor SSIM",
    "verdict",
    "guard",
)


def render_audit(records: Records, title: str = "") -> str:
    """The audit section (HTML fragment) for ``records``, grouped by federation."""
    parts = [f"<h2>Audit of a Flower federation{': ' + escape(title) if title else ''}</h2>"]
    if not records:
        return parts[0] + "<p>The store holds no audit records.</p>"
    federations: dict[str, list[tuple[dict[str, Any], dict[str, torch.Tensor]]]] = {}
    for record, tensors in records:
        federations.setdefault(str(record.get("federation")), []).append((record, tensors))
    lines = []
    for name, members in federations.items():
        plain = [r for r, _ in members]
        outcome, sentence = federation_verdict(plain)
        prefix = f"federation {name}: " if len(federations) > 1 else ""
        lines.append(f'<p class="verdict {BADGES[outcome]}">{escape(prefix + sentence)}</p>')
        lines.extend(f'<p class="note">{escape(n)}</p>' for n in _side_notes(plain))
    notes = sorted({r.get("data_note") for r, _ in records if r.get("data_note")})
    if notes:
        lines.append(f'<p class="note">Data: <strong>{escape(", ".join(notes))}</strong>.</p>')
    parts.append('<div class="conclusion">' + "".join(lines) + "</div>")
    parts.append(
        '<p class="hint">Every client update the server received, attacked as an '
        "honest-but-curious server could, round by round.</p>"
    )
    labels = client_labels([r for r, _ in records])
    parts.append(_table("audit", HEADERS, [_row(r, labels) for r, _ in records]))
    for record, tensors in records:
        client = str(record.get("client") or "all")
        head = f"Round {record.get('round')}, {labels[client]}"
        if client != "all":
            head += f" (node id {client})"
        parts.append(f'<div class="audit-update"><h3>{escape(head)}</h3>')
        for key in ("reason", "threat_model_reason", "verdict_reason"):
            if record.get(key):
                label = key.replace("_", " ")
                parts.append(f'<p class="hint">{escape(label)}: {escape(str(record[key]))}</p>')
        guard = record.get("guard") or {}
        if guard:
            parts.append(
                f'<p class="hint">guard at the hospital: {escape(str(guard.get("verdict")))}, '
                f"{escape(str(guard.get('outcome')))} ({escape(str(guard.get('reason')))})</p>"
            )
        parts.append(_picture(record, tensors))
        parts.append("</div>")
    return "\n".join(parts)


def store_kinds(path: Path) -> set[str]:
    """The kinds of run a sweep store holds (``audit``, ``attack``, ``train``)."""
    with SweepStore(path, create=False) as store:
        return {run.kind for run in store.runs()}


def audit_section(path: Path) -> str:
    """The audit section of the report for the sweep store at ``path``."""
    return render_audit(load_audits(path), Path(path).name)


def write_audit_report(store: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """The report of ``store`` (its audits, and its sweeps if any) written to ``out``."""
    from medleak.report.html import write_report

    return write_report([store], out, force=force)
