"""One verdict for one attack result: *leaks*, *no measurable leakage*, or *inconclusive*.

Every place that tells a person whether a defense protected (console, report, sweep table, the
Flower guard) calls :func:`judge`, so the wording and the thresholds cannot drift apart. The rule
is asymmetric on purpose: any one signal above its floor is enough to say *leaks*, but *no
measurable leakage* needs every signal at its floor **and** a re-identification test that could
have seen a leak (ROG's lesson: an obfuscation that only defeats a weak test is a false sense of
security) **and**, for a defended update, the same attack rebuilding the *undefended* update of
the same batch (its baseline): an attack too weak to rebuild anything says nothing about a
defense. Anything else is *inconclusive*, with the reason.

The floor is what the attacker gets without the update: the stronger of a blank mid-gray image
and the prior image (the pixel-wise mean of other images of the same source, ``metrics.prior``).
An "average chest" scores far above gray, so a reconstruction that rebuilt only that is no leak.
Records written before the prior floor existed are judged against the blank image.

The input is a ``metrics.json``-shaped mapping, so stored records can be judged again later; a
baseline is another such mapping (a sweep's ``[]`` setting) or the ``baseline`` a run stored.
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

#: Mean SSIM must clear the floor by this much (and the attack's start) to leak; within it of the
#: floor a result is "at the floor", further below "below the floor".
SSIM_MARGIN = 0.05
#: Mean PSNR this many dB above the floor is a leak on its own.
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


def _floor(metrics: Mapping[str, Any], metric: str) -> tuple[float | None, str]:
    """The stronger floor for ``metric`` ("ssim" or "psnr") and what it is, in words.

    ``floor_<metric>`` when recorded; else the higher of ``blank_<metric>`` and
    ``prior_<metric>``; an old record without a prior image falls back to the blank image.
    """
    blank, prior = _num(metrics.get(f"blank_{metric}")), _num(metrics.get(f"prior_{metric}"))
    recorded = _num(metrics.get(f"floor_{metric}"))
    candidates = [v for v in (blank, prior) if v is not None]
    value = recorded if recorded is not None else (max(candidates) if candidates else None)
    if value is None:
        return None, "no floor"
    if prior is not None and (blank is None or prior >= blank):
        source = metrics.get("prior_source")
        held = "auxiliary images the attacker holds" if source == "auxiliary" else "other images"
        return value, f"the mean of {held}"
    return value, "a blank gray image"


def floors(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """``floor_ssim`` and ``floor_psnr`` of a record (the stronger floor; see ``_floor``)."""
    return {"floor_ssim": _floor(metrics, "ssim")[0], "floor_psnr": _floor(metrics, "psnr")[0]}


def ssim_above_floor(metrics: Mapping[str, Any]) -> float | None:
    """Leakage on one axis: mean SSIM above the stronger floor, 0 at or below it."""
    ssim, floor = _num(metrics.get("ssim")), _floor(metrics, "ssim")[0]
    if ssim is None:
        return None
    return max(0.0, ssim - (floor or 0.0))


def protection_ssim(
    defended: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> float | None:
    """What a defense bought: the baseline's SSIM above the floor minus the defended run's.

    Both are clipped at 0 ("no better than the floor" counts as no leakage, however far below),
    so the value is in [-1, 1]: positive = the defense removed that much leakage, 0 = nothing to
    remove or nothing removed, negative = the defended update leaked more than the undefended
    one (the attack budget, not the defense, decided: see ``judge``).
    """
    if baseline is None:
        return None
    d, b = ssim_above_floor(defended), ssim_above_floor(baseline)
    return None if d is None or b is None else b - d


def distractors_needed(n: int, alpha: float = ALPHA) -> int:
    """Fewest distractors beside n victims for which re-identifying half of them (at least one)
    would reach p < alpha under random guessing (``chance_p_value``)."""
    hits = max(1, math.ceil(POWER_FRACTION * n))
    lo, hi = n, max(2 * n, 2)
    while chance_p_value(hits, n, hi) >= alpha:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # the p-value falls as the gallery grows: bisect the smallest that works
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if chance_p_value(hits, n, mid) < alpha else (mid, hi)
    return hi - n


def _position(value: float, floor: float, margin: float) -> str:
    """Words follow numbers: above the floor (a leak), at it (within the margin), or below it."""
    if value >= floor + margin:
        return "above"
    return "below" if value < floor - margin else "at"


def _baseline_of(
    metrics: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The baseline to compare with: the one given, else the one the run stored, else None."""
    if baseline is not None:
        return baseline
    stored = metrics.get("baseline")
    if isinstance(stored, Mapping):
        return stored
    if isinstance(metrics.get("baseline_verdict"), str):  # a flat record (e.g. a results row)
        return {
            "verdict": metrics["baseline_verdict"],
            "ssim": metrics.get("baseline_ssim"),
            "floor_ssim": metrics.get("floor_ssim"),
            "blank_ssim": metrics.get("blank_ssim"),
        }
    return None


