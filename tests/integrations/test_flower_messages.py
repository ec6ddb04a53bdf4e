"""The Flower pieces at the message level (no simulation engine): mods, guard, strategies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from flwr.app import (  # noqa: E402
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from medleak.attacks import AttackOptions  # noqa: E402
from medleak.data import DataSpec, open_dataset, select_batch  # noqa: E402
from medleak.errors import ConfigError  # noqa: E402
from medleak.experiments.audit_store import load_audits  # noqa: E402
from medleak.integrations.flower import (  # noqa: E402
    DP_REFUSAL,
    AttackPlan,
    AuditStrategy,
    DecodeStrategy,
    DefenseMod,
    LeakageGuardMod,
    load_global,
    remember_batch,
    train_dp_sgd,
    train_local,
)
from medleak.integrations.flower import messages as m  # noqa: E402
from medleak.models import build_model  # noqa: E402

SIZE = 16
CONFIG = {"lr": 0.01, "local-steps": 1, "server-round": 1}


def make_model() -> torch.nn.Module:
    return build_model("lenet", 1, SIZE, seed=0)


def batch(partition: int = 0):
    dataset = open_dataset(DataSpec(source="phantom", image_size=SIZE, phantom_count=8), seed=0)
    return select_batch(dataset, 2, 2 * partition)


@pytest.fixture(autouse=True)
def server_identity(monkeypatch):
    """Messages are stamped with the sender's identity, which Flower sets inside a run."""
    for attr, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 0)):
        monkeypatch.setattr(TaskIdentity, attr, value, raising=False)


class FakeGrid:
    """The two Grid calls FedAvg.configure_train makes."""

    def get_node_ids(self):
        return [11, 22]


def context(node: int) -> Context:
    return Context(run_id=1, node_id=node, node_config={}, state=RecordDict(), run_config={})


def train_message(node: int) -> Message:
    content = RecordDict(
        {"arrays": ArrayRecord(make_model().state_dict()), "config": ConfigRecord(CONFIG)}
    )
    return Message(content, dst_node_id=node, message_type=MessageType.TRAIN)


def client_app(msg: Message, ctx: Context) -> Message:
    model = make_model()
    load_global(model, msg.content["arrays"])
    own = batch(0 if ctx.node_id == 11 else 1)
    metrics = train_local(model, own, msg.content["config"])
    remember_batch(ctx, own)
    content = RecordDict(
        {"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)}
    )
    return Message(content, reply_to=msg)


def test_dp_is_refused_in_one_line():
    with pytest.raises(ConfigError) as info:
        DefenseMod(["dp:c=1,z=1"], make_model)
    assert str(info.value) == DP_REFUSAL and "\n" not in DP_REFUSAL


def test_train_dp_sgd_reports_epsilon():
    model = make_model()
    before = [p.detach().clone() for p in model.parameters()]
    metrics = train_dp_sgd(model, batch(), CONFIG, "dp:c=1,z=1", seed=0)
    assert 0 < metrics["dp-epsilon"] < float("inf")
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ConfigError):
        train_dp_sgd(model, batch(), CONFIG, "topk:ratio=0.1", seed=0)


def test_guard_reobfuscates_with_stronger_chain():
    defense = DefenseMod(["topk:ratio=0.5"], make_model)
    guard = LeakageGuardMod(
        make_model,
        AttackPlan("rog", SIZE, AttackOptions(iterations=3, labels="inferred")),
        action="reobfuscate",
        stronger=["sign"],
        ssim_margin=-1.0,
    )
    msg = train_message(11)
    reply = guard(msg, context(11), lambda mm, cc: defense(mm, cc, client_app))
    assert not reply.has_error()
    wire = m.wire_info(reply)
    assert wire["encoding"] == "sign"
    assert [d["name"] for d in wire["chain"]] == ["topk", "sign"]
    assert reply.content.config_records["medleak.guard"]["outcome"] == "re-obfuscated"


def test_guard_refuses_without_remembered_batch():
    guard = LeakageGuardMod(make_model, AttackPlan("rog", SIZE, AttackOptions(iterations=2)))

    def forgetful(msg: Message, ctx: Context) -> Message:
        reply = client_app(msg, ctx)
        ctx.state = RecordDict()
        return reply

    with pytest.raises(ConfigError, match="remember_batch"):
        guard(train_message(11), context(11), forgetful)


def _round(strategy, mod, config=None):
    messages = list(
        strategy.configure_train(
            1,
            ArrayRecord(make_model().state_dict()),
            ConfigRecord(config or {"lr": 0.01, "local-steps": 1}),
            FakeGrid(),
        )
    )
    replies = []
    for msg in messages:
        node = msg.metadata.dst_node_id
        reply = mod(msg, context(node), client_app)
        replies.append(reply)
    return replies


def test_secure_aggregation_attacks_nothing(tmp_path):
    store = tmp_path / "audit.sqlite"
    strategy = AuditStrategy(
        FedAvg(fraction_evaluate=0.0), make_model, store, secure_aggregation=True
    )
    replies = _round(strategy, DefenseMod(["qsgd:levels=4"], make_model))
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    records = [r for r, _ in load_audits(store)]
    assert [r["status"] for r in records] == ["not-visible"]
    assert "not visible" in records[0]["reason"]


