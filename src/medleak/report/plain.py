"""The sentence a privacy officer reads first: what the server could do, in words, no jargon.

The verdict's own reason (``metrics.verdict``) carries the numbers (SSIM, PSNR, p-values) and
follows this sentence on the page; this one says the same thing as a person would: how many of
the patients' X-rays were rebuilt well enough to be picked out of how many candidates.
"""

from __future__ import annotations

from typing import Any

from medleak.metrics.verdict import INCONCLUSIVE, LEAKS, NO_MEASURABLE_LEAKAGE, judge


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(round(value))


def _subject(count: int, synthetic: bool) -> str:
    if synthetic:
        return f"{count} synthetic X-ray{'s' if count != 1 else ''}"
    return f"{count} patient{'s' if count != 1 else ''}' X-ray{'s' if count != 1 else ''}"


def plain_sentence(m: dict[str, Any], synthetic: bool = False) -> str:
    """One plain sentence for one run, from its verdict and re-identification counts."""
    outcome = judge(m).outcome
    n = _int(m.get("num_images")) or len(m.get("per_image") or []) or None
    hits = _int(m.get("reid_count"))
    if hits is None and n and isinstance(m.get("reid_rate"), int | float):
        hits = round(m["reid_rate"] * n)
    gallery = _int(m.get("gallery_size"))
    labelled = m.get("labels_source") == "inferred"
    if outcome == LEAKS:
        if n and hits and gallery:
            subject = _subject(n, synthetic)
            who = f"All {subject}" if hits == n else f"{hits} of the {subject}"
            return (
                f"{who} were rebuilt well enough to pick "
                f"{'each one' if hits > 1 else 'it'} out of {gallery} candidates."
            )
        if labelled and not hits and _looks_at_floor(m):
            return "The server read the patients' diagnoses from the update."
        return (
            "The server rebuilt images that resemble the patients' X-rays more than what it "
            "knows without the update, though it could not pick them out of the candidates."
        )
    if outcome == NO_MEASURABLE_LEAKAGE:
        images = f"the {n} images" if n else "the images"
        return (
            f"The server could not rebuild the X-rays: none of {images} could be picked out of "
            f"{gallery} candidates, and what it rebuilt is no closer to them than a guess made "
            f"without the update."
        )
    assert outcome == INCONCLUSIVE
    return (
        "This run cannot tell whether the X-rays are safe: the reason, with its numbers, follows."
    )


def _looks_at_floor(m: dict[str, Any]) -> bool:
    ssim, blank = m.get("ssim"), m.get("blank_ssim")
    if not isinstance(ssim, int | float) or not isinstance(blank, int | float):
        return False
    floor = max(blank, m.get("prior_ssim") or 0.0)
    return ssim < floor + 0.05


def update_size_note(m: dict[str, Any]) -> str | None:
    """Why an update is as large as it is, when the model makes it surprising."""
    from medleak.models import MODELS

    spec = MODELS.get(str(m.get("model")))
    raw = m.get("bits_raw")
    if spec is None or spec.exposed_linear is None or not isinstance(raw, int | float):
        return None
    params = raw / 32
    return (
        f"{params / 1e6:.1f} million parameters: {m.get('model')} has one wide linear layer "
        f"whose size grows with the image area, so the update is large because the model is"
    )
