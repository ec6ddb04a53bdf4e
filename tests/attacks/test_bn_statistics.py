"""Issue 12, goal 2: BatchNorm batch statistics from the running statistics a client sends."""

from __future__ import annotations

import pytest
import torch

from medleak.attacks import AttackOptions, ServerKnowledge, get_attack
from medleak.attacks.bn_statistics import (
    batch_statistics,
    batchnorm_layers,
    mixture_weights,
    recover,
    term_for,
)
from medleak.attacks.dummy import dummy_update, trainable_params
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model, to_model_input

SIZE = 32


def _true_statistics(model: torch.nn.Module, images: torch.Tensor) -> dict[str, tuple]:
    """Each BatchNorm layer's input statistics in one forward pass at the sent weights."""
    found: dict[str, tuple] = {}
    handles = [
        m.register_forward_pre_hook(lambda _, a, n=n: found.__setitem__(n, batch_statistics(a[0])))
        for n, m in batchnorm_layers(model).items()
    ]
    saved = {n: b.clone() for n, b in model.named_buffers()}
    with torch.no_grad():
        model(to_model_input(images, model.in_channels))
    for h in handles:
        h.remove()
    model.load_state_dict({**model.state_dict(), **saved})
    return found


def test_buffers_are_sent_by_fedavg_and_on_request(make_batch) -> None:
    model = build_model("resnet18", 3, SIZE, seed=0)
    batch = make_batch(2, SIZE, seed=1, smooth=True)
    assert compute_update(model, batch, FLSettings()).buffers is None
    assert compute_update(model, batch, FLSettings("fedavg", 1, 1e-4)).buffers is not None
    sent = compute_update(model, batch, FLSettings(send_buffers=True)).buffers
    assert sent is not None and "stem.1.running_mean" in sent
    # The server's model keeps the statistics it sent.
    assert torch.equal(model.stem[1].running_mean, torch.zeros(64))
    lenet = build_model("lenet", 3, SIZE, seed=0)
    assert compute_update(lenet, batch, FLSettings("fedavg", 1, 1e-4)).buffers is None


@pytest.mark.parametrize("settings", [FLSettings("fedavg", 1, 0.1), FLSettings(send_buffers=True)])
def test_batch_statistics_are_recovered_exactly_at_tau_1(make_batch, settings: FLSettings) -> None:
    model = build_model("resnet18", 3, SIZE, seed=0)
    batch = make_batch(3, SIZE, seed=1, smooth=True)
    update = compute_update(model, batch, settings)
    knowledge = ServerKnowledge(model=model, image_size=SIZE, batch_size=3)
    stats = recover(knowledge, update)
    assert stats is not None and stats.mixture == pytest.approx((1.0,))
    truth = _true_statistics(model, batch.images)
    assert set(stats.means) == set(truth) and len(truth) == 20
    for name, (mean, var) in truth.items():
        assert torch.allclose(stats.means[name], mean, rtol=1e-4, atol=1e-5), name
        assert torch.allclose(stats.variances[name], var, rtol=1e-4, atol=1e-5), name


def test_mixture_weights_follow_the_running_average() -> None:
    weights = mixture_weights(0.1, 3)
    assert sum(weights) == pytest.approx(1.0)
    assert weights[2] / weights[1] == pytest.approx(1 / 0.9)


@pytest.mark.parametrize("steps", [1, 3])
def test_statistics_term_vanishes_only_at_the_victims(make_batch, steps: int) -> None:
    model = build_model("resnet18", 3, SIZE, seed=0)
    batch = make_batch(2, SIZE, seed=1, smooth=True)
    update = compute_update(model, batch, FLSettings("fedavg", steps, 0.05))
    knowledge = ServerKnowledge(model=model, image_size=SIZE, batch_size=2)
    term = term_for(knowledge, update, None)
    assert term is not None and len(term.stats.mixture) == steps
    assert term_for(knowledge, update, False) is None
    params = trainable_params(knowledge)

    def score(images: torch.Tensor) -> float:
        with term.recording():
            dummy_update(knowledge, params, images, batch.labels, update)
        return float(term.loss().detach())

    assert score(batch.images) < 1e-8
    assert score(make_batch(2, SIZE, seed=7, smooth=True).images) > 1e-3


def test_attack_switch_turns_the_statistics_on_and_off(make_batch) -> None:
    model = build_model("resnet18", 3, SIZE, seed=0)
    batch = make_batch(2, SIZE, seed=1, smooth=True)
    update = compute_update(model, batch, FLSettings("fedavg", 1, 1e-4))
    knowledge = ServerKnowledge(model=model, image_size=SIZE, batch_size=2)
    for name in ("ig", "rog"):
        on = get_attack(name)(update, knowledge, AttackOptions(2, labels="inferred"), seed=0)
        off_options = AttackOptions(2, labels="inferred", bn_statistics=False)
        off = get_attack(name)(update, knowledge, off_options, seed=0)
        assert on.info["bn_statistics"] is True and off.info["bn_statistics"] is False
        assert on.trace[0] > off.trace[0]  # the same start, plus the statistics term
