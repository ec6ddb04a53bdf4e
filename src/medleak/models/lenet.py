"""LeNet variants used by the gradient-inversion literature.

``RogLeNet`` is the LeNet of ROG (Yue et al., USENIX Security 2023); ``DlgLeNet`` is the sigmoid
LeNet of DLG (Zhu et al., NeurIPS 2019), on which DLG recovers 32x32 images almost exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RogLeNet(nn.Module):
    """Two 5x5 conv layers (32, 64 channels) with ReLU and max-pool, then two bias-free linears.

    The first linear layer sees (H/4)(W/4)*64 features; its bias-free weight gradient is a sum of
    outer products that exposes the features, one reason attacks do well on this model.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = (image_size // 4) * (image_size // 4) * 64
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 512, bias=False),
            nn.ReLU(),
            nn.Linear(512, num_classes, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class DlgLeNet(nn.Module):
    """Three 5x5 sigmoid convs (12 channels, strides 2, 2, 1) and one linear layer, as in DLG."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 12, kernel_size=5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=1),
            nn.Sigmoid(),
        )
        side = math.ceil(math.ceil(image_size / 2) / 2)  # two stride-2 convs, padding 2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(12 * side * side, num_classes))
        # DLG initialises every weight and bias uniformly in [-0.5, 0.5]; with PyTorch's default
        # (much smaller) init the sigmoids saturate less and the published behaviour changes.
        for p in self.parameters():
            nn.init.uniform_(p, -0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
