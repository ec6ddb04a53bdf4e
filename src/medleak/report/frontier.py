"""The privacy-utility-bandwidth frontier of a sweep store: one plot, one ranking, the evidence.

Per defense setting: test accuracy (mean over the seeds of its trainings, min-max, and each
seed's 95% interval over its held-out images), leakage (the strongest attack in the store for
that setting: mean SSIM above the stronger of the blank and prior-image floors over its attacked
batches, min-max bars; and its re-identification rate), the protection the defense bought
against the same attack on the undefended update (its ``[]`` twin), bits sent relative to raw
float32, DP epsilon. A setting whose accuracy interval reaches chance or the majority-class rate
did not learn: it is drawn hollow and is never on the Pareto front nor recommended; neither is a
setting whose verdict is "leaks". The Pareto front keeps the remaining settings no other beats
on both accuracy and leakage. Reads the store only.
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
from medleak.metrics.verdict import INCONCLUSIVE, LEAKS, NO_MEASURABLE_LEAKAGE, SSIM_MARGIN, Verdict
from medleak.report.grid import grid_png
from medleak.report.html import BADGES
from medleak.report.labels import place_labels
from medleak.report.plots import COLORS, _new_figure, figure_png
from medleak.report.sweep_points import (
    Point,
    Utility,
    baseline_index,
    floor_of,
    judge_run,
    leakage,
    summarize_utility,
)

__all__ = ["leakage", "collect", "pareto", "setting_verdict", "store_conclusion"]


@dataclass
class Setting:
    key: str
    label: str
    attacks: list[StoredRun] = field(default_factory=list)
    trainings: list[StoredRun] = field(default_factory=list)
    strongest: str | None = None
    #: the strongest attack's runs, each judged against its baseline
    points: list[Point] = field(default_factory=list)
    leak: list[float] = field(default_factory=list)
    reid: list[float] = field(default_factory=list)
    utility: Utility = field(default_factory=lambda: summarize_utility([]))

    @property
    def none(self) -> bool:
        return self.key == "[]"

    @property
    def learned(self) -> bool | None:
        return self.utility.learned


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def label_of(defenses: list[Any]) -> str:
    parts = [d if isinstance(d, str) else json.dumps(d, sort_keys=True) for d in defenses]
    return " + ".join(parts) or "none"


def collect(runs: list[StoredRun]) -> list[Setting]:
    settings: dict[str, Setting] = {}
    finished = [r for r in runs if r.status == "finished" and r.kind != "audit"]
    index = baseline_index(finished)
    for run in finished:
        defenses = run.config.get("defenses", [])
        key = json.dumps(defenses, sort_keys=True)
        setting = settings.setdefault(key, Setting(key, label_of(defenses)))
        (setting.trainings if run.kind == "train" else setting.attacks).append(run)
    for setting in settings.values():
        setting.utility = summarize_utility(setting.trainings)
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
            setting.points = [judge_run(m, index) for m in by_attack[best]]
            setting.leak = [p.leak for p in setting.points if p.leak is not None]
            setting.reid = [
                p.run.metrics["reid_rate"]
                for p in setting.points
                if isinstance(p.run.metrics.get("reid_rate"), (int, float))
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
    """Mean over the setting's trainings (seeds) of ``accuracy`` or ``auc``."""
    return getattr(setting.utility, key)


def epsilon(setting: Setting) -> float | None:
    values = [t.metrics.get("epsilon") for t in setting.trainings]
    values += [a.metrics.get("epsilon") for a in setting.attacks] if not values else []
    return _mean(values)  # type: ignore[arg-type]


def eligible(setting: Setting) -> bool:
    """May stand on the Pareto front and be recommended: it learned (or its learning is unknown:
    a store without the interval) and its verdict is not "leaks"."""
    verdict = setting_verdict(setting)
    return setting.learned is not False and (verdict is None or verdict.outcome != LEAKS)


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


def front_of(settings: list[Setting], x_key: str = "accuracy") -> list[str]:
    """The Pareto front over the eligible settings (learned, not leaking)."""
    points = {}
    for s in settings:
        acc, leak = utility(s, x_key), _mean(s.leak)
        if acc is not None and leak is not None and eligible(s):
            points[s.key] = (acc, leak)
    return pareto(points)


