"""A hospital's own classifier, outside medleak's registry: what ``medleak audit`` is pointed at
with ``--model-factory my_model:build`` (run from this folder, or put it on PYTHONPATH)."""

from __future__ import annotations

from torch import nn


class SmallCXRNet(nn.Module):
    """Two convolutions and two linear layers: a small chest X-ray classifier."""

    def __init__(self, channels: int, image_size: int, classes: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        side = image_size // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * side * side, 64),
            nn.ReLU(),
            nn.Linear(64, classes),
        )

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.classifier(self.features(x))


def build(channels: int = 1, image_size: int = 32, classes: int = 2, width: int = 8) -> nn.Module:
    """The factory ``medleak audit`` calls with the YAML's ``model_args``."""
    return SmallCXRNet(channels, image_size, classes, width)
