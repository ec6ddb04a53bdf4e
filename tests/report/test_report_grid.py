import numpy as np
import torch
from PIL import Image

from medleak.report import save_grid


def test_grid_writes_a_png_with_originals_above_reconstructions(tmp_path) -> None:
    originals = torch.zeros(3, 1, 32, 32)
    recon = torch.ones(3, 1, 32, 32)
    path = save_grid(originals, recon, tmp_path / "sub" / "g.png", ["PSNR 1.0 / SSIM 0.10"] * 3)
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    h = img.shape[0]
    # Black originals sit in the upper half, white reconstructions in the lower half.
    assert img[: h // 2].mean() < img[h // 2 :].mean()
    assert (img[: h // 2] < 10).sum() > 3 * 32 * 32
    assert img.shape[1] > img.shape[0]  # three columns side by side


def test_grid_wraps_many_images_and_accepts_no_captions(tmp_path) -> None:
    x = torch.rand(10, 3, 16, 16)
    path = save_grid(x, x, tmp_path / "g.png")
    assert Image.open(path).format == "PNG"
