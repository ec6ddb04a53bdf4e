"""Re-identification: could the server tell *which* image (and so which patient) it rebuilt?

For every reconstruction we rank a gallery, the victim batch plus distractor images from the same
data set, by similarity; a victim counts as re-identified when some reconstruction ranks it first.
This is the question a privacy officer asks, and unlike PSNR/SSIM it has a chance level. It is
defined without the scoring assignment: a reconstruction need not be paired with its source for the
source to be exposed.

Chance level: one reconstruction guessing at random names a given image with probability
1 / G (G = gallery size), but N reconstructions each get a guess, so random guessing already
re-identifies a fraction 1 - (1 - 1/G)^N of the victims on average (about N / G when G >> N). That
is the ``chance`` this module reports, so a rate is always compared with what noise would score;
``p_value`` is the probability that random guessing re-identifies at least as many victims. (A
pure-noise reconstruction of 4 X-rays among 8 candidates "re-identifies" 1.7 of them on average.)

Similarity (default ``ssim64-std``): SSIM on images downsampled (area averaging) to at most 64 px,
each first standardised to zero mean and unit variance and mapped to mean 0.5, std 0.2 (so the
SSIM constants act as for a typical [0, 1] radiograph). Why: gradient-inversion results often keep
a patient's anatomy (the silhouette, heart, clavicles, devices) but come back with shifted
brightness or contrast, which plain SSIM punishes as hard as a wrong anatomy; standardising
removes that global affine change and leaves the local structure that identifies a person.
Downsampling keeps the comparison on anatomy rather than on the noise of a partial reconstruction
and makes ranking a gallery of hundreds of images cheap. ``ssim64`` (no standardisation) is
available for comparison.

Ties count against re-identification: a victim's rank is 1 + the number of *other* gallery
images at least as similar, so a distractor identical in similarity pushes the victim to rank 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medleak.metrics.ssim import pairwise_ssim

REID_SIZE = 64


def _downsample(x: torch.Tensor, size: int = REID_SIZE) -> torch.Tensor:
    h, w = x.shape[-2:]
    if min(h, w) <= size:
        return x.double()
    new = (size, max(1, round(w * size / h))) if h <= w else (max(1, round(h * size / w)), size)
    return F.interpolate(x.double(), size=new, mode="area")


def _standardise(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    mean = flat.mean(dim=1).view(-1, 1, 1, 1)
    std = flat.std(dim=1, unbiased=False).clamp(min=1e-6).view(-1, 1, 1, 1)
    return 0.5 + 0.2 * (x - mean) / std


def ssim64(recon: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """SSIM at <= 64 px: an R x G similarity matrix."""
    return pairwise_ssim(_downsample(recon), _downsample(gallery))


def ssim64_std(recon: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """SSIM at <= 64 px of per-image standardised images: an R x G similarity matrix."""
    return pairwise_ssim(_standardise(_downsample(recon)), _standardise(_downsample(gallery)))


SIMILARITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ssim64-std": ssim64_std,
    "ssim64": ssim64,
}
DEFAULT_SIMILARITY = "ssim64-std"


@dataclass(frozen=True)
class Reidentification:
    """Per victim: best rank any reconstruction gave it and whether that was 1; patient level."""

    ranks: list[int]
    reidentified: list[bool]
    gallery_size: int
    similarity: str
    top1: list[int]  # for each reconstruction, the gallery index it ranked first
    patients_total: int | None
    patients_reidentified: int | None
    patient_reason: str | None

    @property
    def rate(self) -> float:
        return sum(self.reidentified) / len(self.reidentified) if self.reidentified else 0.0

    @property
    def chance(self) -> float:
        """Expected rate of random guessing: 1 - (1 - 1/G)^N (1/G for one image)."""
        return chance_rate(len(self.ranks), self.gallery_size)

    @property
    def p_value(self) -> float:
        """P(random guessing re-identifies at least as many victims as observed)."""
        return chance_p_value(sum(self.reidentified), len(self.ranks), self.gallery_size)

    @property
    def patient_rate(self) -> float | None:
        if not self.patients_total:
            return None
        return (self.patients_reidentified or 0) / self.patients_total


def chance_rate(n: int, gallery_size: int) -> float:
    """Expected fraction of n victims some reconstruction's uniformly random top-1 hits."""
    return 1.0 - (1.0 - 1.0 / gallery_size) ** n


