"""A sweep store's runs as judged points, the one place the frontier and ``medleak results`` read.

Each attack run is paired with its baseline: the no-defense (``[]``) run of the same data, model,
FL settings, attack, seed and batch (a sweep adds it when its grid lacks it), or the baseline the
run stored itself. From the pair come the run's leakage (mean SSIM above the stronger of the
blank and prior-image floors), the protection the defense bought (baseline leakage minus its
own) and its verdict. Each setting's trainings become one utility summary: the mean over seeds
with its min-max, the 95% intervals, and whether the model learned at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medleak.experiments.sqlite_store import StoredRun
from medleak.fl.utility import stored_utility
from medleak.metrics.verdict import Verdict, judge


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def floor_of(metrics: Mapping[str, Any], metric: str) -> float | None:
    """The stronger floor of ``ssim`` or ``psnr``: ``floor_*`` when recorded, else the larger of
    the blank and prior images' scores (a store written before the prior floor: the blank's)."""
    recorded = _num(metrics.get(f"floor_{metric}"))
    if recorded is not None:
        return recorded
    candidates = [_num(metrics.get(f"{k}_{metric}")) for k in ("blank", "prior")]
    present = [v for v in candidates if v is not None]
    return max(present) if present else None


def leakage(metrics: Mapping[str, Any]) -> float | None:
    """Mean SSIM above the stronger floor; 0 when the reconstruction is no better than it."""
    ssim = _num(metrics.get("ssim"))
    if ssim is None:
        return None
    return max(0.0, ssim - (floor_of(metrics, "ssim") or 0.0))


def baseline_key(config: Mapping[str, Any]) -> str:
    """What a run and its no-defense baseline share: the whole config but the defenses."""
    return json.dumps({k: v for k, v in config.items() if k != "defenses"}, sort_keys=True)


def is_undefended(run: StoredRun) -> bool:
    return not run.config.get("defenses")


def baseline_index(runs: Iterable[StoredRun]) -> dict[str, StoredRun]:
    """The finished no-defense attack runs of a store, by :func:`baseline_key`."""
    return {
        baseline_key(r.config): r
        for r in runs
        if r.kind == "attack" and r.status == "finished" and is_undefended(r)
    }


def baseline_metrics(run: StoredRun, index: Mapping[str, StoredRun]) -> Mapping[str, Any] | None:
    """The baseline of a defended attack run: its sweep twin, else the baseline it stored."""
    if is_undefended(run):
        return None
    twin = index.get(baseline_key(run.config))
    if twin is not None:
        return twin.metrics
    stored = run.metrics.get("baseline")
    if isinstance(stored, Mapping):
        return stored
    if _num(run.metrics.get("baseline_ssim")) is not None:  # a flat record
        return {
            "ssim": run.metrics["baseline_ssim"],
            "psnr": run.metrics.get("baseline_psnr"),
            "verdict": run.metrics.get("baseline_verdict"),
            "floor_ssim": floor_of(run.metrics, "ssim"),
            "floor_psnr": floor_of(run.metrics, "psnr"),
        }
    return None


def judge_point(metrics: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> Verdict:
    """The verdict of one attack run given its baseline: every sweep verdict comes through here,
    so the frontier, its ranking and ``medleak results`` cannot disagree."""
    return judge(metrics)


def baseline_verdict(baseline: Mapping[str, Any] | None) -> str | None:
    """The baseline's own verdict (an undefended run is judged without a baseline)."""
    if baseline is None:
        return None
    if _num(baseline.get("ssim")) is not None and baseline.get("num_images"):
        return judge_point(baseline, None).outcome
    stored = baseline.get("verdict")
    return stored if isinstance(stored, str) else None


@dataclass
class Point:
    """One attack run, judged: its leakage, its baseline's, the protection and the verdict."""

    run: StoredRun
    leak: float | None
    baseline_leak: float | None
    baseline_verdict: str | None
    verdict: Verdict

    @property
    def protection(self) -> float | None:
        """Baseline leakage minus this run's (positive: the defense removed that much)."""
        if self.leak is None or self.baseline_leak is None:
            return None
        return self.baseline_leak - self.leak


