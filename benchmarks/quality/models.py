"""The suite's networks: a small CNN for the images, a narrow R18-LSTM for the clips; both
``model(x) -> (logits (B, K), weights (B,) or None)`` with the package's plug-and-play head,
and an :meth:`encoder` (everything but the head) that the pretrained regime carries over."""

from __future__ import annotations

from torch import nn

from d2sp.models import create_model
from d2sp.models.heads import ClassifierHead


class SmallCNN(nn.Module):
    """Two conv blocks and a dense layer: images ``(B, 1, S, S)`` -> embedding ``(B, D)``."""

    def __init__(self, size: int, width: int = 16, num_features: int = 128):
        super().__init__()
        self.num_features = num_features
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * (size // 4) ** 2, num_features), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x):
        return self.body(x)  # (B, D)


class ImageNet(nn.Module):
    """The small CNN and the head (a weight branch only where the purifier wants one)."""

    def __init__(self, size: int, num_classes: int, weight_branch: bool, weight_hidden: int | None = None):
        super().__init__()
        self.backbone = SmallCNN(size)
        self.head = ClassifierHead(128, num_classes, weight_branch=weight_branch, weight_hidden=weight_hidden)

    def encoder(self) -> nn.Module:
        return self.backbone

    def forward(self, x):
        return self.head(self.backbone(x))  # (B, K), (B,) or None


class ClipNet(nn.Module):
    """The narrow R18-LSTM on clips ``(B, T, 3, S, S)`` in [0, 1] (normalised inside)."""

    def __init__(self, num_classes: int, weight_branch: bool, weight_hidden: int | None, width: int, lstm: int):
        super().__init__()
        self.net = create_model(
            "r18_lstm", num_classes=num_classes, width=width, lstm_hidden=lstm,
            weight_branch=weight_branch, weight_hidden=weight_hidden,
        )  # fmt: skip

    def encoder(self) -> nn.Module:
        return self.net.backbone

    def forward(self, x):
        return self.net((x - 0.5) / 0.25)


def build_model(data, settings: dict, purifier, encoder_state: dict | None = None) -> nn.Module:
    """The network of ``data`` with the head ``purifier`` wants; the encoder's weights from
    ``encoder_state`` when given (the pretrained regime)."""
    wb, wh = purifier.weight_branch, purifier.weight_hidden
    if data.video:
        model = ClipNet(data.num_classes, wb, wh, settings["width"], settings["lstm"])
    else:
        model = ImageNet(data.x_train.shape[-1], data.num_classes, wb, wh)
    if encoder_state is not None:
        model.encoder().load_state_dict(encoder_state)
    return model
