"""Where the real X-rays behave differently from the phantoms: matched settings, side by side.

Findings 1-5 run the same settings on both sources, so the comparison is per setting (same model,
batch, attack, defense, FedAvg steps and seed set; only the images differ). For each finding this
gives the mean leakage on matched settings, the blank-image floor of each source (how much a
featureless guess already scores) and the setting where the two differ most, so the document can
say plainly where X-rays differ instead of only repeating two outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medleak.defenses.spec import describe_chain
from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.attack_findings import attack_label
from medleak.findings.stats import (
    PHANTOM,
    SAMPLE,
    Summary,
    finished,
    get,
    leak,
    source_of,
    summarise,
)

#: A matched setting's gap (SSIM above floor) this large is called a difference.
GAP = 0.05


@dataclass
class Contrast:
    """One finding's phantom-vs-X-ray comparison over the settings both sources ran."""

    number: int
    settings: int
    phantom: Summary | None
    sample: Summary | None
    floor_phantom: Summary | None
    floor_sample: Summary | None
    widest: tuple[str, float, float] | None  # setting, phantom mean, X-ray mean
    differ: int  # matched settings whose means differ by >= GAP


def setting_of(run: StoredRun) -> str:
    """A readable key of everything but the images: model, batch, attack, defense, FedAvg."""
    parts = [
        str(get(run.config, "model.name")),
        f"batch {get(run.config, 'data.batch_size')}",
        attack_label(run),
    ]
    if run.config.get("defenses"):
        parts.append(describe_chain(run.config["defenses"]))
    if get(run.config, "fl.algorithm") == "fedavg":
        parts.append(
            f"tau {get(run.config, 'fl.local_steps')}, lr {get(run.config, 'fl.local_lr'):g}"
        )
    return ", ".join(parts)


def contrast(number: int, runs: Sequence[StoredRun]) -> Contrast | None:
    """The comparison for one finding (None unless both sources finished a common setting)."""
    per: dict[str, dict[str, list[StoredRun]]] = {PHANTOM: {}, SAMPLE: {}}
    for run in finished(runs):
        per[source_of(run)].setdefault(setting_of(run), []).append(run)
    common = sorted(set(per[PHANTOM]) & set(per[SAMPLE]))
    if not common:
        return None
    seeds = {
        key: {r.config.get("seed") for r in per[PHANTOM][key]}
        & {r.config.get("seed") for r in per[SAMPLE][key]}
        for key in common
    }
    means: dict[str, list[float]] = {PHANTOM: [], SAMPLE: []}
    floors: dict[str, list[float]] = {PHANTOM: [], SAMPLE: []}
    widest: tuple[str, float, float] | None = None
    differ = 0
    used = 0
    for key in common:
        pair = []
        for source in (PHANTOM, SAMPLE):
            members = [r for r in per[source][key] if r.config.get("seed") in seeds[key]]
            s = summarise(leak(r.metrics) for r in members)
            floors[source] += [r.metrics.get("blank_ssim") for r in members]  # type: ignore[misc]
            pair.append(s)
        if pair[0] is None or pair[1] is None:
            continue
        used += 1
        means[PHANTOM].append(pair[0].mean)
        means[SAMPLE].append(pair[1].mean)
        gap = pair[1].mean - pair[0].mean
        differ += abs(gap) >= GAP
        if widest is None or abs(gap) > abs(widest[2] - widest[1]):
            widest = (key, pair[0].mean, pair[1].mean)
    if not used:
        return None
    return Contrast(
        number,
        used,
        summarise(means[PHANTOM]),
        summarise(means[SAMPLE]),
        summarise(floors[PHANTOM]),
        summarise(floors[SAMPLE]),
        widest,
        differ,
    )


def _two(s: Summary | None) -> str:
    return "-" if s is None else f"{s.mean:.2f}"


def contrast_row(c: Contrast, verdicts: tuple[str, str]) -> list[str]:
    """A table row: finding, outcomes, mean leakage, floors, the widest gap in words."""
    same = "same outcome" if verdicts[0] == verdicts[1] else "outcome differs"
    widest = "-"
    if c.widest is not None:
        key, p, x = c.widest
        widest = f"{key}: {p:.2f} phantoms, {x:.2f} X-rays ({x - p:+.2f})"
    return [
        str(c.number),
        f"{verdicts[0]} / {verdicts[1]} ({same})",
        f"{_two(c.phantom)} / {_two(c.sample)}",
        f"{c.differ} of {c.settings}",
        f"{_two(c.floor_phantom)} / {_two(c.floor_sample)}",
        widest,
    ]


CONTRAST_HEADERS = [
    "#",
    "outcome, phantoms / X-rays",
    "mean SSIM above floor, phantoms / X-rays",
    f"settings differing by >= {GAP}",
    "blank floor SSIM, phantoms / X-rays",
    "widest gap (setting: phantoms, X-rays)",
]


def summary_sentence(contrasts: Sequence[Contrast]) -> str:
    """One sentence over all findings: do X-rays leak more or less than phantoms here?"""
    pairs = [(c.phantom.mean, c.sample.mean) for c in contrasts if c.phantom and c.sample]
    if not pairs:
        return ""
    settings = sum(c.settings for c in contrasts)
    differ = sum(c.differ for c in contrasts)
    lower = sum(1 for p, x in pairs if x < p - GAP)
    higher = sum(1 for p, x in pairs if x > p + GAP)
    floor_p = summarise(v for c in contrasts for v in [c.floor_phantom and c.floor_phantom.mean])
    floor_x = summarise(v for c in contrasts for v in [c.floor_sample and c.floor_sample.mean])
    return (
        f"Over {settings} settings run on both sources, {differ} differ by {GAP} SSIM above the "
        f"floor or more; on average per finding the X-rays leak less in {lower}, more in "
        f"{higher} and about the same in {len(pairs) - lower - higher} of {len(pairs)} findings. "
        f"The blank mid-gray image scores SSIM {_two(floor_p)} on the phantoms and "
        f"{_two(floor_x)} on the X-rays, so the floors differ and leakage is compared above each "
        "source's own floor"
    )
