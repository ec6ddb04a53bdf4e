"""Where a number came from: versions, commit and machine, stored with every result."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import medleak

SCHEMA_VERSION = 1


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_model() -> str:
    """The CPU's marketing name, so timings in metrics.json and bench/ say what ran them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "medleak_version": medleak.__version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
    }
