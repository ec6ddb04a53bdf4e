"""Server side: decode medleak's wire encoding, and audit every client update with an attack.

Both are wrappers around any Flower strategy, in the pattern of Flower's own DP wrappers: they
see the messages going out (``configure_train``: the global arrays and the local training
settings, remembered per client) and the replies coming back (``aggregate_train``), do their work
and hand the replies, turned back into plain dense weights, to the wrapped strategy, whose
aggregation runs unchanged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from medleak.experiments.audit_store import save_audit
from medleak.integrations.flower import messages as m
from medleak.integrations.flower.guard import GUARD_KEY
from medleak.integrations.flower.probe import AttackPlan, composition, judge, run_probe

SECURE_AGGREGATION_NOTE = (
    "secure aggregation: the server sees only the sum of the round's updates; individual "
    "updates are not visible, so none was attacked"
)


class DecodeStrategy(Strategy):
    """Decode the replies of clients running ``DefenseMod``, then aggregate with ``strategy``.

    model: a factory for the federation's model (which arrays are parameters, and the attack's
    architecture). Replies without a medleak encoding pass through as they are.
    history: keep every round's global arrays and decoded updates (tests, debugging); by
    default a round's are dropped once it is aggregated.
    """

    def __init__(
        self,
        strategy: Strategy,
        model: Callable[[], torch.nn.Module],
        keys: m.TrainKeys = m.DEFAULT_KEYS,
        history: bool = False,
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.model_factory = model
        self.names = m.parameter_names(model())
        self.keys = keys
        self.history = history
        self.sent: dict[int, dict[int, tuple[ArrayRecord, m.LocalTraining]]] = {}
        self.decoded: dict[int, dict[int, m.DecodedReply]] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        sent = self.sent.setdefault(server_round, {})
        for msg in messages:
            training = m.LocalTraining.from_config(m.train_config(msg), self.keys)
            sent[int(msg.metadata.dst_node_id)] = (m.global_arrays(msg), training)
        return messages

    def decode(self, server_round: int, reply: Message) -> m.DecodedReply:
        """The update and the weights to aggregate for one (non-error) reply."""
        w0, training = self.sent[server_round][int(reply.metadata.src_node_id)]
        return m.decode_reply(reply, w0, self.names, training)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        decoded = self.decoded.setdefault(server_round, {})
        for reply in replies:
            if reply.has_error():
                continue
            node = int(reply.metadata.src_node_id)
            decoded[node] = self.decode(server_round, reply)
            self.inspect(server_round, node, reply, decoded[node])
            m.replace_arrays(reply, decoded[node].weights)
        self.after_round(server_round, replies)
        if not self.history:
            self.sent.pop(server_round, None)
            self.decoded.pop(server_round, None)
        return self.strategy.aggregate_train(server_round, replies)

    def inspect(
        self, server_round: int, node: int, reply: Message, decoded: m.DecodedReply
    ) -> None:
        """Hook for subclasses: look at one decoded reply before aggregation."""

    def after_round(self, server_round: int, replies: Sequence[Message]) -> None:
        """Hook for subclasses: all replies of a round have been inspected."""

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        log(INFO, "%s around %s", type(self).__name__, type(self.strategy).__name__)
        self.strategy.summary()


class AuditStrategy(DecodeStrategy):
    """Attack every sampled client's update as the server could, and store what leaked.

    store: the sweep store (SQLite) audit records go to, as runs of kind ``audit``.
    plan: the attack and its budget.
    use_originals: score against the batches clients hand over (simulation only; off by
    default, and replies carrying originals are stripped of them either way).
    secure_aggregation: the federation sums updates under secure aggregation, so individual
    updates are not visible; the audit records that and attacks nothing.
    data_note: what the clients' images are (e.g. "synthetic phantoms"), copied into records.
    distractors: images of other patients the server holds (N x 1 x H x W, same size as the
    clients'): the re-identification gallery and the prior-image floor of every verdict.
    """

    def __init__(
        self,
        strategy: Strategy,
        model: Callable[[], torch.nn.Module],
        store: str | Path,
        plan: AttackPlan | None = None,
        *,
        use_originals: bool = False,
        secure_aggregation: bool = False,
        data_note: str = "",
        seed: int = 0,
        keys: m.TrainKeys = m.DEFAULT_KEYS,
        history: bool = False,
        distractors: torch.Tensor | None = None,
    ) -> None:
        super().__init__(strategy, model, keys, history)
        # auxiliary images the server holds (other patients, same modality): the gallery and the
        # prior floor its verdicts use; without them a hospital's own 2 images cannot decide
        self.distractors = distractors
        self.store = Path(store)
        self.plan = plan or AttackPlan()
        self.use_originals = use_originals
        self.secure_aggregation = secure_aggregation
        self.data_note = data_note
        self.seed = seed
        self.federation = uuid.uuid4().hex[:12]

    def _base(self, server_round: int, node: int | None) -> dict[str, Any]:
        return {
            "federation": self.federation,
            "round": server_round,
            "client": None if node is None else str(node),
            "strategy": type(self.strategy).__name__,
            "attack": self.plan.attack,
            "image_size": self.plan.image_size,
            "data_note": self.data_note,
            "secure_aggregation": self.secure_aggregation,
        }

    def after_round(self, server_round: int, replies: Sequence[Message]) -> None:
        for reply in replies:
            if reply.has_error():
                record = self._base(server_round, int(reply.metadata.src_node_id))
                record.update(status="client-error", reason=str(reply.error.reason))
                save_audit(self.store, record, {})
        if self.secure_aggregation:
            record = self._base(server_round, None)
            record.update(status="not-visible", reason=SECURE_AGGREGATION_NOTE)
            save_audit(self.store, record, {})

    def inspect(
        self, server_round: int, node: int, reply: Message, decoded: m.DecodedReply
    ) -> None:
        if self.secure_aggregation:
            return
        record = self._base(server_round, node)
        update = decoded.update
        training = self.sent[server_round][node][1]
        matched, reason = training.threat_match(update.batch_size)
        offered = m.originals_of(reply)
        originals = offered if self.use_originals else None
        record.update(
            threat_model_match=matched,
            threat_model_reason=reason,
            reported_steps=m.metric(reply, "medleak-steps"),
            fl={
                "algorithm": update.fl.algorithm,
                "local_steps": update.fl.local_steps,
                "local_lr": update.fl.local_lr,
            },
            num_examples=update.batch_size,
            defenses=list(update.defenses),
            encoding=decoded.info.get("encoding"),
            payload_bits=decoded.info.get("payload_bits"),
            declared_bits=decoded.info.get("declared_bits"),
            message_bytes=decoded.info.get("message_bytes"),
            raw_bits=update.bits_raw,
            originals_offered=offered is not None,
            scored_with_originals=originals is not None,
            guard=dict(reply.content.config_records.get(GUARD_KEY, {})) or None,
        )
        model = self.model_factory()
        w0 = m.to_tensors(self.sent[server_round][node][0])
        model.load_state_dict(w0, strict=True)
        seed = int(np.random.SeedSequence([self.seed, server_round, node]).generate_state(1)[0])
        started = time.perf_counter()
        try:
            probe = run_probe(update, model, self.plan, seed, originals, self.distractors)
        except Exception as exc:  # an audit must never stop the federation
            record.update(status="attack-failed", reason=f"{type(exc).__name__}: {exc}")
            save_audit(self.store, record, {})
            log(WARNING, "audit round %d client %d: attack failed: %s", server_round, node, exc)
            return
        rec = probe.reconstruction
        verdict, why = judge(probe.scores)
        record.update(
            status="attacked",
            seconds=probe.seconds,
            wall_seconds=time.perf_counter() - started,
            iterations=len(rec.trace),
            final_loss=float(rec.trace[-1]) if rec.trace else None,
            labels_source=rec.labels_source,
            recovered_labels=[int(v) for v in rec.labels.tolist()],
            recovered_composition=composition(rec.labels),
            scores=probe.scores,
            verdict=verdict,
            verdict_reason=why,
            attack_info={k: v for k, v in rec.info.items() if isinstance(v, (int, float, str))},
        )
        tensors = {"reconstructions": rec.images, "initial": rec.initial_images}
        if originals is not None:
            tensors.update(originals=originals[0], labels=originals[1])
        save_audit(self.store, record, tensors)
        log(
            INFO,
            "audit round %d client %d: %s (%s), %.1f s",
            server_round,
            node,
            verdict,
            why,
            probe.seconds,
        )
