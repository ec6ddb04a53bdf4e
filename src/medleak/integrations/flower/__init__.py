"""medleak inside a real Flower federation (Message API, ``flwr>=1.42,<2``: ``medleak[flower]``).

At the hospital (ClientApp): ``DefenseMod`` obfuscates what is sent, in a compact wire encoding;
``LeakageGuardMod`` attacks the outgoing update and blocks or re-obfuscates it when it leaks;
``train_local`` / ``train_dp_sgd`` train (DP-SGD must run inside training, not as a mod).
At the server (ServerApp): ``DecodeStrategy`` decodes before aggregation; ``AuditStrategy``
decodes, attacks every client update and stores audit records, then aggregates unchanged.
"""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from medleak.errors import ConfigError

    raise ConfigError(
        "medleak.integrations.flower needs Flower: pip install 'medleak[flower]'"
    ) from exc

from medleak.experiments.audit_store import AUDIT_KIND, load_audits, save_audit
from medleak.integrations.flower.audit import AuditStrategy, DecodeStrategy
from medleak.integrations.flower.client import (
    load_global,
    offer_originals,
    remember_batch,
    train_dp_sgd,
    train_local,
)
from medleak.integrations.flower.guard import LeakageGuardMod
from medleak.integrations.flower.messages import LocalTraining, TrainKeys
from medleak.integrations.flower.mods import DP_REFUSAL, DefenseMod, client_seed
from medleak.integrations.flower.probe import AttackPlan

__all__ = [
    "AUDIT_KIND",
    "DP_REFUSAL",
    "AttackPlan",
    "AuditStrategy",
    "DecodeStrategy",
    "DefenseMod",
    "LeakageGuardMod",
    "LocalTraining",
    "TrainKeys",
    "client_seed",
    "load_audits",
    "load_global",
    "offer_originals",
    "remember_batch",
    "save_audit",
    "train_dp_sgd",
    "train_local",
]
