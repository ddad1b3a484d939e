"""ResNet-18/50 frame encoders (torchvision-compatible parameter names) and the
``r18_lstm`` / ``r50_lstm`` clip backbones.

The encoder's parameter names are exactly torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``...), so a torchvision ResNet state
dict loads into it. ``width`` scales every channel count (stem ``width``, stages
``width, 2·width, 4·width, 8·width``; 64 is torchvision's) for small, fast models.
Spatial size is free: the encoder ends with adaptive average pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from d2sp.models.registry import register_backbone
from d2sp.models.temporal import FrameLSTM


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 bottleneck with a residual connection (ResNet-50+)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# (block, blocks per stage) -> torchvision's model name
TORCHVISION_NAMES: dict[tuple[str, tuple[int, ...]], str] = {
    ("BasicBlock", (2, 2, 2, 2)): "resnet18",
    ("Bottleneck", (3, 4, 6, 3)): "resnet50",
}


class ResNet(nn.Module):
    """Per-frame ResNet encoder: ``forward_features((N, C, H, W)) -> (N, 8·width·expansion)``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        width: base channel count (64 = torchvision).
        in_chans: input channels.
        num_classes: if given, add torchvision's ``fc`` classifier (unused by
            ``forward_features``; kept for state-dict compatibility and parameter counts).

    Attributes:
        arch: torchvision's name for this depth (``"resnet18"``, ``"resnet50"``) or None:
            the published weights ``pretrained="imagenet"`` asks for.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        *,
        width: int = 64,
        in_chans: int = 3,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.arch = TORCHVISION_NAMES.get((block.__name__, tuple(layers)))
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = width * 8 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, width, H/4, W/4)``."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, num_features, H/32, W/32)`` (last stage's feature map)."""
        x = self.forward_stem(x)  # (N, w, H/4, W/4)
        x = self.layer3(self.layer2(self.layer1(x)))  # (N, 4w·e, H/16, W/16)
        return self.layer4(x)  # (N, 8w·e, H/32, W/32)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, num_features)``: globally average-pooled last stage."""
        return torch.flatten(self.avgpool(self.forward_map(x)), 1)  # (N, num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.forward_features(x)  # (N, num_features)
        return self.fc(feats) if self.fc is not None else feats


def resnet18(*, width: int = 64, num_classes: int | None = None, **kwargs) -> ResNet:
    """ResNet-18 frame encoder; with ``num_classes=1000`` it has 11,689,512 parameters."""
    return ResNet(BasicBlock, (2, 2, 2, 2), width=width, num_classes=num_classes, **kwargs)


def resnet50(*, width: int = 64, num_classes: int | None = None, **kwargs) -> ResNet:
    """ResNet-50 frame encoder; with ``num_classes=1000`` it has 25,557,032 parameters."""
    return ResNet(Bottleneck, (3, 4, 6, 3), width=width, num_classes=num_classes, **kwargs)


@register_backbone("r18_lstm")
def r18_lstm(
    *,
    width: int = 64,
    lstm_hidden: int = 512,
    lstm_layers: int = 1,
    dropout: float = 0.0,
    encoder_fc: bool = False,
) -> FrameLSTM:
    """ResNet-18 per frame (``8·width`` = 512 features) -> LSTM -> ``(B, lstm_hidden)``.

    ``encoder_fc=True`` keeps torchvision's 1000-class ``fc`` on the encoder (unused).
    """
    enc = resnet18(width=width, num_classes=1000 if encoder_fc else None)
    return FrameLSTM(enc, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, dropout=dropout)


@register_backbone("r50_lstm")
def r50_lstm(
    *,
    width: int = 64,
    lstm_hidden: int = 512,
    lstm_layers: int = 1,
    dropout: float = 0.0,
    encoder_fc: bool = False,
) -> FrameLSTM:
    """ResNet-50 per frame (``32·width`` = 2048 features) -> LSTM -> ``(B, lstm_hidden)``.

    ``encoder_fc=True`` keeps torchvision's 1000-class ``fc`` on the encoder (unused).
    """
    enc = resnet50(width=width, num_classes=1000 if encoder_fc else None)
    return FrameLSTM(enc, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, dropout=dropout)