def frontier_plot(settings: list[Setting], x_key: str = "accuracy") -> tuple[bytes, list[str]]:
    """Two panels (SSIM above floor, re-identification) against accuracy; returns PNG, front."""
    fig, front = frontier_figure(settings, x_key)
    return figure_png(fig), front


def frontier_figure(settings: list[Setting], x_key: str = "accuracy") -> tuple[Any, list[str]]:
    """The frontier's figure (drawn, not yet encoded) and its front.

    Horizontal bars: the 95% interval of the accuracy (the widest over seeds); vertical bars:
    min-max of the leakage over attacked batches. A setting that did not learn is hollow.
    """
    fig = _new_figure(11, 4.6)
    axes = fig.subplots(1, 2)
    front = front_of(settings, x_key)
    points = {s.key: (utility(s, x_key), _mean(s.leak)) for s in settings if s.key in front}
    import matplotlib.cm as cm
    import matplotlib.colors as mcolors

    norm = mcolors.LogNorm(vmin=1e-3, vmax=1.0)
    panels: list[tuple[Any, list[tuple[str, float, float, float]]]] = []
    hollow_drawn = False
    for ax, values_of, title in (
        (axes[0], lambda s: s.leak, "leakage: SSIM above the floor"),
        (axes[1], lambda s: s.reid, "re-identification rate"),
    ):
        labels: list[tuple[str, float, float, float]] = []
        for s in settings:
            acc, values = utility(s, x_key), values_of(s)
            if acc is None or not values:
                continue
            mean = sum(values) / len(values)
            ratio = bits_ratio(s) or 1.0
            low = getattr(s.utility, f"{x_key}_ci_low")
            high = getattr(s.utility, f"{x_key}_ci_high")
            xerr = [[acc - low], [high - acc]] if low is not None and high is not None else None
            ax.errorbar(
                acc,
                mean,
                xerr=xerr,
                yerr=[[mean - min(values)], [max(values) - mean]],
                fmt="none",
                ecolor="#888",
                capsize=3,
                zorder=1,
            )
            color = cm.viridis(norm(max(ratio, 1e-3)))
            hollow = s.learned is False
            ax.scatter(
                acc,
                mean,
                s=60 + 140 * ratio,
                c="none" if hollow else [color],
                marker="*" if s.none else "o",
                edgecolors=[color] if hollow else ("red" if s.none else "black"),
                linewidths=2.0 if hollow else 1.5 if s.none else 0.6,
                zorder=3,
                label="did not learn (hollow)" if hollow and not hollow_drawn else None,
            )
            hollow_drawn = hollow_drawn or hollow
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
        if ax is axes[0] and (front or hollow_drawn):
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
    return fig, front


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
        axes[1].set_ylabel("SSIM above the floor")
        axes[1].legend(fontsize=7)
        axes[1].grid(alpha=0.3)
    return figure_png(fig)


def setting_verdict(setting: Setting) -> Verdict | None:
    """One verdict for a defense setting, from its strongest attack's runs (one per batch, seed).

    The runs are combined the cautious way round: one leaking run means the setting leaks, and
    "no measurable leakage" needs every run to say so; any other mix is inconclusive.
    """
    point = representative(setting)
    return point.verdict if point is not None else None


def representative(setting: Setting) -> Point | None:
    """The run a setting's verdict is quoted from, and whose reconstructions are shown beside it:
    the most leaking of the runs whose verdict is the setting's."""
    if not setting.points:
        return None
    outcomes = {p.verdict.outcome for p in setting.points}
    outcome = next(o for o in (LEAKS, INCONCLUSIVE, NO_MEASURABLE_LEAKAGE) if o in outcomes)
    same = [p for p in setting.points if p.verdict.outcome == outcome]
    return max(same, key=lambda p: -1.0 if p.leak is None else p.leak)


def _verdict_text(setting: Setting) -> str:
    judged = setting_verdict(setting)
    return judged.outcome if judged else "no attack"


def protection(setting: Setting) -> float | None:
    """Mean over the setting's attacked batches of baseline leakage minus defended leakage."""
    return _mean([p.protection for p in setting.points if p.protection is not None])


