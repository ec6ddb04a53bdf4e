"""Seconds per ROG attack iteration: medleak's attack loop next to a plain PyTorch loop.

    python bench/speed.py [--quick] [--json OUT] [--models ...] [--sizes ...] [--batches ...]
                          [--taus ...] [--threads N]

For every cell (model x image size x batch x FL setting) the same run times

* ``plain``: the obvious loop, written here: bicubic upsampling of the latent, ``model.forward``,
  ``torch.autograd.grad(create_graph=True)`` over ``model.parameters()``, squared L2 to the update,
  ``backward()``, Adam with cosine annealing, clamp (ROG's reference code has this shape);
* ``medleak``: ``medleak.attacks.get_attack("rog")`` itself, timed per iteration through its
  progress callback,

and reports the median seconds per iteration (wall clock and process CPU time), the FLOPs of one
iteration (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products only,
elementwise work is not counted; the double backward IS counted, through the ``aten.convolution``
calls that ``_convolution_double_backward`` makes, which the ``x fwd`` column shows: FedSGD costs
7 to 9 forward passes, not 3), the achieved GFLOP/s and its fraction of the machine's measured
float32 matrix-multiply GFLOP/s on the same number of threads.

On a shared machine a wall time is only as good as the load beside it: every cell records the
1-minute load average before and after, and the plain/medleak ratio is measured in the same cell,
back to back, which is the number to trust.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.data import Batch
from medleak.experiments.provenance import cpu_model
from medleak.fl import FLSettings, Update, compute_update
from medleak.models import build_model
from medleak.strict_json import strict_json

MODELS = ("lenet", "resnet18-rog", "resnet18")
SIZES = (64, 128)
BATCHES = (1, 4)
TAUS = (1, 5, 10)
SCALE_FACTOR = 4  # ROG's latent side is image size / 4
LR = 0.05  # ROG's Adam step


@dataclass(frozen=True)
class Cell:
    model: str
    size: int
    batch: int
    algorithm: str
    tau: int

    @property
    def fl(self) -> str:
        return "fedsgd" if self.algorithm == "fedsgd" else f"fedavg{self.tau}"

    @property
    def settings(self) -> FLSettings:
        if self.algorithm == "fedsgd":
            return FLSettings()
        return FLSettings("fedavg", local_steps=self.tau, local_lr=1e-4)


@dataclass
class Timing:
    """Per-iteration seconds of one loop in one cell."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    flops: int = 0

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def matmul_gflops(size: int = 1024, repeats: int = 20) -> dict[str, float]:
    """float32 ``a @ b`` GFLOP/s on the current threads: the median and the best of ``repeats``.

    The best is the ceiling the hardware reaches between interruptions from other processes.
    """
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    for _ in range(2):
        a @ b
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    flops = 2 * size**3
    return {
        "size": size,
        "median_gflops": round(flops / statistics.median(seconds) / 1e9, 1),
        "best_gflops": round(flops / min(seconds) / 1e9, 1),
    }


def victim(cell: Cell, channels: int) -> tuple[nn.Module, Batch, Update]:
    """The model, a seeded smooth batch and the client's update for one cell."""
    model = build_model(cell.model, channels, cell.size, seed=0)
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(cell.batch, 1, 8, 8, generator=generator)
    images = F.interpolate(coarse, size=(cell.size, cell.size), mode="bicubic").clamp(0, 1)
    labels = torch.arange(cell.batch) % 2
    batch = Batch(images, labels, tuple(f"b{i}" for i in range(cell.batch)), (None,) * cell.batch)
    return model, batch, compute_update(model, batch, cell.settings)


def rog_core(iterations: int) -> AttackOptions:
    """ROG's own optimisation loop: squared L2, true labels, no analytic stage, one start.

    medleak's full attack may skip the loop altogether (its analytic stage inverts LeNet's wide
    linear layer directly), which would time something else.
    """
    options = AttackOptions(iterations=iterations)
    try:
        from medleak.attacks.presets import apply_preset
    except ImportError:  # an older medleak, before presets: its default is the core loop
        return options
    return dataclasses.replace(apply_preset("rog-core", options), iterations=iterations)


