"""Finding 8: the published claim, medleak's criterion, the analysis that decides it
from a store and the sentence that explains a disagreement."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.finding import Finding
from medleak.findings.outcome import AGREES, DISAGREES, INCONCLUSIVE, Outcome, Panel, Series, cell
from medleak.findings.stats import Summary, finished, get, group, source_of, summarise
from medleak.findings.training_runs import ACCURACY_MARGIN, accuracy_of, defense_label


def analyse(runs: Sequence[StoredRun]) -> list[Outcome]:
    """The accuracy drop of each defense (against none, same partition) is larger under non-IID."""
    out = []
    for source, members in group(finished(runs, "train"), source_of).items():
        table: dict[tuple[str, str], Summary] = {}
        for (part, d), group_runs in group(
            members, lambda t: (str(get(t.config, "train.partition")), defense_label(t.config))
        ).items():
            s = accuracy_of(group_runs)
            if s is not None:
                table[(str(part), str(d))] = s
        partitions = sorted({k[0] for k in table}, key=lambda p: (p != "iid", p))
        defenses = sorted({k[1] for k in table}, key=lambda d: (d != "none", d))
        panel = Panel(str(source), "defense", "test accuracy", categories=defenses)
        for p in partitions:
            xs = [float(i) for i, d in enumerate(defenses) if (p, d) in table]
            panel.series.append(Series(p, xs, [table[(p, defenses[int(x)])] for x in xs]))
        rows = [[d] + [cell(table.get((p, d)), 3) for p in partitions] for d in defenses]
        skewed = [p for p in partitions if p != "iid"]
        compared = []
        if "iid" in partitions and skewed:
            p = skewed[0]
            for d in defenses:
                keys = [("iid", "none"), ("iid", d), (p, "none"), (p, d)]
                if d != "none" and all(k in table for k in keys):
                    drop_iid = table[("iid", "none")].mean - table[("iid", d)].mean
                    drop_skew = table[(p, "none")].mean - table[(p, d)].mean
                    compared.append((d, drop_iid, drop_skew))
        chance = summarise(t.metrics.get("chance") for t in members)
        stuck = (
            skewed
            and (skewed[0], "none") in table
            and chance is not None
            and table[(skewed[0], "none")].mean <= chance.mean + ACCURACY_MARGIN
        )
        if not compared:
            verdict, reason = (
                INCONCLUSIVE,
                "needs iid and non-IID trainings with and without defenses",
            )
        elif stuck:
            # an undefended training at the majority-class rate leaves nothing for a defense to
            # cost: the comparison cannot tell either way
            verdict = INCONCLUSIVE
            reason = (
                f"the undefended non-IID training stays at "
                f"{table[(skewed[0], 'none')].mean:.3f} accuracy, the majority-class rate "
                f"({chance.mean:.2f}) + {ACCURACY_MARGIN} at most, so no defense can cost it "
                "accuracy; drops against no defense, IID vs non-IID: "
                + "; ".join(f"{d}: {a:+.3f} vs {b:+.3f}" for d, a, b in compared)
            )
        else:
            larger = sum(1 for _, a, b in compared if b > a)
            mean_gap = sum(b - a for _, a, b in compared) / len(compared)
            verdict = (
                AGREES if larger * 2 > len(compared) and mean_gap >= ACCURACY_MARGIN else DISAGREES
            )
            reason = (
                "accuracy drop against no defense, IID vs non-IID: "
                + "; ".join(f"{d}: {a:+.3f} vs {b:+.3f}" for d, a, b in compared)
                + f"; larger under non-IID for {larger} of {len(compared)} defenses, by "
                f"{mean_gap:+.3f} on average (needed a majority and {ACCURACY_MARGIN})"
            )
            if ("iid", "none") in table and (skewed[0], "none") in table:
                reason += (
                    f"; no-defense accuracy {cell(table[('iid', 'none')], 3)} IID, "
                    f"{cell(table[(skewed[0], 'none')], 3)} non-IID"
                )
        headers = ["defense"] + [f"accuracy, {p}" for p in partitions]
        out.append(Outcome(str(source), verdict, reason, headers, rows, panel))
    return out


def why(outcome: Outcome, runs: Sequence[StoredRun]) -> str:
    trainings = [r for r in finished(runs, "train")]
    chance = summarise(t.metrics.get("chance") for t in trainings)
    skewed = [
        t
        for t in trainings
        if get(t.config, "train.partition") != "iid" and not t.config.get("defenses")
    ]
    base = summarise(t.metrics.get("accuracy") for t in skewed)
    text = ""
    if base is not None and chance is not None and base.mean <= chance.mean + 0.025:
        text = (
            f"under the Dirichlet split the undefended training itself stays at "
            f"{base.mean:.3f} test accuracy, the majority-class rate ({chance.mean:.2f}): 6 "
            "rounds of 2 clients that each hold mostly one class do not learn here, so a defense "
            "has no accuracy left to cost; "
        )
    return text + (
        "with 4 clients, 6 short rounds and a held-out majority class of "
        f"{'-' if chance is None else f'{chance.mean:.2f}'}, accuracy differences of a few "
        "held-out images decide the comparison; Zhao et al. train to convergence on CIFAR-10 "
        "with 10 clients"
    )


FINDING = Finding(
    8,
    "Non-IID data raises the accuracy cost of a defense",
    "FedAvg loses accuracy on non-IID client data, so a defense that costs accuracy costs "
    "more there.",
    "Zhao et al., Federated Learning with Non-IID Data, 2018",
    "4-client, 6-round FedAvg (2 of 4 clients per round, 30 local steps) training of "
    "ROG's LeNet, 32 px, IID vs Dirichlet(alpha 0.1) "
    "class skew; no defense, `dp:c=1.0,z=2.0`, `topk:ratio=0.01`",
    "the accuracy drop against no defense is larger under non-IID for a majority of the "
    "defenses, and by >= 0.025 on average",
    analyse,
    why,
)
