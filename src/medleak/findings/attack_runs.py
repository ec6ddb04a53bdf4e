"""What the attack findings share: how a stored run is labelled and
grouped, the margins their criteria use."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from medleak.defenses.spec import describe_chain
from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.outcome import (
    Panel,
    cell,
)
from medleak.findings.stats import (
    Summary,
    finished,
    group,
    leak,
    source_of,
    summarise,
)

#: SSIM above the floor that counts as a real difference (the verdict's SSIM margin).
MARGIN = 0.05


#: Finding 1: "almost exactly" means at least this PSNR (dB), on most seeds.
DLG_PSNR = 30.0


def by_source(runs: Sequence[StoredRun]) -> dict[str, list[StoredRun]]:
    return {str(k): v for k, v in group(finished(runs), source_of).items()}


def attack_label(run: StoredRun) -> str:
    """A short name for the attack variant a run used (preset, analytic, aware, BN terms)."""
    attack = run.config.get("attack", {})
    name = str(attack.get("name", "?")).upper()
    if attack.get("preset"):
        return f"{name} ({attack['preset']})"
    parts = []
    if attack.get("analytic") is False:
        parts.append("no analytic stage")
    if attack.get("aware") is False:
        parts.append("unaware")
    if attack.get("bn_statistics") is not None:
        parts.append("BN statistics " + ("on" if attack["bn_statistics"] else "off"))
    return f"{name} ({', '.join(parts)})" if parts else name


def floor_text(runs: Sequence[StoredRun]) -> str:
    ssim = summarise(r.metrics.get("blank_ssim") for r in runs)
    psnr = summarise(r.metrics.get("blank_psnr") for r in runs)
    return f"blank-image floor SSIM {cell(ssim)}, PSNR {cell(psnr, 1)} dB"


def series(
    runs: Sequence[StoredRun], x: Callable[[StoredRun], float]
) -> tuple[list[float], list[Summary]]:
    xs, stats = [], []
    for value, members in sorted(group(runs, x).items()):  # type: ignore[type-var]
        s = summarise(leak(r.metrics) for r in members)
        if s is not None:
            xs.append(float(value))  # type: ignore[arg-type]
            stats.append(s)
    return xs, stats


def model_name(run: StoredRun) -> str:
    return str(run.config.get("model", {}).get("name"))


def pick(panel: Panel, label: str) -> tuple[list[float], list[Summary]]:
    for s in panel.series:
        if s.label == label:
            return s.xs, s.stats
    return [], []


def ends(xs: Sequence[float], stats: Sequence[Summary]) -> str:
    if not xs:
        return "no runs"
    return (
        f"{stats[0].mean:.2f} at {xs[0]:g}, {stats[-1].mean:.2f} at {xs[-1]:g}"
        if len(xs) > 1
        else f"{stats[0].mean:.2f} at {xs[0]:g}"
    )


def defense_label(run: StoredRun) -> str:
    return describe_chain(run.config.get("defenses", []))
