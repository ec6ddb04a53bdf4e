"""A learned prior: a small U-Net that maps attack-like degradations back to clean X-rays.

ROG (Yue et al., 2023) refines its output with networks trained on ImageNet; on chest X-rays that
gives tinted, half-recognisable images. medleak trains its own refiner on auxiliary X-rays the
server may plausibly hold: procedural phantoms by default (data set seed PRIOR_SEED_OFFSET + seed,
so never the phantoms a run attacks), or the Kaggle train split when the victims are the test
split. The U-Net (Ronneberger et al., MICCAI 2015; two scales, residual output) is trained with
an L1 loss on pairs (degrade(x), x). The degradations are cheap simulations of what the attacks
leave, not real attack outputs (too slow to generate on a CPU):

- ROG's low-resolution latent: bicubic downsampling by 4 (or 2) and back up;
- blur: Gaussian, sigma in [0, 1.5] px;
- speckle: Gaussian pixel noise, sigma in [0, 0.08] (feature-inversion and noise artefacts);
- contrast and brightness shifts: a (x - 0.5) + 0.5 + b, a in [0.7, 1.2], b in [-0.1, 0.1];
- blotches: up to 3 smooth Gaussian blobs of amplitude up to +-0.15 (low-frequency errors).

The file (safetensors: weights only, it cannot run code) stores the training configuration and
the degradation list in its metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from medleak.attacks.priors.classical import gaussian_blur
from medleak.errors import ConfigError, RunFailed
from medleak.flags import option

FORMAT = "medleak-prior-unet-v1"
PRIOR_SEED_OFFSET = 1_000_003
DEGRADATIONS = (
    "bicubic down/up by 4 or 2",
    "gaussian blur sigma 0-1.5",
    "gaussian noise sigma 0-0.08",
    "contrast 0.7-1.2, brightness +-0.1",
    "0-3 gaussian blotches amplitude +-0.15",
)


@dataclass(frozen=True)
class TrainConfig:
    """What ``medleak train-prior`` was asked to do (stored in the file's metadata)."""

    data: str = option("phantom", "--data", "training images: 'phantom' or a path")
    split: str | None = option(None, "--split", "Kaggle/MedMNIST split (use train)")
    image_size: int = option(128, "--image-size", "side in pixels")
    count: int = option(300, "--count", "training images (phantoms)")
    epochs: int = option(8, "--epochs", "passes over the images")
    width: int = option(16, "--width", "U-Net base channels")
    seed: int = option(0, "--seed", "seed for data and training")
    batch: int = 8
    lr: float = 1e-3

    def __post_init__(self) -> None:
        """Refuse an absurd size or count before any image is made, naming the flag."""
        ranges = {
            "--image-size": (self.image_size, 16, 1024),
            "--count": (self.count, 1, 1_000_000),
            "--epochs": (self.epochs, 1, 100_000),
            "--width": (self.width, 1, 1024),
            "batch": (self.batch, 1, 1_000_000),
        }
        for name, (value, low, high) in ranges.items():
            if not low <= value <= high:
                raise ConfigError(f"{name} must be in {low}..{high}, got {value}")
        if self.image_size % 4:
            raise ConfigError(f"--image-size must be a multiple of 4, got {self.image_size}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 10):
            raise ConfigError(f"lr must be in (0, 10], got {self.lr}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(),
    )


class TinyUNet(nn.Module):
    """Two-scale U-Net with a residual output: refined = input + correction."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.enc1 = _block(1, width)
        self.enc2 = _block(width, 2 * width)
        self.mid = _block(2 * width, 4 * width)
        self.dec2 = _block(6 * width, 2 * width)
        self.dec1 = _block(3 * width, width)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        m = self.mid(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return x + self.out(d1)


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, 1, 1, 1, generator=generator)


def degrade(clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Simulated attack output for each clean image (see the module docstring)."""
    n, _, h, w = clean.shape
    x = clean
    factor = 4 if float(torch.rand((), generator=generator)) < 0.5 else 2
    small = F.interpolate(x, size=(h // factor, w // factor), mode="bicubic", align_corners=False)
    down = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    use = (torch.rand(n, 1, 1, 1, generator=generator) < 0.5).float()
    x = use * down + (1 - use) * x
    sigma = float(_uniform(generator, 1, 0.0, 1.5))
    if sigma > 0.3:
        x = gaussian_blur(x, sigma)
    x = _uniform(generator, n, 0.7, 1.2) * (x - 0.5) + 0.5 + _uniform(generator, n, -0.1, 0.1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    for _ in range(3):
        centre = torch.rand(n, 2, generator=generator)
        radius = 0.05 + 0.15 * torch.rand(n, generator=generator)
        amplitude = 0.3 * torch.rand(n, generator=generator) - 0.15
        amplitude = amplitude * (torch.rand(n, generator=generator) < 0.5)
        d2 = (yy[None] - centre[:, 0, None, None]) ** 2 + (xx[None] - centre[:, 1, None, None]) ** 2
        x = (
            x
            + (amplitude[:, None, None] * torch.exp(-d2 / (2 * radius[:, None, None] ** 2)))[
                :, None
            ]
        )
    noise = torch.randn(clean.shape, generator=generator)
    x = x + _uniform(generator, n, 0.0, 0.08) * noise
    return x.clamp(0, 1)


def training_images(config: TrainConfig) -> torch.Tensor:
    """The auxiliary images, disjoint from any victims (see the module docstring)."""
    from medleak.data import DataSpec, open_dataset

    spec = DataSpec(
        source=config.data,
        split=config.split,
        image_size=config.image_size,
        phantom_count=config.count,
    )
    dataset = open_dataset(spec, seed=PRIOR_SEED_OFFSET + config.seed)
    indices = list(range(min(config.count, len(dataset.entries))))
    return dataset.load(indices).images


def prior_steps(count: int, config: TrainConfig) -> int:
    """Optimiser steps of a training on ``count`` images (for a progress display)."""
    return config.epochs * max(1, (count + config.batch - 1) // config.batch)


def train_prior(
    images: torch.Tensor,
    config: TrainConfig,
    progress: Callable[[float], None] | None = None,
) -> tuple[TinyUNet, float]:
    """Train the U-Net on ``images`` (N x 1 x H x W); returns it and the last epoch's mean loss.

    ``progress`` is called with the step's loss after every optimiser step."""
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = TinyUNet(config.width)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    steps_per_epoch = max(1, (len(images) + config.batch - 1) // config.batch)
    last = float("nan")
    for _ in range(config.epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), config.batch):
            clean = images[order[start : start + config.batch]]
            loss = F.l1_loss(net(degrade(clean, generator)), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            if progress is not None:
                progress(loss.item())
        last = total / steps_per_epoch
    return net.eval(), last


def save_prior(net: TinyUNet, config: TrainConfig, path: Path, loss: float) -> None:
    metadata = {
        "format": FORMAT,
        "config": json.dumps(asdict(config)),
        "degradations": json.dumps(list(DEGRADATIONS)),
        "final_loss": repr(loss),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)


def train_prior_file(
    config: TrainConfig, path: Path, progress: Callable[[int, float], None] | None = None
) -> float:
    """``medleak train-prior``: load the auxiliary images, train, write the file.

    ``progress(total_steps, loss)`` is called after every step (total known once loaded)."""
    images = training_images(config)
    total = prior_steps(len(images), config)
    net, loss = train_prior(
        images, config, None if progress is None else (lambda loss: progress(total, loss))
    )
    if not math.isfinite(loss):  # a diverged prior is a failed run, never a file
        raise RunFailed(f"the prior's training loss became {loss}; lower its learning rate")
    save_prior(net, config, path, loss)
    return loss


def is_prior_file(path: Path) -> bool:
    """True when ``path`` is a prior medleak wrote (what ``train-prior --force`` may replace)."""
    try:
        prior_metadata(path)
    except ConfigError:
        return False
    return True


def prior_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a prior file (ConfigError when it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"prior file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"prior file {path} is corrupt: {message}") from None
    if metadata.get("format") != FORMAT:
        raise ConfigError(f"prior file {path} is not a medleak prior (format {FORMAT} expected)")
    return metadata


def load_prior(path: str | Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The refiner stored in ``path``, as a function on N x 1 x H x W images in [0, 1]."""
    metadata = prior_metadata(path)
    try:
        config = TrainConfig(**json.loads(metadata["config"]))
        net = TinyUNet(config.width)
        net.load_state_dict(load_file(str(path)))
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"prior file {path} is corrupt: {message}") from None
    net.eval()

    def refine(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(images)

    return refine