def time_medleak(
    model: nn.Module, batch: Batch, update: Update, cell: Cell, iterations: int
) -> Timing:
    """medleak's ROG attack, timed between its progress callbacks.

    Its first iteration warms up and is the one whose FLOPs are counted (with the attack's
    set-up, which does no convolution or matrix product in the core loop); the next
    ``iterations`` are timed.
    """
    attack = get_attack("rog")
    knowledge = ServerKnowledge(model, cell.size, cell.batch, true_labels=batch.labels)
    timing = Timing()
    counter = FlopCounterMode(display=False)
    marks: list[tuple[float, float]] = []

    def progress(iteration: int, loss: float) -> None:
        if iteration == 0:
            counter.__exit__(None, None, None)
        marks.append((time.perf_counter(), time.process_time()))

    counter.__enter__()
    try:
        attack(update, knowledge, rog_core(iterations + 1), seed=0, progress=progress)
    finally:
        if not marks:
            counter.__exit__(None, None, None)
    timing.flops = counter.get_total_flops()
    for (w0, c0), (w1, c1) in zip(marks, marks[1:]):
        timing.wall.append(w1 - w0)
        timing.cpu.append(c1 - c0)
    return timing


def plain_step_fn(
    model: nn.Module, batch: Batch, update: Update, cell: Cell
) -> Callable[[], float]:
    """The obvious ROG loop in plain PyTorch; returns a function that runs one iteration."""
    model = copy.deepcopy(model)  # BatchNorm's running statistics change in training mode
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    target = [update.tensors[n] for n in names]
    settings = cell.settings
    side = cell.size // SCALE_FACTOR
    latent = torch.rand(cell.batch, 1, side, side, generator=torch.Generator().manual_seed(0))
    latent.requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100, eta_min=0.1 * LR)
    channels = int(model.in_channels)

    def step() -> float:
        optimizer.zero_grad()
        x = F.interpolate(latent, size=(cell.size, cell.size), mode="bicubic")
        x = x.expand(-1, channels, -1, -1)
        if settings.algorithm == "fedsgd":
            loss = F.cross_entropy(model(x), batch.labels)
            dummy = torch.autograd.grad(loss, params, create_graph=True)
        else:
            weights = dict(zip(names, params))
            total = None
            for _ in range(settings.local_steps):
                loss = F.cross_entropy(functional_call(model, weights, (x,)), batch.labels)
                grads = torch.autograd.grad(loss, list(weights.values()), create_graph=True)
                total = grads if total is None else [t + g for t, g in zip(total, grads)]
                weights = {
                    n: w - settings.local_lr * g for (n, w), g in zip(weights.items(), grads)
                }
            dummy = total
        match = sum(((d - t) ** 2).sum() for d, t in zip(dummy, target))
        match.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            latent.clamp_(0, 1)
        return float(match.detach())

    return step


def time_plain(
    model: nn.Module,
    batch: Batch,
    update: Update,
    cell: Cell,
    iterations: int | None,
    budget: float,
) -> Timing:
    """The plain loop: one counted warm-up iteration, then ``iterations`` timed ones.

    ``iterations`` None: as many as fit in ``budget`` seconds by the warm-up's duration, at least
    2 and at most 5, so the full grid stays affordable on a small machine.
    """
    step = plain_step_fn(model, batch, update, cell)
    timing = Timing()
    start = time.perf_counter()
    with FlopCounterMode(display=False) as counter:
        step()
    timing.flops = counter.get_total_flops()
    if iterations is None:
        iterations = timed_iterations(time.perf_counter() - start, budget)
    for _ in range(iterations):
        w0, c0 = time.perf_counter(), time.process_time()
        step()
        timing.wall.append(time.perf_counter() - w0)
        timing.cpu.append(time.process_time() - c0)
    return timing


