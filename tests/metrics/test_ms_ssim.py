import pytest
import torch
import torch.nn.functional as F

from medleak.metrics import ms_ssim, ms_ssim_unavailable_reason, ssim
from medleak.metrics.ssim import ssim_map_parts


def test_one_scale_is_plain_ssim() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 40, 40, generator=g)
    y = (x + 0.1 * torch.randn(2, 1, 40, 40, generator=g)).clamp(0, 1)
    assert torch.allclose(ms_ssim(x, y, weights=(1.0,)), ssim(x, y).clamp(min=0))


def test_two_scales_by_hand() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 30, 30, generator=g)
    y = (x + 0.2 * torch.randn(1, 1, 30, 30, generator=g)).clamp(0, 1)
    _, cs0 = ssim_map_parts(x, y)
    lum1, cs1 = ssim_map_parts(F.avg_pool2d(x.double(), 2), F.avg_pool2d(y.double(), 2))
    expected = cs0.mean().clamp(min=0) ** 0.3 * (lum1 * cs1).mean().clamp(min=0) ** 0.7
    assert ms_ssim(x, y, weights=(0.3, 0.7)).item() == pytest.approx(expected.item(), rel=1e-12)


def test_five_scales_need_more_than_160_px() -> None:
    assert ms_ssim_unavailable_reason(128, 128) is not None
    assert "160" in ms_ssim_unavailable_reason(160, 200)
    assert ms_ssim_unavailable_reason(161, 161) is None
    with pytest.raises(ValueError, match="161"):
        ms_ssim(torch.rand(1, 1, 128, 128), torch.rand(1, 1, 128, 128))
    x = torch.rand(1, 1, 161, 170)
    assert ms_ssim(x, x).item() == pytest.approx(1.0)
    y = torch.rand(1, 1, 161, 170)
    assert 0 <= ms_ssim(x, y).item() < 0.5
