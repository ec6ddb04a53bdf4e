"""Sweep specs: a base config, grid axes (a product) and hand-picked runs (a union), validated.

Everything is expanded and checked before anything runs, so a typo in the last axis fails in
milliseconds with a one-line error naming it, not after an hour of attacks.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medleak.errors import ConfigError, MedleakError
from medleak.experiments.config import RunConfig, _merge, from_dict
from medleak.experiments.records import legacy_ids, legacy_sweep_id, run_id
from medleak.yaml_input import loads_yaml, read_yaml

TOP_KEYS = ("base", "grid", "list", "train")


@dataclass
class Job:
    """One run of a sweep. ``train`` is set for kind ``train`` and for attacks on a round.

    ``run_id`` comes from :func:`medleak.experiments.records.run_id` (the one id function);
    ``legacy_id`` is the id a store of the first scheme gave the same run (to report it);
    ``legacy_ids`` every id an older scheme gave it, newest first (a store is re-keyed from them).
    """

    kind: str
    run_id: str
    config: dict[str, Any]
    train: dict[str, Any] | None = None
    train_id: str | None = None
    label: str = ""
    legacy_id: str | None = None
    legacy_ids: tuple[str, ...] = ()


@dataclass
class Sweep:
    """The expanded jobs; ``added_baselines`` counts the no-defense attack runs the expansion
    added because the grid lacked them (each defended point is judged against its own)."""

    path: str
    jobs: list[Job] = field(default_factory=list)
    added_baselines: int = 0

    @property
    def trainings(self) -> list[Job]:
        return [j for j in self.jobs if j.kind == "train"]

    @property
    def attacks(self) -> list[Job]:
        return [j for j in self.jobs if j.kind == "attack"]


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs; VALUE is read as YAML (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = loads_yaml(value, f"--set {key.strip()}") if value.strip() else ""
        except ConfigError as exc:
            if "duplicate key" in str(exc):
                raise
            out[key.strip()] = value
    return out


def _set_dotted(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    node = mapping
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"key {dotted!r}: {part!r} is not a section")
        node = child
    node[leaf] = copy.deepcopy(value)


def _split_train(mapping: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    mapping = copy.deepcopy(mapping)
    train = mapping.pop("train", None)
    return mapping, train


def _train_config(values: dict[str, Any] | None, where: str) -> Any:
    from medleak.fl.training import TrainConfig

    config = TrainConfig()
    try:
        _merge(config, values or {}, "train.")
        config.check()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config


def check_run(config: RunConfig, where: str = "") -> None:
    """Build what a run would build, cheaply: attack name, defenses, model, divisibility.
    ``where`` (a run of a spec) prefixes the error."""
    from medleak.attacks import get_attack
    from medleak.defenses import build_chain
    from medleak.models import MODELS

    try:
        get_attack(config.attack.name)
        build_chain(config.defenses)
        if config.model.name not in MODELS:
            raise ConfigError(
                f"unknown model {config.model.name!r}; choose from {', '.join(sorted(MODELS))}"
            )
        config.attack.options().check_setting(config.data.image_size)
        if config.model.round is not None and config.model.round < 0:
            raise ConfigError(f"model.round must be >= 0, got {config.model.round}")
    except MedleakError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


def _describe(assignment: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in assignment.items()) or "base"


def _parts(
    raw: Any, path: str, overrides: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The spec's base (train section and ``--set`` folded in), grid and list, validated."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep spec must be a mapping with base/grid/list/train")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {unknown[0]!r}; known: {', '.join(TOP_KEYS)}"
        )
    base = raw.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: 'base' must be a mapping")
    base = copy.deepcopy(base)
    if raw.get("train") is not None:
        if not isinstance(raw["train"], dict):
            raise ConfigError(f"{path}: 'train' must be a mapping")
        base["train"] = copy.deepcopy(raw["train"])
    for key, value in (overrides or {}).items():
        _set_dotted(base, key, value)
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: 'grid' must be a mapping of dotted keys to lists")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid axis {key!r} must be a non-empty list of values")
    picks = raw.get("list") or []
    if not isinstance(picks, list) or not all(isinstance(p, dict) for p in picks):
        raise ConfigError(f"{path}: 'list' must be a list of mappings of dotted keys")
    return base, grid, picks


def _assignments(
    base: dict[str, Any],
    grid: dict[str, Any],
    picks: list[dict[str, Any]],
    path: str,
    max_runs: int | None,
) -> tuple[list[dict[str, Any]], int]:
    """Every run's dotted keys (the grid's product, then the list, then the no-defense
    baselines) and how many of them the spec itself asked for. The count is checked against
    ``max_runs`` before anything is built."""
    count = (math.prod(len(v) for v in grid.values()) if grid or not picks else 0) + len(picks)
    if max_runs is not None and count > max_runs:
        raise ConfigError(
            f"{path}: the spec makes {count} runs, more than --max-runs {max_runs}; split it or "
            "raise --max-runs"
        )
    assignments: list[dict[str, Any]] = []
    if grid or not picks:
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            assignments.append(dict(zip(keys, combo)))
    assignments.extend(copy.deepcopy(p) for p in picks)
    wanted = len(assignments)
    # Each defended point's baseline: the same run with no defense (same data, model, FL
    # settings, attack, seed, batch). Appended after the spec's own runs; the ids dedupe the
    # ones the grid already has, and those it lacks are counted as added. A spec whose base sets
    # metrics.baseline: false (as --no-baseline does for one attack) asks for none.
    if (base.get("metrics") or {}).get("baseline") is not False:
        assignments.extend({**a, "defenses": []} for a in assignments[:wanted])
    return assignments, wanted


def _run_config(
    base: dict[str, Any], assignment: dict[str, Any], where: str
) -> tuple[RunConfig, dict[str, Any] | None]:
    """One run's validated config and its training section (None without one)."""
    merged = copy.deepcopy(base)
    for key, value in assignment.items():
        try:
            _set_dotted(merged, str(key), value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    run_part, train_part = _split_train(merged)
    try:
        config = from_dict(run_part)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    check_run(config, where)
    return config, train_part


class _Trainings:
    """The distinct trainings of a sweep (one per setting its attacks share) and the rounds
    their attacks want saved."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.rounds: dict[str, set[int]] = {}

    def add(self, config: RunConfig, train_part: dict[str, Any], where: str) -> tuple[str, dict]:
        train = _train_config(train_part, where).to_dict()
        train_id = run_id(config, "train", train)
        if train_id not in self.jobs:
            config_dict = config.to_dict()
            self.jobs[train_id] = Job(
                "train",
                train_id,
                config_dict,
                train,
                label=_describe({"defenses": config_dict["defenses"]}),
                legacy_id=legacy_sweep_id(config, "train", train),
                legacy_ids=legacy_ids(config, "train", train, train_id),
            )
        if config.model.round is not None:
            if config.model.round > train["rounds"]:
                raise ConfigError(
                    f"{where}: model.round {config.model.round} > train.rounds {train['rounds']}"
                )
            self.rounds.setdefault(train_id, set()).add(config.model.round)
        return train_id, train

    def finished(self) -> list[Job]:
        for train_id, job in self.jobs.items():
            assert job.train is not None
            wanted = set(job.train["save_rounds"]) | self.rounds.get(train_id, set())
            # Saved rounds are an output choice, not part of the training's identity.
            job.train = {**job.train, "save_rounds": sorted(wanted)}
        return list(self.jobs.values())


def expand(
    raw: Any,
    path: str = "spec",
    overrides: dict[str, Any] | None = None,
    max_runs: int | None = None,
) -> Sweep:
    """Expand and validate a spec mapping into jobs (raises ConfigError with one line).

    ``max_runs``: refuse, before expanding anything, a spec of more runs than this (a grid of
    10^6 runs would otherwise sit silent for minutes building its list).
    """
    base, grid, picks = _parts(raw, path, overrides)
    assignments, wanted = _assignments(base, grid, picks, path, max_runs)
    sweep = Sweep(path)
    seen: set[str] = set()
    trainings = _Trainings()
    for number, assignment in enumerate(assignments, 1):
        where = f"{path}: run {number} ({_describe(assignment)})"
        config, train_part = _run_config(base, assignment, where)
        train_dict = train_id = None
        if train_part is not None:
            train_id, train_dict = trainings.add(config, train_part, where)
        elif config.model.round is not None:
            raise ConfigError(f"{where}: model.round needs a 'train:' section in the spec")
        job_id = run_id(config, "attack", train_dict)
        if job_id in seen:
            continue
        seen.add(job_id)
        if number > wanted:
            sweep.added_baselines += 1
        sweep.jobs.append(
            Job(
                "attack",
                job_id,
                config.to_dict(),
                train_dict,
                train_id,
                _describe(assignment),
                legacy_sweep_id(config, "attack", train_dict),
                legacy_ids(config, "attack", train_dict, job_id),
            )
        )
    sweep.jobs = trainings.finished() + sweep.jobs
    return sweep


def load_spec(
    path: str | Path, overrides: dict[str, Any] | None = None, max_runs: int | None = None
) -> Sweep:
    """Read a YAML spec with a safe loader and expand it."""
    return expand(read_yaml(path, "sweep spec"), str(path), overrides, max_runs)
