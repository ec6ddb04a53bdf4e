"""What a metric is: a name, a direction, what it needs, and per-image values or why it has none.

``evaluate`` iterates the registry (``medleak.metrics.registry.METRICS``) and the report takes
each metric's labels and digits from it, so a new metric is one file and one registry line: no
hand-edited ``Scores`` field, ``to_dict`` key, report table column or chart panel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from medleak.metrics.ssim import ssim

# What a metric can need beyond the originals and the reconstructions, and why it is absent
# when the run did not provide it.
NEEDS = {
    "gallery": "no gallery of other images was given",
    "labels": "the attack reported no labels",
    "start": "no initial image given",
    "prior": "no distractor or auxiliary images to average into a prior image",
}


def finite(value: float | None) -> float | None:
    """JSON-safe float: NaN/inf become None (JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the defined values (None when there are none)."""
    defined = [v for v in values if v is not None and math.isfinite(v)]
    return finite(sum(defined) / len(defined)) if defined else None


@dataclass
class Inputs:
    """What a metric may read. Tensors are float64 on the CPU; ``reconstructions[i]`` is the
    reconstruction matched to ``originals[i]`` (``attack_order`` keeps the attack's order, for
    metrics such as re-identification that must not use the matching)."""

    originals: torch.Tensor
    reconstructions: torch.Tensor
    attack_order: torch.Tensor
    matched: list[int]
    initial: torch.Tensor | None  # the attack's start, matched like the reconstructions
    true_labels: torch.Tensor
    used_labels: torch.Tensor | None
    patients: Sequence[str | None] | None
    gallery: torch.Tensor | None
    gallery_patients: Sequence[str | None] | None
    lpips_weights: Path | None
    similarity: str
    # what the server knows without the update: 1 x C x H x W (``metrics.prior``), and from where
    prior: torch.Tensor | None = None
    prior_source: str | None = None

    def has(self, need: str) -> bool:
        return {
            "gallery": self.gallery is not None,
            "labels": self.used_labels is not None,
            "start": self.initial is not None,
            "prior": self.prior is not None,
        }[need]

    @cached_property
    def prior_ssim(self) -> torch.Tensor:
        """Per-image SSIM of the prior image (shared by prior_ssim, the floor and RDLV)."""
        assert self.prior is not None
        return ssim(self.prior.expand_as(self.originals), self.originals)

    @cached_property
    def ssim(self) -> torch.Tensor:
        """Per-image SSIM of the matched reconstructions (shared by SSIM and RDLV)."""
        return ssim(self.reconstructions, self.originals)

    @cached_property
    def start_ssim(self) -> torch.Tensor:
        """Per-image SSIM of the attack's start (shared by start_ssim and RDLV)."""
        assert self.initial is not None
        return ssim(self.initial, self.originals)


@dataclass(frozen=True)
class Value:
    """A metric's result. ``summary``: its keys in ``metrics.json`` (the first is the headline);
    ``columns``: its per-image keys, one list entry per original; ``reasons``: why something is
    absent (``<name>_reason`` keys), written only when the headline is absent."""

    summary: dict[str, Any]
    columns: dict[str, list[Any]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One number the report shows: its key, its header, decimals (None: shown as is)."""

    key: str
    header: str
    digits: int | None = 3


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    name: its headline key in ``metrics.json``. label: what people read. higher_leaks: the
    direction (True when a higher value means the reconstruction is closer, i.e. more leakage).
    needs: inputs it cannot do without (see ``NEEDS``); evaluate records it as absent, with the
    reason, when the run lacks one. compute: ``Inputs -> Value``. columns: the per-image keys it
    writes (default: its name; empty for a batch-level number). per_image / compare: what the
    report shows in the per-image and the comparison tables. chart: a bar panel per run in the
    comparison (with fixed limits, or None to fit the values). summary: the batch-level numbers
    shown beside every run wherever runs are listed: the console's summary, ``medleak results``
    (its columns, ``--group-by`` means, ``--sort``) and the sweep report's table.
    """

    name: str
    label: str
    higher_leaks: bool
    compute: Callable[[Inputs], Value]
    needs: tuple[str, ...] = ()
    columns: tuple[str, ...] | None = None
    per_image: tuple[Cell, ...] | None = None
    compare: tuple[Cell, ...] = ()
    chart: bool = False
    chart_title: str | None = None
    chart_digits: int = 2
    limits: tuple[float, float] | None = None
    notes: str = ""
    summary: tuple[Cell, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"metric {self.name}: unknown needs {sorted(unknown)}")

    @property
    def column_keys(self) -> tuple[str, ...]:
        return (self.name,) if self.columns is None else self.columns

    @property
    def cells(self) -> tuple[Cell, ...]:
        if self.per_image is not None:
            return self.per_image
        return tuple(Cell(k, self.label) for k in self.column_keys[:1])

    def absent(self, reason: str, n: int) -> Value:
        """The value of a metric that could not be computed: None everywhere, and why."""
        columns: dict[str, list[Any]] = {}
        if f"{self.name}_reason" in self.column_keys:  # a per-image reason column
            columns[f"{self.name}_reason"] = [reason] * n
        return Value({self.name: None}, columns, {f"{self.name}_reason": reason})


def per_image_value(
    name: str, values: Sequence[float | None] | None, reason: str | None = None
) -> Value:
    """The common case: one number per image, summarised by their mean; or absent with why.

    Per-image keys a value leaves out are written as None.
    """
    if values is None:
        return Value({name: None}, {}, {f"{name}_reason": reason or "no value"})
    cleaned = [finite(v) for v in values]
    return Value({name: mean(cleaned)}, {name: cleaned})
