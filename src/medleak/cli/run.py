"""``medleak attack``, ``demo``, ``defenses``, ``report`` and ``train-prior``: one client update
attacked and scored, and what each of these commands prints."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from medleak.cli.common import CHECK_HELP, check_threads, set_threads
from medleak.errors import MedleakError


def add_attack_arguments(parser: argparse.ArgumentParser, config_flags: bool) -> None:
    parser.add_argument("--config", help="YAML config; explicit options override it")
    parser.add_argument("--out", help="output folder (default runs/<attack>-<model>-<time>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--force", action="store_true", help="replace a run already in --out")
    parser.add_argument("--check", action="store_true", help=CHECK_HELP)
    if config_flags:
        from medleak.cli.flags import add_config_flags

        add_config_flags(parser)  # one flag per config field that declares one


def _run_attack(config: Any, out: Path, quiet: bool, force: bool) -> dict[str, Any]:
    import torch

    from medleak.experiments.run import baseline_wanted, execute, plan_run
    from medleak.experiments.store import write_run
    from medleak.experiments.stores import prepare_run_folder
    from medleak.progress import Progress
    from medleak.report import render_run

    set_threads(config.threads)
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


def _check_attack(config: Any) -> None:
    """``attack --check``: what a run would refuse, without loading images or attacking."""
    from medleak.attacks.priors import check_prior
    from medleak.experiments.sweep_spec import check_run

    check_run(config)
    source = config.data.source.strip()
    if source.lower() != "phantom" and not Path(source).expanduser().exists():
        raise MedleakError(f"data not found: {source}")
    if config.model.weights:
        from medleak.models.weights import read_state_dict

        read_state_dict(config.model.weights)
    check_prior(config.attack.options().prior)


def command_attack(args: argparse.Namespace) -> int:
    from medleak.cli.flags import config_overrides
    from medleak.experiments.config import RunConfig, apply_overrides, load_config

    base = load_config(args.config) if args.config else RunConfig()
    config = apply_overrides(base, config_overrides(args))
    if args.check:
        _check_attack(config)
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
    from medleak.cli.flags import config_overrides
    from medleak.experiments.config import build
    from medleak.output_targets import claim_file

    config = build(TrainConfig, config_overrides(args, TrainConfig))
    check_threads(args.threads)
    if args.check:
        print("the options are valid")
        return 0
    set_threads(args.threads)
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
