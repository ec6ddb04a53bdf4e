"""Loading trained victim weights without ever executing code from the file."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from medleak.errors import ConfigError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read safetensors, or a torch state dict with ``weights_only=True`` (no pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with warnings.catch_warnings():  # torch's pickle-protocol notice is not the user's concern
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own text advises weights_only=False, i.e. running the file's code: never repeat it
        raise ConfigError(
            f"cannot read weights file {path}: it is not a plain state dict of tensors (it holds "
            "other pickled objects, or is not a torch file); medleak never runs code from a file: "
            "save the weights with safetensors or torch.save(model.state_dict())"
        ) from None
    except Exception as exc:  # any decoding failure is the file's fault, not ours
        kind = "safetensors" if path.suffix == ".safetensors" else "torch state dict"
        # torch's own messages can be a bare "105" or "pop from empty list": say it in words first
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
        if "weights_only" in detail:  # torch's advice to load unsafely: never repeated
            detail = "not a plain state dict of tensors"
        raise ConfigError(
            f"cannot read weights file {path}: the file is not a readable {kind} "
            f"({type(exc).__name__}: {detail})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"weights file {path} does not hold a state dict of tensors")
    return state


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Copy weights into ``model``; names and shapes must match exactly."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ConfigError(f"weights file {path} does not fit the model: {detail}")
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise ConfigError(
                f"weights file {path}: {name} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(own[name].shape)}"
            )
    model.load_state_dict(state)
