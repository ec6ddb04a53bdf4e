"""The stored runs of each finding: exactly the jobs its spec expands to, read from the store.

The store holds every finding's runs together (and may hold others); a finding is decided on the
runs its own spec names, found by run id. A training row stores the run config without its
``train:`` settings, so those are put back from the spec (partition, rounds, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from medleak.experiments.sqlite_store import StoredRun, SweepStore
from medleak.experiments.sweep_spec import Sweep


@dataclass
class FindingRuns:
    """A finding's runs: what the store has finished, and how many its specs asked for."""

    number: int
    runs: list[StoredRun] = field(default_factory=list)
    expected: int = 0
    commands: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    per_source: dict[str, list[int]] = field(default_factory=dict)  # source -> [done, expected]

    @property
    def done(self) -> int:
        return sum(1 for r in self.runs if r.status == "finished")


def collect(store: SweepStore, sweeps: Iterable[tuple[int, str, str, Sweep]]) -> list[FindingRuns]:
    """``sweeps``: (finding number, data source, command, expanded sweep) per variant."""
    stored = {r.run_id: r for r in store.runs()}
    out: dict[int, FindingRuns] = {}
    for number, source, command, sweep in sweeps:
        entry = out.setdefault(number, FindingRuns(number))
        if command not in entry.commands:
            entry.commands.append(command)
        entry.sources.append(source)
        for job in sweep.jobs:
            if job.run_id in entry.ids:
                continue
            entry.ids.add(job.run_id)
            entry.expected += 1
            counts = entry.per_source.setdefault(source, [0, 0])
            counts[1] += 1
            # a store an older medleak wrote (and no sweep re-keyed yet) holds it under an old id
            found = (stored.get(i) for i in (job.run_id, *job.legacy_ids))
            run = next((r for r in found if r is not None), None)
            if run is None:
                continue
            counts[0] += run.status == "finished"
            if job.kind == "train" and job.train is not None:
                run = dataclasses.replace(run, config={**run.config, "train": job.train})
            entry.runs.append(run)
    return [out[n] for n in sorted(out)]
