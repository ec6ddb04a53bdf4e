"""Finding 6: the published claim, medleak's criterion, the analysis that decides it
from a store and the sentence that explains a disagreement."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.finding import Finding
from medleak.findings.outcome import AGREES, DISAGREES, INCONCLUSIVE, Outcome, Panel, Series, cell
from medleak.findings.stats import finished, group, leak, source_of, summarise
from medleak.findings.training_runs import (
    ACCURACY_MARGIN,
    accuracy_of,
    defense_label,
    noise_multiplier,
)
from medleak.metrics.verdict import NO_MEASURABLE_LEAKAGE


def analyse(runs: Sequence[StoredRun]) -> list[Outcome]:
    """The smallest z whose attacks find no measurable leakage on most seeds costs accuracy."""
    out = []
    attacks, trainings = finished(runs), finished(runs, "train")
    for source, members in group(attacks, source_of).items():
        train_of = group(
            [t for t in trainings if source_of(t) == source], lambda t: defense_label(t.config)
        )
        settings = group(members, lambda r: defense_label(r.config))
        ordered = sorted(settings, key=lambda d: noise_multiplier(str(d)))
        rows, leaks, accs, xs = [], [], [], []
        quiet: list[str] = []
        for d in ordered:
            group_runs = settings[d]
            s_leak = summarise(leak(r.metrics) for r in group_runs)
            s_acc = accuracy_of(train_of.get(d, []))
            silent = sum(1 for r in group_runs if r.metrics.get("verdict") == NO_MEASURABLE_LEAKAGE)
            eps = summarise(t.metrics.get("epsilon") for t in train_of.get(d, []))
            rows.append(
                [
                    str(d),
                    cell(s_leak),
                    f"{silent}/{len(group_runs)}",
                    cell(s_acc, 3),
                    "-" if eps is None else f"{eps.mean:.3g}",
                ]
            )
            if s_leak is not None and s_acc is not None:
                xs.append(noise_multiplier(str(d)))
                leaks.append(s_leak)
                accs.append(s_acc)
            if silent * 2 > len(group_runs):
                quiet.append(str(d))
        panel = Panel(source, "DP noise multiplier z (0 = no defense)", "mean ± sd over seeds")
        panel.series = [Series("SSIM above floor", xs, leaks), Series("test accuracy", xs, accs)]
        base = accuracy_of(train_of.get("none", []))
        stopped = [d for d in quiet if d != "none"]
        if base is None or not any(d != "none" for d in ordered):
            verdict, reason = INCONCLUSIVE, "no no-defense training or no DP setting finished"
        elif not stopped:
            verdict = DISAGREES
            reason = (
                "no DP setting reached 'no measurable leakage' on most seeds ("
                + "; ".join(f"{r[0]}: SSIM above floor {r[1]}, silent {r[2]}" for r in rows)
                + ")"
            )
        else:
            first = min(stopped, key=noise_multiplier)
            acc = accuracy_of(train_of.get(first, []))
            drop = None if acc is None else base.mean - acc.mean
            verdict = AGREES if drop is not None and drop >= ACCURACY_MARGIN else DISAGREES
            reason = (
                f"{first} is the weakest setting with no measurable leakage on most seeds; "
                f"accuracy {cell(acc, 3)} against {cell(base, 3)} without a defense "
                f"(drop {'-' if drop is None else f'{drop:+.3f}'}, needed {ACCURACY_MARGIN})"
            )
        headers = ["defense", "SSIM above floor", "no measurable leakage", "accuracy", "epsilon"]
        out.append(Outcome(str(source), verdict, reason, headers, rows, panel))
    return out


def why(outcome: Outcome, runs: Sequence[StoredRun]) -> str:
    trainings = [r for r in finished(runs, "train")]
    chance = summarise(t.metrics.get("chance") for t in trainings)
    acc = summarise(t.metrics.get("accuracy") for t in trainings)
    return (
        "the federated LeNet on 32 px phantoms reaches "
        f"{'-' if acc is None else f'{acc.mean:.2f}'} mean accuracy over all settings "
        f"(majority class {'-' if chance is None else f'{chance.mean:.2f}'}) in a short training, "
        "so an accuracy cost has little room to show; the per-example clip of 1 with batch 2 "
        "makes even small z a large relative noise on the attacked update"
    )


FINDING = Finding(
    6,
    "Enough DP noise stops reconstruction, at an accuracy cost",
    "Differentially private SGD with enough noise prevents gradient inversion, and the noise "
    "costs model accuracy.",
    "Abadi et al., Deep Learning with Differential Privacy, CCS 2016; Zhu et al. 2019 on noise",
    "DP-SGD (clip 1, noise multiplier z = 0.5, 1, 2) in the attacked update (ROG's LeNet, "
    "FedSGD, 32 px, batch 2, ROG) and in every local step of a 4-client, 6-round FedAvg "
    "(2 of 4 clients per round, 30 local steps) "
    "training of the same setting",
    "the weakest DP setting whose attacks get the verdict 'no measurable leakage' on most "
    "seeds has a mean test accuracy at least 0.025 below no defense",
    analyse,
    why,
)
