"""Issue 4: label recovery, DLG, aware losses, restarts, priors, presets, disaggregation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medleak.attacks import AttackOptions, ServerKnowledge, apply_preset, get_attack
from medleak.attacks.disaggregation import disaggregate
from medleak.attacks.labels import idlg_label, infer_labels, llg_counts
from medleak.attacks.priors import apply_prior, check_prior
from medleak.attacks.priors.learned import (
    TrainConfig,
    load_prior,
    prior_metadata,
    save_prior,
    train_prior,
    training_images,
)
from medleak.attacks.restarts import Run, best_of
from medleak.defenses import build_chain
from medleak.errors import ConfigError
from medleak.fl import FLSettings, compute_update
from medleak.models import build_model


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("label", [0, 1])
def test_idlg_recovers_the_label_of_a_single_image(make_batch, label: int) -> None:
    model = build_model("lenet", 1, 32, seed=3)
    update = compute_update(model, make_batch(1, 32, [label], seed=1, smooth=True), FLSettings())
    assert idlg_label(update, model) == label
    assert infer_labels(update, model, 32, 1).tolist() == [label]


class ConstantFeatures(nn.Module):
    """Features independent of the input (zero weights, positive bias): LLG+'s equal-impact and
    equal-prediction assumptions hold exactly, so its counts must be exact."""

    in_channels = 1

    def __init__(self, size: int, classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(size * size, 8)
        self.head = nn.Linear(8, classes, bias=False)
        with torch.no_grad():
            self.hidden.weight.zero_()
            self.hidden.bias.copy_(torch.linspace(0.5, 2.0, 8))
            self.head.weight.copy_(
                torch.randn(classes, 8, generator=torch.Generator().manual_seed(0))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(x.flatten(1))))


@pytest.mark.parametrize("settings", [FLSettings(), FLSettings("fedavg", 3, 1e-4)])
def test_llg_counts_are_exact_on_a_constructed_case(make_batch, settings: FLSettings) -> None:
    labels = [0, 2, 2, 1, 2, 2]
    model = ConstantFeatures(8, 3)
    update = compute_update(model, make_batch(6, 8, labels, seed=1, smooth=True), settings)
    assert llg_counts(update, model, 8, 6, seed=0).tolist() == [1, 1, 4]
    assert infer_labels(update, model, 8, 6).tolist() == [0, 1, 2, 2, 2, 2]


def test_dlg_recovers_a_dlg_lenet_image(make_batch) -> None:
    model = build_model("lenet-dlg", 1, 32, seed=1)
    batch = make_batch(1, 32, [1], seed=1, smooth=True)
    update = compute_update(model, batch, FLSettings())
    knowledge = ServerKnowledge(model, 32, 1, true_labels=batch.labels)
    result = get_attack("dlg")(update, knowledge, AttackOptions(iterations=150), seed=0)
    assert _psnr(result.images, batch.images) > 25
    # budget = gradient evaluations (L-BFGS may stop early, never later)
    assert result.info["budget"] == len(result.trace) <= 150


def test_dlg_with_joint_soft_labels_recovers_the_label(make_batch) -> None:
    model = build_model("lenet-dlg", 1, 32, seed=1)
    batch = make_batch(1, 32, [1], seed=1, smooth=True)
    update = compute_update(model, batch, FLSettings())
    options = AttackOptions(iterations=60, labels="inferred", soft_labels=True)
    result = get_attack("dlg")(update, ServerKnowledge(model, 32, 1), options, seed=0)
    assert result.labels.tolist() == [1] and result.labels_source == "inferred"


def test_the_aware_loss_beats_the_unaware_one_under_topk(make_batch) -> None:
    model = build_model("lenet-dlg", 1, 32, seed=1)
    batch = make_batch(1, 32, [0], seed=1, smooth=True)
    update = build_chain(["topk:ratio=0.1"]).client_update(model, batch, FLSettings(), seed=0)
    knowledge = ServerKnowledge(model, 32, 1, true_labels=batch.labels)
    scores = {}
    for aware in (True, False):
        options = AttackOptions(iterations=100, aware=aware)
        result = get_attack("dlg")(update, knowledge, options, seed=0)
        scores[aware] = _psnr(result.images, batch.images)
    assert scores[True] > scores[False] + 3, scores


def test_restarts_keep_the_lowest_loss_run(make_batch) -> None:
    losses = {10: 3.0, 11: 1.0, 12: 2.0}
    chosen, info = best_of(
        lambda s: Run(torch.full((1,), s), [losses[s]], losses[s], torch.zeros(1)), 3, 10
    )
    assert float(chosen.images) == 11 and info["chosen_restart"] == 1
    assert info["trace_restart"] == [0, 1, 2]

    model = build_model("lenet", 1, 16, seed=0)
    batch = make_batch(2, 16, [0, 1], seed=1, smooth=True)
    update = compute_update(model, batch, FLSettings())
    knowledge = ServerKnowledge(model, 16, 2, true_labels=batch.labels)
    options = AttackOptions(iterations=4, restarts=3, analytic=False)
    result = get_attack("rog")(update, knowledge, options, seed=0)
    finals = result.info["restart_losses"]
    assert result.info["chosen_restart"] == min(range(3), key=finals.__getitem__)
    assert len(result.trace) == len(result.info["trace_restart"]) == 12
    assert result.info["budget"] == 12


def test_ig_takes_labels_aware_and_restarts(make_batch) -> None:
    model = build_model("lenet", 1, 16, seed=0)
    batch = make_batch(2, 16, [0, 1], seed=1, smooth=True)
    update = build_chain(["sign"]).client_update(model, batch, FLSettings(), seed=0)
    options = AttackOptions(iterations=3, restarts=2, labels="inferred")
    result = get_attack("ig")(update, ServerKnowledge(model, 16, 2), options, seed=0)
    assert result.labels_source == "inferred" and sorted(result.labels.tolist()) == [0, 1]
    assert result.info["loss"] == "sign" and result.info["restarts"] == 2


def test_a_trained_prior_round_trips_through_its_file(tmp_path) -> None:
    config = TrainConfig(image_size=32, count=16, epochs=1, width=4, batch=8)
    images = training_images(config)
    assert images.shape == (16, 1, 32, 32)
    net, loss = train_prior(images, config)
    path = tmp_path / "prior.safetensors"
    save_prior(net, config, path, loss)
    meta = prior_metadata(path)
    assert '"count": 16' in meta["config"] and "bicubic" in meta["degradations"]
    probe = images[:2]
    with torch.no_grad():
        expected = net(probe)
    assert torch.allclose(load_prior(path)(probe), expected)
    assert torch.allclose(apply_prior(str(path), probe), expected.clamp(0, 1))


def test_a_missing_or_corrupt_prior_file_is_a_one_line_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found") as missing:
        check_prior(str(tmp_path / "absent.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ConfigError, match="corrupt") as corrupt:
        check_prior(str(bad))
    for error in (missing, corrupt):
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="unknown prior"):
        check_prior("imagenet")


def test_rog_core_preset_is_the_reference_configuration() -> None:
    options = AttackOptions(labels="inferred", aware=True, restarts=4, prior="classical")
    core = apply_preset("rog-core", options)
    assert (core.labels, core.aware, core.restarts, core.prior) == ("known", False, 1, "none")
    assert (core.reconstruct_channels, core.scale_factor, core.iterations) == ("all", 4, 100)
    assert core.analytic is False and core.lr is None
    assert apply_preset(None, options) == options
    with pytest.raises(ConfigError, match="unknown preset"):
        apply_preset("rog-plus", options)
    assert dataclasses.replace(core) == core


def test_disaggregation_recovers_individual_features_on_a_constructed_case() -> None:
    g = torch.Generator().manual_seed(0)
    batch, width, features = 3, 64, 400
    f = torch.relu(torch.randn(batch, features, generator=g))  # non-negative, ~half zeros
    w1 = torch.randn(width, features, generator=g)
    w2 = torch.randn(2, width, generator=g)
    masks = (f @ w1.T > 0).double()  # B x width
    scale = torch.tensor([-0.3, 0.2, -0.1], dtype=torch.float64)[:, None]  # a_k / B
    u = (w2[0] - w2[1]).double()
    gradient = ((masks * scale * u[None]).T @ f.double()).float()
    found = disaggregate(gradient, batch, seed=0)
    assert found is not None and found.rank_energy > 0.999
    cos = F.cosine_similarity(found.directions[:, None], f[None], dim=2)
    assert cos.max(1).values.min() > 0.999
    assert sorted(cos.argmax(1).tolist()) == [0, 1, 2]


def test_full_rog_on_lenet_infers_labels_and_beats_the_core(make_batch) -> None:
    model = build_model("lenet", 3, 16, seed=0)
    batch = make_batch(4, 16, [0, 1, 0, 1], seed=2, smooth=True)
    update = compute_update(model, batch, FLSettings())
    full = get_attack("rog")(
        update, ServerKnowledge(model, 16, 4), AttackOptions(iterations=40, labels="inferred"), 0
    )
    core_options = apply_preset("rog-core", AttackOptions())
    core = get_attack("rog")(
        update, ServerKnowledge(model, 16, 4, true_labels=batch.labels), core_options, 0
    )
    assert full.info["stage"] == "analytic" and sorted(full.labels.tolist()) == [0, 0, 1, 1]

    def matched(result) -> float:
        return min(
            max(_psnr(result.images[j], batch.images[i]) for j in range(4)) for i in range(4)
        )

    assert matched(full) > matched(core) + 5


def test_cli_wires_the_new_attack_options(tmp_path, capsys) -> None:
    import json

    from medleak.cli import main

    small = ["--image-size", "16", "--batch-size", "2", "--iterations", "2", "--quiet"]
    small += ["--gallery-size", "0", "--model", "lenet", "--channels", "1"]
    out = tmp_path / "core"
    assert (
        main(["attack", *small, "--preset", "rog-core", "--labels", "inferred", "--out", str(out)])
        == 0
    )
    record = json.loads((out / "metrics.json").read_text())
    assert record["labels_source"] == "known"  # the preset is the reference: oracle labels
    assert record["attack_info"]["stage"] == "optimisation" and record["iterations"] == 100
    out = tmp_path / "full"
    args = ["--labels", "inferred", "--no-aware", "--restarts", "2", "--no-analytic"]
    assert main(["attack", *small, *args, "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["labels_source"] == "inferred" and record["attack_info"]["restarts"] == 2
    assert record["config"]["attack"]["aware"] is False
    rows = (out / "trace.csv").read_text().splitlines()[1:]
    assert {r.split(",")[1] for r in rows} == {"0", "1"}
    capsys.readouterr()
    code = main(["attack", *small, "--prior", str(tmp_path / "none.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "prior file not found" in err and err.count("\n") == 1
