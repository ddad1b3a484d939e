"""VGG-13/16 frame encoders (torchvision-compatible, batch-norm free) and the
``vgg13_lstm`` / ``vgg16_lstm`` clip backbones.

Parameter names are torchvision's (``features.N``, ``classifier.N``), so a torchvision
``vgg13()`` / ``vgg16()`` state dict loads into the encoder.

Frame embedding (``embed``):

- ``"gap"`` (default): global average pool of the last conv stage, ``8·width`` = 512
  features. The two 4096-wide fully connected layers hold ~90% of VGG's parameters, are
  tied to a 7x7 ImageNet layout, and over 16 frames per clip would dominate memory and
  compute; pooled conv features are the usual choice for a frame encoder feeding an LSTM.
  The classifier is then absent (``classifier.*`` of a torchvision file is skipped).
- ``"fc7"``: torchvision's path ``avgpool 7x7 -> classifier[:6]`` (fc6, fc7 with ReLU and
  dropout), ``64·width`` = 4096 features; pretrained fc6/fc7 are loaded.
"""

from __future__ import annotations

import torch
from torch import nn

from d2sp.models.registry import register_backbone
from d2sp.models.temporal import FrameLSTM

CFGS: dict[str, list[int | str]] = {
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ],
}


class VGG(nn.Module):
    """Per-frame VGG encoder: ``forward_features((N, C, H, W)) -> (N, num_features)``.

    Args:
        cfg: ``"vgg13"`` or ``"vgg16"``.
        width: channels of the first stage (64 = torchvision; stages scale 1, 2, 4, 8, 8).
        embed: ``"gap"`` (``8·width`` features) or ``"fc7"`` (``64·width`` features).
        num_classes: if given, add torchvision's full classifier (last layer
            ``classifier.6`` with ``num_classes`` outputs, unused by ``forward_features``).

    Attributes:
        arch: torchvision's model name (``cfg``): the weights ``pretrained="imagenet"`` asks for.
    """

    def __init__(
        self,
        cfg: str = "vgg16",
        *,
        width: int = 64,
        in_chans: int = 3,
        embed: str = "gap",
        num_classes: int | None = None,
    ):
        super().__init__()
        if embed not in ("gap", "fc7"):
            raise ValueError(f"embed must be 'gap' or 'fc7', got {embed!r}")
        self.arch = cfg
        self.embed = embed
        layers: list[nn.Module] = []
        ch = in_chans
        for v in CFGS[cfg]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out = int(v) * width // 64
                layers += [nn.Conv2d(ch, out, 3, padding=1), nn.ReLU(inplace=True)]
                ch = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        hidden = 4096 * width // 64
        self.classifier: nn.Sequential | None = None
        if embed == "fc7" or num_classes:
            head = [
                nn.Linear(ch * 7 * 7, hidden),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(hidden, hidden),
                nn.ReLU(True),
                nn.Dropout(0.5),
            ]
            if num_classes:
                head.append(nn.Linear(hidden, num_classes))
            self.classifier = nn.Sequential(*head)
        self.num_features = hidden if embed == "fc7" else ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, num_features)``."""
        x = self.features(x)  # (N, 8w, H/32, W/32)
        if self.embed == "gap":
            return x.mean(dim=(2, 3))  # (N, 8w)
        x = torch.flatten(self.avgpool(x), 1)  # (N, 8w·49)
        return self.classifier[:6](x)  # (N, 64w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is not None and len(self.classifier) == 7:
            x = torch.flatten(self.avgpool(self.features(x)), 1)  # (N, 8w·49)
            return self.classifier(x)  # (N, num_classes)
        return self.forward_features(x)


def vgg13(*, width: int = 64, embed: str = "gap", num_classes: int | None = None) -> VGG:
    """VGG-13 encoder; with ``num_classes=1000`` it has 133,047,848 parameters."""
    return VGG("vgg13", width=width, embed=embed, num_classes=num_classes)


def vgg16(*, width: int = 64, embed: str = "gap", num_classes: int | None = None) -> VGG:
    """VGG-16 encoder; with ``num_classes=1000`` it has 138,357,544 parameters."""
    return VGG("vgg16", width=width, embed=embed, num_classes=num_classes)


@register_backbone("vgg13_lstm")
def vgg13_lstm(
    *,
    width: int = 64,
    embed: str = "gap",
    lstm_hidden: int = 512,
    lstm_layers: int = 1,
    dropout: float = 0.0,
    encoder_classifier: bool = False,
) -> FrameLSTM:
    """VGG-13 per frame (``embed="gap"``: 512 features) -> LSTM -> ``(B, lstm_hidden)``.

    ``encoder_classifier=True`` keeps torchvision's full 1000-class classifier (unused).
    """
    enc = vgg13(width=width, embed=embed, num_classes=1000 if encoder_classifier else None)
    return FrameLSTM(enc, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, dropout=dropout)


@register_backbone("vgg16_lstm")
def vgg16_lstm(
    *,
    width: int = 64,
    embed: str = "gap",
    lstm_hidden: int = 512,
    lstm_layers: int = 1,
    dropout: float = 0.0,
    encoder_classifier: bool = False,
) -> FrameLSTM:
    """VGG-16 per frame (``embed="gap"``: 512 features) -> LSTM -> ``(B, lstm_hidden)``.

    ``encoder_classifier=True`` keeps torchvision's full 1000-class classifier (unused).
    """
    enc = vgg16(width=width, embed=embed, num_classes=1000 if encoder_classifier else None)
    return FrameLSTM(enc, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, dropout=dropout)
