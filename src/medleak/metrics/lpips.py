"""LPIPS, the learned perceptual distance (Zhang, Isola, Efros, Shechtman, Wang 2018, "The
Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR), AlexNet variant v0.1,
written in plain torch (medleak uses neither torchvision nor the ``lpips`` package).

Distance = sum over the five AlexNet ReLU outputs of the spatial mean of
``w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2``, where the channel-unit-normalised features come
from ImageNet AlexNet and the per-channel weights ``w_l`` were fitted to human judgements.
Inputs are gray [0, 1] images: replicated to 3 channels, mapped to [-1, 1], then shifted and scaled
by the LPIPS constants. 0 = identical; larger = more different.

Weights (nothing is downloaded; both files must be placed by hand in one directory):

- ``alexnet-owt-7be5be79.pth``: torchvision's ImageNet AlexNet,
  from download.pytorch.org/models/alexnet-owt-7be5be79.pth (if torchvision was ever used on the
  machine it is often already in ``~/.cache/torch/hub/checkpoints/``).
- ``alex.pth``: the LPIPS v0.1 linear layers, file ``lpips/weights/v0.1/alex.pth`` of the
  richzhang/PerceptualSimilarity repository on GitHub (also inside the ``lpips`` pip package).

The directory is ``--lpips-weights DIR`` (``lpips_weights``), else the environment variable
``MEDLEAK_LPIPS_DIR``, else ``~/.cache/medleak/lpips/``. Files are read with
``torch.load(..., weights_only=True)``, so a weights file cannot run code. When a file is missing
LPIPS is reported as absent with the reason, never as 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medleak.errors import MedleakError

BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
LINEAR_FILE = "alex.pth"
ENV_VAR = "MEDLEAK_LPIPS_DIR"
DEFAULT_DIR = Path("~/.cache/medleak/lpips")

# conv layers: (out channels, kernel, stride, padding); a 3/2 max-pool follows conv1 and conv2.
ALEXNET_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
# torchvision's ``features`` indices of those convs, for the key mapping.
TORCHVISION_INDEX = (0, 3, 6, 8, 10)
# LPIPS ScalingLayer constants: inputs in [-1, 1] -> roughly ImageNet-normalised.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = 31  # smallest side for which the second max-pool still has a 3 x 3 input


class LpipsWeightsMissing(MedleakError):
    """A weights file is not where medleak looked; LPIPS is then reported as absent."""


class LPIPSAlex(nn.Module):
    """AlexNet features + LPIPS linear heads. ``convs`` lets tests build a tiny variant."""

    def __init__(
        self,
        convs: tuple[tuple[int, int, int, int], ...] = ALEXNET_CONVS,
        pool_after: tuple[int, ...] = (0, 1),
    ) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c_out, k, s, p in convs:
            layers.append(nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.lins = nn.ModuleList(nn.Conv2d(c[0], 1, 1, bias=False) for c in convs)
        self.pool_after = pool_after
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The ReLU output after every conv (the LPIPS taps relu1..relu5)."""
        taps = []
        for i, conv in enumerate(self.convs):
            # The pool sits before conv i+1, i.e. after tap i was taken (as in torchvision).
            x = F.relu(conv(x))
            taps.append(x)
            if i in self.pool_after and i + 1 < len(self.convs):
                x = F.max_pool2d(x, kernel_size=3, stride=2)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance of two N x C x H x W batches in [0, 1] (C = 1 or 3) -> N."""
        if x.shape != y.shape or x.dim() != 4:
            raise ValueError(f"cannot compare {tuple(x.shape)} with {tuple(y.shape)}")
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        fx, fy = self.features(self._prepare(x)), self.features(self._prepare(y))
        for a, b, lin in zip(fx, fy, self.lins, strict=True):
            d = (_unit(a) - _unit(b)).pow(2)
            total = total + lin(d).mean(dim=(1, 2, 3))
        return total

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"LPIPS needs 1 or 3 channels, got {x.shape[1]}")
        return ((2 * x - 1) - self.shift) / self.scale


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit length across channels (LPIPS eq. 1)."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def weights_dir(explicit: Path | str | None = None) -> Path:
    """Where the weight files are looked for: explicit argument, env var, then the cache path."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DIR.expanduser()


def _read(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise LpipsWeightsMissing(f"LPIPS {what} weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file or pickled code: unusable either way
        raise LpipsWeightsMissing(f"LPIPS {what} weights unreadable: {path} ({exc})") from exc
    if not isinstance(state, dict):
        raise LpipsWeightsMissing(f"LPIPS {what} weights are not a state dict: {path}")
    return state


def _map_keys(backbone: dict, linear: dict, n: int) -> dict[str, torch.Tensor]:
    """torchvision ``features.{0,3,6,8,10}.*`` and lpips ``lin{k}.model.1.weight`` -> ours."""
    mapped: dict[str, torch.Tensor] = {}
    for k, idx in enumerate(TORCHVISION_INDEX[:n]):
        for part in ("weight", "bias"):
            key = f"features.{idx}.{part}"
            if key not in backbone:
                raise LpipsWeightsMissing(f"backbone file lacks {key}")
            mapped[f"convs.{k}.{part}"] = backbone[key]
        # lpips saves lin{k}.model.1.weight (Dropout at model.0); accept the no-dropout name too.
        for key in (f"lin{k}.model.1.weight", f"lin{k}.model.0.weight", f"lin{k}.weight"):
            if key in linear:
                mapped[f"lins.{k}.weight"] = linear[key]
                break
        else:
            raise LpipsWeightsMissing(f"linear-layer file lacks lin{k}.model.1.weight")
    return mapped


def load_lpips(
    directory: Path | str | None = None,
    convs: tuple[tuple[int, int, int, int], ...] = ALEXNET_CONVS,
) -> LPIPSAlex:
    """Build the network and load both weight files; raises ``LpipsWeightsMissing`` if absent."""
    d = weights_dir(directory)
    backbone = _read(d / BACKBONE_FILE, "AlexNet backbone")
    linear = _read(d / LINEAR_FILE, "linear-layer (v0.1)")
    net = LPIPSAlex(convs)
    mapped = _map_keys(backbone, linear, len(convs))
    own = net.state_dict()
    for key, value in mapped.items():
        if own[key].shape != value.shape:
            raise LpipsWeightsMissing(
                f"LPIPS weight {key} has shape {tuple(value.shape)}, "
                f"expected {tuple(own[key].shape)}"
            )
    net.load_state_dict(mapped, strict=False)  # shift/scale buffers are constants, not in files
    return net


@dataclass(frozen=True)
class LpipsResult:
    """Per-image distances, or None with the reason they could not be computed."""

    values: torch.Tensor | None
    reason: str | None


def lpips(x: torch.Tensor, y: torch.Tensor, weights: Path | str | None = None) -> LpipsResult:
    """LPIPS of two [0, 1] batches, or an absent result (with why) when weights are missing."""
    if min(x.shape[-2:]) < MIN_SIZE:
        return LpipsResult(None, f"LPIPS (AlexNet) needs images of at least {MIN_SIZE} px")
    try:
        net = load_lpips(weights)
    except LpipsWeightsMissing as exc:
        return LpipsResult(
            None,
            f"{exc}; put {BACKBONE_FILE} and {LINEAR_FILE} in that directory "
            f"(or pass --lpips-weights DIR / set {ENV_VAR}); see medleak.metrics.lpips",
        )
    with torch.no_grad():
        return LpipsResult(net(x.float(), y.float()).double(), None)
