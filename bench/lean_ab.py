"""Seconds per ROG iteration with medleak's lean double-backward layers on and off, back to back.

    python bench/lean_ab.py [--cells MODEL:PX:FL[:TAU] ...] [--rounds N] [--iterations N]
                            [--threads N]

Each cell builds one victim and update, then alternates the two variants (on/off/off/on/...)
for ``--rounds`` rounds of ``--iterations`` timed iterations, so both see the same machine load;
it prints the median of each. "off" runs the same attack with PyTorch's own double backward,
which is what medleak computed before ``medleak.fl.double_backward`` existed: this is the
before/after measurement of that change (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

import medleak.fl.client as client

DEFAULT_CELLS = ("resnet18-rog:128:fedsgd", "resnet18-rog:64:fedavg:5", "lenet:128:fedsgd")


def _speed_module():
    """bench/speed.py, for its victim and timing helpers (bench/ is not a package)."""
    path = Path(__file__).with_name("speed.py")
    spec = importlib.util.spec_from_file_location("medleak_bench_speed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _plain_autograd(**_: object) -> Iterator[None]:
    yield


def parse_cell(text: str, cell_type: Callable[..., object]) -> object:
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise SystemExit(f"cell {text!r}: expected MODEL:PX:FL or MODEL:PX:fedavg:TAU")
    tau = int(parts[3]) if len(parts) == 4 else 1
    return cell_type(parts[0], int(parts[1]), 4, parts[2], tau)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=list(DEFAULT_CELLS))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    speed = _speed_module()
    lean = client.lean_layers
    variants = {"lean": lean, "pytorch": _plain_autograd}
    print(f"{'cell (batch 4)':<28}{'pytorch s/it':>13}{'lean s/it':>10}{'gain':>7}")
    try:
        for text in args.cells:
            cell = parse_cell(text, speed.Cell)
            model, batch, update = speed.victim(cell, 1)
            walls: dict[str, list[float]] = {name: [] for name in variants}
            for round_ in range(args.rounds):
                order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                for name in order:
                    client.lean_layers = variants[name]
                    walls[name] += speed.time_medleak(
                        model, batch, update, cell, args.iterations
                    ).wall
            off, on = statistics.median(walls["pytorch"]), statistics.median(walls["lean"])
            print(f"{text:<28}{off:>13.3f}{on:>10.3f}{off / on:>6.2f}x", flush=True)
    finally:
        client.lean_layers = lean
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