def _baseline_outcome(baseline: Mapping[str, Any], num_classes: int) -> str:
    """The baseline's own verdict, judged again from its numbers when it has them."""
    if _num(baseline.get("ssim")) is not None and baseline.get("num_images"):
        return _signals(baseline, num_classes).outcome_alone
    stored = baseline.get("verdict")
    return stored if stored in OUTCOMES else INCONCLUSIVE


def _budget_hint(metrics: Mapping[str, Any]) -> str:
    config = metrics.get("config")
    attack = config.get("attack") if isinstance(config, Mapping) else None
    iterations = metrics.get("iterations")
    restarts = attack.get("restarts") if isinstance(attack, Mapping) else None
    now_it = f" (now {iterations})" if isinstance(iterations, int) else ""
    now_re = f" (now {restarts})" if isinstance(restarts, int) else ""
    info = metrics.get("attack_info")
    stage = info.get("stage") if isinstance(info, Mapping) else None
    if isinstance(stage, str) and stage != "optimisation":
        # a closed-form stage is deterministic: more iterations or restarts change nothing
        return (
            f"the attack's {stage} stage decided, which --iterations and --restarts do not "
            "change: compare defenses on more batches, or with --no-analytic or another --attack"
        )
    return f"raise --iterations{now_it} or --restarts{now_re}"


@dataclass
class _Signals:
    leaks: list[str]
    at_floor: list[str]
    unknown: list[str]
    reid_power: float | None
    evidence: dict[str, Any]
    n: int
    gallery: Any

    @property
    def outcome_alone(self) -> str:
        """The verdict without a baseline (an undefended run is its own baseline)."""
        if self.leaks:
            return LEAKS
        if self.unknown or self.reid_power is None or self.reid_power >= ALPHA:
            return INCONCLUSIVE
        return NO_MEASURABLE_LEAKAGE


def _signals(metrics: Mapping[str, Any], num_classes: int) -> _Signals:
    ssim, psnr = _num(metrics.get("ssim")), _num(metrics.get("psnr"))
    floor_ssim, ssim_floor_is = _floor(metrics, "ssim")
    floor_psnr, psnr_floor_is = _floor(metrics, "psnr")
    start_ssim = _num(metrics.get("start_ssim"))
    n = int(metrics.get("num_images") or 0)
    gallery = metrics.get("gallery_size")
    hits = metrics.get("reid_count")
    p_reid = _num(metrics.get("reid_p_value"))
    evidence: dict[str, Any] = {}
    leaks: list[str] = []
    at_floor: list[str] = []
    unknown: list[str] = []

    if ssim is not None and floor_ssim is not None:
        start_ok = start_ssim is None or ssim > start_ssim
        evidence.update(
            ssim=ssim, floor_ssim=floor_ssim, blank_ssim=_num(metrics.get("blank_ssim")),
            prior_ssim=_num(metrics.get("prior_ssim")), start_ssim=start_ssim,
        )  # fmt: skip
        where = _position(ssim, floor_ssim, SSIM_MARGIN)
        if where == "above" and start_ok:
            leaks.append(
                f"the reconstructions resemble the images (SSIM {ssim:.2f}; "
                f"{ssim_floor_is} scores {floor_ssim:.2f})"
            )
        else:
            words = "no higher than the attack's start" if where == "above" else f"{where} the"
            at_floor.append(
                f"SSIM {ssim:.2f} is {words} floor ({floor_ssim:.2f}, {ssim_floor_is})"
                if where != "above"
                else f"SSIM {ssim:.2f} is {words} ({start_ssim:.2f})"
            )
    else:
        unknown.append("SSIM against the floor was not measured")

    if psnr is not None and floor_psnr is not None:
        evidence.update(
            psnr=psnr, floor_psnr=floor_psnr, blank_psnr=_num(metrics.get("blank_psnr")),
            prior_psnr=_num(metrics.get("prior_psnr")),
        )  # fmt: skip
        where = _position(psnr, floor_psnr, PSNR_MARGIN_DB)
        if where == "above":
            leaks.append(
                f"pixel error is below the floor's (PSNR {psnr:.1f} dB; "
                f"{psnr_floor_is} scores {floor_psnr:.1f} dB)"
            )
        else:
            at_floor.append(
                f"PSNR {psnr:.1f} dB is {where} the floor ({floor_psnr:.1f} dB, {psnr_floor_is})"
            )
    else:
        unknown.append("PSNR against the floor was not measured")

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
            at_floor.append(f"re-identification is at chance ({hits} of {n}, p = {p:.2g})")
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
    return _Signals(leaks, at_floor, unknown, reid_power, evidence, n, gallery)


