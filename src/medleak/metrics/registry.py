"""The registered metrics, in the order ``metrics.json`` lists them.

Add a metric: write ``metrics/mymetric.py`` with ``compute(inputs) -> Value`` and one line
``METRICS["mymetric"] = Metric(...)`` here (or register it from your own file); ``evaluate``
computes it, ``metrics.json`` records it, and the report shows it with its label and digits.
"""

from __future__ import annotations

import torch

from medleak.metrics.base import NEEDS, Cell, Inputs, Metric, Value, finite, mean, per_image_value
from medleak.metrics.label_accuracy import label_accuracy
from medleak.metrics.lpips import lpips
from medleak.metrics.ms_ssim import ms_ssim, ms_ssim_unavailable_reason
from medleak.metrics.psnr import psnr
from medleak.metrics.rdlv import rdlv
from medleak.metrics.reidentification import reidentify
from medleak.metrics.ssim import ssim

# The gray level of the "blank" reference image. A reconstruction that leaked nothing at all,
# a uniform mid-gray square, already scores about 14-16 dB PSNR and SSIM 0.5 on chest X-rays
# (large smooth regions); without this number beside them, low scores read as partial leakage.
BLANK_LEVEL = 0.5


def _blank(inputs: Inputs) -> torch.Tensor:
    return torch.full_like(inputs.originals, BLANK_LEVEL)


def _ms_ssim(inputs: Inputs) -> Value:
    reason = ms_ssim_unavailable_reason(*inputs.originals.shape[-2:])
    values = None if reason else ms_ssim(inputs.reconstructions, inputs.originals).tolist()
    return per_image_value("ms_ssim", values, reason)


def _lpips(inputs: Inputs) -> Value:
    result = lpips(inputs.reconstructions, inputs.originals, inputs.lpips_weights)
    values = None if result.values is None else result.values.tolist()
    return per_image_value("lpips", values, result.reason)


def _reid(inputs: Inputs) -> Value:
    reid = reidentify(
        inputs.originals,
        inputs.attack_order,
        inputs.gallery,
        victim_patients=inputs.patients,
        distractor_patients=inputs.gallery_patients,
        similarity=inputs.similarity,
    )
    summary = {
        "reid_rate": finite(reid.rate),
        "reid_count": sum(reid.reidentified),
        "reid_chance": finite(reid.chance),
        "reid_p_value": finite(reid.p_value),
        "gallery_size": reid.gallery_size,
        "patient_reid_rate": finite(reid.patient_rate),
        "patient_reid_count": reid.patients_reidentified,
        "patient_count": reid.patients_total,
        "similarity": reid.similarity,
    }
    reasons = {}
    if reid.patient_rate is None and reid.patient_reason:
        reasons["patient_reid_reason"] = reid.patient_reason
    columns = {"reid_rank": list(reid.ranks), "reidentified": list(reid.reidentified)}
    return Value(summary, columns, reasons)


def _rdlv(inputs: Inputs) -> Value:
    # NVFlare defines RDLV against a prior image; without one, against the attack's start.
    if inputs.has("prior"):
        reference, against = inputs.prior_ssim, "prior"
    elif inputs.has("start"):
        reference, against = inputs.start_ssim, "start"
    else:
        return METRICS["rdlv"].absent(
            "neither a prior image nor the attack's start was given", len(inputs.matched)
        )
    values, reasons = rdlv(inputs.ssim, reference)
    if against == "prior":
        reasons = [r.replace("init", "prior") if r else r for r in reasons]
    cleaned = [finite(v) for v in values]
    headline = mean(cleaned)
    first = next((r for r in reasons if r), "no defined value")
    why = {"rdlv_reason": first} if headline is None else {}
    summary = {"rdlv": headline, "rdlv_reference": against}
    return Value(summary, {"rdlv": cleaned, "rdlv_reason": list(reasons)}, why)


def _label_accuracy(inputs: Inputs) -> Value:
    assert inputs.used_labels is not None
    return Value({"label_accuracy": finite(label_accuracy(inputs.true_labels, inputs.used_labels))})


def _psnr(inputs: Inputs) -> Value:
    return per_image_value("psnr", psnr(inputs.reconstructions, inputs.originals).tolist())


def _ssim(inputs: Inputs) -> Value:
    return per_image_value("ssim", inputs.ssim.tolist())


def _blank_psnr(inputs: Inputs) -> Value:
    return per_image_value("blank_psnr", psnr(_blank(inputs), inputs.originals).tolist())


def _blank_ssim(inputs: Inputs) -> Value:
    return per_image_value("blank_ssim", ssim(_blank(inputs), inputs.originals).tolist())


def _prior_psnr(inputs: Inputs) -> Value:
    assert inputs.prior is not None
    prior = inputs.prior.expand_as(inputs.originals)
    return per_image_value("prior_psnr", psnr(prior, inputs.originals).tolist())


