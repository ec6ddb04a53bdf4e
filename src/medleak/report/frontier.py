"""The privacy-utility-bandwidth frontier of a sweep store: one plot, one ranking, the evidence.

Per defense setting: test accuracy (mean over seeds of its trainings), leakage (the strongest
attack in the store for that setting: mean SSIM above the blank floor over seeds, min-max bars;
and its re-identification rate), bits sent relative to raw float32, DP epsilon. The Pareto front
keeps the settings no other setting beats on both accuracy and leakage. Reads the store only.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from medleak.experiments.sqlite_store import StoredRun, SweepStore
from medleak.metrics.verdict import INCONCLUSIVE, LEAKS, NO_MEASURABLE_LEAKAGE, Verdict, judge
from medleak.report.grid import grid_png
from medleak.report.html import BADGES
from medleak.report.labels import place_labels
from medleak.report.plots import COLORS, _new_figure, figure_png


@dataclass
class Setting:
    key: str
    label: str
    attacks: list[StoredRun] = field(default_factory=list)
    trainings: list[StoredRun] = field(default_factory=list)
    strongest: str | None = None
    leak: list[float] = field(default_factory=list)
    reid: list[float] = field(default_factory=list)

    @property
    def none(self) -> bool:
        return self.key == "[]"


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def leakage(metrics: dict[str, Any]) -> float | None:
    """Mean SSIM above the blank floor (0 when the reconstruction is no better than gray)."""
    ssim, blank = metrics.get("ssim"), metrics.get("blank_ssim")
    if not isinstance(ssim, (int, float)):
        return None
    return max(0.0, float(ssim) - float(blank or 0.0))


def label_of(defenses: list[Any]) -> str:
    parts = [d if isinstance(d, str) else json.dumps(d, sort_keys=True) for d in defenses]
    return " + ".join(parts) or "none"


def collect(runs: list[StoredRun]) -> list[Setting]:
    settings: dict[str, Setting] = {}
    for run in runs:
        if run.status != "finished" or run.kind == "audit":
            continue
        defenses = run.config.get("defenses", [])
        key = json.dumps(defenses, sort_keys=True)
        setting = settings.setdefault(key, Setting(key, label_of(defenses)))
        (setting.trainings if run.kind == "train" else setting.attacks).append(run)
    for setting in settings.values():
        by_attack: dict[str, list[StoredRun]] = {}
        for run in setting.attacks:
            if run.config.get("model", {}).get("round") not in (None,) and run.metrics.get(
                "model_round"
            ) not in (None, _final_round(setting)):
                continue  # leakage over training is shown separately
            by_attack.setdefault(_attack_name(run), []).append(run)
        best, best_value = None, -1.0
        for name, members in by_attack.items():
            value = _mean([leakage(m.metrics) for m in members])  # type: ignore[misc]
            if value is not None and value > best_value:
                best, best_value = name, value
        if best is not None:
            setting.strongest = best
            members = by_attack[best]
            setting.leak = [v for m in members if (v := leakage(m.metrics)) is not None]
            setting.reid = [
                m.metrics["reid_rate"]
                for m in members
                if isinstance(m.metrics.get("reid_rate"), (int, float))
            ]
    return sorted(settings.values(), key=lambda s: (not s.none, s.label))


def _final_round(setting: Setting) -> int | None:
    rounds = [t.config.get("train", {}).get("rounds") for t in setting.trainings]
    return rounds[0] if rounds else None


def _attack_name(run: StoredRun) -> str:
    attack = run.config.get("attack", {})
    return attack.get("name", "?") + (f" ({attack['preset']})" if attack.get("preset") else "")


def bits_ratio(setting: Setting) -> float | None:
    ratios = []
    for run in setting.attacks:
        sent, raw = run.metrics.get("bits_sent"), run.metrics.get("bits_raw")
        if isinstance(sent, (int, float)) and raw:
            ratios.append(sent / raw)
    ratios += [t.metrics["bits_ratio"] for t in setting.trainings if t.metrics.get("bits_ratio")]
    return _mean(ratios)


def utility(setting: Setting, key: str = "accuracy") -> float | None:
    return _mean([t.metrics.get(key) for t in setting.trainings])  # type: ignore[misc]


def epsilon(setting: Setting) -> float | None:
    values = [t.metrics.get("epsilon") for t in setting.trainings]
    values += [a.metrics.get("epsilon") for a in setting.attacks] if not values else []
    return _mean(values)  # type: ignore[arg-type]


def pareto(points: dict[str, tuple[float, float]]) -> list[str]:
    """Keys not dominated: no other point has accuracy >= and leakage <= with one strict."""
    front = []
    for key, (acc, leak) in points.items():
        dominated = any(
            a >= acc and b <= leak and (a > acc or b < leak)
            for other, (a, b) in points.items()
            if other != key
        )
        if not dominated:
            front.append(key)
    return sorted(front, key=lambda k: points[k][0])


def frontier_plot(settings: list[Setting], x_key: str = "accuracy") -> tuple[bytes, list[str]]:
    """Two panels (SSIM above floor, re-identification) against accuracy; returns PNG, front."""
    fig = _new_figure(11, 4.6)
    axes = fig.subplots(1, 2)
    points = {}
    for s in settings:
        acc, leak = utility(s, x_key), _mean(s.leak)
        if acc is not None and leak is not None:
            points[s.key] = (acc, leak)
    front = pareto(points)
    import matplotlib.cm as cm
    import matplotlib.colors as mcolors

    norm = mcolors.LogNorm(vmin=1e-3, vmax=1.0)
    panels: list[tuple[Any, list[tuple[str, float, float, float]]]] = []
    for ax, values_of, title in (
        (axes[0], lambda s: s.leak, "leakage: SSIM above the blank floor"),
        (axes[1], lambda s: s.reid, "re-identification rate"),
    ):
        labels: list[tuple[str, float, float, float]] = []
        for s in settings:
            acc, values = utility(s, x_key), values_of(s)
            if acc is None or not values:
                continue
            mean = sum(values) / len(values)
            ratio = bits_ratio(s) or 1.0
            ax.errorbar(
                acc,
                mean,
                yerr=[[mean - min(values)], [max(values) - mean]],
                fmt="none",
                ecolor="#888",
                capsize=3,
                zorder=1,
            )
            ax.scatter(
                acc,
                mean,
                s=60 + 140 * ratio,
                c=[cm.viridis(norm(max(ratio, 1e-3)))],
                marker="*" if s.none else "o",
                edgecolors="red" if s.none else "black",
                linewidths=1.5 if s.none else 0.6,
                zorder=3,
            )
            radius = math.sqrt(60 + 140 * ratio) / 2  # scatter sizes are areas in points^2
            labels.append((s.label + (" (no defense)" if s.none else ""), acc, mean, radius))
        if ax is axes[0] and len(front) > 0:
            xs = [points[k][0] for k in front]
            ys = [points[k][1] for k in front]
            ax.plot(xs, ys, "--", color=COLORS[1], zorder=2)
            # rings, so that a front of one setting (one dominating all others) is visible too
            ax.scatter(
                xs,
                ys,
                s=420,
                facecolors="none",
                edgecolors=COLORS[1],
                linewidths=2,
                label=f"Pareto front ({len(front)} setting{'s' if len(front) > 1 else ''})",
                zorder=4,
            )
            ax.legend(fontsize=8, loc="upper left")
        ax.set_xlabel(f"test {'accuracy' if x_key == 'accuracy' else 'ROC AUC'} (higher = useful)")
        ax.set_ylabel(title + " (lower = private)")
        ax.grid(alpha=0.3)
        ax.margins(x=0.12, y=0.1)
        panels.append((ax, labels))
    mappable = cm.ScalarMappable(norm=norm, cmap=cm.viridis)
    fig.subplots_adjust(left=0.07, right=0.86, wspace=0.28)
    fig.colorbar(mappable, ax=axes, label="bits sent / raw float32 (marker size too)", pad=0.02)
    for ax, labels in panels:  # after the layout is fixed: placement measures the text
        place_labels(ax, labels)
    return figure_png(fig), front


def curves_plot(settings: list[Setting]) -> bytes | None:
    """Accuracy per round per defense (mean over seeds); leakage per round when stored."""
    with_curves = [s for s in settings if s.trainings]
    if not with_curves:
        return None
    rounds_attacks = [
        s for s in settings if any(a.metrics.get("model_round") is not None for a in s.attacks)
    ]
    fig = _new_figure(11 if rounds_attacks else 6, 4)
    axes = fig.subplots(1, 2 if rounds_attacks else 1)
    axes = list(axes) if rounds_attacks else [axes]
    for i, s in enumerate(with_curves):
        color = COLORS[i % len(COLORS)]
        series = [t.curves.get("accuracy", []) for t in s.trainings]
        length = min(len(c) for c in series)
        mean = [_mean([c[r] for c in series]) for r in range(length)]
        axes[0].plot(range(length), mean, marker="o", ms=3, color=color, label=s.label)
    axes[0].set_xlabel("round (0 = initial model)")
    axes[0].set_ylabel("held-out accuracy")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    if rounds_attacks:
        for i, s in enumerate(rounds_attacks):
            by_round: dict[int, list[float]] = {}
            for a in s.attacks:
                r, v = a.metrics.get("model_round"), leakage(a.metrics)
                if r is not None and v is not None:
                    by_round.setdefault(r, []).append(v)
            xs = sorted(by_round)
            axes[1].plot(
                xs,
                [sum(by_round[x]) / len(by_round[x]) for x in xs],
                marker="o",
                color=COLORS[i % len(COLORS)],
                label=s.label,
            )
        axes[1].set_xlabel("attacked round")
        axes[1].set_ylabel("SSIM above blank floor")
        axes[1].legend(fontsize=7)
        axes[1].grid(alpha=0.3)
    return figure_png(fig)


def setting_verdict(setting: Setting) -> Verdict | None:
    """One verdict for a defense setting, from its strongest attack's runs (one per seed).

    The seeds are combined the cautious way round: one leaking seed means the setting leaks, and
    "no measurable leakage" needs every seed to say so; any other mix is inconclusive.
    """
    judged = [judge(r.metrics) for r in setting.attacks if _attack_name(r) == setting.strongest]
    if not judged:
        return None
    for outcome in (LEAKS, INCONCLUSIVE):
        hits = [v for v in judged if v.outcome == outcome]
        if hits:
            return hits[0]
    return judged[0]


def _verdict_text(setting: Setting) -> str:
    judged = setting_verdict(setting)
    return judged.outcome if judged else "no attack"


def store_conclusion(settings: list[Setting]) -> str:
    """The answer first: each defense setting's verdict, and where the safe ones stand."""
    lines = []
    for s in settings:
        judged = setting_verdict(s)
        if judged is None:
            continue
        lines.append(
            f'<p class="verdict {BADGES[judged.outcome]}">{escape(s.label)}: '
            f"{escape(judged.reason)}</p>"
        )
    if not lines:
        return '<p class="verdict warn">No finished attack runs in this store yet.</p>'
    safe = [s for s in settings if (v := setting_verdict(s)) and v.outcome == NO_MEASURABLE_LEAKAGE]
    if safe:
        best = max(safe, key=lambda s: utility(s) if utility(s) is not None else -1.0)
        accuracy = utility(best)
        lines.append(
            '<p class="next">Of the settings with no measurable leakage, '
            f"<strong>{escape(best.label)}</strong> keeps the highest test accuracy "
            f"({_fmt(accuracy)}).</p>"
            if accuracy is not None
            else '<p class="next">No training runs: accuracy of the safe settings is unknown.</p>'
        )
    return '<div class="conclusion">' + "".join(lines) + "</div>"


