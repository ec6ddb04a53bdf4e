"""Findings 6-8 (federated training): accuracy from the trainings, leakage from the attacks.

Each function takes every finished run of its spec (trainings and attacks) and decides the claim
from the numbers, like the attack findings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from medleak.defenses.spec import describe_chain
from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.attack_findings import MARGIN, attack_label
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
    finished,
    get,
    group,
    leak,
    source_of,
    summarise,
)
from medleak.metrics.verdict import NO_MEASURABLE_LEAKAGE

#: An accuracy change smaller than this (2 of 80 held-out phantoms is 0.025) is not a cost.
ACCURACY_MARGIN = 0.025


def _defense(config: dict) -> str:
    return describe_chain(config.get("defenses", []))


def noise_multiplier(defense: str) -> float:
    """z of the ``dp`` stage of a chain (0 for none), read through the defense spec parser."""
    from medleak.defenses import resolve_spec

    for stage in defense.split(" -> "):
        if not stage.startswith("dp"):
            continue
        try:
            resolved = resolve_spec(stage)
        except Exception:  # a spec this version no longer parses: ordered first
            return 0.0
        if resolved["name"] == "dp":
            return float(resolved["params"]["z"])
    return 0.0


def _accuracy(trainings: Sequence[StoredRun]) -> Summary | None:
    return summarise(t.metrics.get("accuracy") for t in trainings)


def finding_6(runs: Sequence[StoredRun]) -> list[Outcome]:
    """The smallest z whose attacks find no measurable leakage on most seeds costs accuracy."""
    out = []
    attacks, trainings = finished(runs), finished(runs, "train")
    for source, members in group(attacks, source_of).items():
        train_of = group(
            [t for t in trainings if source_of(t) == source], lambda t: _defense(t.config)
        )
        settings = group(members, lambda r: _defense(r.config))
        ordered = sorted(settings, key=lambda d: noise_multiplier(str(d)))
        rows, leaks, accs, xs = [], [], [], []
        quiet: list[str] = []
        for d in ordered:
            group_runs = settings[d]
            s_leak = summarise(leak(r.metrics) for r in group_runs)
            s_acc = _accuracy(train_of.get(d, []))
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
        base = _accuracy(train_of.get("none", []))
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
            acc = _accuracy(train_of.get(first, []))
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


def finding_7(runs: Sequence[StoredRun]) -> list[Outcome]:
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
            start, late = _best(table, names, 0), _best(table, names, rounds[-1])
            assert start is not None and late is not None
            verdict = AGREES if late[1] <= start[1] - MARGIN else DISAGREES
            middle = "; ".join(
                f"round {r}: {b[1]:.2f} ({b[0]})"
                for r in rounds[1:-1]
                if (b := _best(table, names, r))
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


def finding_8(runs: Sequence[StoredRun]) -> list[Outcome]:
    """The accuracy drop of each defense (against none, same partition) is larger under non-IID."""
    out = []
    for source, members in group(finished(runs, "train"), source_of).items():
        table: dict[tuple[str, str], Summary] = {}
        for (part, d), group_runs in group(
            members, lambda t: (str(get(t.config, "train.partition")), _defense(t.config))
        ).items():
            s = _accuracy(group_runs)
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


def _best(
    table: dict[tuple[str, int], Summary], names: list[str], r: int
) -> tuple[str, float] | None:
    """The strongest attack at round r (the server uses its best attack)."""
    values = [(n, table[(n, r)].mean) for n in names if (n, r) in table]
    return max(values, key=lambda v: v[1]) if values else None


ANALYSES: dict[int, Callable[[Sequence[StoredRun]], list[Outcome]]] = {
    6: finding_6,
    7: finding_7,
    8: finding_8,
}
