"""``medleak findings``: run the published-findings specs into a store, then write FINDINGS.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from medleak.errors import ConfigError


def add_parser(commands: Any) -> None:
    findings = commands.add_parser(
        "findings", help="reproduce the published findings (sweeps, then docs/FINDINGS.md)"
    )
    findings.add_argument("--store", required=True, help="SQLite store, e.g. findings.db")
    findings.add_argument("--out", required=True, help="folder for FINDINGS.md and its figures")
    findings.add_argument("--quick", action="store_true", help="first 3 seeds, phantoms only")
    findings.add_argument(
        "--sample", default=None, help="folder of real X-rays for findings 1-5 (batch <= 8)"
    )
    findings.add_argument(
        "--specs", default="examples/findings", help="folder of N-name.yaml specs"
    )
    findings.add_argument("--workers", type=int, default=2, help="parallel runs (default 2)")
    findings.add_argument("--threads", type=int, default=1, help="torch threads per run")
    findings.add_argument("--no-run", action="store_true", help="only write from the store")
    findings.add_argument("--force", action="store_true", help="replace an existing FINDINGS.md")
    findings.add_argument("--quiet", action="store_true", help="no per-sweep lines")
    findings.add_argument(
        "--note", default="", help="a sentence for the document's header (e.g. the machine's load)"
    )


def _command_line(args: argparse.Namespace) -> str:
    parts = ["medleak findings"]
    if args.quick:
        parts.append("--quick")
    parts += ["--store", Path(args.store).name, "--out", args.out.rstrip("/") + "/"]
    if args.no_run:
        parts.append("--no-run")
    if args.sample:
        parts += ["--sample", "DIR"]
    if args.specs != "examples/findings":
        parts += ["--specs", args.specs]
    return " ".join(parts + ["--force"])


def cpu_of(runs: Any) -> tuple[float, int, int]:
    """(CPU seconds summed, runs that recorded them, runs) over finished runs."""
    done = [r for r in runs if r.status == "finished"]
    cpu = [
        r.metrics["cpu_seconds"] for r in done if isinstance(r.metrics.get("cpu_seconds"), float)
    ]
    return sum(cpu), len(cpu), len(done)


def command_findings(args: argparse.Namespace) -> int:
    from medleak.experiments.findings import (
        FindingsRun,
        expand_variant,
        plan_variants,
        run_variants,
    )
    from medleak.experiments.sqlite_store import SweepStore
    from medleak.findings.catalog import BY_NUMBER
    from medleak.findings.collect import collect
    from medleak.report.findings.document import RunInfo, check_writable, write_findings

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    out = Path(args.out)
    check_writable(out, args.force)
    sample = Path(args.sample) if args.sample else None
    if args.quick and sample is not None:
        print("--quick with --sample: the X-ray sample's runs are added (3 seeds)", flush=True)
    variants = plan_variants(Path(args.specs), args.quick, sample)
    unknown = sorted({v.number for v in variants} - set(BY_NUMBER))
    if unknown:
        raise ConfigError(f"{args.specs}: no finding {unknown[0]} in medleak's catalog (1-8)")
    sweeps = [(v, expand_variant(v)) for v in variants]  # validates every spec before any run
    if args.no_run and not Path(args.store).is_file():
        raise ConfigError(f"store not found: {args.store}")

    def progress(variant: Any, total: int, todo: int) -> None:
        if not args.quiet:
            where = "phantoms" if not variant.sample else "X-ray sample"
            print(
                f"{time.strftime('%H:%M:%S')} finding {variant.number} on {where}: {total} runs, "
                f"{todo} to run",
                flush=True,
            )

    with SweepStore(args.store) as store:
        result = (
            FindingsRun()
            if args.no_run
            else run_variants(variants, store, args.workers, args.threads, progress)
        )
        for line in result.errors:  # a report (stdout); the exit code says some failed
            print(f"failed: {line}")
        entries = collect(
            store,
            [(v.number, v.source, v.command(), s) for v, s in sweeps],
        )
        span = store.span(r.run_id for e in entries for r in e.runs)
        shown = {r.run_id: r for e in entries for r in e.runs}
        quick_ids = {
            j.run_id
            for v in plan_variants(Path(args.specs), True, None)
            for j in expand_variant(v).jobs
        }
    info = RunInfo(
        "quick" if args.quick else "full",
        _command_line(args),
        result.seconds,
        result.computed,
        result.reused,
        result.failed,
        args.workers,
        args.threads,
        span,
        cpu_of(shown.values()),
        cpu_of(r for i, r in shown.items() if i in quick_ids),
        not args.no_run,
    )
    doc = write_findings(
        out, [(BY_NUMBER[e.number], e) for e in entries], info, args.force, preface=args.note
    )
    print(
        f"{result.computed} runs computed, {result.reused} reused, {result.failed} failed in "
        f"{result.seconds / 60:.1f} min; wrote {doc}"
    )
    if result.failed:  # failed runs are recorded in the store; exit 2 is only for bad input
        print(f"medleak findings: run failed: {result.failed} runs failed", file=sys.stderr)
        return 3
    return 0
