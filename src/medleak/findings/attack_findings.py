"""Findings 1-5 (single attacks on one update): each a function from stored runs to outcomes.

Every function takes the finished attack runs of its spec, splits them by data source (phantoms,
X-ray sample) and decides the published claim against the criterion stated in the catalog,
from the numbers alone. A decision says which numbers it rests on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from medleak.defenses.spec import describe_chain
from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.outcome import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    Outcome,
    Panel,
    Series,
    cell,
)
from medleak.findings.stats import (
    Summary,
    falls,
    finished,
    get,
    group,
    is_analytic,
    leak,
    source_of,
    spearman,
    summarise,
    summarise_metric,
)

#: SSIM above the floor that counts as a real difference (the verdict's SSIM margin).
MARGIN = 0.05
#: Finding 1: "almost exactly" means at least this PSNR (dB), on most seeds.
DLG_PSNR = 30.0


def by_source(runs: Sequence[StoredRun]) -> dict[str, list[StoredRun]]:
    return {str(k): v for k, v in group(finished(runs), source_of).items()}


def attack_label(run: StoredRun) -> str:
    """A short name for the attack variant a run used (preset, analytic, aware, BN terms)."""
    attack = run.config.get("attack", {})
    name = str(attack.get("name", "?")).upper()
    if attack.get("preset"):
        return f"{name} ({attack['preset']})"
    parts = []
    if attack.get("analytic") is False:
        parts.append("no analytic stage")
    if attack.get("aware") is False:
        parts.append("unaware")
    if attack.get("bn_statistics") is not None:
        parts.append("BN statistics " + ("on" if attack["bn_statistics"] else "off"))
    return f"{name} ({', '.join(parts)})" if parts else name


def _floor(runs: Sequence[StoredRun]) -> str:
    ssim = summarise(r.metrics.get("blank_ssim") for r in runs)
    psnr = summarise(r.metrics.get("blank_psnr") for r in runs)
    return f"blank-image floor SSIM {cell(ssim)}, PSNR {cell(psnr, 1)} dB"


def finding_1(runs: Sequence[StoredRun]) -> list[Outcome]:
    """DLG on its sigmoid LeNet at batch 1: PSNR >= 30 dB on most seeds."""
    out = []
    for source, members in by_source(runs).items():
        attacks = group(members, attack_label)
        rows, series_stats, names = [], [], []
        for name, group_runs in sorted(attacks.items()):
            psnrs = [r.metrics.get("psnr") for r in group_runs]
            hits = sum(1 for p in psnrs if isinstance(p, int | float) and p >= DLG_PSNR)
            psnr = summarise(psnrs)
            rows.append(
                [
                    str(name),
                    cell(psnr, 1),
                    cell(summarise_metric(group_runs, lambda m: m.get("ssim"))),
                    f"{hits}/{len(group_runs)}",
                ]
            )
            if psnr is not None:
                names.append(str(name))
                series_stats.append(psnr)
        dlg = [r for r in members if r.config.get("attack", {}).get("name") == "dlg"]
        psnrs = [r.metrics.get("psnr") for r in dlg]
        hits = sum(1 for p in psnrs if isinstance(p, int | float) and p >= DLG_PSNR)
        if not dlg:
            verdict, reason = INCONCLUSIVE, "no DLG run finished"
        else:
            verdict = AGREES if hits * 2 > len(dlg) else DISAGREES
            reason = (
                f"DLG reached {DLG_PSNR:.0f} dB on {hits} of {len(dlg)} seeds "
                f"(PSNR {cell(summarise(psnrs), 1)} dB; {_floor(dlg)})"
            )
        panel = Panel(
            source,
            "attack",
            "PSNR (dB)",
            [Series("mean ± sd over seeds", list(range(len(names))), series_stats)],
            categories=names,
            hline=DLG_PSNR,
            hline_label=f"{DLG_PSNR:.0f} dB",
        )
        headers = ["attack", "PSNR (dB)", "SSIM", f"seeds >= {DLG_PSNR:.0f} dB"]
        out.append(Outcome(source, verdict, reason, headers, rows, panel))
    return out


def _series(
    runs: Sequence[StoredRun], x: Callable[[StoredRun], float]
) -> tuple[list[float], list[Summary]]:
    xs, stats = [], []
    for value, members in sorted(group(runs, x).items()):  # type: ignore[type-var]
        s = summarise(leak(r.metrics) for r in members)
        if s is not None:
            xs.append(float(value))  # type: ignore[arg-type]
            stats.append(s)
    return xs, stats


def _model(run: StoredRun) -> str:
    return str(run.config.get("model", {}).get("name"))


def finding_2(runs: Sequence[StoredRun]) -> list[Outcome]:
    """Leakage falls with the batch for every optimisation attack that leaks at its smallest."""
    out = []
    for source, members in by_source(runs).items():
        lines = group(members, lambda r: (_model(r), attack_label(r), is_analytic(r)))
        panel = Panel(source, "batch size", "SSIM above the blank floor", xlog=True)
        batches = sorted({int(r.config["data"]["batch_size"]) for r in members})
        rows, falling, flat, optimisation = [], [], [], []
        analytic_text = []
        for (model, name, analytic), group_runs in sorted(lines.items()):
            xs, stats = _series(group_runs, lambda r: r.config["data"]["batch_size"])
            label = f"{model}, {name}" + (" [analytic]" if analytic else "")
            panel.series.append(Series(label, xs, stats))
            down = falls(xs, [s.mean for s in stats], MARGIN)
            rho = spearman(xs, [s.mean for s in stats])
            at = dict(zip(xs, stats, strict=True))
            rows.append(
                [label]
                + [cell(at.get(float(b))) for b in batches]
                + ["-" if rho is None else f"{rho:+.2f}"]
            )
            if analytic:
                analytic_text.append(
                    f"the analytic stage ({model}) {'falls' if down else 'does not fall'} "
                    f"({_ends(xs, stats)})"
                )
                continue
            if len(xs) < 2:
                flat.append(f"{label} (one batch size only: {_ends(xs, stats)})")
                continue
            if stats[0].mean < MARGIN:
                flat.append(f"{label} ({_ends(xs, stats)})")
                continue
            optimisation.append(label)
            if down:
                falling.append(label)
        not_falling = [x for x in optimisation if x not in falling]
        if not optimisation:
            verdict = INCONCLUSIVE
            reason = "no optimisation attack leaks at its smallest batch over two or more batch "
            reason += "sizes: " + ("; ".join(flat) if flat else "no optimisation attack finished")
        else:
            verdict = AGREES if not not_falling else DISAGREES
            reason = (
                f"{len(falling)} of {len(optimisation)} optimisation attacks that leak at the "
                f"smallest batch fall with the batch size (rank correlation <= -0.5 and at least "
                f"{MARGIN} lower at the largest batch)"
            )
            if not_falling:
                reason += "; not falling: " + ", ".join(
                    f"{n} ({_ends(*_pick(panel, n))})" for n in not_falling
                )
            if flat:
                reason += "; not judged (at the floor or one batch size): " + "; ".join(flat)
        if analytic_text:
            reason += "; " + "; ".join(analytic_text)
        headers = ["model, attack"] + [f"batch {b}" for b in batches] + ["rank corr."]
        out.append(Outcome(source, verdict, reason, headers, rows, panel))
    return out


def _pick(panel: Panel, label: str) -> tuple[list[float], list[Summary]]:
    for s in panel.series:
        if s.label == label:
            return s.xs, s.stats
    return [], []


def _ends(xs: Sequence[float], stats: Sequence[Summary]) -> str:
    if not xs:
        return "no runs"
    return (
        f"{stats[0].mean:.2f} at {xs[0]:g}, {stats[-1].mean:.2f} at {xs[-1]:g}"
        if len(xs) > 1
        else f"{stats[0].mean:.2f} at {xs[0]:g}"
    )


def finding_3(runs: Sequence[StoredRun]) -> list[Outcome]:
    """FedAvg: leakage falls with tau x lr (rank correlation over the settings) for each attack."""
    out = []
    for source, members in by_source(runs).items():
        panel = Panel(source, "local steps x local learning rate", "SSIM above the blank floor")
        panel.xlog = True
        rows, agree, disagree, flat = [], [], [], []
        for name, group_runs in sorted(group(members, attack_label).items()):
            product = group(
                group_runs,
                lambda r: (get(r.config, "fl.local_steps"), get(r.config, "fl.local_lr")),
            )
            points = []
            for (tau, lr), setting in sorted(product.items()):
                s = summarise(leak(r.metrics) for r in setting)
                if s is not None:
                    points.append((float(tau) * float(lr), tau, lr, s))
                    rows.append([str(name), str(tau), f"{lr:g}", f"{tau * lr:g}", cell(s)])
            points.sort(key=lambda p: (p[0], p[1]))
            xs = [p[0] for p in points]
            stats = [p[3] for p in points]
            panel.series.append(Series(str(name), xs, stats))
            if not points or max(s.mean for s in stats) < MARGIN:
                flat.append(str(name))
                continue
            rho = spearman(xs, [s.mean for s in stats])
            drop = stats[0].mean - stats[-1].mean
            text = f"{name}: rank correlation {rho if rho is None else round(rho, 2)}, "
            text += (
                f"{stats[0].mean:.2f} at tau x lr {xs[0]:g} -> {stats[-1].mean:.2f} at {xs[-1]:g}"
            )
            (agree if rho is not None and rho <= -0.5 and drop >= MARGIN else disagree).append(text)
        if not agree and not disagree:
            verdict, reason = INCONCLUSIVE, "no attack leaks in any setting"
        else:
            verdict = DISAGREES if disagree else AGREES
            reason = "; ".join(agree + disagree)
            if flat:
                reason += "; at the floor everywhere: " + ", ".join(flat)
        headers = ["attack", "tau", "local lr", "tau x lr", "SSIM above floor"]
        out.append(Outcome(source, verdict, reason, headers, rows, panel))
    return out


def finding_4(runs: Sequence[StoredRun]) -> list[Outcome]:
    """BatchNorm: with the statistics on, leakage is above off by at least MARGIN for an attack."""
    out = []
    for source, members in by_source(runs).items():
        rows, names, stats_list = [], [], []
        gains = []
        bn = [r for r in members if _model(r) == "resnet18"]
        reference = [r for r in members if _model(r) != "resnet18"]
        for attack, group_runs in sorted(group(bn, lambda r: r.config["attack"]["name"]).items()):
            by_switch = group(group_runs, lambda r: bool(r.config["attack"].get("bn_statistics")))
            off = summarise(leak(r.metrics) for r in by_switch.get(False, []))
            on = summarise(leak(r.metrics) for r in by_switch.get(True, []))
            for switch, s in (("off", off), ("on", on)):
                if s is not None:
                    names.append(f"{str(attack).upper()} BN stats {switch}")
                    stats_list.append(s)
            if off is not None and on is not None:
                gains.append((str(attack).upper(), on.mean - off.mean, off, on))
                rows.append(
                    [str(attack).upper(), cell(off), cell(on), f"{on.mean - off.mean:+.3f}"]
                )
        for name, group_runs in group(
            reference, lambda r: f"{_model(r)}, {attack_label(r)}"
        ).items():
            s = summarise(leak(r.metrics) for r in group_runs)
            if s is not None:
                names.append(f"{name} (no BatchNorm)")
                stats_list.append(s)
                rows.append([f"{name} (no BatchNorm)", cell(s), "", ""])
        if not gains:
            verdict, reason = INCONCLUSIVE, "no attack ran with the statistics both off and on"
        else:
            best = max(gains, key=lambda g: g[1])
            verdict = AGREES if best[1] >= MARGIN else DISAGREES
            reason = "; ".join(
                f"{n}: off {cell(off)}, on {cell(on)} (gain {gain:+.3f})"
                for n, gain, off, on in gains
            )
            reason += f"; margin {MARGIN} SSIM above floor; {_floor(bn)}"
        panel = Panel(
            source,
            "",
            "SSIM above the blank floor",
            [Series("mean ± sd over seeds", list(range(len(names))), stats_list)],
            categories=names,
        )
        headers = ["attack", "BN statistics off", "on", "on - off"]
        out.append(Outcome(source, verdict, reason, headers, rows, panel))
    return out


def _defense(run: StoredRun) -> str:
    return describe_chain(run.config.get("defenses", []))


def finding_5(runs: Sequence[StoredRun]) -> list[Outcome]:
    """Aware ROG keeps >= MARGIN more SSIM above floor than the unaware attack, on average and in
    most obfuscated settings."""
    out = []
    for source, members in by_source(runs).items():
        defenses = sorted({_defense(r) for r in members}, key=lambda d: (d != "none", d))
        variants = sorted({attack_label(r) for r in members})
        table: dict[tuple[str, str], Summary] = {}
        for (d, v), group_runs in group(members, lambda r: (_defense(r), attack_label(r))).items():
            s = summarise(leak(r.metrics) for r in group_runs)
            if s is not None:
                table[(str(d), str(v))] = s
        panel = Panel(source, "obfuscation", "SSIM above the blank floor", categories=defenses)
        for v in variants:
            xs = [float(i) for i, d in enumerate(defenses) if (d, v) in table]
            panel.series.append(Series(v, xs, [table[(defenses[int(i)], v)] for i in xs]))
        rows = [[d] + [cell(table.get((d, v))) for v in variants] for d in defenses]
        aware, unaware = "ROG", "ROG (unaware)"
        obfuscated = [
            d for d in defenses if d != "none" and (d, aware) in table and (d, unaware) in table
        ]
        if not obfuscated:
            verdict, reason = INCONCLUSIVE, "no obfuscated setting ran both aware and unaware"
        else:
            diffs = [table[(d, aware)].mean - table[(d, unaware)].mean for d in obfuscated]
            wins = sum(1 for x in diffs if x > 0)
            mean_diff = sum(diffs) / len(diffs)
            verdict = AGREES if mean_diff >= MARGIN and wins * 2 > len(diffs) else DISAGREES
            reason = (
                f"aware minus unaware ROG, SSIM above floor: {mean_diff:+.3f} on average over "
                f"{len(obfuscated)} obfuscated settings, aware ahead in {wins} of them ("
                + ", ".join(f"{d} {x:+.3f}" for d, x in zip(obfuscated, diffs, strict=True))
                + f"); needed {MARGIN:+.2f} and a majority"
            )
            core = [d for d in obfuscated if (d, "ROG (rog-core)") in table]
            if core:
                core_diff = sum(
                    table[(d, aware)].mean - table[(d, "ROG (rog-core)")].mean for d in core
                ) / len(core)
                reason += f"; aware minus the reference ROG core: {core_diff:+.3f} on average"
            if ("none", aware) in table:
                reason += f"; no defense: {table[('none', aware)].mean:.2f}"
        headers = ["obfuscation"] + variants
        out.append(Outcome(source, verdict, reason, headers, rows, panel))
    return out


ANALYSES: dict[int, Callable[[Sequence[StoredRun]], list[Outcome]]] = {
    1: finding_1,
    2: finding_2,
    3: finding_3,
    4: finding_4,
    5: finding_5,
}
