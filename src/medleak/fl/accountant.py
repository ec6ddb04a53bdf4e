"""The client's privacy ledger: a stateful RDP accountant (Opacus, Mironov 2017) stepped per round.

A client that runs DP-SGD releases one noisy update per round it takes part in; the guarantee
is the composition of every round so far, so the accountant lives as long as the client and is
stepped once per round with that round's noise multiplier, sampling rate and local steps.

How a round composes (``step_round``):
- the batch resampled at every step (minibatch SGD in federated training): ``local_steps``
  subsampled Gaussian steps at rate q;
- one batch for the whole round, q = 1 (a FedSGD/FedAvg client on its batch): ``local_steps``
  Gaussian mechanisms at noise z;
- one batch for the round drawn with q < 1: charging ``local_steps`` independently subsampled
  steps would understate epsilon, so the steps compose to one Gaussian of noise z / sqrt(steps)
  (the Gaussian's RDP is additive), subsampled once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from medleak.errors import ConfigError


def _check(noise_multiplier: float, sample_rate: float, steps: int, delta: float | None) -> None:
    if not noise_multiplier >= 0 or not math.isfinite(noise_multiplier):
        raise ConfigError(f"defense 'dp': z must be >= 0, got {noise_multiplier!r}")
    if not 0 < sample_rate <= 1:
        raise ConfigError(f"defense 'dp': sample_rate must be in (0, 1], got {sample_rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"defense 'dp': steps must be an integer >= 1, got {steps!r}")
    if delta is not None and not 0 < delta < 1:
        raise ConfigError(f"defense 'dp': delta must be in (0, 1), got {delta!r}")


@dataclass
class PrivacyAccountant:
    """What one client has spent so far. ``rounds``: (noise multiplier, sample rate, local
    steps) per round stepped, in order."""

    delta: float
    resample_each_step: bool = False
    rounds: list[tuple[float, float, int]] = field(default_factory=list)
    _mechanisms: list[tuple[float, float, int]] = field(default_factory=list, repr=False)

    def step_round(self, noise_multiplier: float, sample_rate: float, local_steps: int) -> None:
        """Charge one round (see the module docstring for how its steps compose)."""
        _check(noise_multiplier, sample_rate, local_steps, self.delta)
        self.rounds.append((noise_multiplier, sample_rate, local_steps))
        if self.resample_each_step or sample_rate == 1:
            self._mechanisms.append((noise_multiplier, sample_rate, local_steps))
        else:
            self._mechanisms.append((noise_multiplier / math.sqrt(local_steps), sample_rate, 1))

    @property
    def steps(self) -> int:
        return sum(steps for _, _, steps in self.rounds)

    def epsilon(self) -> float:
        """epsilon at ``delta`` after every round so far (0 before any; inf with zero noise)."""
        if not self._mechanisms:
            return 0.0
        if any(z == 0 for z, _, _ in self._mechanisms):
            return math.inf
        from opacus.accountants import RDPAccountant  # slow to import; only DP runs need it

        accountant = RDPAccountant()
        for z, q, count in self._mechanisms:
            for _ in range(count):
                accountant.step(noise_multiplier=z, sample_rate=q)
        return float(accountant.get_epsilon(delta=self.delta))

    def privacy(self) -> dict[str, Any]:
        """The record an ``Update`` carries (``Update.privacy``)."""
        z, q, _ = self.rounds[-1]
        return {
            "epsilon": self.epsilon(),
            "delta": self.delta,
            "sample_rate": q,
            "steps": self.steps,
            "rounds": len(self.rounds),
            "noise_multiplier": z,
            "accountant": "rdp",
        }