def _gallery_advice(metrics: Mapping[str, Any], n: int, gallery: int, power: float) -> str:
    """Why the gallery could not decide, and the number of distractors that would."""
    needed = distractors_needed(n)
    available = metrics.get("gallery_available")
    head = (
        f"with {n} image(s) in a gallery of {gallery} even re-identifying half of them would only "
        f"reach p = {power:.2g}, so this test could not have seen a leak; "
    )
    if isinstance(available, int) and available >= needed:
        return (
            head
            + f"{needed} distractors would (--gallery-size {needed}; the data holds {available})"
        )
    if isinstance(available, int):
        return head + (
            f"it needs {needed} distractors and the data holds only {available} besides the "
            f"victims (add --gallery-source DIR: other images of the same modality)"
        )
    return head + f"it needs at least {needed} distractors (--gallery-size, --gallery-source DIR)"


def judge(
    metrics: Mapping[str, Any],
    baseline: Mapping[str, Any] | None = None,
    *,
    num_classes: int = 2,
) -> Verdict:
    """The verdict for one result; see the module docstring for the rule.

    ``baseline``: the same attack on the same batch's undefended update (a sweep's ``[]``
    setting; None = the ``baseline`` the run stored, if any). It matters only for a defended run
    (``defenses`` non-empty): "no measurable leakage" then needs a baseline that leaks, and a
    defended run that leaks more than its baseline is flagged (the attack budget decided).
    """
    signals = _signals(metrics, num_classes)
    evidence = dict(signals.evidence)
    n, gallery, power = signals.n, signals.gallery, signals.reid_power

    defended = bool(metrics.get("defenses"))
    base = _baseline_of(metrics, baseline) if defended else None
    base_outcome = _baseline_outcome(base, num_classes) if base is not None else None
    notes: list[str] = []
    if base is not None:
        protection = protection_ssim(metrics, base)
        evidence.update(baseline_verdict=base_outcome, protection_ssim=protection)
        outgrew = protection is not None and protection < -SSIM_MARGIN
        if outgrew or (signals.leaks and base_outcome != LEAKS):
            evidence["budget_too_small"] = True
            b_ssim = _num(base.get("ssim"))
            versus = (
                f" (SSIM {_num(metrics.get('ssim')) or 0:.2f} vs {b_ssim:.2f})"
                if b_ssim is not None
                else ""
            )
            notes.append(
                f"the defended update leaked more than the undefended one{versus}, so the "
                f"attack budget is too small to rank defenses: {_budget_hint(metrics)}"
            )

    def done(outcome: str, text: str) -> Verdict:
        extra = "".join(f" Note: {note}." for note in notes)
        return Verdict(outcome, text + extra, evidence)

    if signals.leaks:
        return done(LEAKS, "Leaks: " + "; ".join(signals.leaks) + ".")
    if signals.unknown:
        return done(INCONCLUSIVE, "Inconclusive: " + "; ".join(signals.unknown) + ".")
    assert power is not None
    floor_text = ", ".join(signals.at_floor)
    problems: list[str] = []
    if power >= ALPHA:
        problems.append(_gallery_advice(metrics, n, gallery, power))
    if defended and base is None:
        problems.append(
            "the same attack was not run on the undefended update (--baseline), so it is not "
            "known whether it could rebuild this setting at all"
        )
    elif defended and base_outcome != LEAKS:
        problems.append(
            "the baseline (the same attack on the undefended update) does not leak either "
            f"(its verdict: {base_outcome}): the attack does not rebuild this setting even "
            "without a defense, so this run says nothing about the defense; "
            f"{_budget_hint(metrics)}, or attack a setting where the undefended update leaks"
        )
    if problems:
        return done(
            INCONCLUSIVE, f"Inconclusive: {floor_text}; but " + "; and ".join(problems) + "."
        )
    against = ""
    if base is not None:
        b_ssim = _num(base.get("ssim"))
        shown = f" (SSIM {b_ssim:.2f})" if b_ssim is not None else ""
        against = f", while the same attack on the undefended update leaks{shown}"
    return done(
        NO_MEASURABLE_LEAKAGE,
        f"No measurable leakage: {floor_text} in a gallery of {gallery} (re-identifying half "
        f"the batch would have reached p = {power:.2g}){against}; this attack found nothing, a "
        f"stronger one still might.",
    )
