import math

import pytest
import torch

from medleak.metrics import evaluate, load_lpips, lpips
from medleak.metrics.lpips import (
    ALEXNET_CONVS,
    BACKBONE_FILE,
    ENV_VAR,
    LINEAR_FILE,
    SCALE,
    SHIFT,
    LPIPSAlex,
)

TORCHVISION_IDX = (0, 3, 6, 8, 10)


class _Payload:
    """An arbitrary object: loading it would mean running pickle code."""


def _write_weights(directory, convs=ALEXNET_CONVS, seed=0):
    """Save random weights under the names torchvision and the lpips project use."""
    g = torch.Generator().manual_seed(seed)
    backbone, linear, c_in = {}, {}, 3
    for k, (c_out, size, _, _) in enumerate(convs):
        idx = TORCHVISION_IDX[k]
        backbone[f"features.{idx}.weight"] = 0.1 * torch.randn(c_out, c_in, size, size, generator=g)
        backbone[f"features.{idx}.bias"] = 0.1 * torch.randn(c_out, generator=g)
        linear[f"lin{k}.model.1.weight"] = torch.rand(1, c_out, 1, 1, generator=g)
        c_in = c_out
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # present in the real file, ignored
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(backbone, directory / BACKBONE_FILE)
    torch.save(linear, directory / LINEAR_FILE)
    return backbone, linear


def test_identical_images_score_zero_and_different_ones_do_not(tmp_path) -> None:
    _write_weights(tmp_path)
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    y = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    same = lpips(x, x, tmp_path)
    assert same.reason is None and torch.equal(same.values, torch.zeros(2, dtype=torch.float64))
    diff = lpips(x, y, tmp_path)
    assert (diff.values > 0).all()
    # gray input is the same as the replicated 3-channel image
    assert torch.allclose(
        diff.values, lpips(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1), tmp_path).values
    )


def test_tiny_configuration_by_hand(tmp_path) -> None:
    # one 1x1 conv with 2 channels on 1 x 1 images: everything can be written out
    convs = ((2, 1, 1, 0),)
    backbone, linear = _write_weights(tmp_path, convs)
    w = backbone["features.0.weight"].view(2, 3)
    b = backbone["features.0.bias"]
    lin = linear["lin0.model.1.weight"].view(2)
    net = load_lpips(tmp_path, convs=convs)  # the key mapping must put every tensor in place

    def unit_features(v: float) -> list[float]:
        z = [((2 * v - 1) - SHIFT[c]) / SCALE[c] for c in range(3)]
        f = [max(0.0, sum(w[k, c].item() * z[c] for c in range(3)) + b[k].item()) for k in range(2)]
        norm = math.sqrt(sum(t * t for t in f)) + 1e-10
        return [t / norm for t in f]

    fa, fb = unit_features(0.9), unit_features(0.2)
    expected = sum(lin[k].item() * (fa[k] - fb[k]) ** 2 for k in range(2))
    got = net(torch.full((1, 1, 1, 1), 0.9), torch.full((1, 1, 1, 1), 0.2))
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_key_mapping_loads_every_weight(tmp_path) -> None:
    backbone, linear = _write_weights(tmp_path)
    net = load_lpips(tmp_path)
    for k, idx in enumerate(TORCHVISION_IDX):
        assert torch.equal(net.convs[k].weight, backbone[f"features.{idx}.weight"])
        assert torch.equal(net.convs[k].bias, backbone[f"features.{idx}.bias"])
        assert torch.equal(net.lins[k].weight, linear[f"lin{k}.model.1.weight"])
    assert isinstance(net, LPIPSAlex)


def test_missing_file_gives_null_with_reason(tmp_path, monkeypatch) -> None:
    x = torch.rand(1, 1, 32, 32)
    res = lpips(x, x, tmp_path)
    assert res.values is None
    assert BACKBONE_FILE in res.reason and str(tmp_path) in res.reason
    _write_weights(tmp_path)
    (tmp_path / LINEAR_FILE).unlink()
    res = lpips(x, x, tmp_path)
    assert res.values is None and LINEAR_FILE in res.reason
    # env var is the fallback when no directory is given
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    assert "elsewhere" in lpips(x, x).reason
    scores = evaluate(
        x,
        x,
        true_labels=torch.tensor([0]),
        sources=["a"],
        patients=None,
        lpips_weights=tmp_path,
    ).to_dict()
    assert scores["lpips"] is None and LINEAR_FILE in scores["lpips_reason"]
    assert scores["per_image"][0]["lpips"] is None


def test_weights_file_that_is_not_plain_tensors_is_refused(tmp_path) -> None:
    _write_weights(tmp_path)
    torch.save({"x": _Payload()}, tmp_path / LINEAR_FILE)  # would need unpickling code
    res = lpips(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), tmp_path)
    assert res.values is None and "unreadable" in res.reason


def test_evaluate_reports_lpips_when_weights_exist(tmp_path) -> None:
    _write_weights(tmp_path)
    x = torch.rand(2, 1, 48, 48)
    out = evaluate(
        x,
        x.flip(0),
        true_labels=torch.tensor([0, 1]),
        sources=["a", "b"],
        patients=None,
        lpips_weights=tmp_path,
    ).to_dict()
    assert out["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert "lpips_reason" not in out
