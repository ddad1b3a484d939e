"""Pre-norm transformer blocks with timm's parameter names, shared by ``vit_lstm`` and
``former_dfer``, and position-embedding resampling for other input sizes.

Names follow timm's ``VisionTransformer`` (``norm1``, ``attn.qkv``, ``attn.proj``,
``norm2``, ``mlp.fc1``, ``mlp.fc2``) so timm ViT weights load into :class:`Block`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention: ``(B, N, D) -> (B, N, D)``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, h, d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N, d/h)
        drop = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # (B, h, N, d/h)
        x = x.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """``fc1 -> GELU -> fc2``: ``(B, N, D) -> (B, N, D)``."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    ``(B, N, D) -> (B, N, D)``. LayerNorm eps is 1e-6 as in timm's ViT.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, N, D)
        return x + self.mlp(self.norm2(x))  # (B, N, D)


def resample_pos_embed(
    pos: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int],
    *,
    num_prefix: int = 0,
) -> torch.Tensor:
    """Bicubic (antialiased, as timm's ``resample_abs_pos_embed``) resampling of a 2D
    position table.

    Args:
        pos: ``(1, num_prefix + old_h·old_w, D)``; prefix (class-token) rows are kept as is.
        new_grid: ``(new_h, new_w)``.
        old_grid: ``(old_h, old_w)``.

    Returns:
        ``(1, num_prefix + new_h·new_w, D)``.
    """
    if tuple(new_grid) == tuple(old_grid):
        return pos
    prefix, grid = pos[:, :num_prefix], pos[:, num_prefix:]  # (1, P, D), (1, h·w, D)
    d = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)  # (1, D, h, w)
    grid = F.interpolate(
        grid.float(), size=tuple(new_grid), mode="bicubic", align_corners=False, antialias=True
    )  # (1, D, H, W)
    grid = grid.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, -1, d)  # (1, H·W, D)
    return torch.cat([prefix, grid], dim=1)


def resample_1d(pos: torch.Tensor, length: int, *, num_prefix: int = 0) -> torch.Tensor:
    """Linear resampling of a 1D position table ``(1, P + L, D) -> (1, P + length, D)``."""
    if pos.shape[1] - num_prefix == length:
        return pos
    prefix, seq = pos[:, :num_prefix], pos[:, num_prefix:]  # (1, P, D), (1, L, D)
    seq = F.interpolate(
        seq.transpose(1, 2).float(), size=length, mode="linear", align_corners=False
    )  # (1, D, length)
    return torch.cat([prefix, seq.transpose(1, 2).to(pos.dtype)], dim=1)
