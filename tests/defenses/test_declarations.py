"""The defense -> attack contract: every defense declares what the server can rely on, the update
records it stage by stage, and attacks read the declaration, never the defense's name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.attacks.aware_loss import aware_loss, loss_kind
from medleak.defenses import DEFENSES, Declaration, Defense, build_chain, parse_spec
from medleak.errors import ConfigError, MedleakError
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model

# One valid spec per registered defense; a new defense must add one (the set equality below).
EXAMPLES = {
    "none": "none",
    "gaussian": "gaussian:sigma=0.01",
    "clip": "clip:c=1",
    "dp": "dp:c=1,z=0.5",
    "uniform": "uniform:levels=16",
    "qsgd": "qsgd:levels=4",
    "sign": "sign",
    "topk": "topk:ratio=0.1",
    "randk": "randk:ratio=0.25",
    "powersgd": "powersgd:rank=2",
    "fp16": "fp16",
    "bf16": "bf16",
}


def test_every_registered_defense_declares_what_the_server_can_rely_on() -> None:
    assert set(EXAMPLES) == set(DEFENSES)
    for name, text in EXAMPLES.items():
        resolved = parse_spec(text)
        declaration = DEFENSES[name].declaration(resolved["params"])
        assert isinstance(declaration, Declaration), name
    assert DEFENSES["none"].declaration({}).kind == "exact"
    assert DEFENSES["randk"].declaration({"ratio": 0.25}).rescale == 4.0
    assert DEFENSES["topk"].declaration(parse_spec("topk:ratio=0.1")["params"]).bounded


def test_the_update_records_each_stage_declaration_in_order(make_batch) -> None:
    model = build_model("lenet", 1, 16, seed=0)
    chain = build_chain(["clip:c=1", "randk:ratio=0.5", "sign"])
    update = chain.client_update(model, make_batch(), FLSettings(), seed=0)
    assert [d.kind for d in update.declarations] == ["scaled", "sparse", "sign"]
    assert update.declarations[1].rescale == 2.0
    assert len(update.declarations) == len(update.defenses)
    with pytest.raises(MedleakError, match="declarations"):
        update.replace(declarations=())


def _halve(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Keep every other coordinate, doubled (an unbiased 1-in-2 sparsifier)."""
    out = {}
    for name, t in tensors.items():
        mask = (torch.arange(t.numel()) % 2 == 0).reshape(t.shape)
        out[name] = t * mask * 2.0
    return out


def test_a_defense_registered_in_a_test_gets_the_loss_its_declaration_calls_for(
    make_batch,
    monkeypatch,
) -> None:
    """The old design matched names: this defense would have been attacked as an exact update."""
    halve = Defense(
        name="halve",
        summary="every other coordinate, doubled",
        params=(),
        transform=_halve,
        bits=None,
        bits_text="32 n / 2",
        declares=lambda params: Declaration("sparse", rescale=2.0),
    )
    monkeypatch.setitem(DEFENSES, "halve", halve)
    model = build_model("lenet", 1, 16, seed=0)
    batch = make_batch()
    update = build_chain(["halve"]).client_update(model, batch, FLSettings(), seed=0)
    assert loss_kind(update.declarations) == "sparse"

    # The loss the attack picks is zero for the true update (rescaled, on the kept coordinates)
    # although the received update differs from it everywhere else.
    true = compute_update(model, batch, FLSettings()).tensors
    loss = aware_loss(update.declarations)
    assert float(loss(true, update.tensors)) < 1e-10
    assert float(aware_loss(update.declarations, aware=False)(true, update.tensors)) > 1e-6

    knowledge = ServerKnowledge(model, 16, 2, true_labels=batch.labels)
    result = get_attack("rog")(update, knowledge, AttackOptions(iterations=2), seed=0)
    assert result.info["loss"] == "sparse"


def test_a_defense_without_a_declaration_is_refused(monkeypatch) -> None:
    silent = Defense("silent", "declares nothing", (), _halve, None, "32 n")
    monkeypatch.setitem(DEFENSES, "silent", silent)
    with pytest.raises(ConfigError, match="does not declare"):
        build_chain(["silent"])