def baseline_text(setting: Setting) -> str:
    """The baselines' own verdicts: 'leaks', or 'leaks 2 / inconclusive 1' when they differ."""
    if setting.none:
        return "(is the baseline)"
    outcomes = [p.baseline_verdict for p in setting.points if p.baseline_verdict]
    if not outcomes:
        return "-"
    counts = {o: outcomes.count(o) for o in dict.fromkeys(outcomes)}
    if len(counts) == 1:
        return outcomes[0]
    return " / ".join(f"{o} {n}" for o, n in counts.items())


def budget_too_small(setting: Setting) -> bool:
    """The defended update leaked more than the undefended one (beyond the SSIM margin): the
    attack's budget, not the defense, decided the ranking."""
    value = protection(setting)
    return value is not None and value < -SSIM_MARGIN


def _budget_warning(settings: list[Setting]) -> str | None:
    flagged = [s for s in settings if budget_too_small(s)]
    if not flagged:
        return None
    attack = flagged[0].points[0].run.config.get("attack", {})
    now = {k: attack.get(k) for k in ("iterations", "restarts")}
    options = " or ".join(
        f"<code>attack.{k}</code>" + (f" (now {v})" if isinstance(v, int) else "")
        for k, v in now.items()
    )
    names = ", ".join(
        f"{escape(s.label)} (SSIM above the floor {_fmt(_mean(s.leak))} against "
        f"{_fmt(_mean([p.baseline_leak for p in s.points if p.baseline_leak is not None]))} "
        "without a defense)"
        for s in flagged
    )
    return (
        '<p class="verdict warn">The attack budget is too small to rank defenses: under '
        f"{names} the attack rebuilt more than it did from the undefended update of the same "
        f"batches, so the budget, not the defense, decided. Raise {options} in the spec and "
        "run the sweep again before ranking.</p>"
    )


