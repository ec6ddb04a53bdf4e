"""``docs/FINDINGS.md`` and its figures, written from the store (this module only reads runs).

Per finding: the claim and its source, medleak's setting, the criterion, the outcome per data
source (computed by the finding's analysis), the numbers with their spread over seeds, the plot,
why medleak may differ where it disagrees, and the command that reproduces it. The files are
private (0600, folders 0700) like every medleak output, and an existing document is replaced
only with ``force``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from medleak.errors import MedleakError
from medleak.findings.catalog import Finding
from medleak.findings.collect import FindingRuns
from medleak.findings.contrast import (
    CONTRAST_HEADERS,
    Contrast,
    contrast,
    contrast_row,
    summary_sentence,
)
from medleak.findings.explain import explain
from medleak.findings.outcome import AGREES, DISAGREES, INCONCLUSIVE, Outcome
from medleak.findings.stats import PHANTOM, SAMPLE, finished, get, summarise
from medleak.private_files import private_dir, write_private
from medleak.report.findings.figures import finding_figure

DOCUMENT = "FINDINGS.md"
FIGURES = "findings"


@dataclass
class RunInfo:
    """How the numbers were produced (stated at the top of the document)."""

    mode: str  # "full" or "quick"
    command: str
    seconds: float
    computed: int
    reused: int
    failed: int
    workers: int
    threads: int
    span: tuple[float, float] | None = None  # first start, last finish of the runs shown
    cpu: tuple[float, int, int] | None = None  # CPU s of the runs shown, runs measured, shown
    quick_cpu: tuple[float, int, int] | None = None  # the same over the --quick subset
    ran: bool = True  # False: written from the store alone (--no-run)


def document_paths(out: Path) -> tuple[Path, Path]:
    return out / DOCUMENT, out / FIGURES


def check_writable(out: Path, force: bool) -> None:
    """Refuse before any work when the document exists and ``force`` is not given."""
    doc, _ = document_paths(out)
    if out.exists() and not out.is_dir():
        raise MedleakError(f"--out {out} is a file, not a folder")
    if doc.exists() and not force:
        raise MedleakError(f"{doc} exists; pass --force to replace it")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    width = max(len(headers), *(len(r) for r in rows))
    headers = headers + [""] * (width - len(headers))
    lines = ["| " + " | ".join(h or " " for h in headers) + " |", "|" + "---|" * width]
    for row in rows:
        row = row + [""] * (width - len(row))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    return lines


def _word(verdict: str) -> str:
    return {
        AGREES: "**agrees**",
        DISAGREES: "**disagrees**",
        INCONCLUSIVE: "is **inconclusive**",
    }.get(verdict, f"**{verdict}**")


def budget(runs: FindingRuns) -> str:
    """Image size, attack iterations, seeds and the blank floor per source: the why-numbers."""
    parts = []
    attacks = finished(runs.runs)
    for source in (PHANTOM, SAMPLE):
        members = [
            r for r in attacks if (get(r.config, "data.source") == "phantom") == (source == PHANTOM)
        ]
        if not members:
            continue
        sizes = sorted({get(r.config, "data.image_size") for r in members})
        iters = sorted({get(r.config, "attack.iterations") for r in members})
        seeds = sorted({r.config.get("seed") for r in members})
        blank = summarise(r.metrics.get("blank_ssim") for r in members)
        blank_psnr = summarise(r.metrics.get("blank_psnr") for r in members)
        floor = (
            ""
            if blank is None or blank_psnr is None
            else f", blank-image floor SSIM {blank.mean:.2f} / PSNR {blank_psnr.mean:.1f} dB"
        )
        parts.append(
            f"{source}: {', '.join(f'{s} px' for s in sizes)}, "
            f"{'/'.join(str(i) for i in iters)} attack iterations, {len(seeds)} seeds{floor}"
        )
    return "; ".join(parts)


def section(finding: Finding, runs: FindingRuns, figure: str | None) -> list[str]:
    outcomes = finding.analyse(runs.runs)
    lines = [f"## {finding.number}. {finding.title}", ""]
    lines += [f"**Claim.** {finding.claim} ({finding.source})", ""]
    lines += [f"**medleak setting.** {finding.setting}.", ""]
    lines += [f"**Agrees when** {finding.criterion}.", ""]
    if runs.done < runs.expected:
        counts = ", ".join(
            f"{_source_name(src)} {done} of {total}"
            for src, (done, total) in runs.per_source.items()
        )
        lines += [
            f"*Incomplete: finished runs in the store: {counts}; the outcomes below rest on "
            "those (a source without runs has no outcome).*",
            "",
        ]
    if not outcomes:
        lines += ["No finished runs yet.", ""]
    for outcome in outcomes:
        lines += _outcome(outcome)
        why = explain(finding.number, outcome, runs.runs)
        if why:
            lines += [f"*Why medleak may differ ({outcome.source}):* {why}.", ""]
    lines += [f"Budget: {budget(runs)}." if budget(runs) else "", ""]
    if figure is not None:
        lines += [f"![Finding {finding.number}]({figure})", ""]
    lines += ["Reproduce:", "", "```bash"] + runs.commands + ["```", ""]
    return lines


def _source_name(source: str) -> str:
    return "phantoms" if source == "phantom" else "X-ray sample"


def _outcome(outcome: Outcome) -> list[str]:
    label = outcome.source + (" (synthetic)" if outcome.source == PHANTOM else " (real, 8 images)")
    lines = [f"**{label}**: medleak {_word(outcome.verdict)}. {outcome.reason}.", ""]
    lines += _md_table(outcome.headers, outcome.rows)
    return lines + [""]


def _contrast_section(contrasts: list[tuple[Contrast, tuple[str, str]]]) -> list[str]:
    """Where the real X-rays differ from the phantoms (matched settings; empty without both)."""
    if not contrasts:
        return []
    lines = [
        "## Where the X-ray sample differs from the phantoms",
        "",
        "Same settings (model, batch, attack, defense, FedAvg steps, seeds) on both sources; "
        "only the images differ. " + summary_sentence([c for c, _ in contrasts]) + ".",
        "",
    ]
    return lines + _md_table(CONTRAST_HEADERS, [contrast_row(c, v) for c, v in contrasts]) + [""]


def write_findings(
    out: Path,
    findings: list[tuple[Finding, FindingRuns]],
    info: RunInfo,
    force: bool,
    preface: str = "",
) -> Path:
    """Write ``out/FINDINGS.md`` and ``out/findings/N-*.png``; returns the document's path."""
    check_writable(out, force)
    doc, figures = document_paths(out)
    private_dir(out)
    private_dir(figures)
    body: list[str] = []
    summary_rows = []
    contrasts: list[tuple[Contrast, tuple[str, str]]] = []
    total_seconds = 0.0
    for finding, runs in findings:
        total_seconds += sum(r.seconds or 0.0 for r in runs.runs if r.status == "finished")
        outcomes = finding.analyse(runs.runs)
        png = finding_figure(f"{finding.number}. {finding.title}", [o.panel for o in outcomes])
        rel = None
        if png is not None:
            name = f"finding-{finding.number}.png"
            write_private(figures / name, png)
            rel = f"{FIGURES}/{name}"
        by_source = {o.source: o.verdict for o in outcomes}
        both = contrast(finding.number, runs.runs)
        if both is not None:
            contrasts.append((both, (by_source.get(PHANTOM, "-"), by_source.get(SAMPLE, "-"))))
        summary_rows.append(
            [
                str(finding.number),
                finding.title,
                by_source.get(PHANTOM, "not run"),
                by_source.get(SAMPLE, "not run"),
                f"{runs.done}/{runs.expected}",
            ]
        )
        body += section(finding, runs, rel)
    head = [
        "# medleak against the published findings",
        "",
        "Eight claims from the gradient-inversion literature, each checked with one medleak sweep "
        "spec under `examples/findings/`, on synthetic phantoms (generated by medleak, not real "
        "X-rays) and, for findings 1-5, on 8 real chest X-rays from the Kaggle "
        "chest-xray-pneumonia data (not in this repository). Every number is a mean ± standard "
        "deviation over seeds; 'SSIM above floor' is a reconstruction's SSIM minus that of a "
        "blank mid-gray image (0 when no better). Each outcome is computed from the store by the "
        "criterion stated with the finding (`medleak.report.findings`), not written by hand.",
        "",
    ]
    if preface:
        head += [preface, ""]
    minutes = info.seconds / 60
    work = (
        f"this invocation computed {info.computed} runs and reused {info.reused} from the store "
        f"in {minutes:.1f} min ({info.failed} failed)"
        if info.ran
        else "written from the store without running anything (`--no-run`)"
    )
    head += [
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `{info.command}` ({info.mode} "
        f"version) on {platform.machine()} with {info.workers} workers x {info.threads} thread: "
        f"{work}; the runs shown took {total_seconds / 60:.1f} min of run time in all (sum over "
        "runs, wall clock per run).",
        "",
    ]
    if info.span is not None:
        start, end = (datetime.fromtimestamp(t, UTC) for t in info.span)
        head += [
            f"Run time: the runs shown were computed between {start:%Y-%m-%d %H:%M} and "
            f"{end:%H:%M} UTC ({(info.span[1] - info.span[0]) / 60:.0f} min of wall clock, "
            f"{os.cpu_count()} CPU cores).",
            "",
        ]
    for name, cpu in (("the runs shown", info.cpu), ("the `--quick` runs shown", info.quick_cpu)):
        if cpu is not None and cpu[1]:
            seconds, measured, total = cpu
            head += [
                f"CPU time of {name}: {seconds / 60:.1f} min summed over the {measured} of "
                f"{total} runs that recorded it (a run's own CPU seconds: about what it takes "
                "alone on an idle core; the others ran before medleak recorded CPU time).",
                "",
            ]
    head += _md_table(
        ["#", "finding", "phantoms", "X-ray sample", "runs in store"], summary_rows
    ) + [""]
    head += _contrast_section(contrasts)
    text = "\n".join(head + body).rstrip() + "\n"
    write_private(doc, text.encode())
    return doc
