"""An audit of an update a client really sent (``medleak audit``): the user's model with the
global weights, the captured update turned into medleak's ``Update``, the configured attack.

What the server knows comes from the update file's settings and the user's YAML; what neither
declares is not assumed (a FedAvg update without its batch size is refused naming the key).
Without the client's originals the record holds what a server alone can tell: reconstructions,
recovered labels and class composition, verdict "not scored". With them (``originals``: any data
source medleak reads) the run goes through ``plan_run``/``execute`` and is scored exactly like
``medleak attack``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medleak.attacks import Progress, Reconstruction, ServerKnowledge, check_prior, get_attack
from medleak.capture import Captured, pseudo_gradient
from medleak.defenses import build_chain
from medleak.errors import ConfigError, RunFailed
from medleak.experiments.config import RunConfig, dump_config, from_dict, nest
from medleak.experiments.memory_guard import check_fits
from medleak.experiments.provenance import provenance
from medleak.experiments.records import RECORD_SCHEMA, RunRecord, run_id
from medleak.experiments.run import RunResult, batchnorm_refusal, execute, plan_run
from medleak.experiments.store import _json_safe, run_record
from medleak.fl import Update
from medleak.models import model_info
from medleak.models.normalize import add_normalization
from medleak.strict_json import finite_record

NOT_SCORED = "not scored"
#: Keys an update must declare (or the YAML give) before it can be attacked, by why.
ALWAYS = ("fl.algorithm", "data.batch_size", "data.image_size")
FEDAVG = ("fl.local_steps", "fl.local_lr")


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + str(key)] = value
    return out


def audit_config(
    settings: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
    *,
    form: str,
    model: nn.Module,
    originals: str | None,
) -> RunConfig:
    """The run config of an audit: the update's declared settings plus the YAML's (a key both
    give must agree), checked for what the server must know; nothing undeclared is assumed."""
    declared = _flatten(settings)
    given = _flatten(extra or {})
    for key, value in given.items():
        if key in declared and declared[key] != value:
            raise ConfigError(
                f"{key}: the update file declares {declared[key]!r}, the config says {value!r}"
            )
    merged = {**given, **declared}
    for key in ("data.source", "data.offset", "model.weights"):
        if key in merged:
            raise ConfigError(
                f"{key} cannot be set for an audit (the batch is --originals, the weights are "
                "the update file's or --weights)"
            )
    wanted = list(ALWAYS)
    if merged.get("fl.algorithm") == "fedavg":
        wanted += FEDAVG
    elif form != "pseudo_gradient":
        wanted.append("fl.local_lr")
    for key in wanted:
        if key not in merged:
            algorithm = merged.get("fl.algorithm", "an")
            raise ConfigError(
                f"the update does not declare {key}: {algorithm} update in form {form!r} cannot "
                f"be attacked without it; set {key} in save_update's settings or in --config"
            )
    channels = model_info(model).channels
    if merged.setdefault("model.channels", channels) != channels:
        raise ConfigError(
            f"model.channels: the update declares {merged['model.channels']}, the model takes "
            f"{channels}-channel input"
        )
    merged.setdefault("attack.labels", "inferred")  # the server alone does not know them
    merged["data.source"] = originals if originals is not None else "phantom"
    config = from_dict(nest(merged))
    if originals is None and config.attack.options().labels == "known":
        raise ConfigError(
            "attack.labels known needs --originals (the server alone does not know the labels)"
        )
    return config


def to_update(captured: Captured, config: RunConfig) -> Update:
    """The captured update as medleak attacks it (FedAvg: the pseudo-gradient (w0 - w_tau)/lr);
    buffers kept when the client sends them (``fl.sends_buffers``)."""
    fl = config.fl
    tensors = pseudo_gradient(captured, fl.algorithm, fl.local_lr)
    # the defenses the client declares it applied: the attack reads what each stage declares
    chain = build_chain(config.defenses)
    update = Update(
        tensors=tensors,
        kind="gradient" if fl.algorithm == "fedsgd" else "pseudo_gradient",
        fl=fl,
        batch_size=config.data.batch_size,
        bits_sent=32 * sum(t.numel() for t in tensors.values()),
        defenses=tuple(chain.resolved),
        declarations=chain.declarations,
        buffers=dict(captured.buffers) if captured.buffers and fl.sends_buffers else None,
    )
    update.check_finite()
    return update


@dataclass
class AuditResult:
    """One audit: the update attacked, what the attack rebuilt, and the scores when
    originals were given (``run``: the ``RunResult`` of ``execute``)."""

    config: RunConfig
    update: Update
    reconstruction: Reconstruction
    seconds: float
    run: RunResult | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return self.run is not None


def run_audit(
    model: nn.Module,
    captured: Captured,
    config: RunConfig,
    originals: str | None,
    progress: Progress | None = None,
    source: Mapping[str, Any] | None = None,
) -> AuditResult:
    """Load the global weights into ``model`` and attack the captured update."""
    model.load_state_dict(captured.global_state)
    model.train()
    update = to_update(captured, config)
    if originals is not None:
        plan = plan_run(config, model=model)
        if len(plan.batch) != update.batch_size:
            raise ConfigError(
                f"--originals holds {len(plan.batch)} images, the update's batch is "
                f"{update.batch_size}"
            )
        run = execute(plan, progress, baseline=False, update=update)
        return AuditResult(config, update, run.reconstruction, run.seconds, run, dict(source or {}))
    options = config.attack.options()
    check_prior(options.prior)
    options.check_setting(config.data.image_size)
    exact_unroll = config.fl.algorithm == "fedavg" and config.attack.fedavg_model != "first-order"
    with batchnorm_refusal(
        str((source or {}).get("model", config.model.name)),
        update.batch_size,
        config.data.image_size,
    ):
        check_fits(
            model,
            batch_size=update.batch_size,
            channels=config.model.channels,
            image_size=config.data.image_size,
            unrolled_steps=config.fl.local_steps if exact_unroll else 1,
        )
    attack = get_attack(config.attack.name)
    knowledge = ServerKnowledge(
        model=model, image_size=config.data.image_size, batch_size=update.batch_size
    )
    start = time.perf_counter()
    try:
        with batchnorm_refusal(
            str(source.get("model") if source else config.model.name),
            update.batch_size,
            config.data.image_size,
        ):
            found = attack(update, knowledge, options, seed=config.seed, progress=progress)
    except torch.OutOfMemoryError as exc:
        raise RunFailed(f"out of memory during the attack: {exc}") from None
    seconds = time.perf_counter() - start
    if not torch.isfinite(found.images).all():
        raise RunFailed("the attack diverged (NaN in the reconstruction); lower --attack-lr")
    return AuditResult(config, update, found, seconds, None, dict(source or {}))


def composition(labels: torch.Tensor, classes: int = 2) -> dict[str, int]:
    """How many images of each class the server believes the batch holds."""
    counts = torch.bincount(labels.flatten().long(), minlength=classes).tolist()
    return {f"class {i}": int(c) for i, c in enumerate(counts)}


def _digest(source: Mapping[str, Any]) -> str:
    return hashlib.sha256(repr(sorted(source.items())).encode()).hexdigest()[:16]


def _trace(found: Reconstruction) -> str:
    restarts = found.info.get("trace_restart", [0] * len(found.trace))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["iteration", "restart", "loss"])
    for i, (restart, loss) in enumerate(zip(restarts, found.trace)):
        writer.writerow([i, restart, repr(float(loss))])
    return buffer.getvalue()


def audit_record(result: AuditResult) -> RunRecord:
    """The record of an audit, in the run folder's layout (``metrics.json`` etc.)."""
    found = result.reconstruction
    audit = {
        **result.source,
        "recovered_labels": found.labels.tolist(),
        "recovered_composition": composition(found.labels),
        "scored": result.scored,
    }
    identity = f"audit-{_digest({'run': run_id(result.config), **result.source})}"
    if result.run is not None:
        record = run_record(result.run)
        record.run_id = identity
        record.metrics.update(run_id=identity, audit=finite_record(audit))
        if "model" in result.source:
            record.metrics["model"] = result.source["model"]
        return record
    config = result.config
    iterations = len(found.trace)
    metrics: dict[str, Any] = {
        "run_id": identity,
        "record_schema": RECORD_SCHEMA,
        **provenance(),
        "attack": config.attack.name,
        "model": result.source.get("model", config.model.name),
        "channels": config.model.channels,
        "fl": config.fl.algorithm,
        "labels_source": found.labels_source,
        "seed": config.seed,
        "iterations": iterations,
        "seconds": result.seconds,
        "seconds_per_iteration": result.seconds / max(iterations, 1),
        "num_images": int(found.images.shape[0]),
        "defenses": list(result.update.defenses),
        "bits_sent": result.update.bits_sent,
        "bits_raw": result.update.bits_raw,
        "attack_info": found.info,
        "audit": audit,
        "verdict": NOT_SCORED,
        "verdict_reason": (
            "not scored: no originals were given, so nothing says how close the reconstructions "
            "are (pass --originals with the client's batch to score them)"
        ),
        "config": config.to_dict(),
    }
    metrics = _json_safe(metrics)
    tensors = {
        "reconstructions": found.images.contiguous(),
        "initial": found.initial_images.contiguous(),
        "used_labels": found.labels.contiguous(),
    }
    return RunRecord(
        run_id=identity,
        metrics=metrics,
        tensors=tensors,
        trace_csv=_trace(found),
        config_yaml=dump_config(config),
        provenance={k: metrics[k] for k in provenance()},
    )


