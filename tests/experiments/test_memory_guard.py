"""The memory guard's estimate against the measured peak, and its one-line refusal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medleak.cli import main

MEASURE = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from medleak.experiments.config import RunConfig, apply_overrides
from medleak.experiments.memory_guard import estimate_peak_bytes
from medleak.experiments.run import execute, plan_run
overrides = json.loads(sys.argv[1])
config = apply_overrides(RunConfig(), overrides)
plan = plan_run(config)
steps = config.fl.local_steps if config.fl.algorithm == "fedavg" else 1
estimate = estimate_peak_bytes(plan.model, batch_size=config.data.batch_size,
    channels=config.model.channels, image_size=config.data.image_size, unrolled_steps=steps)
execute(plan)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": estimate, "peak": peak}))
"""

COMMON = {"attack.iterations": 2, "attack.analytic": False, "metrics.gallery_size": 2,
          "model.channels": 1, "attack.prior": "none"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        {"model.name": "lenet", "data.image_size": 64, "data.batch_size": 4},
        {"model.name": "resnet18-rog", "data.image_size": 64, "data.batch_size": 4},
        {
            "model.name": "resnet18-rog",
            "data.image_size": 32,
            "data.batch_size": 2,
            "fl.algorithm": "fedavg",
            "fl.local_steps": 3,
        },  # fmt: skip
    ],
    ids=["lenet-64-b4", "resnet18rog-64-b4", "resnet18rog-32-fedavg3"],
)
def test_estimate_within_2x_of_measured_peak(overrides):
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps({**COMMON, **overrides})],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = result["estimate"] / result["peak"]
    assert 0.5 <= ratio <= 2.0, result


def test_an_attack_that_cannot_fit_is_refused_in_one_line(tmp_path, capsys):
    code = main(["attack", "--quiet", "--model", "resnet18-rog", "--image-size", "1024",
                 "--batch-size", "64", "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "GiB of memory" in err and "available" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "metrics.json").exists()
