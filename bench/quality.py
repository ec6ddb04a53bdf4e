"""Reconstruction quality of a fixed list of settings (attack x defense x model), fixed seeds.

    python bench/quality.py [--quick] [--data DIR] [--json OUT] [--compare OLD.json]
                            [--threads N] [--iterations N] [--only NAME ...] [--set K=V ...]

Every setting runs through the public pipeline (``medleak.experiments``: config, plan, execute)
on the same data directory: ``../shared/data/chest_xray_sample`` next to the repository when it
exists, else the procedural phantoms. It prints PSNR, SSIM (beside a blank mid-gray image's, the
floor for "nothing leaked"), re-identification rate, label accuracy and the attack's seconds per
setting, and writes JSON. ``--compare`` reads an earlier
JSON (for example one written before a speed change) and flags every setting whose PSNR moved
by more than 0.2 dB or whose SSIM moved by more than 0.01, the tolerance a change that should
not alter results must meet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from medleak.experiments.config import RunConfig, apply_overrides
from medleak.experiments.run import execute, plan_run
from medleak.strict_json import strict_json

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(
    os.environ.get("MEDLEAK_SAMPLE") or REPO.parent / "shared" / "data" / "chest_xray_sample"
)
PSNR_TOLERANCE = 0.2  # dB
SSIM_TOLERANCE = 0.01

# name -> dotted-key overrides of the default RunConfig. One gray channel, 64 px, batch 4,
# FedSGD unless said otherwise: cheap enough to run the whole list on two cores.
COMMON: dict[str, Any] = {
    "seed": 0,
    "model.channels": 1,
    "data.image_size": 64,
    "data.batch_size": 4,
    "fl.algorithm": "fedsgd",
}
# ROG's optimisation loop as the ``rog-core`` preset defines it (squared L2, true labels, every
# channel, no analytic stage, no prior, one start), spelled out so that ``--quick`` can lower the
# iterations (a preset fixes them at 100). "rog-l2" starts from medleak's gray latent; "rog-core"
# from the preset's uniform one, so it is the preset exactly.
ROG_L2: dict[str, Any] = {
    "attack.name": "rog",
    "attack.labels": "known",
    "attack.prior": "none",
    "attack.aware": False,
    "attack.reconstruct_channels": "all",
    "attack.scale_factor": 4,
    "attack.restarts": 1,
    "attack.analytic": False,
    "attack.init": "gray",
}
ROG_CORE: dict[str, Any] = {**ROG_L2, "attack.init": "uniform"}
SETTINGS: dict[str, dict[str, Any]] = {
    "rog-l2/none/lenet": {**ROG_L2, "model.name": "lenet"},
    "rog-l2/none/resnet18-rog": {**ROG_L2, "model.name": "resnet18-rog"},
    "rog-l2/fedavg5/resnet18-rog": {  # 32 px: five unrolled steps cost five times FedSGD
        **ROG_L2,
        "model.name": "resnet18-rog",
        "fl.algorithm": "fedavg",
        "fl.local_steps": 5,
        "data.image_size": 32,
    },
    "rog-l2/none/resnet18": {**ROG_L2, "model.name": "resnet18"},
    "rog-core/none/lenet": {**ROG_CORE, "model.name": "lenet"},
    "rog/none/lenet": {"model.name": "lenet"},
    "rog/gaussian0.1/lenet": {"model.name": "lenet", "defenses": ["gaussian:relative=0.1"]},
    "rog/topk0.1/lenet": {"model.name": "lenet", "defenses": ["topk:ratio=0.1"]},
    "rog/qsgd4/resnet18-rog": {"model.name": "resnet18-rog", "defenses": ["qsgd:levels=4"]},
    "ig/none/lenet-dlg": {"attack.name": "ig", "model.name": "lenet-dlg", "data.image_size": 32},
}
QUICK: dict[str, dict[str, Any]] = {
    "rog-l2/none/lenet": {**SETTINGS["rog-l2/none/lenet"], "attack.iterations": 30},
    "rog-l2/none/resnet18-rog": {
        **SETTINGS["rog-l2/none/resnet18-rog"],
        "data.image_size": 32,
        "attack.iterations": 30,
    },
    "rog-l2/fedavg5/resnet18-rog": {
        **SETTINGS["rog-l2/fedavg5/resnet18-rog"],
        "data.image_size": 32,
        "attack.iterations": 15,
    },
}


def data_source(explicit: str | None) -> str:
    if explicit:
        return explicit
    return str(SAMPLE) if SAMPLE.is_dir() else "phantom"


def run_setting(overrides: dict[str, Any]) -> dict[str, Any]:
    config = apply_overrides(RunConfig(), overrides)
    start = time.perf_counter()
    result = execute(plan_run(config))
    scores = result.scores
    return {
        "psnr": scores["psnr"],
        "ssim": scores["ssim"],
        "blank_psnr": scores.get("blank_psnr"),
        "blank_ssim": scores.get("blank_ssim"),
        "reid_rate": scores["reid_rate"],
        "gallery_size": scores["gallery_size"],
        "label_accuracy": scores["label_accuracy"],
        "attack_seconds": round(result.seconds, 2),
        "total_seconds": round(time.perf_counter() - start, 2),
        "stage": result.reconstruction.info.get("stage"),
        "final_loss": result.reconstruction.trace[-1] if result.reconstruction.trace else None,
        "overrides": overrides,
    }


def _fmt(value: float | None, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def format_row(name: str, row: dict[str, Any], old: dict[str, Any] | None) -> str:
    line = (
        f"{name:<32}{_fmt(row['psnr'], '7.2f')}{_fmt(row['ssim'], '7.3f')}"
        f"{_fmt(row.get('blank_psnr'), '7.2f')}{_fmt(row.get('blank_ssim'), '7.3f')}"
        f"{_fmt(row['reid_rate'], '6.2f')}{_fmt(row['label_accuracy'], '6.2f')}"
        f"{row['attack_seconds']:>9.1f}  {row['stage'] or '':<12}"
    )
    if old is not None:
        line += f"  dPSNR {row['psnr'] - old['psnr']:+.3f} dSSIM {row['ssim'] - old['ssim']:+.4f}"
        if not within_tolerance(row, old):
            line += "  OUT OF TOLERANCE"
    return line


def within_tolerance(row: dict[str, Any], old: dict[str, Any]) -> bool:
    return (
        abs(row["psnr"] - old["psnr"]) <= PSNR_TOLERANCE
        and abs(row["ssim"] - old["ssim"]) <= SSIM_TOLERANCE
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 small settings, few iterations")
    parser.add_argument("--data", help="data directory or 'phantom' (default: the sample)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--compare", type=Path, help="an earlier JSON to compare against")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--iterations", type=int, help="override every setting's iterations")
    parser.add_argument("--only", nargs="+", help="run only these setting names")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides for every setting, e.g. metrics.gallery_size=10",
    )
    return parser.parse_args(argv)


def extra_overrides(pairs: list[str]) -> dict[str, str]:
    extra = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set wants KEY=VALUE, got {pair!r}")
        extra[key] = value
    return extra


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    source = data_source(args.data)
    settings = QUICK if args.quick else SETTINGS
    if args.only:
        unknown = sorted(set(args.only) - set(settings))
        if unknown:
            raise SystemExit(f"unknown setting(s) {unknown}; choose from {sorted(settings)}")
        settings = {k: v for k, v in settings.items() if k in args.only}
    extra = extra_overrides(args.set)
    old = json.loads(args.compare.read_text())["settings"] if args.compare else {}
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/quality.py", *(argv or sys.argv[1:])]),
        "data": source,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_start": round(os.getloadavg()[0], 2),
    }
    print(f"# {meta['date']}  data {source}  {meta['threads']} threads  load {meta['load_start']}")
    print(
        f"{'setting':<32}{'PSNR':>7}{'SSIM':>7}{'blankP':>7}{'blankS':>7}{'reid':>6}"
        f"{'label':>6}{'attack s':>9}  stage"
    )
    rows: dict[str, Any] = {}
    failed = []
    for name, overrides in settings.items():
        merged = {**COMMON, "data.source": source, **overrides, **extra}
        if args.iterations:
            merged["attack.iterations"] = args.iterations
        rows[name] = run_setting(merged)
        previous = old.get(name)
        print(format_row(name, rows[name], previous), flush=True)
        if previous is not None and not within_tolerance(rows[name], previous):
            failed.append(name)
        if args.json:
            write_json(args.json, meta, rows)
    meta["load_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        write_json(args.json, meta, rows)
    if failed:
        print(f"# {len(failed)} setting(s) moved beyond {PSNR_TOLERANCE} dB / {SSIM_TOLERANCE}")
        return 1
    return 0


def write_json(path: Path, meta: dict[str, Any], rows: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strict_json({"meta": meta, "settings": rows}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
