"""medleak from Python: attack a configured run, audit a captured update, run a sweep.

The commands' work without the command line: each function validates its input (the same
one-line ``MedleakError`` as the CLI's exit 2), runs, and returns the typed record a store keeps.
Passing ``out`` also writes the run folder the CLI writes (metrics.json, report.html, ...), under
the same overwrite rule (``medleak.output_targets``). Listed in docs/API.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medleak.errors import ConfigError
from medleak.experiments.config import RunConfig, from_dict, load_config
from medleak.experiments.records import RunRecord
from medleak.experiments.sqlite_store import StoredRun
from medleak.experiments.sweep import SweepSummary

Progress = Callable[[int, float], None]


def _config(config: RunConfig | Mapping[str, Any] | str | Path | None) -> RunConfig:
    if config is None:
        return RunConfig()
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        return from_dict(dict(config))
    if isinstance(config, (str, Path)):
        return load_config(config)
    raise ConfigError(f"config must be a RunConfig, a mapping or a YAML path, not {type(config)}")


def _save(record: RunRecord, out: str | Path | None, force: bool, scored: bool) -> None:
    if out is None:
        return
    from medleak.experiments.stores import RunFolderStore, prepare_run_folder
    from medleak.report import render_run, render_unscored

    folder = Path(out)
    prepare_run_folder(folder, force=force)
    RunFolderStore(folder).save(record)
    (render_run if scored else render_unscored)(folder, record)


def attack(
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    out: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> RunRecord:
    """``medleak attack``: compute the client's update for ``config`` (a ``RunConfig``, a
    mapping of its sections, or a YAML file), attack it and score it. A defended run also
    attacks the undefended update (its baseline) unless ``metrics.baseline`` is false."""
    from medleak.experiments.run import baseline_wanted, execute, plan_run
    from medleak.experiments.store import run_record

    run = _config(config)
    if out is not None:
        from medleak.experiments.stores import prepare_run_folder

        prepare_run_folder(Path(out), force=force)  # refuse before the attack, not after
    result = execute(plan_run(run), progress, baseline=baseline_wanted(run, auto=True))
    record = run_record(result)
    _save(record, out, True, scored=True)
    return record


def audit(
    model: nn.Module | str,
    global_state: Mapping[str, torch.Tensor] | None,
    update: str | Path,
    settings: Mapping[str, Any] | None = None,
    originals: str | Path | None = None,
    *,
    out: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> RunRecord:
    """``medleak audit``: attack the update captured in ``update`` (``capture.save_update``).

    model: your model (any ``nn.Module``) or a registry name.
    global_state: the weights the server sent; None takes the update file's own.
    settings: run-config sections beside the file's declared ones (attack options, seed; a key
        both give must agree).
    originals: the client's batch (a folder, a .npz, ``"phantom"``): scored like ``attack``;
        None records what the server alone can tell, verdict "not scored".
    """
    from medleak.capture import read_settings
    from medleak.experiments.audit_run import audit_file, audit_record, build_audit_model

    extra = dict(settings or {})
    if isinstance(model, str):
        _, declared = read_settings(update)
        model, text = build_audit_model(declared, extra, model_name=model, factory=None)
    elif isinstance(model, nn.Module):
        text = type(model).__name__
    else:
        raise ConfigError(f"model must be a torch.nn.Module or a registry name, not {type(model)}")
    if out is not None:
        from medleak.experiments.stores import prepare_run_folder

        prepare_run_folder(Path(out), force=force)
    result = audit_file(
        update,
        model,
        extra=extra,
        originals=None if originals is None else str(originals),
        progress=progress,
        model_text=text,
        global_state=global_state,
    )
    record = audit_record(result)
    _save(record, out, True, scored=result.scored)
    return record


@dataclass
class SweepResult:
    """What a sweep did (counts, errors) and the stored record of each of its runs."""

    summary: SweepSummary
    runs: list[StoredRun] = field(default_factory=list)


def sweep(
    spec: str | Path | Mapping[str, Any],
    store: str | Path,
    *,
    workers: int = 1,
    threads: int = 1,
    rerun: bool = False,
) -> SweepResult:
    """``medleak sweep``: run every point of ``spec`` (a YAML file or its mapping) not yet in
    ``store`` (a SQLite file, resumable) and return the stored records of the spec's runs."""
    from medleak.experiments.sqlite_store import SweepStore
    from medleak.experiments.sweep import LocalBackend, run_sweep
    from medleak.experiments.sweep_spec import expand, load_spec

    plan = expand(dict(spec), "spec") if isinstance(spec, Mapping) else load_spec(spec)
    wanted = {job.run_id for job in plan.jobs}
    with SweepStore(store) as db:
        summary = run_sweep(plan, db, LocalBackend(workers, threads), rerun=rerun)
        runs = [run for run in db.runs() if run.run_id in wanted]
    return SweepResult(summary, runs)


__all__ = ["SweepResult", "attack", "audit", "sweep"]
