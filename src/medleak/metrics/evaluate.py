"""One call that scores an attack: match, then every number that goes into ``metrics.json``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medleak.metrics.base import NEEDS, Inputs, Value
from medleak.metrics.matching import match_reconstructions
from medleak.metrics.registry import BLANK_LEVEL, METRICS
from medleak.metrics.reidentification import DEFAULT_SIMILARITY

__all__ = ["BLANK_LEVEL", "Scores", "evaluate"]


@dataclass(frozen=True)
class Scores:
    """Every registered metric's value for one reconstruction; ``to_dict`` is ``metrics.json``.

    ``matched[i]`` is the reconstruction (attack order) assigned to original ``i``; per-image
    lists are in original order. ``values`` holds one ``Value`` per metric, in registry order.
    """

    matched: list[int]
    sources: list[str]
    labels: list[int]
    values: dict[str, Value]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain floats/ints/str/None, never NaN."""
        n = len(self.matched)
        out: dict[str, Any] = {}
        for value in self.values.values():
            out.update(value.summary)
        out["num_images"] = n
        for value in self.values.values():
            out.update({k: v for k, v in value.reasons.items() if v})
        rows = []
        for i in range(n):
            row: dict[str, Any] = {
                "index": i,
                "source": self.sources[i],
                "label": self.labels[i],
                "matched_to": self.matched[i],
            }
            for value in self.values.values():
                row.update({key: column[i] for key, column in value.columns.items()})
            rows.append(row)
        out["per_image"] = rows
        return out


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
    prior: torch.Tensor | None = None,
    prior_source: str | None = None,
) -> Scores:
    """Score a reconstruction (N x C x H x W in [0, 1], attack order) against the originals.

    ``initial`` is the attack's starting image in the same (attack) order as ``reconstructions``;
    ``gallery`` holds distractors only (the victims are added here). Reconstructions are matched
    to originals by SSIM (linear assignment) before PSNR/SSIM/MS-SSIM/LPIPS/RDLV; re-identification
    and label accuracy do not use that matching.

    ``blank_psnr`` / ``blank_ssim`` score a uniform mid-gray image against the same originals:
    the floor a reconstruction must clear before its PSNR/SSIM say anything leaked. ``prior``
    (1 x C x H x W, see ``metrics.prior``) is what the server draws without any update, the mean
    of images it holds; ``prior_psnr`` / ``prior_ssim`` score it the same way, ``floor_psnr`` /
    ``floor_ssim`` are the stronger of the two floors, and RDLV is taken against it.

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
    inputs = Inputs(
        originals=x,
        reconstructions=r_all[matched],
        attack_order=r_all,
        matched=matched,
        initial=None if initial is None else initial.detach().double().cpu()[matched],
        true_labels=true_labels,
        used_labels=used_labels,
        patients=patients,
        gallery=None if gallery is None else gallery.detach().double().cpu(),
        gallery_patients=gallery_patients,
        lpips_weights=lpips_weights,
        similarity=similarity,
        prior=None if prior is None else prior.detach().double().cpu(),
        prior_source=prior_source,
    )
    values: dict[str, Value] = {}
    for name, metric in METRICS.items():
        missing = next((need for need in metric.needs if not inputs.has(need)), None)
        value = metric.absent(NEEDS[missing], n) if missing else metric.compute(inputs)
        # exactly the metric's per-image keys, in its order; a key it left out is None
        columns = {k: value.columns.get(k) or [None] * n for k in metric.column_keys}
        values[name] = Value(value.summary, columns, value.reasons)
    return Scores(
        matched=matched,
        sources=[str(s) for s in sources],
        labels=[int(v) for v in true_labels.flatten().tolist()],
        values=values,
    )