def judge_run(run: StoredRun, index: Mapping[str, StoredRun]) -> Point:
    baseline = baseline_metrics(run, index)
    base_leak = None
    if baseline is not None:
        base_leak = leakage({"floor_ssim": floor_of(run.metrics, "ssim"), **baseline})
    return Point(
        run,
        leakage(run.metrics),
        base_leak,
        baseline_verdict(baseline),
        judge_point(run.metrics, baseline),
    )


@dataclass
class Utility:
    """A setting's utility over its trainings (one per seed): mean, min-max, 95% intervals."""

    seeds: int
    accuracy: float | None
    accuracy_min: float | None
    accuracy_max: float | None
    #: the widest reach of the per-seed 95% intervals (lowest low, highest high)
    accuracy_ci_low: float | None
    accuracy_ci_high: float | None
    auc: float | None
    auc_min: float | None
    auc_max: float | None
    auc_ci_low: float | None
    auc_ci_high: float | None
    chance_rate: float | None
    majority_rate: float | None
    #: False when any seed's accuracy interval reaches chance or the majority rate; None unknown
    learned: bool | None

    def text(self, key: str = "accuracy") -> str:
        """'0.810, 95% CI [0.770, 0.850]' for one seed; over seeds the mean, its min-max and
        the widest reach of the seeds' intervals: '0.810 (0.790-0.830 over 3 seeds), 95% CI
        [0.750, 0.870]'."""
        mean = getattr(self, key)
        if mean is None:
            return "-"
        low, high = getattr(self, f"{key}_ci_low"), getattr(self, f"{key}_ci_high")
        ci = f", 95% CI [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        if self.seeds > 1:
            spread = f"{getattr(self, f'{key}_min'):.3f}-{getattr(self, f'{key}_max'):.3f}"
            return f"{mean:.3f} ({spread} over {self.seeds} seeds){ci}"
        return f"{mean:.3f}{ci}"


def _stats(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None, None
    return sum(present) / len(present), min(present), max(present)


def summarize_utility(trainings: list[StoredRun]) -> Utility:
    rows = [stored_utility(t.metrics) for t in trainings]
    acc = _stats([_num(r["accuracy"]) for r in rows])
    auc = _stats([_num(r["auc"]) for r in rows])

    def reach(key: str, pick: Any) -> float | None:
        values = [_num(r[key]) for r in rows]
        present = [v for v in values if v is not None]
        return pick(present) if present and len(present) == len(values) else None

    flags = [r["learned"] for r in rows]
    learned = None if not flags or None in flags else all(flags)
    return Utility(
        len(rows),
        *acc,
        reach("accuracy_ci_low", min),
        reach("accuracy_ci_high", max),
        *auc,
        reach("auc_ci_low", min),
        reach("auc_ci_high", max),
        _stats([_num(r["chance_rate"]) for r in rows])[2],
        _stats([_num(r["majority_rate"]) for r in rows])[2],
        learned,
    )


def run_columns(runs: list[StoredRun]) -> dict[str, dict[str, Any]]:
    """Per run id, the judged columns ``medleak results`` adds: the floors, the verdict, the
    baseline's verdict and the protection for an attack; the 95% interval text for a training."""
    index = baseline_index(runs)
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.status != "finished":
            continue
        if run.kind == "attack":
            point = judge_run(run, index)
            out[run.run_id] = {
                "floor_ssim": floor_of(run.metrics, "ssim"),
                "floor_psnr": floor_of(run.metrics, "psnr"),
                "ssim_above_floor": point.leak,
                "verdict": point.verdict.outcome,
                "baseline_verdict": point.baseline_verdict,
                "protection_ssim": point.protection,
            }
        elif run.kind == "train":
            u = stored_utility(run.metrics)
            low, high = u["accuracy_ci_low"], u["accuracy_ci_high"]
            out[run.run_id] = {
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "accuracy_95ci": None if low is None else f"{low:.3f}-{high:.3f}",
                "learned": u["learned"],
            }
    return out
