"""Former-DFER: a spatial transformer inside a per-frame ResNet-18 and a temporal
transformer over the frames (``former_dfer``).

Per frame (:class:`SpatialFormerResNet`): ResNet-18 stem and stages 1-3 give a
``(4·width, h, w)`` map (256 x 7 x 7 at 112² input); its ``h·w`` positions become tokens
with a learned position embedding (sized for ``img_size``, resampled bicubically for
another input size), pass through ``spatial_layers`` pre-norm transformer blocks, go back
to a map, then stage 4 and global average pooling give ``8·width`` (512) features.

Over the clip (:class:`TemporalTransformer`): a class token and learned frame positions
(``num_frames`` entries; longer clips resample the table linearly), ``temporal_layers``
blocks, a final LayerNorm; the class token output is the clip embedding ``(B, 8·width)``.

The ResNet part keeps torchvision's parameter names, so ImageNet ResNet-18 weights load
into it (the transformer parts stay at their initialisation).
"""

from __future__ import annotations

import torch
from torch import nn

from d2sp.models.registry import register_backbone
from d2sp.models.resnet import BasicBlock, ResNet
from d2sp.models.transformer import Block, resample_1d, resample_pos_embed


def _init_transformer(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SpatialFormerResNet(ResNet):
    """ResNet-18 with transformer blocks on the stage-3 tokens.

    ``forward_features((N, C, H, W)) -> (N, 8·width)``.
    """

    def __init__(
        self,
        *,
        width: int = 64,
        img_size: int = 112,
        spatial_layers: int = 1,
        heads: int = 8,
        drop: float = 0.0,
        num_classes: int | None = None,
    ):
        super().__init__(BasicBlock, (2, 2, 2, 2), width=width, num_classes=num_classes)
        dim = width * 4
        side = max(1, img_size // 16)  # stage-3 stride is 16
        self.grid_size = (side, side)
        self.spatial_pos = nn.Parameter(torch.zeros(1, side * side, dim))
        self.spatial_blocks = nn.Sequential(
            *[Block(dim, heads, drop=drop) for _ in range(spatial_layers)]
        )
        nn.init.trunc_normal_(self.spatial_pos, std=0.02)
        _init_transformer(self.spatial_blocks)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, 8w, H/32, W/32)``."""
        x = self.forward_stem(x)  # (N, w, H/4, W/4)
        x = self.layer3(self.layer2(self.layer1(x)))  # (N, 4w, h, w)
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, h·w, 4w)
        pos = resample_pos_embed(self.spatial_pos, (h, w), self.grid_size)  # (1, h·w, 4w)
        tokens = self.spatial_blocks(tokens + pos)  # (N, h·w, 4w)
        x = tokens.transpose(1, 2).reshape(n, c, h, w)  # (N, 4w, h, w)
        return self.layer4(x)  # (N, 8w, h/2, w/2)


class TemporalTransformer(nn.Module):
    """Class token + learned frame positions + blocks + LayerNorm: ``(B, T, D) -> (B, D)``."""

    def __init__(
        self, dim: int, *, layers: int = 3, heads: int = 8, num_frames: int = 16, drop: float = 0.0
    ):
        super().__init__()
        self.num_frames = num_frames
        self.num_features = dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_frames, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, drop=drop) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        _init_transformer(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        if t <= self.num_frames:
            pos = self.pos_embed[:, : t + 1]  # (1, 1 + T, D)
        else:  # longer clip than the table: stretch the frame positions
            pos = resample_1d(self.pos_embed, t, num_prefix=1)  # (1, 1 + T, D)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + pos  # (B, 1 + T, D)
        x = self.norm(self.blocks(x))  # (B, 1 + T, D)
        return x[:, 0]  # (B, D)


class FormerDFER(nn.Module):
    """Clip backbone: :class:`SpatialFormerResNet` per frame, :class:`TemporalTransformer`.

    Attributes:
        encoder: the per-frame encoder (torchvision ResNet-18 names for its ResNet part).
        temporal: the temporal transformer.
        num_features: ``8·width`` (512).
    """

    def __init__(self, encoder: SpatialFormerResNet, temporal: TemporalTransformer):
        super().__init__()
        self.encoder = encoder
        self.temporal = temporal
        self.num_features = temporal.num_features

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, C, H, W)`` -> clip embedding ``(B, 8·width)``."""
        b, t = clips.shape[:2]
        feats = self.encoder.forward_features(clips.flatten(0, 1))  # (B*T, 8w)
        return self.temporal(feats.reshape(b, t, -1))  # (B, 8w)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.forward_features(clips)  # (B, 8w)


@register_backbone("former_dfer")
def former_dfer(
    *,
    width: int = 64,
    img_size: int = 112,
    spatial_layers: int = 1,
    temporal_layers: int = 3,
    heads: int = 8,
    num_frames: int = 16,
    dropout: float = 0.0,
    encoder_fc: bool = False,
) -> FormerDFER:
    """Former-DFER clip backbone -> ``(B, 8·width)`` (512 at ``width=64``).

    Args:
        width: ResNet base width (stage-3 tokens have ``4·width`` channels, frame
            embeddings ``8·width``); both must be divisible by ``heads``.
        img_size: input size the spatial position table is built for (112 -> 7x7 tokens).
        spatial_layers, temporal_layers: transformer blocks in each part.
        heads: attention heads of both parts.
        num_frames: length of the frame position table (longer clips resample it).
        dropout: dropout inside the transformer blocks.
        encoder_fc: keep torchvision's 1000-class ``fc`` on the ResNet (unused).
    """
    if (4 * width) % heads:
        raise ValueError(f"former_dfer: 4*width={4 * width} is not divisible by heads={heads}")
    enc = SpatialFormerResNet(
        width=width,
        img_size=img_size,
        spatial_layers=spatial_layers,
        heads=heads,
        drop=dropout,
        num_classes=1000 if encoder_fc else None,
    )
    temporal = TemporalTransformer(
        enc.num_features, layers=temporal_layers, heads=heads, num_frames=num_frames, drop=dropout
    )
    return FormerDFER(enc, temporal)
