"""What the training findings share: how a stored run is labelled and
grouped, the margins their criteria use."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.defenses.spec import describe_chain
from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.stats import (
    Summary,
    summarise,
)

#: An accuracy change smaller than this (2 of 80 held-out phantoms is 0.025) is not a cost.
ACCURACY_MARGIN = 0.025


def defense_label(config: dict) -> str:
    return describe_chain(config.get("defenses", []))


def noise_multiplier(defense: str) -> float:
    """z of the ``dp`` stage of a chain (0 for none), read through the defense spec parser."""
    from medleak.defenses import resolve_spec

    for stage in defense.split(" -> "):
        if not stage.startswith("dp"):
            continue
        try:
            resolved = resolve_spec(stage)
        except Exception:  # a spec this version no longer parses: ordered first
            return 0.0
        if resolved["name"] == "dp":
            return float(resolved["params"]["z"])
    return 0.0


def accuracy_of(trainings: Sequence[StoredRun]) -> Summary | None:
    return summarise(t.metrics.get("accuracy") for t in trainings)


def best(
    table: dict[tuple[str, int], Summary], names: list[str], r: int
) -> tuple[str, float] | None:
    """The strongest attack at round r (the server uses its best attack)."""
    values = [(n, table[(n, r)].mean) for n in names if (n, r) in table]
    return max(values, key=lambda v: v[1]) if values else None
