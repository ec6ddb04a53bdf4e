"""Time to quality: seconds medleak needs to first beat a blank image by 3 dB, beside ROG's loop.

    python bench/time_to_quality.py [--only NAME ...] [--budgets 10,25,50,100] [--offsets 0,4]
                                    [--data DIR] [--threads N] [--json OUT]
                                    [--core rog-core|rog-l2] [--bf16]

Speed alone says little when the per-iteration work is already near the matrix-multiply ceiling;
what matters is how soon an attack leaks. For each setting and each iteration budget, medleak's
attack and ROG's core loop (``rog-core``: the ``--preset rog-core`` options, uniform start; or
``rog-l2``, the same from medleak's gray start, as in ``bench/quality.py``) run through the public
pipeline on the same victims; the table gives, per loop, the attack seconds of the smallest
budget whose batch-mean PSNR reaches the blank image's + 3 dB (``-`` when none does), and the
PSNR / SSIM at the largest budget. Each budget is its own run (the step-size schedules depend
on the budget), so the time to target is resolved to the budget grid, not to one iteration.
The victims are the real sample next to the repository when present (two batches, ``--offsets``),
else synthetic phantoms (the table says which).

``--bf16`` (opt-in, measured, never assumed) adds a ``medleak+bf16`` loop: the same attack run
under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the client's update is computed in float32
as always; only the attacker's forward / double-backward passes drop to bfloat16), so that its
time and quality sit beside float32's in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import ROG_CORE, ROG_L2, SAMPLE  # noqa: E402

import medleak.attacks as attacks  # noqa: E402
from medleak.experiments.config import RunConfig, apply_overrides  # noqa: E402
from medleak.experiments.run import execute, plan_run  # noqa: E402
from medleak.strict_json import strict_json  # noqa: E402

TARGET_DB = 3.0
COMMON: dict[str, Any] = {
    "seed": 0,
    "model.channels": 3,
    "data.order": "balanced",
    "attack.labels": "inferred",
    "metrics.gallery_size": 8,
}
# name -> (the setting: model, size, batch; medleak's own overrides on top of it). The ROG core
# loop runs the setting with ``CORES[--core]``; everything sits on top of COMMON.
SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "lenet-dlg/32/b1": (
        {"model.name": "lenet-dlg", "data.image_size": 32, "data.batch_size": 1},
        {},
    ),
    "lenet/64/b4": ({"model.name": "lenet", "data.image_size": 64, "data.batch_size": 4}, {}),
    "resnet18-rog/64/b1": (
        {"model.name": "resnet18-rog", "data.image_size": 64, "data.batch_size": 1},
        {},
    ),
    "resnet18-rog/64/b1/ig": (  # Inverting Gradients, the attack session 1 used for this setting
        {"model.name": "resnet18-rog", "data.image_size": 64, "data.batch_size": 1},
        {"attack.name": "ig"},
    ),
    "resnet18-rog/64/b4": (
        {"model.name": "resnet18-rog", "data.image_size": 64, "data.batch_size": 4},
        {},
    ),
    "resnet18-rog/128/b4": (
        {"model.name": "resnet18-rog", "data.image_size": 128, "data.batch_size": 4},
        {},
    ),
    "resnet18/64/b1": (  # BatchNorm in training mode, FedSGD
        {"model.name": "resnet18", "data.image_size": 64, "data.batch_size": 1},
        {},
    ),
}
CORES: dict[str, dict[str, Any]] = {"rog-core": ROG_CORE, "rog-l2": ROG_L2}


@contextlib.contextmanager
def bf16_attacks() -> Iterator[None]:
    """Every registered attack runs under CPU bfloat16 autocast for the duration (opt-in)."""
    saved = dict(attacks.ATTACKS)

    def wrap(spec: attacks.AttackSpec) -> attacks.AttackSpec:
        def run(*args: Any, **kwargs: Any) -> attacks.Reconstruction:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return spec.run(*args, **kwargs)

        return dataclasses.replace(spec, run=run)

    attacks.ATTACKS.update({name: wrap(spec) for name, spec in saved.items()})
    try:
        yield
    finally:
        attacks.ATTACKS.update(saved)


def run_one(overrides: dict[str, Any], threads: int) -> dict[str, Any]:
    config = apply_overrides(RunConfig(), {**overrides, "threads": threads})
    result = execute(plan_run(config))
    scores = result.scores
    return {
        "seconds": result.seconds,
        "psnr": scores["psnr"],
        "ssim": scores["ssim"],
        "blank_psnr": scores["blank_psnr"],
        "blank_ssim": scores["blank_ssim"],
        "worst_psnr": min(p["psnr"] for p in scores["per_image"]),
    }


def time_to_target(points: list[dict[str, Any]]) -> float | None:
    """Attack seconds of the smallest budget that reaches blank + TARGET_DB, else None."""
    for point in sorted(points, key=lambda p: p["iterations"]):
        if point["psnr"] >= point["blank_psnr"] + TARGET_DB:
            return point["seconds"]
    return None


def loops(name: str, core: str, bf16: bool) -> list[tuple[str, dict[str, Any], bool]]:
    """(loop label, overrides, under bfloat16 autocast) for one setting."""
    setting, ours = SETTINGS[name]
    found = [("medleak", {**setting, **ours}, False), (core, {**CORES[core], **setting}, False)]
    if bf16:
        found.insert(1, ("medleak+bf16", {**setting, **ours}, True))
    return found


def measure(
    name: str,
    budgets: list[int],
    offsets: list[int],
    data: str,
    threads: int,
    core: str = "rog-core",
    bf16: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {"setting": name, "data": data, "offsets": offsets, "loops": {}}
    for loop, overrides, low in loops(name, core, bf16):
        points = []
        for budget in budgets:
            with bf16_attacks() if low else contextlib.nullcontext():
                runs = [
                    run_one(
                        {
                            **COMMON,
                            **overrides,
                            "data.source": data,
                            "data.offset": offset,
                            "attack.iterations": budget,
                        },
                        threads,
                    )
                    for offset in offsets
                ]
            points.append(
                {
                    "iterations": budget,
                    **{k: sum(r[k] for r in runs) / len(runs) for k in runs[0]},
                    "worst_psnr": min(r["worst_psnr"] for r in runs),
                    "per_batch_psnr": [r["psnr"] for r in runs],
                    "per_batch_seconds": [r["seconds"] for r in runs],
                }
            )
            print(f"{name} {loop} {budget} it: {points[-1]}", file=sys.stderr, flush=True)
        out["loops"][loop] = {"points": points, "seconds_to_target": time_to_target(points)}
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| setting | loop | s to blank+3 dB | final PSNR / SSIM (budget) | blank | worst image |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        for loop, found in res["loops"].items():
            last = found["points"][-1]
            ttq = found["seconds_to_target"]
            lines.append(
                f"| {res['setting']} | {loop} | {'-' if ttq is None else f'{ttq:.1f}'} "
                f"| {last['psnr']:.1f} / {last['ssim']:.2f} ({last['iterations']} it) "
                f"| {last['blank_psnr']:.1f} / {last['blank_ssim']:.2f} "
                f"| {last['worst_psnr']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS), default=None)
    parser.add_argument("--budgets", default="10,25,50,100")
    parser.add_argument("--offsets", default="0,4")
    parser.add_argument("--data", default=str(SAMPLE) if SAMPLE.is_dir() else "phantom")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--core", choices=sorted(CORES), default="rog-core")
    parser.add_argument("--bf16", action="store_true", help="add medleak under bfloat16 autocast")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    offsets = [int(o) for o in args.offsets.split(",")]
    names = args.only or list(SETTINGS)
    results = [
        measure(n, budgets, offsets, args.data, args.threads, args.core, args.bf16) for n in names
    ]
    source = "synthetic phantoms" if args.data == "phantom" else args.data
    print(f"victims: {source}; offsets {offsets}; budgets {budgets}")
    print(table(results))
    if args.json is not None:
        meta = {"argv": sys.argv[1:], "torch": torch.__version__, "threads": args.threads}
        args.json.write_text(strict_json({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
