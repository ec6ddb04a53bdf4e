"""A sequence of defenses applied in order: what a client computes and sends under all of them.

Order matters (``clip`` then ``gaussian`` bounds the signal and then hides it; the reverse clips
the noise too), so a chain keeps the order the user gave and records it in ``Update.defenses``.
Each stage draws its randomness from its own ``torch.Generator`` seeded from (seed, stage index),
never from the global RNG, so a run repeats exactly and adding a stage does not change the
randomness of the others.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medleak.data.batch import Batch
from medleak.defenses.dp import dp_client_update, dp_estimator
from medleak.defenses.spec import Defense, Stage
from medleak.errors import ConfigError
from medleak.fl.client import compute_update, parameters_of
from medleak.fl.estimators import PLAIN, GradientEstimator
from medleak.fl.update import Declaration, FLSettings, Update


def stage_generator(seed: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for stage ``index`` of a chain run with ``seed``, well mixed (SeedSequence)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"defense seed must be an integer >= 0, got {seed!r}")
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    generator = torch.Generator(device=device)
    generator.manual_seed(int(state))
    return generator


class DefenseChain:
    """Resolved defense specs in order, and the code that applies them.

    resolved: the specs as ``{"name", "params"}`` dicts, defaults filled in (what gets recorded).
    """

    def __init__(self, resolved: Sequence[Mapping[str, Any]], registry: Mapping[str, Defense]):
        self.resolved: list[dict[str, Any]] = [copy.deepcopy(dict(s)) for s in resolved]
        built = [registry[s["name"]].build(s["params"]) for s in self.resolved]
        for index, stage in enumerate(built):
            if stage.defense.client_side and index != 0:
                raise ConfigError(
                    f"defense {stage.defense.name!r} must be the first in a chain (it changes how "
                    f"the client computes its gradient), but it is number {index + 1}"
                )
        self._declarations = tuple(stage.declaration for stage in built)
        # A leading ``dp`` configures the client (its gradient estimator and accountant); the
        # chain's stages are then only ``Update -> Update`` transforms, each with its index in
        # the chain (which seeds its generator).
        self._client: Stage | None = built[0] if built and built[0].defense.client_side else None
        first = 1 if self._client is not None else 0
        self._stages: list[tuple[int, Stage]] = list(enumerate(built))[first:]

    @property
    def declarations(self) -> tuple[Declaration, ...]:
        """What each stage declares, in order (what ``Update.declarations`` will hold)."""
        return self._declarations

    @property
    def has_dp(self) -> bool:
        return self._client is not None

    @property
    def dp_params(self) -> dict[str, Any] | None:
        """The resolved parameters of a leading ``dp`` (the client's DP-SGD settings)."""
        return dict(self._client.params) if self._client is not None else None

    def estimator(self, generator: torch.Generator) -> GradientEstimator:
        """The gradient estimator the client runs under this chain (plain without ``dp``)."""
        params = self.dp_params
        return PLAIN if params is None else dp_estimator(params, generator)

    def post_process(self, update: Update, seed: int) -> Update:
        """Every stage after a leading ``dp`` (or all of them): for an update made elsewhere
        whose client already ran the DP-SGD estimator (federated training)."""
        lead = 1 if self.has_dp else 0
        update = update.replace(
            defenses=tuple(copy.deepcopy(r) for r in self.resolved[:lead]),
            declarations=self._declarations[:lead],
        )
        return self._run(update, seed)

    def __len__(self) -> int:
        return len(self.resolved)

    def __repr__(self) -> str:
        return f"DefenseChain({self.resolved!r})"

    def client_update(
        self,
        model: nn.Module,
        batch: Batch,
        settings: FLSettings,
        seed: int,
        client_size: int | None = None,
        rounds: int = 1,
    ) -> Update:
        """What the client sends for ``batch`` under the whole chain.

        client_size / rounds only matter for ``dp``'s accounting: the number of images the batch
        was sampled from (sampling rate q = B / client_size, else 1) and the number of rounds the
        client takes part in (the noise here is for one round; epsilon covers all of them).
        """
        if self._client is not None:
            device = next(iter(parameters_of(model).values())).device
            generator = stage_generator(seed, 0, device)
            update = dp_client_update(
                model, batch, settings, self._client.params, generator, client_size, rounds
            )
            update = update.replace(
                defenses=(copy.deepcopy(self.resolved[0]),),
                declarations=self._declarations[:1],
            )
            update.check_finite()
            return self._run(update, seed)
        return self._run(compute_update(model, batch, settings), seed)

    def apply(self, update: Update, seed: int) -> Update:
        """Apply the chain to an update computed elsewhere (post-hoc stages only; no ``dp``)."""
        if self.has_dp:
            raise ConfigError(
                "defense 'dp' changes how the client computes its update; it cannot be applied to "
                "an existing update (use client_update)"
            )
        return self._run(update, seed)

    def _run(self, update: Update, seed: int) -> Update:
        """The ``Update -> Update`` stages, in order."""
        update.check_finite()
        for index, stage in self._stages:
            device = next(iter(update.tensors.values())).device if update.tensors else "cpu"
            update = stage(update, stage_generator(seed, index, device))
            update = update.replace(
                defenses=(*update.defenses, copy.deepcopy(self.resolved[index])),
                declarations=(*update.declarations, self._declarations[index]),
            )
            update.check_finite()
        return update
