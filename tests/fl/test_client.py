"""The client update is what FedSGD / FedAvg really send."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medleak.data import Batch
from medleak.errors import ConfigError, MedleakError
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model


def test_fedsgd_is_the_gradient_of_the_mean_loss(make_batch) -> None:
    model = build_model("lenet", 3, 16, seed=0)
    batch = make_batch()
    update = compute_update(model, batch, FLSettings("fedsgd"))
    model.zero_grad()
    F.cross_entropy(model(batch.images.expand(-1, 3, -1, -1)), batch.labels).backward()
    for name, p in model.named_parameters():
        assert torch.allclose(update.tensors[name], p.grad, atol=1e-6)
    assert update.kind == "gradient" and update.bits_sent == 32 * update.num_coordinates


def test_fedavg_sends_weight_difference_over_lr(make_batch) -> None:
    model = build_model("lenet-dlg", 1, 16, seed=0)
    batch = make_batch()
    settings = FLSettings("fedavg", local_steps=3, local_lr=0.01)
    update = compute_update(model, batch, settings)
    # Reference: plain SGD on a copy of the model, then (w0 - w_tau) / lr in float64.
    reference = build_model("lenet-dlg", 1, 16, seed=0).double()
    w0 = {n: p.detach().clone() for n, p in reference.named_parameters()}
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(reference(batch.images.double()), batch.labels).backward()
        optimizer.step()
    for name, p in reference.named_parameters():
        expected = (w0[name] - p.detach()) / 0.01
        assert torch.allclose(update.tensors[name].double(), expected, rtol=1e-4, atol=1e-5)
    assert update.kind == "pseudo_gradient"
    # With several steps the pseudo-gradient differs from a single gradient times tau.
    single = compute_update(model, batch, FLSettings("fedsgd"))
    name = next(iter(single.tensors))
    assert not torch.allclose(update.tensors[name], 3 * single.tensors[name], rtol=1e-3)


def test_model_is_not_changed_by_the_client(make_batch) -> None:
    model = build_model("resnet18", 1, 32, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compute_update(model, make_batch(2, 32), FLSettings("fedavg", local_steps=2, local_lr=0.1))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_settings_and_nan_updates_are_refused(make_batch) -> None:
    with pytest.raises(ConfigError, match="local steps"):
        FLSettings("fedavg", local_steps=0)
    with pytest.raises(ConfigError, match="unknown FL algorithm"):
        FLSettings("fedprox")  # type: ignore[arg-type]
    update = compute_update(build_model("lenet", 1, 16, seed=0), make_batch(), FLSettings())
    name = next(iter(update.tensors))
    broken = dict(update.tensors)
    broken[name] = broken[name].clone()
    broken[name][0] = float("nan")
    with pytest.raises(MedleakError, match="NaN"):
        update.replace(tensors=broken).check_finite()


def test_bn_mode_eval_freezes_batchnorm_on_both_sides() -> None:
    """fl.bn_mode eval: the client normalises by the running statistics and sends them
    unchanged; the attacker's differentiable update is the same function; train is the default
    and is left out of the run id (existing stores keep their ids)."""
    from medleak.attacks.base import ServerKnowledge
    from medleak.attacks.bn_statistics import recover
    from medleak.experiments.config import RunConfig, apply_overrides
    from medleak.experiments.records import canonical_config
    from medleak.fl.client import client_update_tensors, parameters_of

    model = build_model("resnet18", 1, 16, seed=0)
    batch = Batch(torch.rand(2, 1, 16, 16), torch.tensor([0, 1]), ("a", "b"), (None, None))
    frozen = FLSettings("fedavg", local_steps=2, local_lr=0.1, bn_mode="eval")
    trained = compute_update(model, batch, FLSettings("fedavg", local_steps=2, local_lr=0.1))
    update = compute_update(model, batch, frozen)
    assert model.training and all(m.training for m in model.modules())  # modes restored
    assert update.buffers is not None
    assert torch.equal(update.buffers["stem.1.running_mean"], model.stem[1].running_mean)
    assert not torch.equal(trained.buffers["stem.1.running_mean"], model.stem[1].running_mean)
    assert not torch.allclose(trained.tensors["fc.weight"], update.tensors["fc.weight"])
    params = {n: p.clone().requires_grad_(True) for n, p in parameters_of(model).items()}
    dummy = client_update_tensors(
        model, params, batch.images, batch.labels, frozen, create_graph=True
    )
    for name, tensor in update.tensors.items():
        assert torch.allclose(dummy[name], tensor, rtol=1e-4, atol=1e-6), name
    knowledge = ServerKnowledge(model=model, image_size=16, batch_size=2)
    assert recover(knowledge, update) is None and recover(knowledge, trained) is not None
    assert "bn_mode" not in canonical_config(RunConfig())["fl"]
    assert (
        canonical_config(apply_overrides(RunConfig(), {"fl.bn_mode": "eval"}))["fl"]["bn_mode"]
        == "eval"
    )
    with pytest.raises(ConfigError, match="BatchNorm mode 'frozen'"):
        FLSettings(bn_mode="frozen")  # type: ignore[arg-type]