def _prior_ssim(inputs: Inputs) -> Value:
    value = per_image_value("prior_ssim", inputs.prior_ssim.tolist())
    return Value({**value.summary, "prior_source": inputs.prior_source}, value.columns)


def _floor(inputs: Inputs, name: str, score) -> Value:  # noqa: ANN001
    """The stronger floor: the higher of the blank image's and the prior image's batch means."""
    floors = [mean(score(_blank(inputs), inputs.originals).tolist())]
    if inputs.has("prior"):
        prior = inputs.prior.expand_as(inputs.originals)
        floors.append(mean(score(prior, inputs.originals).tolist()))
    defined = [f for f in floors if f is not None]
    return Value({name: max(defined) if defined else None})


def _floor_psnr(inputs: Inputs) -> Value:
    return _floor(inputs, "floor_psnr", psnr)


def _floor_ssim(inputs: Inputs) -> Value:
    return _floor(inputs, "floor_ssim", ssim)


def _start_ssim(inputs: Inputs) -> Value:
    return per_image_value("start_ssim", inputs.start_ssim.tolist())


METRICS: dict[str, Metric] = {
    "psnr": Metric(
        "psnr", "PSNR (dB)", True, _psnr,
        per_image=(Cell("psnr", "PSNR (dB)", 1),), compare=(Cell("psnr", "PSNR (dB)", 1),),
        chart=True, chart_digits=1, summary=(Cell("psnr", "PSNR (dB)", 2),),
    ),
    "ssim": Metric(
        "ssim", "SSIM", True, _ssim,
        compare=(Cell("ssim", "SSIM", 3),), chart=True, limits=(0.0, 1.0),
        summary=(Cell("ssim", "SSIM", 3),),
    ),
    # The floor: what a uniform mid-gray image scores (batch means only).
    "blank_psnr": Metric("blank_psnr", "blank PSNR (dB)", True, _blank_psnr, columns=()),
    "blank_ssim": Metric("blank_ssim", "blank SSIM", True, _blank_ssim, columns=()),
    # The prior floor: the mean of images the server holds (distractors or --auxiliary), per
    # image too; and the stronger of the two floors, which every verdict rule compares with.
    "prior_psnr": Metric(
        "prior_psnr", "prior-image PSNR (dB)", True, _prior_psnr, needs=("prior",), per_image=()
    ),
    "prior_ssim": Metric(
        "prior_ssim", "prior-image SSIM", True, _prior_ssim, needs=("prior",), per_image=()
    ),
    "floor_psnr": Metric(
        "floor_psnr", "floor PSNR (dB)", True, _floor_psnr, columns=(),
        summary=(Cell("floor_psnr", "floor PSNR (dB)", 2),),
    ),
    "floor_ssim": Metric(
        "floor_ssim", "floor SSIM", True, _floor_ssim, columns=(),
        summary=(Cell("floor_ssim", "floor SSIM", 3),),
        compare=(Cell("floor_ssim", "floor SSIM", 3),),
    ),
    "start_ssim": Metric(
        "start_ssim", "SSIM of the start image", True, _start_ssim, needs=("start",), columns=()
    ),
    "ms_ssim": Metric("ms_ssim", "MS-SSIM", True, _ms_ssim),
    "lpips": Metric(
        "lpips", "LPIPS", False, _lpips,
        compare=(Cell("lpips", "LPIPS", 3),), chart=True, chart_title="LPIPS (lower = closer)",
    ),
    "reid_rate": Metric(
        "reid_rate", "re-identification rate", True, _reid,
        columns=("reid_rank", "reidentified"),
        per_image=(Cell("reid_rank", "re-id rank", None), Cell("reidentified", "re-identified")),
        compare=(
            Cell("reid_rate", "re-id rate", 2),
            Cell("reid_chance", "chance", 3),
            Cell("reid_p_value", "p", 3),
            Cell("patient_reid_rate", "patient re-id", 2),
        ),
        chart=True,
        chart_title="re-identification rate\n(dashes: chance level)",
        limits=(0.0, 1.0),
        summary=(Cell("reid_rate", "re-id rate", 2),),
    ),
    "rdlv": Metric(
        "rdlv", "RDLV", True, _rdlv,
        columns=("rdlv", "rdlv_reason"), per_image=(Cell("rdlv", "RDLV", 2),),
    ),
    "label_accuracy": Metric(
        "label_accuracy", "label accuracy", True, _label_accuracy, needs=("labels",),
        columns=(), per_image=(), compare=(Cell("label_accuracy", "label accuracy", 2),),
        chart=True, limits=(0.0, 1.0),
    ),
}  # fmt: skip


def summary_cells() -> tuple[Cell, ...]:
    """Every registered metric's summary cells, in registry order (see ``Metric.summary``)."""
    return tuple(cell for metric in METRICS.values() for cell in metric.summary)


__all__ = ["BLANK_LEVEL", "METRICS", "NEEDS", "summary_cells"]
