"""A client update captured from a user's own FL loop: written by ``save_update``, read back by
``read_update`` for ``medleak audit``.

One safetensors file (never a pickle: reading it runs no code) holds the global model the server
sent (``global/<name>``, parameters and buffers), the client's update (``update/<name>``) in the
declared form, and what the server knows of the client's training as JSON metadata, in the run
config's own dotted sections (``{"fl": {...}, "data": {...}, "model": {...}}``).

Forms of the update (``form``):
    weights: the client's parameters after local training (w_tau).
    delta: w_tau - w0 (what a FedAvg server adds, times the client's weight).
    pseudo_gradient: (w0 - w_tau) / lr for FedAvg, the gradient for FedSGD (medleak's own
        ``Update.tensors``).
Buffers (BatchNorm running statistics) are stored as the client's values after training, in
every form, when the client model has them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from medleak.errors import ConfigError

Form = Literal["weights", "delta", "pseudo_gradient"]
FORMS: tuple[str, ...] = ("weights", "delta", "pseudo_gradient")
GLOBAL, UPDATE = "global/", "update/"
#: Metadata key that marks a file as a captured update (and its layout version).
MARK = "medleak_update"
SECTIONS = ("fl", "data", "model", "attack", "metrics", "seed")


def _state(model: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(model, nn.Module):
        return {n: t.detach().cpu().clone() for n, t in model.state_dict().items()}
    if not all(isinstance(t, torch.Tensor) for t in model.values()):
        raise ConfigError("save_update: the client's values must all be tensors")
    return {str(n): t.detach().cpu().clone() for n, t in model.items()}


def _check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(settings, Mapping):
        raise ConfigError("save_update: settings must be a mapping of config sections")
    unknown = sorted(set(settings) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"save_update: unknown settings section {unknown[0]!r}; known: {', '.join(SECTIONS)}"
        )
    try:
        return json.loads(json.dumps(dict(settings), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save_update: settings must be plain JSON values ({exc})") from None


def save_update(
    global_model: nn.Module | Mapping[str, torch.Tensor],
    client_model: nn.Module | Mapping[str, torch.Tensor],
    path: str | Path,
    settings: Mapping[str, Any],
    form: Form = "weights",
) -> Path:
    """Write what ``medleak audit`` reads: the global state, the client's update and settings.

    ``global_model``: the model (or state dict) the server sent, before local training.
    ``client_model``: the client's model after local training (``form="weights"``), or a mapping
    of tensors already in ``form`` (``delta``, ``pseudo_gradient``), buffers included as values.
    """
    from safetensors.torch import save_file

    if form not in FORMS:
        raise ConfigError(f"save_update: form must be one of {', '.join(FORMS)}, got {form!r}")
    meta = _check_settings(settings)
    base = _state(global_model)
    client = _state(client_model)
    if isinstance(client_model, nn.Module) and form != "weights":
        params = {n for n, _ in client_model.named_parameters()}
        w0 = base
        for name in params & set(client):
            if form == "delta":
                client[name] = client[name] - w0[name]
            else:
                lr = meta.get("fl", {}).get("local_lr")
                if lr is None:
                    raise ConfigError("save_update: form pseudo_gradient needs fl.local_lr")
                client[name] = (w0[name] - client[name]) / float(lr)
    tensors = {GLOBAL + n: t.contiguous() for n, t in base.items()}
    tensors.update({UPDATE + n: t.contiguous() for n, t in client.items()})
    path = Path(path)
    metadata = {MARK: "1", "form": form, "settings": json.dumps(meta, sort_keys=True)}
    save_file(tensors, str(path), metadata=metadata)
    return path


@dataclass(frozen=True)
class Captured:
    """A captured update as read from its file, checked against the model."""

    global_state: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]  # parameters, in ``form``
    buffers: dict[str, torch.Tensor] | None
    form: Form
    settings: dict[str, Any]


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.is_file():
        raise ConfigError(f"update file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # any decoding failure is the file's, never run as code
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot read update file {path}: not a safetensors file ({detail}); medleak never "
            "unpickles an update: write it with medleak.capture.save_update"
        ) from None
    if metadata.get(MARK) is None:
        raise ConfigError(
            f"update file {path} is a safetensors file but not a captured update "
            "(write it with medleak.capture.save_update)"
        )
    return tensors, metadata


def check_tensors(
    path: Path, part: str, given: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> None:
    """Names and shapes of ``given`` against the model's: one line naming the first misfit."""
    where = f"update file {path}" if part in ("update", "global model") else str(path)
    for name, tensor in expected.items():
        if name not in given:
            raise ConfigError(f"{where}: the {part} lacks the model's tensor {name!r}")
        if tuple(given[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"{where}: {part} tensor {name!r} has shape "
                f"{tuple(given[name].shape)}, the model expects {tuple(tensor.shape)}"
            )
    for name in given:
        if name not in expected:
            raise ConfigError(f"{where}: {part} tensor {name!r} is not in the model")


def _finite(path: Path, part: str, tensors: Mapping[str, torch.Tensor]) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise ConfigError(
                f"update file {path}: {part} tensor {name!r} has {bad} NaN/inf values"
            )


def read_settings(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The declared form and settings of a captured update (to build the model it is for)."""
    path = Path(path)
    _, metadata = _load(path)
    return _form(path, metadata), _settings(path, metadata)


def _form(path: Path, metadata: Mapping[str, str]) -> str:
    form = metadata.get("form")
    if form not in FORMS:
        raise ConfigError(f"update file {path}: unknown form {form!r}; one of {', '.join(FORMS)}")
    return form


def _settings(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    try:
        settings = json.loads(metadata.get("settings", "{}"))
    except ValueError:
        raise ConfigError(f"update file {path}: its settings metadata is not JSON") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"update file {path}: its settings metadata is not a mapping")
    return settings


def read_update(path: str | Path, model: nn.Module) -> Captured:
    """Read and validate a captured update for ``model`` (names, shapes, finite values)."""
    path = Path(path)
    tensors, metadata = _load(path)
    form, settings = _form(path, metadata), _settings(path, metadata)
    state = model.state_dict()
    param_names = [n for n, p in model.named_parameters() if p.requires_grad]
    buffer_names = [n for n, _ in model.named_buffers() if n in state]
    base = {k[len(GLOBAL) :]: v for k, v in tensors.items() if k.startswith(GLOBAL)}
    sent = {k[len(UPDATE) :]: v for k, v in tensors.items() if k.startswith(UPDATE)}
    check_tensors(path, "global model", base, state)
    with_buffers = bool(buffer_names) and any(n in sent for n in buffer_names)
    expected = {n: state[n] for n in param_names}
    if with_buffers:
        expected.update({n: state[n] for n in buffer_names})
    check_tensors(path, "update", sent, expected)
    _finite(path, "global model", base)
    _finite(path, "update", sent)
    return Captured(
        global_state=base,
        tensors={n: sent[n].float() for n in param_names},
        buffers={n: sent[n] for n in buffer_names} if with_buffers else None,
        form=form,  # type: ignore[arg-type]
        settings=settings,
    )


def pseudo_gradient(captured: Captured, algorithm: str, local_lr: float | None) -> dict[str, Any]:
    """The update as medleak attacks it: FedSGD's gradient, FedAvg's (w0 - w_tau) / lr."""
    if captured.form == "pseudo_gradient":
        return dict(captured.tensors)
    if local_lr is None or not math.isfinite(local_lr) or local_lr <= 0:
        raise ConfigError(
            f"a {algorithm} update in form {captured.form!r} needs the client's learning rate: "
            "set fl.local_lr"
        )
    out = {}
    for name, value in captured.tensors.items():
        w0 = captured.global_state[name].float()
        difference = w0 - value if captured.form == "weights" else -value
        out[name] = difference / local_lr
    return out
