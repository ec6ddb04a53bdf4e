"""The client's gradient estimator is pluggable (plain, DP-SGD, or one defined here), its privacy
accountant is stepped per round, and the defense chain after ``dp`` holds only Update -> Update
stages."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest
import torch
from opacus.accountants import RDPAccountant
from torch import nn

from medleak.defenses import build_chain
from medleak.defenses.chain import stage_generator
from medleak.defenses.dp import dp_privacy
from medleak.fl.accountant import PrivacyAccountant
from medleak.fl.client import compute_update
from medleak.fl.estimators import PLAIN, DpSgdGradient
from medleak.fl.update import FLSettings
from medleak.models import build_model


@pytest.fixture
def lenet() -> nn.Module:
    return build_model("lenet", 1, 16, seed=0)


class Doubled:
    """An estimator defined in this test: twice the plain gradient."""

    name = "doubled"

    def check(self, model: nn.Module) -> None:
        return None

    def gradient(
        self,
        model: nn.Module,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        plain = PLAIN.gradient(model, params, buffers, inputs, targets, create_graph)
        return {n: 2 * g for n, g in plain.items()}


def test_the_client_runs_any_estimator(make_batch, lenet: nn.Module) -> None:
    plain = compute_update(
        lenet, make_batch(3, 16, labels=[0, 1, 1], sources=("a", "b", "c")), FLSettings()
    )
    doubled = compute_update(
        lenet, make_batch(3, 16, labels=[0, 1, 1], sources=("a", "b", "c")), FLSettings(), Doubled()
    )
    for name, tensor in plain.tensors.items():
        assert torch.equal(doubled.tensors[name], 2 * tensor)


def test_dp_spec_configures_the_estimator_and_the_chain_holds_only_transforms(
    make_batch,
    lenet: nn.Module,
) -> None:
    chain = build_chain(["dp:c=0.5,z=0.8", "topk:ratio=0.5"])
    # every stage the chain applies is an Update -> Update transform; dp is the client's estimator
    assert [stage.defense.name for _, stage in chain._stages] == ["topk"]
    assert all(stage.defense.transform is not None for _, stage in chain._stages)
    assert isinstance(chain.estimator(torch.Generator()), DpSgdGradient)
    assert build_chain(["topk:ratio=0.5"]).estimator(torch.Generator()) is PLAIN
    update = build_chain(["dp:c=0.5,z=0.8"]).client_update(
        lenet, make_batch(3, 16, labels=[0, 1, 1], sources=("a", "b", "c")), FLSettings(), seed=4
    )
    # the noise comes from stage 0's generator, through the one client loop
    direct = compute_update(
        lenet,
        make_batch(3, 16, labels=[0, 1, 1], sources=("a", "b", "c")),
        FLSettings(),
        DpSgdGradient(0.5, 0.8, stage_generator(4, 0)),
    )
    for name, tensor in update.tensors.items():
        assert torch.equal(tensor, direct.tensors[name])
    assert [d.kind for d in update.declarations] == ["noisy"]


def test_dp_noise_is_drawn_in_parameter_order_from_the_stage_generator(
    make_batch, lenet: nn.Module
) -> None:
    # clipping off (c huge) and noise std z c / B = 0.01 / 3: DP - plain is exactly that noise
    c, z = 1e6, 1e-8
    update = build_chain([f"dp:c={c},z={z}"]).client_update(
        lenet, make_batch(3, 16, labels=[0, 1, 1], sources=("a", "b", "c")), FLSettings(), seed=9
    )
    plain = compute_update(
        lenet, make_batch(3, 16, labels=[0, 1, 1], sources=("a", "b", "c")), FLSettings()
    )
    generator = stage_generator(9, 0)
    for name, tensor in plain.tensors.items():
        noise = torch.randn(tensor.shape, generator=generator) * z * c / 3
        assert torch.allclose(update.tensors[name] - tensor, noise, atol=2e-6), name


def test_the_accountant_stepped_per_round_matches_opacus_and_the_one_shot_guarantee() -> None:
    for q in (1.0, 0.1):
        accountant = PrivacyAccountant(1e-5)
        epsilons = []
        for _ in range(4):
            accountant.step_round(1.1, q, 3)
            epsilons.append(accountant.epsilon())
        assert epsilons == sorted(epsilons) and epsilons[0] < epsilons[-1]  # spending grows
        assert accountant.privacy() == dp_privacy(1.1, q, 3, 4, 1e-5)
        assert accountant.privacy()["steps"] == 12 and accountant.privacy()["rounds"] == 4
    direct = RDPAccountant()
    for _ in range(4):  # one batch per round, q < 1: 3 steps = one Gaussian of z / sqrt(3)
        direct.step(noise_multiplier=1.1 / math.sqrt(3), sample_rate=0.1)
    assert accountant.epsilon() == pytest.approx(direct.get_epsilon(1e-5))
    fresh = PrivacyAccountant(1e-5, resample_each_step=True)
    fresh.step_round(1.1, 0.1, 3)
    per_step = RDPAccountant()
    for _ in range(3):
        per_step.step(noise_multiplier=1.1, sample_rate=0.1)
    assert fresh.epsilon() == pytest.approx(per_step.get_epsilon(1e-5))
    assert PrivacyAccountant(1e-5).epsilon() == 0.0
    zero = PrivacyAccountant(1e-5)
    zero.step_round(0.0, 1.0, 1)
    assert zero.epsilon() == math.inf