def _range(values: list[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    if min(values) == max(values):
        return f"{mean:.3f} (in each of {len(values)} runs)"
    return f"{mean:.3f} (range {min(values):.3f} to {max(values):.3f} over {len(values)} runs)"


def _run_text(run: StoredRun) -> str:
    data = run.config.get("data", {})
    parts = [f"run {run.run_id}", f"seed {run.config.get('seed', 0)}"]
    if data.get("offset") is not None:
        parts.append(f"batch offset {data['offset']}")
    return ", ".join(parts)


def _setting_line(s: Setting) -> str | None:
    point = representative(s)
    if point is None:
        return None
    judged = point.verdict
    bought = [p.protection for p in s.points if p.protection is not None]
    facts = [f"SSIM above the floor {_range(s.leak)}"]
    if bought:
        facts.append(
            f"protection against no defense {_range(bought)}, the baseline: {baseline_text(s)}"
        )
    if s.trainings:
        learned = "" if s.learned is not False else ", did not learn"
        facts.append(f"accuracy {s.utility.text()}{learned}")
    return (
        f'<p class="verdict {BADGES[judged.outcome]}">{escape(s.label)}: '
        f"<strong>{escape(judged.outcome)}</strong>; {escape('; '.join(facts))}. "
        f"The run shown below ({escape(_run_text(point.run))}): {escape(judged.reason)}</p>"
    )


def store_conclusion(settings: list[Setting]) -> str:
    """The answer first: each defense setting's verdict, and which one to choose (if any).

    Numbers are means over the runs with their range; each verdict reason quoted is the one run
    whose reconstructions are shown for that setting. Recommended is only a setting with no
    measurable leakage that learned; a "leaks" setting or one that did not learn never is.
    """
    lines = [line for s in settings if (line := _setting_line(s)) is not None]
    if not lines:
        return '<p class="verdict warn">No finished attack runs in this store yet.</p>'
    warning = _budget_warning(settings)
    if warning:
        lines.append(warning)
    idle = [s for s in settings if s.learned is False]
    if idle:
        lines.append(
            '<p class="hint">Did not learn (the accuracy interval reaches chance or the '
            f"majority-class rate; hollow in the plot, never on the front): "
            f"{escape(', '.join(s.label for s in idle))}.</p>"
        )
    safe = [s for s in settings if (v := setting_verdict(s)) and v.outcome == NO_MEASURABLE_LEAKAGE]
    chosen = [s for s in safe if s.learned is True]
    if chosen:
        best = max(chosen, key=lambda s: utility(s) or -1.0)
        lines.append(
            '<p class="next">Recommended: <strong>'
            f"{escape(best.label)}</strong>, the setting with no measurable leakage in every "
            f"attacked batch that keeps the highest test accuracy: {escape(best.utility.text())}"
            " (mean over seeds, their range, and the 95% interval over the held-out images).</p>"
        )
    elif safe and not any(s.trainings for s in safe):
        lines.append(
            '<p class="next">No training runs: accuracy of the safe settings is unknown.</p>'
        )
    else:
        why = (
            "the settings with no measurable leakage ("
            + ", ".join(s.label for s in safe)
            + ") did not learn"
            if safe
            else "no setting showed no measurable leakage"
        )
        lines.append(f'<p class="next">No setting is recommended: {escape(why)}.</p>')
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
                '<p class="hint">One point per defense setting; leakage from the strongest '
                "attack in the store for it (mean over seeds and batches, vertical bars min-max), "
                "as SSIM above the stronger of the blank-image and prior-image floors; horizontal "
                "bars: the accuracy's 95% interval over the held-out images (the widest over "
                "seeds); hollow: did not learn; the red-edged star is no defense; ringed (dashed "
                "line between): the Pareto front of the settings that learned and do not leak."
                "</p>"
            )
        parts.append(ranking_table(settings, front))
        curves = curves_plot(settings)
        if curves is not None:
            parts.append("<h3>Accuracy per round</h3>" + _png(curves, "accuracy per round"))
        parts.append(
            "<h3>Reconstructions per defense</h3>"
            '<p class="hint">Each from the run its verdict above is quoted from, with that '
            "run's own numbers.</p>"
        )
        for s in settings:
            point = representative(s)
            grid = _best_grid(store, point.run) if point else None
            if point is not None and grid:
                m = point.run.metrics
                parts.append(
                    f"<h4>{escape(s.label)} ({escape(_run_text(point.run))}): SSIM "
                    f"{_fmt(m.get('ssim'))}, floor {_fmt(floor_of(m, 'ssim'))}, PSNR "
                    f"{_fmt(m.get('psnr'))} dB, floor {_fmt(floor_of(m, 'psnr'))} dB; "
                    f"{escape(point.verdict.outcome)}</h4>"
                    + _png(grid, f"reconstructions under {s.label}")
                )
    return "\n".join(parts)


RANKING_HEADERS = (
    "rank",
    "defense",
    "accuracy (95% CI)",
    "AUC (95% CI)",
    "learned",
    "epsilon",
    "bits/raw",
    "SSIM above floor",
    "protection vs none",
    "baseline verdict",
    "re-id rate",
    "strongest attack",
    "verdict",
)


def ranking_table(settings: list[Setting], front: list[str]) -> str:
    """Front first, then the settings that do not leak and learned, then by leakage."""

    def order(s: Setting) -> tuple[bool, bool, bool, float]:
        leaks = (v := setting_verdict(s)) is not None and v.outcome == LEAKS
        return (s.key not in front, leaks, s.learned is False, _mean(s.leak) or 0.0)

    rows = []
    for rank, s in enumerate(sorted(settings, key=order), 1):
        learned = {True: "yes", False: "no", None: "-"}[s.learned]
        flag = " (budget too small)" if budget_too_small(s) else ""
        cells = (
            rank,
            escape(s.label) + (" <b>(front)</b>" if s.key in front else ""),
            escape(s.utility.text()),
            escape(s.utility.text("auc")),
            learned,
            _fmt(epsilon(s)),
            _fmt(bits_ratio(s)),
            escape(_range(s.leak)),
            _fmt(protection(s)) + flag,
            escape(baseline_text(s)),
            _fmt(_mean(s.reid)),
            escape(s.strongest or "-"),
            escape(_verdict_text(s)),
        )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in RANKING_HEADERS)
    return (
        f'<table class="ranking sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
