"""Finding 7: the published claim, medleak's criterion, the analysis that decides it
from a store and the sentence that explains a disagreement."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.attack_runs import MARGIN, attack_label
from medleak.findings.explain import of_source
from medleak.findings.finding import Finding
from medleak.findings.outcome import AGREES, DISAGREES, INCONCLUSIVE, Outcome, Panel, Series, cell
from medleak.findings.stats import Summary, finished, get, group, leak, source_of, summarise
from medleak.findings.training_runs import best


def analyse(runs: Sequence[StoredRun]) -> list[Outcome]:
    """The strongest attack leaks at least MARGIN less at the last round than at round 0."""
    out = []
    for source, members in group(finished(runs), source_of).items():
        members = [r for r in members if get(r.config, "model.round") is not None]
        panel = Panel(str(source), "training round attacked", "SSIM above the blank floor")
        table: dict[tuple[str, int], Summary] = {}
        for (name, rnd), group_runs in group(
            members, lambda r: (attack_label(r), int(get(r.config, "model.round")))
        ).items():
            s = summarise(leak(r.metrics) for r in group_runs)
            if s is not None:
                table[(str(name), int(rnd))] = s
        rounds = sorted({k[1] for k in table})
        names = sorted({k[0] for k in table})
        for n in names:
            xs = [float(r) for r in rounds if (n, r) in table]
            panel.series.append(Series(n, xs, [table[(n, int(x))] for x in xs]))
        rows = [[str(r)] + [cell(table.get((n, r))) for n in names] for r in rounds]

        if len(rounds) < 2 or rounds[0] != 0:
            verdict, reason = INCONCLUSIVE, "needs round 0 and a later round"
        else:
            start, late = best(table, names, 0), best(table, names, rounds[-1])
            assert start is not None and late is not None
            verdict = AGREES if late[1] <= start[1] - MARGIN else DISAGREES
            middle = "; ".join(
                f"round {r}: {b[1]:.2f} ({b[0]})"
                for r in rounds[1:-1]
                if (b := best(table, names, r))
            )
            reason = (
                f"strongest attack at round 0: {start[1]:.2f} ({start[0]}); at round {rounds[-1]}: "
                f"{late[1]:.2f} ({late[0]})"
                + (f"; {middle}" if middle else "")
                + f"; needed {MARGIN} lower"
            )
        headers = ["round"] + names
        out.append(Outcome(str(source), verdict, reason, headers, rows, panel))
    return out


def why(outcome: Outcome, runs: Sequence[StoredRun]) -> str:
    trainings = [r for r in finished(runs, "train")]
    acc = summarise(t.metrics.get("accuracy") for t in trainings)
    chance = summarise(t.metrics.get("chance") for t in trainings)
    members = of_source(runs, outcome.source)
    rounds = sorted({int(get(r.config, "model.round")) for r in members})
    text = (
        "the trained model reaches "
        f"{'-' if acc is None else f'{acc.mean:.2f}'} test accuracy (majority class "
        f"{'-' if chance is None else f'{chance.mean:.2f}'}) after a short training, far from "
        "convergence"
    )
    if len(rounds) >= 2:
        first = summarise(
            leak(r.metrics) for r in members if get(r.config, "model.round") == rounds[0]
        )
        last = summarise(
            leak(r.metrics) for r in members if get(r.config, "model.round") == rounds[-1]
        )
        if first is not None and last is not None:
            text += (
                f"; SSIM above floor goes from {first.mean:.2f} ± {first.sd:.2f} at round "
                f"{rounds[0]} to {last.mean:.2f} ± {last.sd:.2f} at round {rounds[-1]}, a change "
                f"of {last.mean - first.mean:+.2f}, inside one standard deviation over 3 seeds"
                if abs(last.mean - first.mean) < max(first.sd, last.sd)
                else f"; SSIM above floor goes from {first.mean:.2f} at round {rounds[0]} to "
                f"{last.mean:.2f} at round {rounds[-1]}"
            )
    return (
        text + "; ROG's analytic stage on the LeNet reads the features from the wide layer's "
        "gradient, which does not depend on the weights being random, and the literature itself "
        "is mixed"
    )


FINDING = Finding(
    7,
    "Trained models leak less than freshly initialised ones",
    "Gradients of a trained model leak less than those of a randomly initialised one (the "
    "literature is mixed).",
    "Huang et al., Evaluating Gradient Inversion Attacks and Defenses in Federated Learning "
    "(GradAttack), NeurIPS 2021",
    "the global model of a 4-client FedAvg training (no defense) at round 0, 1 and 6, ROG's "
    "LeNet, FedSGD, 32 px, batch 2; ROG (50 iterations)",
    "the strongest attack's mean SSIM above floor at the last round is at least 0.05 below round 0",
    analyse,
    why,
)