def chance_p_value(hits: int, n: int, gallery_size: int) -> float:
    """P(at least ``hits`` distinct victims are hit by n uniform random top-1 guesses).

    Exact, by dynamic programming over the guesses: each one lands on a victim not yet hit
    (probability (n - h) / G), an already hit victim (h / G) or a distractor.
    """
    dist = [1.0] + [0.0] * n  # dist[h] = P(h distinct victims hit so far)
    for _ in range(n):
        new = [0.0] * (n + 1)
        for h, p in enumerate(dist):
            if p:
                fresh = (n - h) / gallery_size
                new[h] += p * (1.0 - fresh)
                if h < n:
                    new[h + 1] += p * fresh
        dist = new
    return min(1.0, sum(dist[hits:]))


def ranks_from_similarity(sim: torch.Tensor, n_victims: int) -> list[int]:
    """Best rank of each victim (gallery columns 0..n_victims-1) over all rows (reconstructions)."""
    best = []
    for v in range(n_victims):
        target = sim[:, v : v + 1]
        # others at least as similar; subtract the victim itself (always >= itself)
        ahead = (sim >= target).sum(dim=1) - 1
        best.append(int(ahead.min().item()) + 1)
    return best


def reidentify(
    victims: torch.Tensor,
    reconstructions: torch.Tensor,
    distractors: torch.Tensor | None = None,
    *,
    victim_patients: Sequence[str | None] | None = None,
    distractor_patients: Sequence[str | None] | None = None,
    similarity: str = DEFAULT_SIMILARITY,
) -> Reidentification:
    """Rank the gallery (victims first, then distractors) for every reconstruction.

    Reconstructions may be in any order; none is assumed to belong to a particular victim.
    Patient level: a victim's patient is re-identified when some reconstruction's top-1 gallery
    image belongs to that patient. It is None (with a reason) unless every victim's patient is
    known; distractors of unknown patient never match a victim's patient.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; choose from {sorted(SIMILARITIES)}")
    n = victims.shape[0]
    if distractors is not None and distractors.shape[1:] != victims.shape[1:]:
        raise ValueError(
            f"distractors {tuple(distractors.shape)} differ in image shape from victims "
            f"{tuple(victims.shape)}"
        )
    gallery = victims if distractors is None else torch.cat([victims, distractors.to(victims)])
    sim = SIMILARITIES[similarity](reconstructions, gallery)
    ranks = ranks_from_similarity(sim, n)
    # top-1 with ties broken against the victims: a tied row has no unique top-1 victim.
    top1 = []
    for row in sim:
        best = row.max()
        winners = (row == best).nonzero().flatten().tolist()
        top1.append(winners[0] if len(winners) == 1 else -1)

    m = gallery.shape[0] - n
    patients_total = patients_hit = None
    reason: str | None = None
    if victim_patients is None or any(p is None for p in victim_patients):
        reason = "patient identity unknown for some or all victims"
    else:
        others = list(distractor_patients) if distractor_patients is not None else [None] * m
        if len(others) != m:
            raise ValueError(f"{len(others)} distractor patients for {m} distractors")
        owners = list(victim_patients) + others
        found = {owners[t] for t in top1 if t >= 0 and owners[t] is not None}
        distinct = set(victim_patients)
        patients_total = len(distinct)
        patients_hit = len(distinct & found)
    return Reidentification(
        ranks=ranks,
        reidentified=[r == 1 for r in ranks],
        gallery_size=int(gallery.shape[0]),
        similarity=similarity,
        top1=top1,
        patients_total=patients_total,
        patients_reidentified=patients_hit,
        patient_reason=reason,
    )
