"""DenseNet-121 (Huang et al., CVPR 2017), the architecture of CheXNet (Rajpurkar et al. 2017),
written in plain torch (no torchvision): 7x7/2 stem and max-pool, dense blocks of 6, 12, 24 and
16 bottleneck layers (growth 32, bottleneck 4 x 32) joined by halving transitions, BatchNorm,
global average pooling and a linear head on 1024 features. ReLUs are not in place, so the
attacker's double backward pass can run through them. Four halvings after the stem need at least
32 px (the last block then sees 1 x 1 features).
"""

from __future__ import annotations

import torch
from torch import nn

GROWTH, BOTTLENECK, BLOCKS, STEM = 32, 4, (6, 12, 24, 16), 64


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv-BN-ReLU-3x3 conv; its ``GROWTH`` new maps are appended to its input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        width = BOTTLENECK * GROWTH
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, GROWTH, 3, padding=1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.norm1(x)))
        out = self.conv2(self.relu(self.norm2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv halving the channels, then 2x2 average pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels // 2, 1, bias=False),
            nn.AvgPool2d(2),
        )


class DenseNet121(nn.Module):
    """DenseNet-121 with BatchNorm, for ``num_classes`` outputs."""

    MIN_IMAGE_SIZE = 32

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, STEM, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(STEM),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        channels = STEM
        for index, depth in enumerate(BLOCKS):
            block = []
            for _ in range(depth):
                block.append(DenseLayer(channels))
                channels += GROWTH
            layers.append(nn.Sequential(*block))
            if index + 1 < len(BLOCKS):
                layers.append(Transition(channels))
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
