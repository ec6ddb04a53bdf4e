"""A user's own model, built by their factory function (``PKG.MODULE:FUNCTION``).

The audit of a hospital's deployment attacks *their* architecture, which medleak's registry does
not hold: the factory is imported from the user's code (the working folder first on the path, as
``python -m`` does) and called with the keyword arguments their YAML gives. Every failure is one
line naming the factory: a wrong path, an import that fails, a factory that raises or that does
not return a ``torch.nn.Module``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from medleak.errors import ConfigError


def _import(module_name: str, text: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"--model-factory {text}: no module {exc.name or module_name!r} "
            "(run from the folder that holds it, or put it on PYTHONPATH)"
        ) from None
    except Exception as exc:  # the user's module failed while importing
        raise ConfigError(
            f"--model-factory {text}: importing {module_name} failed ({type(exc).__name__}: "
            f"{_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"


def build_from_factory(text: str, arguments: Mapping[str, Any] | None, seed: int) -> nn.Module:
    """The user's model: ``FUNCTION(**arguments)`` from ``PKG.MODULE``, initialised under
    ``seed`` (the global RNG is left as it was), in training mode like every victim."""
    module_name, colon, function_name = text.partition(":")
    if not colon or not module_name or not function_name.isidentifier():
        raise ConfigError(
            f"--model-factory must be PKG.MODULE:FUNCTION, got {text!r} (e.g. mymodels:build)"
        )
    module = _import(module_name, text)
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ConfigError(f"--model-factory {text}: {module_name} has no function {function_name}")
    if arguments is not None and not isinstance(arguments, Mapping):
        raise ConfigError("model_args must be a mapping of keyword arguments")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = factory(**dict(arguments or {}))
        except Exception as exc:  # the user's code raised: one line, theirs named
            raise ConfigError(
                f"--model-factory {text} raised {type(exc).__name__}: {_first_line(exc)}"
            ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"--model-factory {text} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model.train()