def test_decoded_weights_are_what_fedavg_aggregates(tmp_path):
    strategy = AuditStrategy(
        FedAvg(fraction_evaluate=0.0),
        make_model,
        tmp_path / "a.sqlite",
        AttackPlan("rog", SIZE, AttackOptions(iterations=2, labels="inferred")),
        history=True,
    )
    replies = _round(strategy, DefenseMod(["sign:scaled=true"], make_model))
    arrays, _ = strategy.aggregate_train(1, replies)
    w0 = make_model().state_dict()
    name = "fc.weight" if "fc.weight" in w0 else next(iter(w0))
    mean_g = sum(d.update.tensors[name] for d in strategy.decoded[1].values()) / 2
    expected = w0[name].double() - 0.01 * mean_g.double()
    got = torch.from_numpy(np.asarray(arrays[name].numpy()))
    assert torch.allclose(got.double(), expected, atol=1e-6)
    records = [r for r, _ in load_audits(tmp_path / "a.sqlite")]
    assert [r["status"] for r in records] == ["attacked", "attacked"]
    assert all(r["scores"] is None and r["verdict"] == "inconclusive" for r in records)
    assert all(sum(r["recovered_composition"].values()) == 2 for r in records)


def test_bits_sent_are_measured_from_the_message(tmp_path):
    store = tmp_path / "audit.sqlite"
    strategy = AuditStrategy(
        FedAvg(fraction_evaluate=0.0),
        make_model,
        store,
        AttackPlan("rog", SIZE, AttackOptions(iterations=1, labels="inferred")),
    )
    replies = _round(strategy, DefenseMod(["topk:ratio=0.1"], make_model))
    measured = {}
    for reply in replies:
        _, record = m.reply_arrays(reply)
        bits = 8 * sum(np.asarray(a.numpy()).nbytes for a in record.values())
        measured[str(reply.metadata.src_node_id)] = (bits, record.count_bytes())
        reply.content.config_records[m.WIRE_KEY]["payload_bits"] = 1  # a claim, not a measure
    strategy.aggregate_train(1, replies)
    records = [r for r, _ in load_audits(store)]
    assert len(records) == 2
    for record in records:
        bits, size = measured[record["client"]]
        assert (record["payload_bits"], record["message_bytes"]) == (bits, size)
        assert record["payload_bits"] < record["raw_bits"] / 4
        assert record["bits_ratio"] == bits / record["raw_bits"]


def test_shuffled_minibatches_are_outside_the_threat_model(tmp_path):
    store = tmp_path / "audit.sqlite"
    strategy = AuditStrategy(
        FedAvg(fraction_evaluate=0.0),
        make_model,
        store,
        AttackPlan("rog", SIZE, AttackOptions(iterations=2, labels="inferred")),
    )
    config = {"lr": 0.01, "local-epochs": 2, "batch-size": 1}
    strategy.aggregate_train(1, _round(strategy, DefenseMod(["fp16"], make_model), config))
    records = [r for r, _ in load_audits(store)]
    assert len(records) == 2
    for record in records:
        assert record["threat_model_match"] is False
        assert "outside the modelled threat" in record["threat_model_reason"]
        assert record["reported_steps"] == 4 and record["fl"]["local_steps"] == 4


class TinyBN(torch.nn.Module):
    """A model with BatchNorm buffers, to check they travel beside the obfuscated update."""

    in_channels = 1

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.bn = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4 * 14 * 14, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_buffers_travel_raw_and_reach_the_update():
    strategy = DecodeStrategy(FedAvg(fraction_evaluate=0.0), TinyBN, history=True)

    def bn_client(msg: Message, ctx: Context) -> Message:
        model = TinyBN()
        load_global(model, msg.content["arrays"])
        metrics = train_local(model, batch(0), msg.content["config"])
        content = RecordDict(
            {"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)}
        )
        return Message(content, reply_to=msg)

    mod = DefenseMod(["topk:ratio=0.1"], TinyBN)
    messages = list(
        strategy.configure_train(
            1, ArrayRecord(TinyBN().state_dict()), ConfigRecord(CONFIG), FakeGrid()
        )
    )
    replies = [mod(msg, context(msg.metadata.dst_node_id), bn_client) for msg in messages]
    sent = replies[0].content["arrays"]
    assert "bn.running_mean::buffer" in sent and "bn.weight::index" in sent
    arrays, _ = strategy.aggregate_train(1, replies)
    decoded = next(iter(strategy.decoded[1].values()))
    assert set(decoded.update.buffers) == {
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    }
    assert set(decoded.update.tensors) == {n for n, _ in TinyBN().named_parameters()}
    trained = TinyBN()
    train_local(trained, batch(0), CONFIG)
    assert torch.equal(decoded.weights["bn.running_mean"], trained.bn.running_mean)
    assert not torch.equal(
        torch.from_numpy(arrays["bn.running_mean"].numpy()), TinyBN().bn.running_mean
    )
