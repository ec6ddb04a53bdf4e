"""One call that scores an attack: match, then every number that goes into ``metrics.json``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medleak.metrics.label_accuracy import label_accuracy
from medleak.metrics.lpips import lpips
from medleak.metrics.matching import match_reconstructions
from medleak.metrics.ms_ssim import ms_ssim, ms_ssim_unavailable_reason
from medleak.metrics.psnr import psnr
from medleak.metrics.rdlv import rdlv
from medleak.metrics.reidentification import DEFAULT_SIMILARITY, Reidentification, reidentify
from medleak.metrics.ssim import ssim

# The gray level of the "blank" reference image. A reconstruction that leaked nothing at all,
# a uniform mid-gray square, already scores about 14-16 dB PSNR and SSIM 0.5 on chest X-rays
# (large smooth regions); without this number beside them, low scores read as partial leakage.
BLANK_LEVEL = 0.5


def _num(value: float | None) -> float | None:
    """JSON-safe float: NaN/inf become None (JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None and math.isfinite(v)]
    return sum(defined) / len(defined) if defined else None


@dataclass(frozen=True)
class Scores:
    """Everything measured about one reconstruction; ``to_dict`` is what ``metrics.json`` holds.

    ``matched[i]`` is the reconstruction (attack order) assigned to original ``i``; per-image
    lists are in original order.
    """

    matched: list[int]
    sources: list[str]
    labels: list[int]
    psnr: list[float]
    ssim: list[float]
    ms_ssim: list[float] | None
    ms_ssim_reason: str | None
    lpips: list[float] | None
    lpips_reason: str | None
    reid: Reidentification
    rdlv: list[float | None]
    rdlv_reasons: list[str | None]
    label_accuracy: float | None
    label_accuracy_reason: str | None
    blank_psnr: list[float]
    blank_ssim: list[float]
    start_ssim: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain floats/ints/str/None, never NaN."""
        n = len(self.matched)
        out: dict[str, Any] = {
            "psnr": _num(_mean(self.psnr)),
            "ssim": _num(_mean(self.ssim)),
            "blank_psnr": _num(_mean(self.blank_psnr)),
            "blank_ssim": _num(_mean(self.blank_ssim)),
            "start_ssim": _num(_mean(self.start_ssim)) if self.start_ssim is not None else None,
            "ms_ssim": _num(_mean(self.ms_ssim)) if self.ms_ssim is not None else None,
            "lpips": _num(_mean(self.lpips)) if self.lpips is not None else None,
            "reid_rate": _num(self.reid.rate),
            "reid_count": sum(self.reid.reidentified),
            "reid_chance": _num(self.reid.chance),
            "reid_p_value": _num(self.reid.p_value),
            "gallery_size": self.reid.gallery_size,
            "patient_reid_rate": _num(self.reid.patient_rate),
            "patient_reid_count": self.reid.patients_reidentified,
            "patient_count": self.reid.patients_total,
            "rdlv": _num(_mean(self.rdlv)),
            "label_accuracy": _num(self.label_accuracy),
            "similarity": self.reid.similarity,
            "num_images": n,
        }
        reasons = {
            "ms_ssim_reason": self.ms_ssim_reason if self.ms_ssim is None else None,
            "lpips_reason": self.lpips_reason if self.lpips is None else None,
            "patient_reid_reason": self.reid.patient_reason
            if self.reid.patient_rate is None
            else None,
            "rdlv_reason": _first(self.rdlv_reasons) if out["rdlv"] is None else None,
            "label_accuracy_reason": self.label_accuracy_reason
            if self.label_accuracy is None
            else None,
        }
        out.update({k: v for k, v in reasons.items() if v})
        out["per_image"] = [
            {
                "index": i,
                "source": self.sources[i],
                "label": self.labels[i],
                "matched_to": self.matched[i],
                "psnr": _num(self.psnr[i]),
                "ssim": _num(self.ssim[i]),
                "ms_ssim": _num(self.ms_ssim[i]) if self.ms_ssim is not None else None,
                "lpips": _num(self.lpips[i]) if self.lpips is not None else None,
                "reid_rank": self.reid.ranks[i],
                "reidentified": self.reid.reidentified[i],
                "rdlv": _num(self.rdlv[i]),
                "rdlv_reason": self.rdlv_reasons[i],
            }
            for i in range(n)
        ]
        return out


def _first(reasons: Sequence[str | None]) -> str:
    return next((r for r in reasons if r), "no defined value")


def evaluate(
    originals: torch.Tensor,
    reconstructions: torch.Tensor,
    *,
    initial: torch.Tensor | None = None,
    true_labels: torch.Tensor,
    used_labels: torch.Tensor | None = None,
    sources: Sequence[str],
    patients: Sequence[str | None] | None,
    gallery: torch.Tensor | None = None,
    gallery_patients: Sequence[str | None] | None = None,
    lpips_weights: Path | None = None,
    similarity: str = DEFAULT_SIMILARITY,
) -> Scores:
    """Score a reconstruction (N x C x H x W in [0, 1], attack order) against the originals.

    ``initial`` is the attack's starting image in the same (attack) order as ``reconstructions``;
    ``gallery`` holds distractors only (the victims are added here). Reconstructions are matched
    to originals by SSIM (linear assignment) before PSNR/SSIM/MS-SSIM/LPIPS/RDLV; re-identification
    and label accuracy do not use that matching.

    ``blank_psnr`` / ``blank_ssim`` score a uniform mid-gray image against the same originals:
    the floor a reconstruction must clear before its PSNR/SSIM say anything leaked.

    ``reid_chance`` in ``to_dict`` is the rate random guessing reaches (1 - (1 - 1/G)^N for N
    victims in a gallery of G, which is 1/G for a single image) and ``reid_p_value`` the chance
    of random guessing doing at least as well; see ``medleak.metrics.reidentification``.
    """
    n = originals.shape[0]
    if reconstructions.shape != originals.shape:
        raise ValueError(
            f"reconstructions {tuple(reconstructions.shape)} differ from originals "
            f"{tuple(originals.shape)}"
        )
    if len(sources) != n or true_labels.numel() != n:
        raise ValueError("sources and true_labels must have one entry per original")
    x = originals.detach().double().cpu()
    r_all = reconstructions.detach().double().cpu()
    matched = match_reconstructions(x, r_all)
    r = r_all[matched]

    ssim_r = ssim(r, x)
    blank = torch.full_like(x, BLANK_LEVEL)
    ms_reason = ms_ssim_unavailable_reason(*x.shape[-2:])
    ms = None if ms_reason else ms_ssim(r, x).tolist()
    lp = lpips(r, x, lpips_weights)

    if initial is None:
        rd: list[float | None] = [None] * n
        rd_reasons: list[str | None] = ["no initial image given"] * n
        ssim_start = None
    else:
        ssim_start = ssim(initial.detach().double().cpu()[matched], x)
        rd, rd_reasons = rdlv(ssim_r, ssim_start)

    gal = None if gallery is None else gallery.detach().double().cpu()
    reid = reidentify(
        x,
        r_all,
        gal,
        victim_patients=patients,
        distractor_patients=gallery_patients,
        similarity=similarity,
    )
    acc = None if used_labels is None else label_accuracy(true_labels, used_labels)
    return Scores(
        matched=matched,
        sources=[str(s) for s in sources],
        labels=[int(v) for v in true_labels.flatten().tolist()],
        psnr=psnr(r, x).tolist(),
        ssim=ssim_r.tolist(),
        ms_ssim=ms,
        ms_ssim_reason=ms_reason,
        lpips=None if lp.values is None else lp.values.tolist(),
        lpips_reason=lp.reason,
        reid=reid,
        rdlv=rd,
        rdlv_reasons=rd_reasons,
        label_accuracy=acc,
        label_accuracy_reason=None if acc is not None else "the attack reported no labels",
        blank_psnr=psnr(blank, x).tolist(),
        blank_ssim=ssim(blank, x).tolist(),
        start_ssim=None if ssim_start is None else ssim_start.tolist(),
    )
