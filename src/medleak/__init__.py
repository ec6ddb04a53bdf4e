"""medleak: how much of a client's medical images can a federated-learning server rebuild?

The public Python API (docs/API.md lists every name in ``__all__``). Names are imported on first
use, so ``import medleak`` (and the command line) starts without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_HOME = {
    "attack": "medleak.api",
    "audit": "medleak.api",
    "sweep": "medleak.api",
    "SweepResult": "medleak.api",
    "save_update": "medleak.capture",
    "read_update": "medleak.capture",
    "RunConfig": "medleak.experiments.config",
    "load_config": "medleak.experiments.config",
    "RunRecord": "medleak.experiments.records",
    "load_run": "medleak.experiments.store",
    "MedleakError": "medleak.errors",
    "ConfigError": "medleak.errors",
    "RunFailed": "medleak.errors",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'medleak' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
