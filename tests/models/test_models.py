"""Victim models match the architectures in REFERENCE.md and load weights safely."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medleak.errors import ConfigError
from medleak.models import MODELS, build_model, has_batchnorm, to_model_input


def test_rog_lenet_layout_matches_reference() -> None:
    model = build_model("lenet", 3, 128, seed=0)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(65536, 512), (512, 2)]
    assert all(m.bias is None for m in linears)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (32, (5, 5), (2, 2)),
        (64, (5, 5), (2, 2)),
    ]
    assert model(torch.rand(2, 3, 128, 128)).shape == (2, 2)


def test_rog_resnet_has_no_batchnorm_no_maxpool_and_8x8_pooling() -> None:
    model = build_model("resnet18-rog", 1, 64, seed=0)
    assert not has_batchnorm(model)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.fc.in_features == 512 * 64 and model.fc.bias is None
    assert model.stem[0].kernel_size == (7, 7) and model.stem[0].stride == (2, 2)
    assert model(torch.rand(1, 1, 64, 64)).shape == (1, 2)


def test_standard_resnet_has_batchnorm_and_biased_head() -> None:
    model = build_model("resnet18", 3, 64, seed=0)
    assert has_batchnorm(model) and model.training
    assert model.fc.bias is not None and model.fc.in_features == 512


def test_dlg_lenet_uses_sigmoid_and_uniform_init() -> None:
    model = build_model("lenet-dlg", 1, 32, seed=0)
    assert sum(isinstance(m, nn.Sigmoid) for m in model.modules()) == 3
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert weights.abs().max() <= 0.5 and weights.std() > 0.2


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("lenet", 1, 32, seed=5)
    after = torch.rand(1)
    b = build_model("lenet", 1, 32, seed=5)
    c = build_model("lenet", 1, 32, seed=6)
    assert torch.equal(before, after)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def test_weights_round_trip_safetensors_and_torch(tmp_path) -> None:
    from safetensors.torch import save_file

    source = build_model("lenet", 1, 32, seed=1)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        loaded = build_model("lenet", 1, 32, seed=2, weights=tmp_path / name)
        assert all(torch.equal(x, y) for x, y in zip(source.parameters(), loaded.parameters()))


def test_weights_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        build_model("lenet", 1, 32, seed=0, weights=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read"):
        build_model("lenet", 1, 32, seed=0, weights=tmp_path / "junk.pt")
    torch.save(build_model("lenet", 1, 64, seed=0).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="shape"):
        build_model("lenet", 1, 32, seed=0, weights=tmp_path / "other.pt")


def test_pickled_code_is_refused(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError):
        build_model("lenet", 1, 32, seed=0, weights=tmp_path / "evil.pt")


def test_unknown_model_and_bad_channels() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("vgg", 1, 32, seed=0)
    with pytest.raises(ConfigError, match="channels"):
        build_model("lenet", 2, 32, seed=0)


def test_gray_is_replicated_for_three_channel_models() -> None:
    gray = torch.rand(2, 1, 8, 8)
    rgb = to_model_input(gray, 3)
    assert rgb.shape == (2, 3, 8, 8) and torch.equal(rgb[:, 2], gray[:, 0])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_facts_match_the_built_model(name: str) -> None:
    """What the registry declares (BatchNorm, exposed layer, head, classes) is what is built."""
    from medleak.models import MODELS, model_info

    spec = MODELS[name]
    model = build_model(name, 3, 32, seed=0, num_classes=5)
    info = model_info(model)
    assert info.channels == 3
    assert info.has_batchnorm == has_batchnorm(model) == spec.has_batchnorm
    head = model.get_submodule(spec.head)
    assert isinstance(head, nn.Linear) and head.out_features == 5
    assert spec.num_classes_configurable
    if spec.exposed_linear is not None:
        exposed = model.get_submodule(spec.exposed_linear)
        assert isinstance(exposed, nn.Linear) and exposed.bias is None
        assert exposed.out_features == head.in_features


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_model_declares_its_exposed_layer_exactly_when_it_has_one(name: str) -> None:
    """An exposed layer (ROG's analytic stage needs one) is a bias-free linear layer that feeds
    the head; a model that has one declares it, one that has none declares none."""
    spec = MODELS[name]
    model = build_model(name, 1, 32, seed=0)
    head = model.get_submodule(spec.head)
    candidates = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and m is not head and m.bias is None
        and m.out_features == head.in_features
    ]  # fmt: skip
    assert candidates == ([spec.exposed_linear] if spec.exposed_linear else [])


def test_groupnorm_resnet_has_no_batchnorm_and_per_example_gradients() -> None:
    """resnet18-gn (what Opacus trains): GroupNorm everywhere ResNet-18 has BatchNorm, no
    running buffers, and one image's output does not depend on the rest of its batch."""
    model = build_model("resnet18-gn", 1, 32, seed=0)
    plain = build_model("resnet18", 1, 32, seed=0)
    groups = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    norms = [m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(groups) == len(norms) and not has_batchnorm(model)
    assert all(m.num_groups == min(32, m.num_channels) for m in groups)
    assert not list(model.buffers())
    x = torch.rand(3, 1, 32, 32)
    assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)


def test_densenet121_is_chexnets_architecture() -> None:
    """121 weight layers (120 convolutions and the head), dense blocks of 6/12/24/16 layers,
    1024 features into the head, BatchNorm; refused below the 32 px its halvings need."""
    model = build_model("densenet121", 1, 32, seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 121 and model.classifier.in_features == 1024
    assert has_batchnorm(model)
    from medleak.models.densenet import DenseLayer

    blocks = [m for m in model.features if isinstance(m, nn.Sequential) and len(m) > 4]
    assert [sum(isinstance(x, DenseLayer) for x in b) for b in blocks] == [6, 12, 24, 16]
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 2)
    with pytest.raises(ConfigError, match="densenet121 needs images of at least 32 px"):
        build_model("densenet121", 1, 16, seed=0)


def test_one_value_per_batchnorm_channel_is_refused_before_any_work() -> None:
    """Batch 1 reduced to 1 x 1 features before a BatchNorm layer: one line, not torch's error."""
    from medleak.experiments.config import RunConfig, apply_overrides
    from medleak.experiments.run import plan_run

    config = apply_overrides(
        RunConfig(),
        {"model.name": "densenet121", "data.image_size": 32, "data.batch_size": 1},
    )
    with pytest.raises(ConfigError, match="densenet121 at 32 px reduces a batch of 1 to one value"):
        plan_run(config)


def test_input_normalisation_is_part_of_the_model() -> None:
    """model.normalize: the model sees (x - mean) / std, its parameter names unchanged; bad
    text is one line."""
    from medleak.models.normalize import parse_normalize

    plain = build_model("lenet", 3, 16, seed=0)
    normed = build_model("lenet", 3, 16, seed=0, normalize="imagenet")
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in normed.named_parameters()]
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(normed(x), plain((x - mean) / std), atol=1e-5)
    assert parse_normalize("0.5/0.25", 3) == ((0.5,) * 3, (0.25,) * 3)
    gray_mean, gray_std = parse_normalize("imagenet", 1)  # the channels' average
    assert gray_mean == pytest.approx((0.449,)) and gray_std == pytest.approx((0.226,))
    for bad in ("0.5", "a/b", "0.1,0.2/0.3", "0.5/0"):
        with pytest.raises(ConfigError, match="model.normalize"):
            parse_normalize(bad, 3)
