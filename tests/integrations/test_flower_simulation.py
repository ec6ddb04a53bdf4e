"""A real Flower federation (flwr.simulation.run_simulation, Ray backend): the example's smallest
setting. Every round's audit records reach the store, what the server decoded is exactly the
defense chain applied to what the client trained, and the guard blocks a leaking update.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("flwr")
pytest.importorskip("ray")

from medleak.defenses import build_chain  # noqa: E402
from medleak.experiments.audit_store import load_audits  # noqa: E402
from medleak.integrations.flower import client_seed, load_global, train_local  # noqa: E402
from medleak.integrations.flower import messages as m  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flower"


@pytest.fixture(scope="module")
def hospitals():
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("hospitals")
    finally:
        sys.path.remove(str(EXAMPLE))


def _client_update(hospitals, settings, partition, w0, config):
    """What hospital ``partition`` computed before its mod obfuscated it (replayed here)."""
    model = hospitals.model_factory(settings)()
    load_global(model, w0)
    metrics = train_local(
        model, hospitals.hospital_batch(settings, partition), config, seed=settings.seed + partition
    )
    names = m.parameter_names(model)
    base = m.to_tensors(w0)
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    training = m.LocalTraining.from_config(config)
    n = int(metrics[m.NUM_EXAMPLES])
    return m.as_update(
        m.pseudo_gradient(base, trained, names, training.lr), training.settings(n), n
    )


def test_audited_federation(hospitals, tmp_path):
    settings = hospitals.Settings(
        out=tmp_path / "fed",
        clients=2,
        rounds=2,
        image_size=32,
        images_per_client=2,
        defense=("topk:ratio=0.1",),
        guard="off",
        iterations=5,
    )
    keep: list = []
    report = hospitals.run(settings, keep)
    records = [r for r, _ in load_audits(settings.store)]
    assert sorted((r["round"], r["status"]) for r in records) == [
        (1, "attacked"),
        (1, "attacked"),
        (2, "attacked"),
        (2, "attacked"),
    ]
    assert all(r["encoding"] == "sparse" and r["threat_model_match"] for r in records)
    assert all(r["payload_bits"] < r["raw_bits"] / 4 for r in records)
    assert all(r["scores"]["num_images"] == 2 for r in records)
    # the server's own pool of other patients' images: a gallery that can decide, and the floor
    assert all(r["scores"]["gallery_size"] == 2 + settings.server_pool for r in records)
    assert all(r["scores"]["prior_source"] == "auxiliary" for r in records)
    assert report.is_file() and "Round 2" in report.read_text()

    strategy = keep[0]
    chain = build_chain(list(settings.defense))
    for server_round in (1, 2):
        matched = set()
        for node, decoded in strategy.decoded[server_round].items():
            w0, training = strategy.sent[server_round][node]
            config = {"lr": training.lr, "local-steps": training.steps}
            hits = []
            for partition in range(settings.clients):
                update = _client_update(hospitals, settings, partition, w0, config)
                direct = chain.apply(update, client_seed(settings.seed, server_round, node))
                if all(
                    torch.equal(direct.tensors[k], decoded.update.tensors[k])
                    for k in direct.tensors
                ):
                    hits.append(partition)
            assert len(hits) == 1, (server_round, node, hits)
            matched.add(hits[0])
        assert matched == {0, 1}


def test_guard_blocks_leaking_update(hospitals, tmp_path):
    settings = hospitals.Settings(
        out=tmp_path / "blocked",
        clients=2,
        rounds=1,
        image_size=32,
        images_per_client=2,
        defense=("topk:ratio=0.5",),
        guard="block",
        guard_ssim_margin=-1.0,
        iterations=5,
        offer_originals=False,
    )
    hospitals.run(settings)
    records = [r for r, _ in load_audits(settings.store)]
    assert len(records) == 2
    for record in records:
        assert record["status"] == "client-error"
        assert "LeakageGuardMod blocked the update" in record["reason"]
        assert "SSIM" in record["reason"]
