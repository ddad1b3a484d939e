"""ViT-S/16 and ViT-B/16 frame encoders (timm-compatible parameter names) and the
``vit_lstm`` clip backbone.

Names match timm's ``vit_small_patch16_224`` / ``vit_base_patch16_224`` (``patch_embed.proj``,
``cls_token``, ``pos_embed``, ``blocks.N.*``, ``norm``, ``head``), so a timm state dict loads
into the encoder. The frame embedding is the final-norm class token (timm's pre-logits).
The position table is sized from ``img_size`` and resampled (bicubic) on the fly for
another input size.
"""

from __future__ import annotations

import torch
from torch import nn

from d2sp.models.registry import register_backbone
from d2sp.models.temporal import FrameLSTM
from d2sp.models.transformer import Block, resample_pos_embed

SIZES: dict[str, dict[str, int]] = {
    "small": {"dim": 384, "depth": 12, "heads": 6},
    "base": {"dim": 768, "depth": 12, "heads": 12},
}


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class PatchEmbed(nn.Module):
    """Non-overlapping patches: ``(N, C, H, W) -> (N, H/p·W/p, D)``."""

    def __init__(self, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (N, D, h, w)
        return x.flatten(2).transpose(1, 2)  # (N, h·w, D)


class VisionTransformer(nn.Module):
    """Per-frame ViT encoder: ``forward_features((N, C, H, W)) -> (N, dim)`` (class token).

    Args:
        img_size: input size the position table is built for (int or ``(H, W)``).
        patch_size: patch side (16).
        dim, depth, heads: transformer width, number of blocks, attention heads.
        num_classes: if given, add timm's ``head`` classifier (unused by ``forward_features``).
        drop: dropout inside blocks.

    Attributes:
        arch: timm's model name (``"vit_small_patch16_224"``...), set by :func:`vit`: the
            weights ``pretrained="imagenet"`` asks for; None for a hand-built encoder.
    """

    num_prefix_tokens = 1

    def __init__(
        self,
        *,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.arch: str | None = None
        h, w = _pair(img_size)
        if h % patch_size or w % patch_size:
            raise ValueError(f"img_size {(h, w)} is not a multiple of patch_size {patch_size}")
        self.grid_size = (h // patch_size, w // patch_size)
        self.num_features = dim
        self.patch_embed = PatchEmbed(patch_size, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        n = self.grid_size[0] * self.grid_size[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, dim))
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.Sequential(
            *[Block(dim, heads, mlp_ratio=mlp_ratio, drop=drop) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes) if num_classes else None
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pos_embed(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        pos = resample_pos_embed(self.pos_embed, grid, self.grid_size, num_prefix=1)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (N, 1, D)
        return self.pos_drop(torch.cat([cls, x], dim=1) + pos)  # (N, 1 + h·w, D)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, 1 + H/p·W/p, dim)`` final-norm tokens."""
        p = self.patch_embed.patch_size
        grid = (x.shape[-2] // p, x.shape[-1] // p)
        x = self._pos_embed(self.patch_embed(x), grid)  # (N, 1 + h·w, D)
        return self.norm(self.blocks(x))  # (N, 1 + h·w, D)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, dim)``: the class token after the final norm."""
        return self.forward_tokens(x)[:, 0]  # (N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.forward_features(x)  # (N, D)
        return self.head(feats) if self.head is not None else feats


def vit(
    size: str = "small",
    *,
    img_size: int | tuple[int, int] = 224,
    patch_size: int = 16,
    dim: int | None = None,
    depth: int | None = None,
    heads: int | None = None,
    drop: float = 0.0,
    num_classes: int | None = None,
) -> VisionTransformer:
    """ViT frame encoder. ``size="small"`` (384, 12 blocks, 6 heads) or ``"base"``
    (768, 12, 12); ``dim``/``depth``/``heads`` override. With ``num_classes=1000`` at 224²:
    ViT-S/16 has 22,050,664 parameters, ViT-B/16 86,567,656."""
    if size not in SIZES:
        raise ValueError(f"unknown ViT size {size!r}; known: {', '.join(SIZES)}")
    cfg = SIZES[size]
    enc = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        dim=dim or cfg["dim"],
        depth=depth or cfg["depth"],
        heads=heads or cfg["heads"],
        drop=drop,
        num_classes=num_classes,
    )
    enc.arch = f"vit_{size}_patch{patch_size}_224"
    return enc


@register_backbone("vit_lstm")
def vit_lstm(
    *,
    size: str = "small",
    img_size: int = 224,
    patch_size: int = 16,
    dim: int | None = None,
    depth: int | None = None,
    heads: int | None = None,
    lstm_hidden: int = 512,
    lstm_layers: int = 1,
    dropout: float = 0.0,
    encoder_head: bool = False,
) -> FrameLSTM:
    """ViT per frame (class token, ``dim`` = 384 small / 768 base) -> LSTM -> ``(B, lstm_hidden)``.

    ``encoder_head=True`` keeps timm's 1000-class ``head`` on the encoder (unused).
    """
    enc = vit(
        size,
        img_size=img_size,
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        heads=heads,
        num_classes=1000 if encoder_head else None,
    )
    return FrameLSTM(enc, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, dropout=dropout)