def timed_iterations(seconds_per_iteration: float, budget: float) -> int:
    return max(2, min(5, int(budget / max(seconds_per_iteration, 1e-3))))


def forward_flops(model: nn.Module, cell: Cell) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(cell.batch, int(model.in_channels), cell.size, cell.size))
    return counter.get_total_flops()


def iterations_for(quick: bool, requested: int | None) -> int | None:
    """Timed iterations per loop: as asked, 3 for --quick, else None (fit to --budget)."""
    if requested is not None:
        return requested
    return 3 if quick else None


def run_cell(
    cell: Cell,
    channels: int,
    iterations: int | None,
    plain: bool,
    budget: float,
) -> dict[str, Any]:
    """Both loops on one cell; the matmul ceiling is measured again here, under today's load."""
    load_before = load_average()
    ceiling = matmul_gflops(repeats=10)["best_gflops"]
    model, batch, update = victim(cell, channels)
    fwd = forward_flops(model, cell)
    timings = {}
    if plain:
        timings["plain"] = time_plain(model, batch, update, cell, iterations, budget)
        iterations = len(timings["plain"].wall)  # the same count for both loops
    iterations = iterations or 3
    timings["medleak"] = time_medleak(model, batch, update, cell, iterations)
    row: dict[str, Any] = {
        **asdict(cell),
        "fl": cell.fl,
        "channels": channels,
        "iterations": iterations,
        "forward_gflop": round(fwd / 1e9, 3),
        "matmul_best_gflops": ceiling,
        "load_before": load_before,
        "load_after": load_average(),
    }
    for name, t in timings.items():
        row[name] = {
            "seconds_per_iteration": round(t.median_wall, 4),
            "cpu_seconds_per_iteration": round(t.median_cpu, 4),
            "wall": [round(s, 4) for s in t.wall],
            "gflop_per_iteration": round(t.flops / 1e9, 3),
            "forward_passes": round(t.flops / fwd, 2) if fwd else None,
            "gflops": round(t.flops / t.median_wall / 1e9, 2),
            "fraction_of_matmul": round(t.flops / t.median_wall / 1e9 / ceiling, 3),
        }
    if plain:
        row["speedup"] = round(timings["plain"].median_wall / timings["medleak"].median_wall, 2)
        row["speedup_cpu"] = round(timings["plain"].median_cpu / timings["medleak"].median_cpu, 2)
    return row


def grid(args: argparse.Namespace) -> list[Cell]:
    if args.quick and not args.explicit:
        return [
            Cell("lenet", 128, 4, "fedsgd", 1),
            Cell("resnet18-rog", 64, 1, "fedsgd", 1),
            Cell("resnet18-rog", 128, 4, "fedsgd", 1),
        ]
    fl = [("fedsgd", 1)] if "fedsgd" in args.algorithms else []
    if "fedavg" in args.algorithms:
        fl += [("fedavg", tau) for tau in args.taus]
    return [
        Cell(m, s, b, a, t)
        for m in args.models
        for s in args.sizes
        for b in args.batches
        for a, t in fl
    ]


HEADER = (
    f"{'model':<13}{'px':>4}{'b':>3} {'fl':<9}{'load':>5}  {'plain s/it':>10}{'medleak':>9}"
    f"{'speedup':>8}{'cpu x':>6}  {'GFLOP/it':>9}{'x fwd p/m':>11}{'GFLOP/s':>8}{'mm':>6}"
    f"{'%mm':>5}"
)


