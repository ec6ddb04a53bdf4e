"""A trained model's utility with its uncertainty: accuracy and AUC are estimates from a finite
held-out set, so each comes with a 95% interval, and a model "learned" only when its accuracy
interval clears both chance and the majority-class rate.

40 held-out images give an accuracy interval about +-0.15 wide: 0.59 and 0.50 are then the same
number, and ranking defenses by them ranks noise. The Wilson score interval (Wilson 1927) keeps
its coverage near 0 and 1 where the normal approximation does not; the AUC interval is a
class-stratified percentile bootstrap (each resample keeps the class counts, so every resample
has both classes and an AUC), seeded so the same training gives the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata

#: Two-sided confidence level of every interval here.
LEVEL = 0.95
#: Bootstrap resamples of the AUC interval (the percentile endpoints settle to ~0.005 by here).
BOOTSTRAP_RESAMPLES = 2000


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``."""
    if n <= 0:
        raise ValueError("a Wilson interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # exact at the ends (rounding leaves 1 - 1e-16 where the bound is 1)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def roc_auc(scores: Any, labels: Any) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with ties at half); None with one class only."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(s)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def auc_interval(
    scores: Any,
    labels: Any,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = LEVEL,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the AUC, resampling within each class; None if one class.

    Deterministic in ``seed`` (its own generator), so a stored training's interval can be
    recomputed exactly.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    rng = np.random.default_rng([seed, 0xA0C])
    pos_draw = pos[rng.integers(0, len(pos), size=(resamples, len(pos)))]
    neg_draw = neg[rng.integers(0, len(neg), size=(resamples, len(neg)))]
    ranks = rankdata(np.concatenate([pos_draw, neg_draw], axis=1), axis=1)
    u = ranks[:, : len(pos)].sum(axis=1) - len(pos) * (len(pos) + 1) / 2
    aucs = u / (len(pos) * len(neg))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(aucs, [tail, 100 - tail])
    return float(low), float(high)


def utility_metrics(
    predictions: Any, labels: Any, scores: Any, classes: int, seed: int
) -> dict[str, Any]:
    """Accuracy and AUC with their 95% intervals, the two rates to beat, and ``learned``.

    ``scores`` are the positive-class probabilities (class 1); ``classes`` is the model's head
    size, so chance is 1 / classes. ``learned`` is False when the accuracy interval reaches
    chance or the held-out majority-class rate: a model that always answers the commoner class
    scores the latter without having learned anything.
    """
    y = np.asarray(labels).astype(int)
    hits = int((np.asarray(predictions).astype(int) == y).sum())
    n = len(y)
    low, high = wilson_interval(hits, n)
    auc = roc_auc(scores, y)
    auc_ci = auc_interval(scores, y, seed) if auc is not None else None
    chance = 1.0 / classes
    majority = float(np.bincount(y).max() / n)
    return {
        "accuracy": hits / n,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "auc": auc,
        "auc_ci_low": None if auc_ci is None else auc_ci[0],
        "auc_ci_high": None if auc_ci is None else auc_ci[1],
        "chance_rate": chance,
        "majority_rate": majority,
        "learned": low > max(chance, majority),
    }


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def stored_utility(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A stored training's utility fields, rebuilt for a record written before they existed.

    Older records hold ``accuracy``, ``test_images`` and ``chance`` (the majority rate): the
    Wilson interval and ``learned`` follow from those; chance is then taken as the majority rate
    (the two coincide on balanced held-out sets) and the AUC interval stays unknown.
    """
    out = {k: metrics.get(k) for k in ("accuracy", "auc", "auc_ci_low", "auc_ci_high")}
    for key in ("accuracy_ci_low", "accuracy_ci_high", "chance_rate", "majority_rate", "learned"):
        out[key] = metrics.get(key)
    accuracy, n = _num(metrics.get("accuracy")), metrics.get("test_images")
    majority = _num(metrics.get("majority_rate"))
    if majority is None:
        majority = _num(metrics.get("chance"))
    out["majority_rate"] = majority
    if out["chance_rate"] is None:
        out["chance_rate"] = majority
    if out["accuracy_ci_low"] is None and accuracy is not None and isinstance(n, int) and n > 0:
        out["accuracy_ci_low"], out["accuracy_ci_high"] = wilson_interval(round(accuracy * n), n)
    if out["learned"] is None and out["accuracy_ci_low"] is not None:
        floors = [v for v in (out["chance_rate"], majority) if v is not None]
        out["learned"] = out["accuracy_ci_low"] > max(floors) if floors else None
    return out
