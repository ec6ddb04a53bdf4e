"""Small statistics over stored runs: leakage above the floor, per-setting summaries, trends.

Every finding is decided from these numbers, so they are plain functions with unit tests: a mean
and standard deviation over seeds (the error bars), and a rank correlation for "falls with".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from medleak.experiments.sqlite_store import StoredRun
from medleak.metrics.verdict import ssim_above_floor

PHANTOM = "phantoms"
SAMPLE = "X-ray sample"


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation over ``n`` values (seeds); sd is 0 for one value."""

    mean: float
    sd: float
    n: int

    def text(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f} (n={self.n})"


def summarise(values: Iterable[Any]) -> Summary | None:
    """Summary of the finite numbers in ``values`` (None when there are none)."""
    numbers = [float(v) for v in values if _finite(v)]
    if not numbers:
        return None
    mean = sum(numbers) / len(numbers)
    if len(numbers) < 2:
        return Summary(mean, 0.0, 1)
    var = sum((v - mean) ** 2 for v in numbers) / (len(numbers) - 1)
    return Summary(mean, math.sqrt(var), len(numbers))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def leak(metrics: dict[str, Any]) -> float | None:
    """SSIM above the stronger floor (blank or prior image; blank in records without a prior),
    clipped at 0: the verdict's and the frontier's leakage axis."""
    return ssim_above_floor(metrics)


def source_of(run: StoredRun) -> str:
    """Which data a run used: the phantoms or a folder of real X-rays."""
    source = run.config.get("data", {}).get("source", "phantom")
    return PHANTOM if source == "phantom" else SAMPLE


def finished(runs: Iterable[StoredRun], kind: str = "attack") -> list[StoredRun]:
    return [r for r in runs if r.status == "finished" and r.kind == kind]


def get(config: dict[str, Any], dotted: str) -> Any:
    """A dotted key of a stored config (None when absent)."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def group(
    runs: Iterable[StoredRun], key: Callable[[StoredRun], Hashable]
) -> dict[Hashable, list[StoredRun]]:
    out: dict[Hashable, list[StoredRun]] = {}
    for run in runs:
        out.setdefault(key(run), []).append(run)
    return out


def summarise_metric(
    runs: Sequence[StoredRun], metric: Callable[[dict[str, Any]], Any]
) -> Summary | None:
    return summarise(metric(r.metrics) for r in runs)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (SciPy; average ranks for ties); None when either side is
    constant or there are fewer than two points."""
    if len(xs) != len(ys) or len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(xs, ys).statistic)
    return rho if math.isfinite(rho) else None


def is_analytic(run: StoredRun) -> bool:
    """Whether ROG's analytic stage ran: ROG without a preset, the stage on, and a model that
    declares a wide exposed linear layer (``models.MODELS``), the stage's precondition."""
    from medleak.models import MODELS

    spec = MODELS.get(str(get(run.config, "model.name")))
    return (
        get(run.config, "attack.name") == "rog"
        and get(run.config, "attack.analytic") is not False
        and not get(run.config, "attack.preset")
        and spec is not None
        and spec.exposed_linear is not None
    )


def falls(xs: Sequence[float], means: Sequence[float], margin: float) -> bool:
    """ "Falls with x": rank correlation <= -0.5 and the last mean below the first by ``margin``."""
    if len(xs) < 2:
        return False
    pairs = sorted(zip(xs, means, strict=True))
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs])
    return rho is not None and rho <= -0.5 and pairs[0][1] - pairs[-1][1] >= margin