def format_row(row: dict[str, Any]) -> str:
    """One table line; GFLOP/it, GFLOP/s and %mm are medleak's, ``x fwd`` is plain/medleak."""
    m = row["medleak"]
    p = row.get("plain")
    plain_s = f"{p['seconds_per_iteration']:>10.3f}" if p else f"{'-':>10}"
    speed = f"{row['speedup']:>7.2f}x" if p else f"{'-':>8}"
    cpu = f"{row['speedup_cpu']:>5.2f}x" if p else f"{'-':>6}"
    passes = f"{p['forward_passes']:.1f}/" if p else ""
    passes += f"{m['forward_passes']:.1f}"
    ceiling = row.get("matmul_best_gflops")
    mm = f"{ceiling:>6.0f}" if ceiling is not None else f"{'-':>6}"
    return (
        f"{row['model']:<13}{row['size']:>4}{row['batch']:>3} {row['fl']:<9}"
        f"{row['load_before']:>5.1f}  {plain_s}{m['seconds_per_iteration']:>9.3f}{speed}{cpu}  "
        f"{m['gflop_per_iteration']:>9.2f}{passes:>11}{m['gflops']:>8.1f}"
        f"{mm}{100 * m['fraction_of_matmul']:>4.0f}%"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 cells, 3 timed iterations")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--algorithms", nargs="+", default=["fedsgd", "fedavg"])
    parser.add_argument("--taus", nargs="+", type=int, default=list(TAUS))
    parser.add_argument("--channels", type=int, default=1, help="model input channels")
    parser.add_argument("--iterations", type=int, help="timed iterations per loop and cell")
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds of timed plain iterations per cell when --iterations is not given "
        "(2 to 5 iterations)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-plain", action="store_true", help="time medleak only")
    parser.add_argument("--from-json", type=Path, help="print the table of an earlier run, only")
    args = parser.parse_args(argv)
    # A filter on the command line makes --quick mean "few iterations" on the chosen grid.
    args.explicit = any(
        a.startswith(("--models", "--sizes", "--batches", "--taus", "--alg"))
        for a in (argv if argv is not None else sys.argv[1:])
    )
    return args


def print_saved(path: Path) -> None:
    saved = json.loads(path.read_text())
    meta = saved["meta"]
    print(f"# {meta['command']}")
    print(
        f"# {meta['date']}  {meta['cpu']}  {meta['threads']} threads  load "
        f"{meta['load_start']} -> {meta.get('load_end')}  env {meta.get('env')}"
    )
    end = meta.get("matmul_end", {}).get("best_gflops")
    print(f"# matmul best GFLOP/s {meta['matmul']['best_gflops']} (start), {end} (end)")
    print(HEADER)
    for row in saved["cells"]:
        print(format_row(row))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.from_json:
        print_saved(args.from_json)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    mm = matmul_gflops()
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/speed.py", *(argv or sys.argv[1:])]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "load_start": load_average(),
        # OpenMP spin-waiting decides 2-thread timings on a loaded machine (see RESULTS.md).
        "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
        "matmul": mm,
        "flop_counter": "FlopCounterMode: conv + matmul only; double backward counted via the "
        "aten.convolution calls inside _convolution_double_backward; elementwise ops, pooling, "
        "upsampling and Adam are not counted (an undercount of a few percent of the work)",
    }
    print(
        f"# {meta['date']}  {meta['cpu']}  {threads} threads  torch {meta['torch']}  "
        f"load {meta['load_start']}  OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    print(
        f"# matmul float32 {mm['size']}^3: {mm['median_gflops']} GFLOP/s median, "
        f"{mm['best_gflops']} best; %mm uses each cell's own best-of-10, taken just before it"
    )
    print("# FLOPs: conv+matmul only (FlopCounterMode), double backward included; see --help")
    print(HEADER)
    rows = []
    for cell in grid(args):
        iterations = iterations_for(args.quick, args.iterations)
        row = run_cell(cell, args.channels, iterations, not args.no_plain, args.budget)
        rows.append(row)
        print(format_row(row), flush=True)
        if args.json:
            write_json(args.json, meta, rows)
    meta["load_end"] = load_average()
    meta["matmul_end"] = matmul_gflops()
    print(
        f"# load at end {meta['load_end']}; matmul again: "
        f"{meta['matmul_end']['median_gflops']} median, {meta['matmul_end']['best_gflops']} best"
    )
    if args.json:
        write_json(args.json, meta, rows)
    return 0


def write_json(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strict_json({"meta": meta, "cells": rows}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
