"""One verdict for one attack result: *leaks*, *no measurable leakage*, or *inconclusive*.

Every place that tells a person whether a defense protected (console, report, sweep table, the
Flower guard) calls :func:`judge`, so the wording and the thresholds cannot drift apart. The rule
is asymmetric on purpose: any one signal above its floor is enough to say *leaks*, but *no
measurable leakage* needs every signal at its floor **and** a re-identification test that could
have seen a leak (ROG's lesson: an obfuscation that only defeats a weak test is a false sense of
security). Anything else is *inconclusive*, with the reason.

The input is a ``metrics.json``-shaped mapping, so stored records can be judged again later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from math import comb, isfinite
from typing import Any

from medleak.metrics.reidentification import chance_p_value

LEAKS = "leaks"
NO_MEASURABLE_LEAKAGE = "no measurable leakage"
INCONCLUSIVE = "inconclusive"
OUTCOMES = (LEAKS, NO_MEASURABLE_LEAKAGE, INCONCLUSIVE)

#: Mean SSIM must clear the blank mid-gray image's by this much (and the attack's start) to leak.
SSIM_MARGIN = 0.05
#: Mean PSNR this many dB above the blank image's is a leak on its own.
PSNR_MARGIN_DB = 1.0
#: Significance level of the re-identification and label tests, and the power requirement.
ALPHA = 0.05
#: The re-identification test "has the power to see a leak" when re-identifying this fraction of
#: the batch (at least one image) would already be significant. Requiring only a *full*
#: re-identification would let 3 of 4 victims found in a gallery of 8 (p = 0.13) count as safe.
POWER_FRACTION = 0.5


@dataclass(frozen=True)
class Verdict:
    """The outcome, one plain sentence saying why, and the numbers the sentence rests on."""

    outcome: str
    reason: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.outcome, "verdict_reason": self.reason}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if isfinite(value) else None


def label_p_value(
    accuracy: float, n: int, num_classes: int = 2, truth: tuple[int, ...] | None = None
) -> float:
    """P(uniform random labels match at least ``accuracy`` of a batch of n, compared as counts).

    Label accuracy compares label *counts* (the order of a batch is arbitrary), so a random
    guess of n labels scores sum_c min(truth_c, guess_c) / n. ``truth`` is the batch's class
    counts; without it the worst case over compositions is used, so the test never overstates
    a leak. (Recovering the counts of a balanced batch is easy by guessing; of a skewed one not.)
    """
    if n <= 0 or num_classes < 2:
        return 1.0
    hits_needed = round(accuracy * n)
    compositions = list(_compositions(n, num_classes))
    truths = [truth] if truth is not None else compositions
    worst = 0.0
    for t in truths:
        p = 0.0
        for guess in compositions:
            if sum(min(a, g) for a, g in zip(t, guess, strict=True)) >= hits_needed:
                p += _multinomial(guess) / num_classes**n
        worst = max(worst, p)
    return min(1.0, worst)


def _truth_counts(metrics: Mapping[str, Any], num_classes: int) -> tuple[int, ...] | None:
    per_image = metrics.get("per_image")
    if not isinstance(per_image, list) or not per_image:
        return None
    labels = [row.get("label") for row in per_image if isinstance(row, Mapping)]
    if len(labels) != len(per_image) or not all(
        isinstance(v, int) and 0 <= v < num_classes for v in labels
    ):
        return None
    return tuple(labels.count(c) for c in range(num_classes))


def _compositions(n: int, k: int):
    if k == 1:
        yield (n,)
        return
    for first in range(n + 1):
        for rest in _compositions(n - first, k - 1):
            yield (first, *rest)


def _multinomial(counts: tuple[int, ...]) -> int:
    total, out = 0, 1
    for c in counts:
        total += c
        out *= comb(total, c)
    return out


def judge(metrics: Mapping[str, Any], *, num_classes: int = 2) -> Verdict:
    """The verdict for one result; see the module docstring for the rule."""
    ssim, blank_ssim = _num(metrics.get("ssim")), _num(metrics.get("blank_ssim"))
    psnr, blank_psnr = _num(metrics.get("psnr")), _num(metrics.get("blank_psnr"))
    start_ssim = _num(metrics.get("start_ssim"))
    n = int(metrics.get("num_images") or 0)
    gallery = metrics.get("gallery_size")
    hits = metrics.get("reid_count")
    p_reid = _num(metrics.get("reid_p_value"))
    evidence: dict[str, Any] = {}

    leaks: list[str] = []
    at_floor: list[str] = []
    unknown: list[str] = []

    if ssim is not None and blank_ssim is not None:
        start_ok = start_ssim is None or ssim > start_ssim
        evidence.update(ssim=ssim, blank_ssim=blank_ssim, start_ssim=start_ssim)
        if ssim >= blank_ssim + SSIM_MARGIN and start_ok:
            leaks.append(
                f"the reconstructions resemble the images (SSIM {ssim:.2f}, "
                f"a blank gray image scores {blank_ssim:.2f})"
            )
        else:
            at_floor.append("SSIM")
    else:
        unknown.append("SSIM against the blank image was not measured")

    if psnr is not None and blank_psnr is not None:
        evidence.update(psnr=psnr, blank_psnr=blank_psnr)
        if psnr >= blank_psnr + PSNR_MARGIN_DB:
            leaks.append(
                f"pixel error is below a blank image's (PSNR {psnr:.1f} dB vs {blank_psnr:.1f} dB)"
            )
        else:
            at_floor.append("PSNR")
    else:
        unknown.append("PSNR against the blank image was not measured")

    reid_power: float | None = None
    if isinstance(gallery, int) and gallery > 0 and n > 0 and isinstance(hits, int):
        reid_power = chance_p_value(max(1, math.ceil(POWER_FRACTION * n)), n, gallery)
        p = p_reid if p_reid is not None else chance_p_value(hits, n, gallery)
        evidence.update(
            reid_count=hits, gallery_size=gallery, reid_p_value=p, reid_smallest_p=reid_power
        )
        if p < ALPHA:
            leaks.append(
                f"{hits} of {n} images were picked out of a gallery of {gallery} (p = {p:.2g})"
            )
        else:
            at_floor.append("re-identification")
    else:
        unknown.append("re-identification was not measured")

    label_acc = _num(metrics.get("label_accuracy"))
    if metrics.get("labels_source") == "inferred" and label_acc is not None and n > 0:
        truth = _truth_counts(metrics, num_classes)
        p_label = label_p_value(label_acc, n, num_classes, truth)
        evidence.update(label_accuracy=label_acc, label_p_value=p_label)
        if p_label < ALPHA:
            leaks.append(
                f"the diagnosis labels were recovered from the update "
                f"({label_acc:.0%}, p = {p_label:.2g})"
            )

    if leaks:
        return Verdict(LEAKS, "Leaks: " + "; ".join(leaks) + ".", evidence)
    if unknown:
        return Verdict(INCONCLUSIVE, "Inconclusive: " + "; ".join(unknown) + ".", evidence)
    assert reid_power is not None
    if reid_power >= ALPHA:
        return Verdict(
            INCONCLUSIVE,
            f"Inconclusive: the reconstructions are at the blank-image floor, but with {n} "
            f"image(s) in a gallery of {gallery} even re-identifying half of them would only "
            f"reach p = {reid_power:.2g}, so this test could not have seen a leak "
            f"(use a larger gallery).",
            evidence,
        )
    return Verdict(
        NO_MEASURABLE_LEAKAGE,
        f"No measurable leakage: SSIM and PSNR are at the blank-image floor and re-identification "
        f"is at chance in a gallery of {gallery} (re-identifying half the batch would have "
        f"reached p = {reid_power:.2g}); this attack found nothing, a stronger one still might.",
        evidence,
    )
