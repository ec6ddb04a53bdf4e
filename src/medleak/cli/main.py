"""The command line's entry point: the parser of every command and the dispatch. Errors are one
line: bad input exits 2, a failed run (diverged attack, out of memory) exits 3."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from medleak.cli.common import (
    CHECK_HELP,
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    OneLineParser,
    Terminated,
    on_sigterm,
    one_line,
    one_line_warning,
)
from medleak.cli.run import (
    add_attack_arguments,
    command_attack,
    command_defenses,
    command_demo,
    command_report,
    command_train_prior,
)
from medleak.errors import MedleakError, RunFailed

#: Commands whose flags are generated from config fields (``cli.flags``).
GENERATED_FLAGS = ("attack", "train-prior")


def build_parser(full: Sequence[str] = GENERATED_FLAGS) -> argparse.ArgumentParser:
    """The parser. Only the commands in ``full`` get their flags generated from config fields:
    that metadata lives in the domain packages, and importing them imports torch (seconds)."""
    parser = OneLineParser(
        prog="medleak",
        description="How much of a client's chest X-rays can a federated-learning server rebuild?",
    )
    parser.add_argument("--version", action="version", version=f"medleak {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    attack = commands.add_parser("attack", help="attack one client update and score it")
    add_attack_arguments(attack, "attack" in full)
    demo = commands.add_parser(
        "demo", help="a small attack on synthetic phantoms (under a minute on 2 cores)"
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--force", action="store_true", help="replace another run in --out")
    commands.add_parser("defenses", help="list every obfuscation with its parameters")
    prior = commands.add_parser(
        "train-prior", help="train the learned post-processing prior (a small U-Net)"
    )
    prior.add_argument("--out", required=True, help="output .safetensors file")
    if "train-prior" in full:
        from medleak.attacks.priors.learned import TrainConfig
        from medleak.cli.flags import add_config_flags

        add_config_flags(prior, TrainConfig, grouped=False)
    prior.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    prior.add_argument("--quiet", action="store_true", help="no progress bar")
    prior.add_argument("--force", action="store_true", help="replace a prior already at --out")
    prior.add_argument("--check", action="store_true", help=CHECK_HELP)
    from medleak.cli.sweep import add_parsers

    add_parsers(commands)
    from medleak.cli.findings import add_parser as add_findings_parser

    add_findings_parser(commands)
    from medleak.cli.audit import add_parser as add_audit_parser

    add_audit_parser(commands)
    report = commands.add_parser("report", help="one HTML report from one or more run folders")
    report.add_argument("runs", nargs="+", help="run folders written by 'medleak attack'")
    report.add_argument(
        "--out", default=None, help="HTML file to write, or a folder (DIR/report.html)"
    )
    report.add_argument(
        "--pdf", default=None, help="also print the report to this PDF file (headless Chromium)"
    )
    report.add_argument("--force", action="store_true", help="replace existing report files")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medleak")
    except PackageNotFoundError:
        return "unknown"


def _sweep_command(name: str) -> Any:
    def command(args: argparse.Namespace) -> int:
        from medleak.cli import sweep

        return getattr(sweep, f"command_{name}")(args)

    return command


def _audit_command(args: argparse.Namespace) -> int:
    from medleak.cli.audit import command_audit

    return command_audit(args)


def _findings_command(args: argparse.Namespace) -> int:
    from medleak.cli.findings import command_findings

    return command_findings(args)


COMMANDS = {
    "sweep": _sweep_command("sweep"),
    "train": _sweep_command("train"),
    "results": _sweep_command("results"),
    "findings": _findings_command,
    "audit": _audit_command,
    "attack": command_attack,
    "train-prior": command_train_prior,
    "demo": command_demo,
    "defenses": command_defenses,
    "report": command_report,
}


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the top level has options only, no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import warnings

    warnings.formatwarning = one_line_warning
    # a library's warning repeats per call site and per round: say it once per run
    for category in (UserWarning, FutureWarning):
        warnings.filterwarnings("once", category=category)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        build_parser(full=()).print_help()
        return 0
    # Only the command asked for gets its generated flags; the others start without torch.
    try:
        args = build_parser(full=[_command(argv) or ""]).parse_args(argv)
    except SystemExit as exc:  # a usage error (its one line is printed): return its code
        if exc.code in (0, None):
            raise  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    shown = bool(getattr(args, "show_sources", False))

    def say(kind: str, text: str) -> None:
        print(f"medleak {args.command}: {kind}: {one_line(text, shown)}", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (an embedding application): leave SIGTERM alone
        previous = None
    try:
        return COMMANDS[args.command](args)
    except MedleakError as exc:
        say("error", str(exc))
        return EXIT_USAGE
    except RunFailed as exc:
        say("run failed", str(exc))
        return EXIT_RUN_FAILED
    except MemoryError:
        say("run failed", "out of memory")
        return EXIT_RUN_FAILED
    except KeyboardInterrupt as exc:
        print(f"medleak {args.command}: interrupted", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except OSError as exc:
        say("error", f"{exc.strerror or exc}: {exc.filename}")
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
