"""The command line: parse, call experiments/report, print. Errors are one line: bad input exits 2,
a failed run (diverged attack, out of memory) exits 3."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from medleak.errors import MedleakError, RunFailed

EXIT_USAGE = 2
EXIT_RUN_FAILED = 3


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line rather than usage text plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _attack_arguments(parser: argparse.ArgumentParser, config_flags: bool) -> None:
    parser.add_argument("--config", help="YAML config; explicit options override it")
    parser.add_argument("--out", help="output folder (default runs/<attack>-<model>-<time>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--force", action="store_true", help="replace a run already in --out")
    parser.add_argument("--check", action="store_true", help=CHECK_HELP)
    if config_flags:
        from medleak.cli_flags import add_config_flags

        add_config_flags(parser)  # one flag per config field that declares one


CHECK_HELP = "validate the options and exit (nothing is computed or written)"
#: Commands whose flags are generated from config fields (``cli_flags``).
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
    _attack_arguments(attack, "attack" in full)
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
        from medleak.cli_flags import add_config_flags

        add_config_flags(prior, TrainConfig, grouped=False)
    prior.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    prior.add_argument("--quiet", action="store_true", help="no progress bar")
    prior.add_argument("--force", action="store_true", help="replace a prior already at --out")
    prior.add_argument("--check", action="store_true", help=CHECK_HELP)
    from medleak.cli_sweep import add_parsers

    add_parsers(commands)
    from medleak.cli_findings import add_parser as add_findings_parser

    add_findings_parser(commands)
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


def _set_threads(threads: int | None) -> None:
    """Apply --threads (None keeps torch's default)."""
    import torch

    if threads is None:
        return
    if threads < 1:
        raise MedleakError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def _run_attack(config: Any, out: Path, quiet: bool, force: bool) -> dict[str, Any]:
    import torch

    from medleak.experiments.run import baseline_wanted, execute, plan_run
    from medleak.experiments.store import write_run
    from medleak.experiments.stores import prepare_run_folder
    from medleak.progress import Progress
    from medleak.report import render_run

    _set_threads(config.threads)
    # Record the thread count actually used: results are reproducible per thread count.
    config.threads = torch.get_num_threads()
    prepare_run_folder(out, force=force)
    plan = plan_run(config)
    # a defended run also attacks the undefended update (its baseline) unless --no-baseline
    baseline = baseline_wanted(config, auto=True)
    total = config.attack.iterations * (2 if baseline else 1)
    bar = Progress(total, config.attack.name, "iteration", quiet)

    def progress(iteration: int, loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.4g}")
        bar.update(1)

    try:
        result = execute(plan, progress=progress, baseline=baseline)
    finally:
        bar.close()
    record = write_run(result, out)
    render_run(out, record)
    return record.metrics


def _defense_text(record: dict[str, Any]) -> str:
    from medleak.defenses import describe_chain

    return describe_chain(record.get("defenses"))


def _summary(record: dict[str, Any], out: Path) -> str:
    """What a person needs from one run: what was attacked, how close, the floor, the verdict."""
    lines = [
        f"defense: {_defense_text(record)}"
        + (
            f" (epsilon {record['epsilon']:.3g}, delta {record['delta']:.0e})"
            if record.get("epsilon") is not None
            else ""
        ),
        f"PSNR {record['psnr']:.2f} dB, SSIM {record['ssim']:.3f} "
        f"({record['attack']} on {record['model']}, {record['iterations']} iterations, "
        f"{record['seconds']:.1f} s)",
    ]
    if record.get("blank_psnr") is not None and record.get("blank_ssim") is not None:
        lines.append(
            f"blank-image floor: PSNR {record['blank_psnr']:.2f} dB, SSIM "
            f"{record['blank_ssim']:.3f} (what leaking nothing scores)"
        )
    if record.get("prior_psnr") is not None and record.get("prior_ssim") is not None:
        held = "auxiliary" if record.get("prior_source") == "auxiliary" else "distractor"
        lines.append(
            f"prior-image floor: PSNR {record['prior_psnr']:.2f} dB, SSIM "
            f"{record['prior_ssim']:.3f} (the mean of the {held} images: what the server knows "
            "without the update)"
        )
    if record.get("baseline_verdict") is not None:
        protection = record.get("protection_ssim")
        reid = record.get("baseline_reid_count")
        lines.append(
            f"baseline (same attack, undefended update): PSNR {record['baseline_psnr']:.2f} dB, "
            f"SSIM {record['baseline_ssim']:.3f}"
            + (f", {reid} of {record['num_images']} re-identified" if reid is not None else "")
            + f": {record['baseline_verdict']}"
            + (
                f"; protection {protection:+.3f} SSIM above the floor"
                if protection is not None
                else ""
            )
        )
    if record.get("reid_rate") is not None:
        lines.append(
            f"re-identified {record['reid_rate']:.0%} of the victims "
            f"(chance {record['reid_chance']:.1%} in a gallery of {record['gallery_size']})"
        )
    lines.extend(_other_summary_lines(record))
    from medleak.metrics.verdict import judge

    verdict = judge(record)
    lines.append(f"verdict: {verdict.reason}")
    lines.append(f"results in {out}/ (metrics.json, reconstruction.png, report.html)")
    return "\n".join(lines)


#: Summary keys the lines above already say in words.
_SAID = {"psnr", "ssim", "floor_psnr", "floor_ssim", "reid_rate"}


def _other_summary_lines(record: dict[str, Any]) -> list[str]:
    """Any other registered summary metric (``Metric.summary``): a metric someone adds shows in
    the console without a line written for it here."""
    from medleak.metrics.registry import summary_cells

    lines = []
    for cell in summary_cells():
        value = record.get(cell.key)
        if cell.key in _SAID or value is None:
            continue
        shown = f"{value:.{cell.digits}f}" if isinstance(value, float) and cell.digits else value
        lines.append(f"{cell.header}: {shown}")
    return lines


def command_attack(args: argparse.Namespace) -> int:
    from medleak.cli_flags import config_overrides
    from medleak.experiments.config import RunConfig, apply_overrides, load_config

    base = load_config(args.config) if args.config else RunConfig()
    config = apply_overrides(base, config_overrides(args))
    if args.check:
        from medleak.experiments.sweep_spec import check_run

        check_run(config)
        source = config.data.source.strip()
        if source.lower() != "phantom" and not Path(source).expanduser().exists():
            raise MedleakError(f"data not found: {source}")
        if config.model.weights:
            from medleak.models.weights import read_state_dict

            read_state_dict(config.model.weights)
        print("the options are valid")
        return 0
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/{config.attack.name}-{config.model.name}-{stamp}")
    record = _run_attack(config, out, args.quiet, args.force)
    print(_summary(record, out))
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from medleak.experiments.config import RunConfig

    config = RunConfig()
    out = Path(args.out)
    print("medleak demo: ROG on ROG's LeNet, FedSGD, 4 synthetic phantom X-rays at 128x128")
    replacing = _holds_demo(out, config)
    if replacing:
        print(f"(replacing the previous demo output in {out})")
    record = _run_attack(config, out, args.quiet, force=replacing or args.force)
    print(_summary(record, out))
    print(f"open {out / 'report.html'} in a browser, or look at {out / 'reconstruction.png'}")
    return 0


def _holds_demo(out: Path, config: Any) -> bool:
    """True when ``out`` holds an earlier demo run (which the demo may replace), not other work."""
    import json

    try:
        old = json.loads((out / "metrics.json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return False
    from medleak.experiments.config import from_dict

    try:  # read back through the config, so keys added since that demo take their defaults
        old = from_dict(old).to_dict()
    except (MedleakError, TypeError):
        return False
    new = config.to_dict()
    return {k: v for k, v in old.items() if k != "threads"} == {
        k: v for k, v in new.items() if k != "threads"
    }


def command_defenses(args: argparse.Namespace) -> int:
    from medleak.defenses import describe_defenses

    print(describe_defenses())
    return 0


def command_report(args: argparse.Namespace) -> int:
    from medleak.report import write_report

    if args.pdf is None or args.out is not None:
        path = write_report(
            [Path(r) for r in args.runs], Path(args.out or "report.html"), force=args.force
        )
        print(f"report written to {path}")
    if args.pdf is not None:
        from medleak.report.pdf import write_report_pdf

        pdf = write_report_pdf([Path(r) for r in args.runs], Path(args.pdf), force=args.force)
        print(f"PDF written to {pdf}")
    return 0


def command_train_prior(args: argparse.Namespace) -> int:
    from medleak.attacks.priors.learned import TrainConfig, is_prior_file, train_prior_file
    from medleak.cli_flags import config_overrides
    from medleak.experiments.config import build
    from medleak.output_targets import claim_file

    config = build(TrainConfig, config_overrides(args, TrainConfig))
    if args.threads is not None and args.threads < 1:
        raise MedleakError(f"--threads must be >= 1, got {args.threads}")
    if args.check:
        print("the options are valid")
        return 0
    _set_threads(args.threads)
    claim_file(Path(args.out), what="prior", is_own=is_prior_file, force=args.force)
    from medleak.progress import Progress

    bars: list[Progress] = []

    def progress(total: int, loss: float) -> None:
        if not bars:
            bars.append(Progress(total, "train-prior", "step", args.quiet))
        bars[0].set_postfix(loss=f"{loss:.4f}")
        bars[0].update(1)

    try:
        loss = train_prior_file(config, Path(args.out), progress)
    finally:
        for bar in bars:
            bar.close()
    print(f"prior written to {args.out} (final training loss {loss:.4g})")
    return 0


def _sweep_command(name: str) -> Any:
    def command(args: argparse.Namespace) -> int:
        from medleak import cli_sweep

        return getattr(cli_sweep, f"command_{name}")(args)

    return command


def _findings_command(args: argparse.Namespace) -> int:
    from medleak.cli_findings import command_findings

    return command_findings(args)


COMMANDS = {
    "sweep": _sweep_command("sweep"),
    "train": _sweep_command("train"),
    "results": _sweep_command("results"),
    "findings": _findings_command,
    "attack": command_attack,
    "train-prior": command_train_prior,
    "demo": command_demo,
    "defenses": command_defenses,
    "report": command_report,
}


EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled exactly as Ctrl-C: the sweep's workers are stopped, one line printed."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """medleak's own warnings as one line; a library's named as that library's, not ours."""
    origin = _warning_origin(str(filename))
    text = _one_line(str(message), False)
    if origin == "medleak":
        return f"medleak: warning: {text}\n"
    return f"medleak: warning from {origin}: {text}\n"


def _warning_origin(filename: str) -> str:
    """The top-level package a warning was raised in (from its file's path)."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages", "src"):
        if marker in parts[:-1]:
            index = len(parts) - 1 - parts[::-1].index(marker)
            if index + 1 < len(parts):
                return Path(parts[index + 1]).stem
    return Path(filename).stem or "python"


def _one_line(text: str, show_sources: bool) -> str:
    """A message as one line, data file names pseudonymised unless ``--show-sources``."""
    from medleak.private_files import redact_sources

    text = " ".join(text.split())
    return text if show_sources else redact_sources(text)


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the top level has options only, no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import warnings

    warnings.formatwarning = _one_line_warning
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
        print(f"medleak {args.command}: {kind}: {_one_line(text, shown)}", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
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
