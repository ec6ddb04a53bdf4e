"""The captured-update file: written by save_update, read back and validated for one model."""

from __future__ import annotations

import pickle

import pytest
import torch

from medleak.capture import pseudo_gradient, read_settings, read_update, save_update
from medleak.errors import ConfigError
from medleak.models import build_model

SETTINGS = {
    "fl": {"algorithm": "fedavg", "local_steps": 2, "local_lr": 0.01},
    "data": {"batch_size": 2, "image_size": 16},
    "model": {"channels": 1},
}


def _trained(model: torch.nn.Module) -> torch.nn.Module:
    client = build_model("resnet18", 1, 16, seed=0)
    client.load_state_dict(model.state_dict())
    optimiser = torch.optim.SGD(client.parameters(), lr=0.01)
    x, y = torch.rand(2, 1, 16, 16), torch.tensor([0, 1])
    for _ in range(2):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(client(x), y).backward()
        optimiser.step()
    return client


@pytest.mark.parametrize("form", ["weights", "delta", "pseudo_gradient"])
def test_every_form_reads_back_as_the_same_pseudo_gradient(tmp_path, form) -> None:
    model = build_model("resnet18", 1, 16, seed=0)
    client = _trained(model)
    path = save_update(model, client, tmp_path / "u.safetensors", SETTINGS, form=form)
    captured = read_update(path, build_model("resnet18", 1, 16, seed=3))
    assert captured.form == form and captured.settings == SETTINGS
    assert captured.buffers is not None  # BatchNorm running statistics travel with the update
    assert torch.equal(captured.buffers["stem.1.running_mean"], client.stem[1].running_mean)
    assert torch.equal(captured.global_state["stem.0.weight"], model.stem[0].weight.detach())
    got = pseudo_gradient(captured, "fedavg", 0.01)
    want = (model.stem[0].weight.detach() - client.stem[0].weight.detach()) / 0.01
    assert torch.allclose(got["stem.0.weight"], want, atol=1e-3)
    assert read_settings(path) == (form, SETTINGS)


def test_a_misfit_names_the_first_offending_tensor(tmp_path) -> None:
    model = build_model("lenet", 1, 16, seed=0)
    path = save_update(model, model, tmp_path / "u.safetensors", SETTINGS)
    expected = r"'features.0.weight' has shape \(32, 1, 5, 5\), the model expects \(32, 3, 5, 5\)"
    with pytest.raises(ConfigError, match=expected):
        read_update(path, build_model("lenet", 3, 16, seed=0))
    with pytest.raises(ConfigError, match="lacks the model.s tensor .stem.0.weight."):
        read_update(path, build_model("resnet18", 1, 16, seed=0))


def test_non_finite_values_are_refused(tmp_path) -> None:
    model = build_model("lenet", 1, 16, seed=0)
    client = {n: t.clone() for n, t in model.state_dict().items()}
    client["classifier.3.weight"][0, 0] = float("nan")
    path = save_update(model, client, tmp_path / "u.safetensors", SETTINGS)
    with pytest.raises(ConfigError, match=r"'classifier.3.weight' has 1 NaN/inf"):
        read_update(path, model)


def test_a_pickle_or_foreign_file_is_refused_in_one_line(tmp_path) -> None:
    model = build_model("lenet", 1, 16, seed=0)
    pickled = tmp_path / "u.pt"
    pickled.write_bytes(pickle.dumps(model.state_dict()))
    with pytest.raises(ConfigError, match="not a safetensors file") as caught:
        read_update(pickled, model)
    assert "\n" not in str(caught.value)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ConfigError, match="not a captured update"):
        read_update(tmp_path / "plain.safetensors", model)


def test_bad_settings_are_refused_when_saving(tmp_path) -> None:
    model = build_model("lenet", 1, 16, seed=0)
    with pytest.raises(ConfigError, match="unknown settings section 'optimizer'"):
        save_update(model, model, tmp_path / "u.safetensors", {"optimizer": {}})
    with pytest.raises(ConfigError, match="form must be one of"):
        save_update(model, model, tmp_path / "u.safetensors", SETTINGS, form="grads")  # type: ignore[arg-type]
