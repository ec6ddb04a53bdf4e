"""``medleak sweep``, ``train`` and ``results``: the parsers and what each command prints."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from medleak.cli.common import CHECK_HELP, EXIT_RUN_FAILED
from medleak.errors import ConfigError, RunFailed
from medleak.output_targets import claim_folder
from medleak.private_files import private_dir, redact_sources, write_private
from medleak.strict_json import non_finite, strict_json
from medleak.yaml_input import read_yaml

DEFAULT_MAX_RUNS = 10_000
TRAIN_FILE = "train.json"


def add_parsers(commands: Any) -> None:
    sweep = commands.add_parser("sweep", help="run a sweep spec into a SQLite store (resumable)")
    sweep.add_argument("spec", help="YAML sweep spec (base / grid / list / train)")
    sweep.add_argument("--store", required=True, help="SQLite store, e.g. results.db")
    sweep.add_argument("--workers", type=int, default=1, help="parallel runs (default 1)")
    sweep.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    sweep.add_argument("--backend", choices=["local", "ray"], default="local")
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    sweep.add_argument("--rerun", action="store_true", help="recompute other versions' runs")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base key")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument(
        "--max-runs",
        type=int,
        default=DEFAULT_MAX_RUNS,
        help=f"refuse a spec of more runs than this (default {DEFAULT_MAX_RUNS})",
    )
    sweep.add_argument("--check", action="store_true", help=CHECK_HELP)

    train = commands.add_parser("train", help="federated training under a defense chain")
    train.add_argument("--config", help="YAML: a run config, with an optional train: section")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. train.rounds=5")
    train.add_argument("--defense", action="append", metavar="SPEC", help="obfuscation (repeat)")
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--quiet", action="store_true", help="no per-round lines")
    train.add_argument("--force", action="store_true", help="replace a training already in --out")
    train.add_argument("--check", action="store_true", help=CHECK_HELP)

    results = commands.add_parser("results", help="a table of the runs in a store")
    results.add_argument("store", help="SQLite store ('medleak sweep', or a Flower audit)")
    results.add_argument("--where", action="append", metavar="KEY=VALUE", help="filter (repeat)")
    results.add_argument("--group-by", metavar="KEY", help="mean of the metrics per value")
    results.add_argument("--sort", metavar="KEY", help="sort by a key or metric")
    results.add_argument("--desc", action="store_true", help="with --sort: largest first")
    results.add_argument("--kind", choices=["attack", "train", "audit"], default=None)
    results.add_argument(
        "--csv",
        action="store_true",
        help="the finished runs (or, with --group-by, the groups) as CSV",
    )


def _progress_bar(total: int, quiet: bool) -> tuple[Any, Any]:
    from medleak.progress import Progress

    bar = Progress(total, "sweep", "run", quiet)
    counts = {"running": 0, "failed": 0, "done": 0}

    def progress(event: str, job: Any, result: dict[str, Any] | None) -> None:
        if event == "skipped":  # another sweep on the same store computed it meanwhile
            bar.update(1)
        elif event == "started":
            counts["running"] += 1
        elif event in ("finished", "failed", "retry"):
            if event != "retry" or counts["running"]:
                counts["running"] = max(0, counts["running"] - 1)
            if event != "retry":
                counts["done" if event == "finished" else "failed"] += 1
                bar.set_postfix(**counts)
                bar.update(1)
                return
        bar.set_postfix(**counts)

    return bar, progress


def command_sweep(args: argparse.Namespace) -> int:
    from medleak.experiments.sqlite_store import SweepStore
    from medleak.experiments.sweep import LocalBackend, plan_todo, run_sweep
    from medleak.experiments.sweep_spec import load_spec, parse_set

    if args.max_runs < 1:
        raise ConfigError(f"--max-runs must be >= 1, got {args.max_runs}")
    if not 1 <= args.threads <= 4096:
        raise ConfigError(f"--threads must be in [1, 4096], got {args.threads}")
    if not 1 <= args.workers <= 4096:
        raise ConfigError(f"--workers must be in [1, 4096], got {args.workers}")
    sweep = load_spec(args.spec, parse_set(args.set), args.max_runs)
    if args.check:
        print(f"{args.spec}: {len(sweep.attacks)} attack runs, {len(sweep.trainings)} trainings")
        return 0
    if args.backend == "ray":
        from medleak.experiments.ray_backend import RayBackend

        backend: Any = RayBackend(args.workers, args.threads, args.address)
    else:
        if args.address:
            raise ConfigError("--address needs --backend ray")
        backend = LocalBackend(args.workers, args.threads)
    with SweepStore(args.store) as store:
        from medleak.experiments.sweep import SweepSummary

        planned = SweepSummary()
        todo = len(plan_todo(sweep, store, args.rerun, planned))
        added = (
            f" (including {sweep.added_baselines} no-defense baseline run"
            f"{'s' if sweep.added_baselines != 1 else ''} the grid lacked: each defended point "
            "is judged against the same attack on its undefended update)"
            if sweep.added_baselines
            else ""
        )
        print(
            f"sweep {args.spec}: {len(sweep.attacks)} attack runs{added}, "
            f"{len(sweep.trainings)} trainings; {todo} to run, store {args.store}",
            flush=True,
        )
        if planned.migrated:
            print(
                f"{len(planned.migrated)} runs were stored under the run ids of an older "
                "medleak; re-keyed in place (same settings, same numbers), none recomputed",
                flush=True,
            )
        bar, progress = _progress_bar(todo, args.quiet)
        try:
            summary = run_sweep(sweep, store, backend, rerun=args.rerun, progress=progress)
        finally:
            bar.close()
    for line in summary.errors:  # a report of the sweep (stdout); stderr gets one line below
        print(f"failed: {line}")
    if summary.other_version:
        verb = "recomputed" if args.rerun else "kept (use --rerun to recompute)"
        print(f"{len(summary.other_version)} runs stored by another medleak version: {verb}")
    print(
        f"{summary.finished} finished, {summary.failed} failed, {summary.skipped} already in the "
        f"store; see 'medleak results {args.store}'"
    )
    if summary.failed:
        print(
            f"medleak sweep: run failed: {summary.failed} of {summary.total} runs failed "
            f"(recorded in {args.store})",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    return 0


def command_train(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from medleak.cli.common import check_threads, set_threads
    from medleak.defenses import build_chain
    from medleak.experiments.config import from_dict
    from medleak.experiments.run import model_for
    from medleak.experiments.sweep_spec import _set_dotted, check_run, parse_set
    from medleak.fl.training import TrainConfig, load_split, train_federated

    raw: dict[str, Any] = {}
    if args.config:
        raw = read_yaml(args.config, "config file") or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {args.config} must hold a mapping")
    for key, value in parse_set(args.set).items():
        _set_dotted(raw, key, value)
    if args.defense:
        raw["defenses"] = list(args.defense)
    train_raw = raw.pop("train", None) or {}
    config = from_dict(raw)
    train = TrainConfig()
    from medleak.experiments.config import _merge

    _merge(train, train_raw, "train.")
    train.check()
    check_threads(args.threads)
    chain = build_chain(config.defenses)
    out = Path(args.out)
    if args.check:
        check_run(config)
        print("the options are valid")
        return 0
    claim_folder(
        out, what="training", is_own=_holds_training, own_files=_training_files, force=args.force
    )
    set_threads(args.threads if args.threads is not None else config.threads)
    split = load_split(config.data.federation_spec(), config.seed, train.eval_split)
    model = model_for(config, split.classes)
    print(f"data: {split.description}")
    from medleak.progress import Progress

    rounds = Progress(train.rounds, "train", "round", args.quiet, lines=False)

    def progress(r: int, scores: dict[str, Any]) -> None:
        stop_if_diverged(r, scores)
        if r > 0:
            rounds.update(1)
        if not args.quiet:
            auc = "n/a" if scores["auc"] is None else f"{scores['auc']:.3f}"
            print(
                f"round {r}: accuracy {scores['accuracy']:.3f}, AUC {auc}, "
                f"loss {scores['loss']:.4f}",
                flush=True,
            )

    result = train_federated(model, split, chain, train, config.seed, progress=progress)
    diverged = non_finite(result.metrics, result.curves)
    if diverged:  # a training whose loss blew up is a failed run, never "final accuracy"
        raise RunFailed(f"the training diverged ({diverged}); lower train.local_lr")
    private_dir(out)
    record = {
        "config": config.to_dict(),
        "train": train.to_dict(),
        **result.metrics,
        "curves": result.curves,
    }
    write_private(out / TRAIN_FILE, strict_json(record).encode())
    for r, state in result.states.items():
        save_file(state, str(out / f"round-{r}.safetensors"))
        os.chmod(out / f"round-{r}.safetensors", 0o600)
    m = result.metrics
    eps = m["epsilon"]
    tail = "" if eps is None else f", epsilon {eps:.2f} (delta {m['delta']:g})"
    learned = "" if m["learned"] else "; did NOT learn: the interval reaches chance or majority"
    print(
        f"final accuracy {m['accuracy']:.3f} (95% CI {m['accuracy_ci_low']:.3f}-"
        f"{m['accuracy_ci_high']:.3f} over {m['test_images']} held-out images; chance "
        f"{m['chance_rate']:.3f}, majority class {m['majority_rate']:.3f}{learned}){tail}; "
        f"results in {out}/train.json"
    )
    return 0


def stop_if_diverged(round_: int, scores: dict[str, Any]) -> None:
    """Stop a training whose test loss is no longer finite (the evaluation reports it as None):
    it is a failed run (exit 3, status failed in a store), never a "final accuracy"."""
    if scores.get("loss") is None:
        raise RunFailed(
            f"the training diverged at round {round_} (its test loss is not finite); "
            "lower train.local_lr or train.server_lr"
        )


def _holds_training(folder: Path) -> bool:
    """A folder holds medleak's training when its ``train.json`` is a record ``train`` wrote."""
    try:
        record = json.loads((folder / TRAIN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"config", "train"} <= record.keys()


def _training_files(folder: Path) -> list[Path]:
    return [folder / TRAIN_FILE, *sorted(folder.glob("round-*.safetensors"))]


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}{k}.", v, out)
    else:
        out[prefix.rstrip(".")] = value


