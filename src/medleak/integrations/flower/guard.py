"""``LeakageGuardMod``: the hospital attacks its own outgoing update before it leaves.

Place it OUTSIDE the defense mod (``ClientApp(mods=[guard, defense])``: Flower runs the first mod
outermost), so it sees exactly what the server will receive. It decodes the reply, runs the
configured attack with the global weights the server sent, scores the reconstruction against the
batch the ClientApp remembered (``remember_batch``), logs the verdict, and when the verdict is
"leaks" or a threshold is crossed it either blocks the update (an error reply, which Flower's
strategies count as a failure) or re-obfuscates it with a stronger chain and sends that instead.
The same idea as the gradient-inversion filter of NVIDIA's federated chest X-ray study (Hatamizadeh
et al., 2023, NVFlare), here with medleak's attacks and verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import Any, Literal

import torch
from flwr.app import ConfigRecord, Context, Error, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.constant import ErrorCode
from flwr.supercore import log

from medleak.errors import ConfigError
from medleak.integrations.flower import messages as m
from medleak.integrations.flower.client import remembered_batch
from medleak.integrations.flower.mods import client_seed, defended_chain, encode_reply
from medleak.integrations.flower.probe import AttackPlan, judge, run_probe
from medleak.metrics.verdict import floors

GUARD_KEY = "medleak.guard"


@dataclass(frozen=True)
class GuardDecision:
    verdict: str
    reason: str
    crossed: bool
    scores: dict[str, Any]


def over_threshold(
    scores: dict[str, Any], verdict: str, ssim_margin: float | None, rdlv: float | None
) -> tuple[bool, str]:
    """Whether the update must not leave: verdict "leaks", SSIM above floor + margin, or RDLV."""
    if verdict == "leaks":
        return True, "verdict: leaks"
    ssim = scores.get("ssim")
    floor = floors(scores)["floor_ssim"]  # the stronger of the blank and prior-image floors
    if ssim_margin is not None and ssim is not None and floor is not None:
        if ssim > floor + ssim_margin:
            return True, f"SSIM {ssim:.3f} above the floor {floor:.3f} + {ssim_margin}"
    value = scores.get("rdlv")
    if rdlv is not None and value is not None and value > rdlv:
        return True, f"RDLV {value:.3f} above {rdlv}"
    return False, "below every threshold"


class LeakageGuardMod:
    """Attack the client's own update; block or re-obfuscate it when it leaks.

    action: "block" (error reply) or "reobfuscate" (apply ``stronger`` on top of what was about
    to be sent and send that). ssim_margin / rdlv: extra thresholds beside the verdict.
    tell_server: add the verdict to the reply (a ``medleak.guard`` ConfigRecord the audit
    records); off keeps the hospital's self-assessment at the hospital.
    """

    def __init__(
        self,
        model: Callable[[], torch.nn.Module],
        plan: AttackPlan | None = None,
        *,
        action: Literal["block", "reobfuscate"] = "block",
        stronger: Sequence[str | Mapping[str, Any]] = (),
        ssim_margin: float | None = None,
        rdlv: float | None = None,
        seed: int = 0,
        keys: m.TrainKeys = m.DEFAULT_KEYS,
        tell_server: bool = True,
    ) -> None:
        if action not in ("block", "reobfuscate"):
            raise ConfigError(f"guard action must be block or reobfuscate, got {action!r}")
        if action == "reobfuscate" and not stronger:
            raise ConfigError("guard action 'reobfuscate' needs a stronger defense chain")
        self.model_factory = model
        self.names = m.parameter_names(model())
        self.plan = plan or AttackPlan()
        self.action = action
        self.stronger = defended_chain(stronger) if stronger else None
        self.ssim_margin = ssim_margin
        self.rdlv = rdlv
        self.seed = seed
        self.keys = keys
        self.tell_server = tell_server
        self.decisions: list[GuardDecision] = []

    def check(self, msg: Message, reply: Message, context: Context) -> GuardDecision:
        """Attack the outgoing reply as the server would and judge it against the own batch."""
        batch = remembered_batch(context)
        if batch is None:
            raise ConfigError(
                "LeakageGuardMod needs the client's batch: call remember_batch(context, batch) "
                "in the ClientApp's train function"
            )
        training = m.LocalTraining.from_config(m.train_config(msg), self.keys)
        decoded = m.decode_reply(reply, m.global_arrays(msg), self.names, training)
        model = self.model_factory()
        model.load_state_dict(m.to_tensors(m.global_arrays(msg)), strict=True)
        round_ = int(m.train_config(msg).get("server-round", 0))
        probe = run_probe(
            decoded.update,
            model,
            self.plan,
            client_seed(self.seed, round_, int(context.node_id)),
            batch,
        )
        scores = probe.scores or {}
        verdict, why = judge(probe.scores)
        crossed, because = over_threshold(scores, verdict, self.ssim_margin, self.rdlv)
        return GuardDecision(verdict, f"{why}; {because}", crossed, scores)

    def __call__(self, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, context)
        reply = call_next(msg, context)
        if reply.has_error():
            return reply
        decision = self.check(msg, reply, context)
        self.decisions.append(decision)
        log(INFO, "LeakageGuardMod: %s (%s)", decision.verdict, decision.reason)
        if not decision.crossed:
            self._note(reply, decision, "sent")
            return reply
        if self.action == "block":
            reason = f"LeakageGuardMod blocked the update: {decision.reason}"
            log(WARNING, reason)
            return Message(
                Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg
            )
        self._reobfuscate(msg, reply, context)
        self._note(reply, decision, "re-obfuscated")
        return reply

    def _reobfuscate(self, msg: Message, reply: Message, context: Context) -> None:
        """Apply the stronger chain to what was about to be sent, and re-encode it."""
        assert self.stronger is not None
        training = m.LocalTraining.from_config(m.train_config(msg), self.keys)
        w0 = m.global_arrays(msg)
        decoded = m.decode_reply(reply, w0, self.names, training)
        before = list(decoded.update.defenses)
        originals = reply.content.array_records.get(m.ORIGINALS_KEY)
        m.replace_arrays(reply, decoded.weights)  # drops the old wire record
        if originals is not None:
            reply.content[m.ORIGINALS_KEY] = originals
        round_ = int(m.train_config(msg).get("server-round", 0))
        seed = client_seed(self.seed + 1, round_, int(context.node_id))
        encode_reply(reply, msg, self.stronger, self.names, seed, self.keys)
        info = reply.content.config_records[m.WIRE_KEY]
        info["chain"] = json.dumps(before + self.stronger.resolved)

    def _note(self, reply: Message, decision: GuardDecision, outcome: str) -> None:
        if not self.tell_server:
            return
        reply.content[GUARD_KEY] = ConfigRecord(
            {"verdict": decision.verdict, "reason": decision.reason, "outcome": outcome}
        )
