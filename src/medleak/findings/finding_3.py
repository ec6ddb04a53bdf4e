"""Finding 3: the published claim, medleak's criterion, the analysis that decides it
from a store and the sentence that explains a disagreement."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.attack_runs import MARGIN, attack_label, by_source
from medleak.findings.explain import of_source
from medleak.findings.finding import Finding
from medleak.findings.outcome import AGREES, DISAGREES, INCONCLUSIVE, Outcome, Panel, Series, cell
from medleak.findings.stats import get, group, leak, spearman, summarise


def analyse(runs: Sequence[StoredRun]) -> list[Outcome]:
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


def why(outcome: Outcome, runs: Sequence[StoredRun]) -> str:
    members = of_source(runs, outcome.source)
    products = sorted(
        {
            float(get(r.config, "fl.local_steps")) * float(get(r.config, "fl.local_lr"))
            for r in members
        }
    )
    if not products:
        return ""
    return (
        f"tau x lr spans {products[0]:g} to {products[-1]:g}; the attacker unrolls the client's "
        "steps exactly and knows tau and lr, so a FedAvg update is a known function of the batch; "
        "Geiping et al. and Yue et al. report the fall for larger products and for attackers "
        "that model the local training only approximately"
    )


FINDING = Finding(
    3,
    "Leakage falls with more local steps and a larger local learning rate",
    "A FedAvg update built from several local steps at a larger learning rate leaks less than "
    "a single gradient.",
    "Geiping et al. 2020; Yue et al., Gradient Obfuscation Gives a False Sense of Security in "
    "Federated Learning, USENIX Security 2023",
    "FedAvg on ROG's LeNet, 32 px, batch 4, tau 1 / 5 / 10 local steps at lr 1e-4 and "
    "tau 5 / 10 at lr 1e-2 (tau 1 sends the gradient whatever the lr); "
    "ROG (exact unroll, 50 iterations)",
    "for each attack that leaks somewhere, the rank correlation of mean SSIM above floor with "
    "tau x lr is <= -0.5 and the largest tau x lr is at least 0.05 below the smallest",
    analyse,
    why,
)