def _fill_neutral(row: dict[str, Any], neutral: list[tuple[tuple[str, ...], Any]]) -> None:
    """A run stored before an option existed ran at its neutral value: say so, so that
    ``--where``/``--group-by`` on the option put old and new runs of one setting together (an
    attack option only for the attacks that have it)."""
    from medleak.attacks import ATTACKS

    spec = ATTACKS.get(str(row.get("attack.name")))
    own = set(spec.option_names()) if spec is not None else set()
    for path, value in neutral:
        if path[0] == "attack" and path[-1] not in own:
            continue
        row.setdefault(".".join(path), value)


def run_row(run: Any, neutral: list[tuple[tuple[str, ...], Any]] | None = None) -> dict[str, Any]:
    """A stored run as one flat row: hash, kind, status, dotted config keys, then metrics.

    ``neutral``: the config's neutral keys (``config.neutral_keys()``), read once by a caller
    that makes many rows."""
    row: dict[str, Any] = {"hash": run.run_id, "kind": run.kind, "status": run.status}
    flatten("", run.config, row)
    if run.kind != "audit":
        from medleak.experiments.config import neutral_keys

        _fill_neutral(row, neutral_keys() if neutral is None else neutral)
    from medleak.defenses.spec import describe_chain

    row["defenses"] = describe_chain(run.config.get("defenses", []))
    for key, value in run.metrics.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            row.setdefault(key, value)
    # one bandwidth name and direction (bits sent / raw); older stores kept raw / sent
    old_ratio = row.pop("compression_ratio", None)
    if row.get("bits_ratio") is None:
        sent, raw = row.get("bits_sent"), row.get("bits_raw")
        if isinstance(sent, (int, float)) and isinstance(raw, (int, float)) and raw:
            row["bits_ratio"] = sent / raw
        elif isinstance(old_ratio, (int, float)) and old_ratio:
            row["bits_ratio"] = 1 / old_ratio
    shown = (run.config.get("metrics") or {}).get("show_sources")
    # a store written before errors were pseudonymised may hold a patient's file name
    row["error"] = run.error if run.error is None or shown else redact_sources(run.error)
    return row


