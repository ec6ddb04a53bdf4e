import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from medleak.metrics import PSNR_CAP_DB, psnr, ssim


def _smooth(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 8, 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(0, 1)


def _skimage(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    out = []
    for a, b in zip(x.double().numpy(), y.double().numpy(), strict=True):
        out.append(
            structural_similarity(
                a,
                b,
                channel_axis=0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1,
            )
        )
    return out


@pytest.mark.parametrize("size", [32, 57, 128])
def test_ssim_matches_scikit_image_random_and_smooth(size: int) -> None:
    g = torch.Generator().manual_seed(size)
    x_rand = torch.rand(3, 1, size, size, generator=g)
    y_rand = (x_rand + 0.2 * torch.randn(3, 1, size, size, generator=g)).clamp(0, 1)
    x_smooth, y_smooth = _smooth(3, size, 1), _smooth(3, size, 2)
    y_near = (x_smooth + 0.05 * torch.randn(3, 1, size, size, generator=g)).clamp(0, 1)
    for x, y in [(x_rand, y_rand), (x_smooth, y_smooth), (x_smooth, y_near)]:
        ours = ssim(x, y).numpy()
        np.testing.assert_allclose(ours, _skimage(x, y), atol=1e-3)


def test_ssim_multichannel_is_channel_mean_and_matches_scikit_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 48, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 40, 48, generator=g)).clamp(0, 1)
    np.testing.assert_allclose(ssim(x, y).numpy(), _skimage(x, y), atol=1e-3)
    per_channel = torch.stack([ssim(x[:, c : c + 1], y[:, c : c + 1]) for c in range(3)], 1)
    np.testing.assert_allclose(ssim(x, y).numpy(), per_channel.mean(1).numpy(), atol=1e-12)


def test_ssim_identical_is_one_and_too_small_raises() -> None:
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_psnr_hand_values() -> None:
    x = torch.zeros(3, 1, 4, 4)
    y = torch.zeros(3, 1, 4, 4)
    y[0] += 0.1  # MSE 0.01 -> 20 dB
    y[1, 0, 0, :] = 1.0  # 4 of 16 pixels off by 1 -> MSE 0.25 -> 10 log10(4)
    # y[2] identical -> capped
    got = psnr(x, y)
    assert got[0].item() == pytest.approx(20.0, abs=1e-5)
    assert got[1].item() == pytest.approx(10 * math.log10(4), abs=1e-9)
    assert got[2].item() == PSNR_CAP_DB
    assert torch.isfinite(got).all()


def test_psnr_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        psnr(torch.zeros(2, 1, 4, 4), torch.zeros(1, 1, 4, 4))


def test_pairwise_ssim_equals_elementwise_ssim() -> None:
    from medleak.metrics import pairwise_ssim

    g = torch.Generator().manual_seed(9)
    a = torch.rand(3, 2, 20, 24, generator=g)
    b = torch.rand(5, 2, 20, 24, generator=g)
    expected = torch.stack([ssim(a[i : i + 1].expand_as(b), b) for i in range(3)])
    assert torch.allclose(pairwise_ssim(a, b), expected, atol=1e-12)