def audit_source(path: str | Path, captured: Captured, model_text: str) -> dict[str, Any]:
    """What was audited, as the record says it: the update file's digest, its form, the model."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {
        "update_sha256": digest,
        "update_form": captured.form,
        "update_buffers": captured.buffers is not None,
        "model": model_text,
    }


def _declared(settings: Mapping[str, Any], extra: Mapping[str, Any] | None, key: str) -> Any:
    flat = {**_flatten(extra or {}), **_flatten(settings)}
    if key not in flat:
        raise ConfigError(
            f"the update does not declare {key}, which building the model needs; set it in "
            "save_update's settings or in --config"
        )
    return flat[key]


def build_audit_model(
    settings: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
    *,
    model_name: str | None,
    factory: str | None,
    factory_args: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, str]:
    """The victim an audit attacks and its name in the record: the registry model (built at
    the declared channels and image size) or the user's factory's."""
    seed = int(_flatten(extra or {}).get("seed", _flatten(settings).get("seed", 0)))
    if (model_name is None) == (factory is None):
        raise ConfigError("give the model: --model NAME or --model-factory PKG.MODULE:FUNCTION")
    if factory is not None:
        from medleak.models.factory import build_from_factory

        return build_from_factory(factory, factory_args, seed), factory
    from medleak.models import build_model

    assert model_name is not None
    flat = {**_flatten(extra or {}), **_flatten(settings)}
    model = build_model(
        model_name,
        int(_declared(settings, extra, "model.channels")),
        int(_declared(settings, extra, "data.image_size")),
        seed=seed,
        num_classes=int(flat.get("model.num_classes") or 2),
    )
    return model, model_name


def audit_file(
    update_path: str | Path,
    model: nn.Module,
    *,
    extra: Mapping[str, Any] | None = None,
    originals: str | None = None,
    progress: Progress | None = None,
    model_text: str | None = None,
    global_state: Mapping[str, torch.Tensor] | None = None,
    weights_name: str = "global_state",
) -> AuditResult:
    """Read, validate and attack the captured update at ``update_path`` for ``model``.

    ``extra``: settings beside the file's (the YAML: attack options, seed, keys the file lacks).
    ``global_state``: the weights the server sent, when not the file's own (``weights_name``
    names them in an error). A declared ``model.normalize`` is registered on ``model`` (a
    forward pre-hook), so pass a model built for this audit."""
    from medleak.capture import read_update

    captured = read_update(update_path, model)
    if global_state is not None:
        from dataclasses import replace

        from medleak.capture import check_tensors

        state = {k: v.detach().cpu() for k, v in global_state.items()}
        check_tensors(Path(weights_name), "weights", state, model.state_dict())
        captured = replace(captured, global_state=state)
    config = audit_config(
        captured.settings, extra, form=captured.form, model=model, originals=originals
    )
    # the deployment's input normalisation, declared: part of the model on both sides
    add_normalization(model, config.model.normalize, config.model.channels)
    source = audit_source(update_path, captured, model_text or type(model).__name__)
    source["global_weights"] = "update file" if global_state is None else weights_name
    return run_audit(model, captured, config, originals, progress, source)