def _check_key(option: str, key: str, rows: list[dict[str, Any]]) -> None:
    """An unknown key is an error in every option (a typo must not read as "no such runs")."""
    known = {k for r in rows for k in r}
    if not rows or key in known:
        return
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{option}: unknown key {key!r}{hint}")


def _matches(row: dict[str, Any], key: str, wanted: str) -> bool:
    value = row.get(key)
    return str(value) == wanted or (
        isinstance(value, (int, float)) and _number(wanted) == float(value)
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _sort_key(key: str, descending: bool = False) -> Any:
    """Numbers before text before missing values, in either direction."""

    def value(row: dict[str, Any]) -> tuple[int, Any]:
        v = row.get(key)
        if v is None:
            return (2, 0)
        if isinstance(v, (int, float)):
            return (0, -v if descending else v)
        return (1, _Reversed(str(v)) if descending else str(v))

    return value


class _Reversed:
    """A string that sorts backwards (for --desc on a text column)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _Reversed) -> bool:
        return self.text > other.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.text == other.text


def command_results(args: argparse.Namespace) -> int:
    from medleak.experiments.sqlite_store import SweepStore

    with SweepStore(args.store, create=False) as store:  # read-only: never writes, never chmods
        runs = store.runs(kind=args.kind)
    from medleak.experiments.config import neutral_keys

    neutral = neutral_keys()  # reflection over the config classes: once, not per row
    rows = [run_row(r, neutral) for r in runs]
    _add_judged_columns(rows, runs)
    if args.desc and not args.sort:
        raise ConfigError("--desc needs --sort KEY")
    wheres = []
    for item in args.where or []:
        key, sep, wanted = item.partition("=")
        if not sep:
            raise ConfigError(f"--where expects KEY=VALUE, got {item!r}")
        _check_key("--where", key, rows)
        wheres.append((key, wanted))
    if args.group_by:
        _check_key("--group-by", args.group_by, rows)
    for key, wanted in wheres:
        rows = [r for r in rows if key in r and _matches(r, key, wanted)]
    if args.group_by:
        rows = _grouped(rows, args.group_by)
    if args.sort:
        _check_key("--sort", args.sort, rows)
        rows.sort(key=_sort_key(args.sort, args.desc))
    if args.csv:
        chosen = rows if args.group_by else [r for r in rows if r["status"] == "finished"]
        keys: list[str] = []
        for r in chosen:
            keys.extend(k for k in r if k not in keys)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(chosen)
        sys.stdout.write(buffer.getvalue())
        return 0
    if args.group_by:
        columns = [
            args.group_by,
            *(["kind"] if args.group_by != "kind" else []),
            "runs",
            "accuracy",
            "accuracy_range",
            *_summary_keys(),
            "epsilon",
            "bits_ratio",
        ]
    else:
        columns = [
            "hash",
            "kind",
            "status",
            "defenses",
            "seed",
            "model.round",
            "accuracy",
            "accuracy_95ci",
            "learned",
            *_summary_keys(),
            "protection_ssim",
            "baseline_verdict",
            "verdict",
            "epsilon",
            "bits_ratio",
            "error",
        ]
        if any(r["kind"] == "audit" for r in rows):  # a Flower audit: which update, what found
            columns[3:3] = ["round", "client", "audit_status"]
    print(_table(rows, columns))
    return 0


def _add_judged_columns(rows: list[dict[str, Any]], runs: list[Any]) -> None:
    """The judged columns (``report.sweep_points.run_columns``): an attack run's floors, verdict
    against its no-defense twin, the twin's verdict and the protection; a training's 95%
    accuracy interval and whether it learned."""
    from medleak.report.sweep_points import run_columns

    judged = run_columns(runs)
    for row in rows:
        row.update(judged.get(row["hash"], {}))


def _summary_keys() -> tuple[str, ...]:
    """The metrics every run shows, from the metric registry (``Metric.summary``)."""
    from medleak.metrics.registry import summary_cells

    return tuple(dict.fromkeys(cell.key for cell in summary_cells()))


def _grouped(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    # one row per value AND kind: a metric both kinds carry means different things (an attack
    # run's epsilon is its one update's, a training's is accounted over every round)
    means = ("accuracy", *_summary_keys(), "epsilon", "bits_ratio")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "finished":
            groups.setdefault((str(r.get(key)), r["kind"]), []).append(r)
    out = []
    for (value, kind), members in groups.items():
        entry: dict[str, Any] = {key: value, "kind": kind, "runs": len(members)}
        for metric in means:
            numbers = [m[metric] for m in members if isinstance(m.get(metric), (int, float))]
            entry[metric] = sum(numbers) / len(numbers) if numbers else None
        accuracies = [m["accuracy"] for m in members if isinstance(m.get("accuracy"), (int, float))]
        if len(accuracies) > 1:  # across seeds: the mean with its min-max
            entry["accuracy_range"] = f"{min(accuracies):.3f}-{max(accuracies):.3f}"
        out.append(entry)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)] or columns[:3]
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    lines.append(f"({len(rows)} rows)")
    return "\n".join(lines)
