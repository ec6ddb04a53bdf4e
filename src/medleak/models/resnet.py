"""ResNet-18 in the three forms medleak attacks.

``RogResNet18`` follows ROG's reference (Yue et al., 2023): no BatchNorm, no max-pool, 1x1 conv
shortcuts, adaptive average pooling to 8x8 and a bias-free linear head. ``ResNet18`` is the
ImageNet-style network (He et al., CVPR 2016) most medical FL pipelines train, with BatchNorm;
in training mode its batch statistics mix the images of a batch, which makes attacks harder.
``ResNet18GN`` is the same network with GroupNorm in place of every BatchNorm, as Opacus requires
for DP-SGD (per-example gradients exist: no statistic mixes the batch; no running buffers).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Norm = Callable[[int], nn.Module] | None


def group_norm(channels: int) -> nn.Module:
    """GroupNorm of 32 groups (Wu and He 2018), fewer when the channels are fewer."""
    return nn.GroupNorm(min(32, channels), channels)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection; ``norm`` builds each normalisation layer
    (``nn.BatchNorm2d``, ``group_norm``), None drops them all."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(planes) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm(planes) if norm else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            layers: list[nn.Module] = [nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)]
            if norm:
                layers.append(norm(planes))
            self.shortcut = nn.Sequential(*layers)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def _stages(norm: Norm) -> nn.Sequential:
    blocks: list[nn.Module] = []
    in_planes = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        blocks.append(BasicBlock(in_planes, planes, stride, norm))
        blocks.append(BasicBlock(planes, planes, 1, norm))
        in_planes = planes
    return nn.Sequential(*blocks)


class RogResNet18(nn.Module):
    """ROG's ResNet-18: 7x7/2 stem without max-pool, no BatchNorm, 8x8 pooling, linear 512*64."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False), nn.ReLU()
        )
        self.stages = _stages(norm=None)
        self.pool = nn.AdaptiveAvgPool2d((8, 8))
        self.fc = nn.Linear(512 * 64, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


class ResNet18(nn.Module):
    """Standard ImageNet-style ResNet-18 with BatchNorm, max-pool, global pooling, biased head."""

    norm: Callable[[int], nn.Module] = nn.BatchNorm2d

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        norm = type(self).norm
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            norm(64),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.stages = _stages(norm=norm)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


class ResNet18GN(ResNet18):
    """``ResNet18`` with GroupNorm (32 groups) wherever it has BatchNorm: the form Opacus needs."""

    norm = staticmethod(group_norm)