def _best_grid(store: SweepStore, run: StoredRun) -> bytes | None:
    """The grid of a stored attack, drawn here from its tensors (older stores kept a PNG)."""
    data = store.blob(run.run_id, "tensors.safetensors")
    if data is None:
        return store.blob(run.run_id, "grid.png")
    from safetensors.torch import load as load_tensors

    tensors = load_tensors(data)
    rows = run.metrics.get("per_image") or []
    captions = [f"PSNR {_fmt(p.get('psnr'), 3)} / SSIM {_fmt(p.get('ssim'), 2)}" for p in rows]
    if len(captions) != tensors["originals"].shape[0]:
        captions = []
    return grid_png(tensors["originals"], tensors["reconstructions"], captions or None)


def _png(data: bytes, alt: str) -> str:
    return (
        f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}">'
    )


def _fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else escape(str(v))


def frontier_section(path: Path) -> str:
    with SweepStore(path, create=False) as store:
        runs = [r for r in store.runs() if r.kind != "audit"]  # audits have their own section
        settings = collect(runs)
        parts = [f"<h2>Frontier: {escape(path.name)}</h2>", store_conclusion(settings)]
        synthetic = any(r.config.get("data", {}).get("source") == "phantom" for r in runs)
        if synthetic:
            parts.append(
                '<p class="hint">Synthetic data: these numbers come from procedural '
                "phantoms, not real X-rays.</p>"
            )
        failed = sum(1 for r in runs if r.status != "finished")
        parts.append(f"<p>{len(runs)} runs in the store, {failed} not finished.</p>")
        if not any(s.trainings for s in settings):
            parts.append(
                "<p>No training runs in this store: accuracy is unknown, so the frontier "
                "shows leakage only in the ranking (add a <code>train:</code> section).</p>"
            )
            front: list[str] = []
        else:
            png, front = frontier_plot(settings)
            parts.append(_png(png, "privacy-utility-bandwidth frontier"))
            parts.append(
                '<p class="hint">One point per defense setting; leakage from the '
                "strongest attack in the store for it (mean over seeds and batches, bars "
                "min-max); the red-edged star is no defense; ringed (dashed line between): "
                "the Pareto front.</p>"
            )
        rows = []
        ordered = sorted(settings, key=lambda s: (s.key not in front, _mean(s.leak) or 0.0))
        for rank, s in enumerate(ordered, 1):
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{c}</td>"
                    for c in (
                        rank,
                        escape(s.label) + (" <b>(front)</b>" if s.key in front else ""),
                        _fmt(utility(s)),
                        _fmt(utility(s, "auc")),
                        _fmt(epsilon(s)),
                        _fmt(bits_ratio(s)),
                        _fmt(_mean(s.leak)),
                        _fmt(_mean(s.reid)),
                        escape(s.strongest or "-"),
                        escape(_verdict_text(s)),
                    )
                )
                + "</tr>"
            )
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "rank",
                "defense",
                "accuracy",
                "AUC",
                "epsilon",
                "bits/raw",
                "SSIM above floor",
                "re-id rate",
                "strongest attack",
                "verdict",
            )
        )
        parts.append(
            f'<table class="ranking sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        curves = curves_plot(settings)
        if curves is not None:
            parts.append("<h3>Accuracy per round</h3>" + _png(curves, "accuracy per round"))
        parts.append("<h3>Best reconstruction per defense</h3>")
        for s in settings:
            best = max(s.attacks, key=lambda a: a.metrics.get("ssim") or -1, default=None)
            grid = _best_grid(store, best) if best else None
            if grid:
                parts.append(
                    f"<h4>{escape(s.label)} (run {best.run_id})</h4>"  # type: ignore
                    + _png(grid, f"reconstructions under {s.label}")
                )
    return "\n".join(parts)
