"""How a federation's images are split among its clients: iid, Dirichlet label skew, by patient.

Every partition is a function of (labels, patients, clients, seed) only, so the same setting
gives the same clients in every run and on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medleak.errors import ConfigError

PARTITIONS = ("iid", "dirichlet", "patient")


def partition(
    labels: Sequence[int],
    clients: int,
    kind: str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    patients: Sequence[str | None] | None = None,
) -> list[list[int]]:
    """Indices of each client's images (every image goes to exactly one client)."""
    if kind not in PARTITIONS:
        raise ConfigError(f"unknown partition {kind!r}; choose {', '.join(PARTITIONS)}")
    n = len(labels)
    if clients < 1 or clients > n:
        raise ConfigError(f"train.clients must be in 1..{n} (the training images), got {clients}")
    rng = np.random.default_rng([seed, 4242])
    if kind == "iid":
        order = rng.permutation(n)
        return [sorted(int(i) for i in part) for part in np.array_split(order, clients)]
    if kind == "dirichlet":
        if not alpha > 0:
            raise ConfigError(f"train.alpha must be > 0, got {alpha}")
        return _dirichlet(np.asarray(labels), clients, alpha, rng)
    return _by_patient(n, clients, patients, rng)


def _dirichlet(
    labels: np.ndarray, clients: int, alpha: float, rng: np.random.Generator
) -> list[list[int]]:
    """Per class, shares q ~ Dir(alpha) over the clients (Hsu et al. 2019); small alpha = skew.

    A client left empty takes one image from the largest client, so every client can train.
    """
    parts: list[list[int]] = [[] for _ in range(clients)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].extend(int(i) for i in chunk)
    for client in range(clients):
        if not parts[client]:
            donor = max(range(clients), key=lambda c: len(parts[c]))
            parts[client].append(parts[donor].pop())
    return [sorted(p) for p in parts]


def _by_patient(
    n: int, clients: int, patients: Sequence[str | None] | None, rng: np.random.Generator
) -> list[list[int]]:
    """Whole patients to one client each (unknown patients count as their own), greedy by size."""
    groups: dict[str, list[int]] = {}
    for i in range(n):
        patient = patients[i] if patients is not None else None
        groups.setdefault(patient if patient is not None else f"#image-{i}", []).append(i)
    if len(groups) < clients:
        raise ConfigError(f"partition 'patient': {len(groups)} patients for {clients} clients")
    keys = list(groups)
    order = rng.permutation(len(keys))
    ordered = sorted((keys[i] for i in order), key=lambda k: -len(groups[k]))
    parts: list[list[int]] = [[] for _ in range(clients)]
    for key in ordered:
        smallest = min(range(clients), key=lambda c: len(parts[c]))
        parts[smallest].extend(groups[key])
    return [sorted(p) for p in parts]
