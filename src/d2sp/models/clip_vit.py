"""CLIP ViT frame encoder (open_clip-compatible parameter names) and the ``clip_vit`` clip
backbone: CLIP image features of every frame, then a temporal model (DFER-CLIP style).

The frame encoder is CLIP's visual tower: patch convolution without bias, a class
embedding, a learned position table, ``ln_pre`` *before* the transformer (pre-norm),
residual attention blocks with QuickGELU, ``ln_post`` on the class token and the
projection ``proj``. Its parameter names are those of open_clip's ``model.visual``
(``conv1.weight``, ``class_embedding``, ``positional_embedding``, ``ln_pre.*``,
``transformer.resblocks.N.{ln_1, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj,
ln_2, mlp.c_fc, mlp.c_proj}.*``, ``ln_post.*``, ``proj``); a whole CLIP state dict
(``visual.*`` keys, text tower included) loads too: the ``visual.`` prefix is stripped and
the text tower dropped. timm's ``vit_base_patch16_clip_224.openai`` layout
(``patch_embed.proj``, ``blocks.N.attn.qkv``, ``norm_pre``, ``head`` ...) is converted on
load (:func:`timm_clip_to_open_clip`).

CLIP was trained on inputs normalised with its own statistics (mean
``(0.4815, 0.4578, 0.4082)``, std ``(0.2686, 0.2613, 0.2758)``); d2sp's data pipeline
normalises every backbone's input with ImageNet's (mean ``(0.485, 0.456, 0.406)``, std
``(0.229, 0.224, 0.225)``). The two differ by a few percent per channel and fine-tuning
absorbs it; the pipeline is not changed for this backbone.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from d2sp.models.former_dfer import TemporalTransformer
from d2sp.models.registry import register_backbone
from d2sp.models.temporal import TemporalLSTM
from d2sp.models.transformer import resample_pos_embed

# open_clip's model names -> (patch_size, width, layers, heads, output_dim)
ARCHS: dict[str, tuple[int, int, int, int, int]] = {
    "ViT-B-16": (16, 768, 12, 12, 512),
    "ViT-L-14": (14, 1024, 24, 16, 768),
}
TEMPORAL = ("transformer", "lstm")


class QuickGELU(nn.Module):
    """CLIP's activation: ``x · sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ClipAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names
    (``in_proj_weight`` (3D, D), ``in_proj_bias`` (3D,), ``out_proj``): ``(B, N, D) -> (B, N, D)``.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"clip_vit: width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3D)
        qkv = qkv.reshape(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, h, d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N, d/h)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d/h)
        return self.out_proj(x.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class ResidualAttentionBlock(nn.Module):
    """``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` with a QuickGELU MLP (4·D hidden).

    ``(B, N, D) -> (B, N, D)``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = ClipAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        layers = [
            ("c_fc", nn.Linear(dim, hidden)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(hidden, dim)),
        ]
        self.mlp = nn.Sequential(OrderedDict(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, N, D)
        return x + self.mlp(self.ln_2(x))  # (B, N, D)


class ClipTransformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` under open_clip's name ``resblocks``."""

    def __init__(self, dim: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(dim, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)  # (B, N, D)


class ClipVisionTransformer(nn.Module):
    """CLIP's visual tower per frame: ``forward_features((N, C, H, W)) -> (N, output_dim)``.

    Args:
        img_size: input side the position table is built for (224 for OpenAI's CLIP);
            another input size resamples the table (bicubic) on the fly.
        patch_size, width, layers, heads: patch side, transformer width, blocks, heads.
        output_dim: size of the projected image embedding (``proj`` is ``(width, output_dim)``).

    Attributes:
        arch: the open_clip model name whose weights this encoder takes (``"ViT-B-16"``...),
            set by :func:`clip_vit`; ``None`` for a hand-built encoder.
        num_features: ``output_dim``.
    """

    num_prefix_tokens = 1

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        output_dim: int = 512,
    ):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(
                f"clip_vit: img_size: expected a multiple of patch_size={patch_size}, got {img_size}"
            )
        side = img_size // patch_size
        self.arch: str | None = None
        self.patch_size = patch_size
        self.grid_size = (side, side)
        self.num_features = output_dim
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(1 + side * side, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = ClipTransformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))
        self._init_blocks(width, layers)

    def _init_blocks(self, width: int, layers: int) -> None:
        """OpenAI CLIP's transformer initialisation."""
        attn_std, fc_std = width**-0.5, (2 * width) ** -0.5
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.out_proj.bias)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.zeros_(block.mlp.c_fc.bias)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
            nn.init.zeros_(block.mlp.c_proj.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, output_dim)``: ``ln_post`` of the class token, projected."""
        x = self.conv1(x)  # (N, W, h, w)
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)  # (N, h·w, W)
        pos = resample_pos_embed(
            self.positional_embedding[None], grid, self.grid_size, num_prefix=1
        )  # (1, 1 + h·w, W)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (N, 1, W)
        x = torch.cat([cls, x], dim=1) + pos  # (N, 1 + h·w, W)
        x = self.transformer(self.ln_pre(x))  # (N, 1 + h·w, W)
        return self.ln_post(x[:, 0]) @ self.proj  # (N, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)  # (N, output_dim)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Bring a CLIP state dict to this encoder's names and grid (called by
        :func:`~d2sp.models.pretrained.load_pretrained` before matching keys).

        A whole CLIP model's ``visual.*`` keys lose the prefix (the text tower is dropped);
        a timm CLIP layout is converted; a position table of another grid is resampled.
        """
        if any(k.startswith("visual.") for k in state):
            state = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
        elif "norm_pre.weight" in state and "patch_embed.proj.weight" in state:
            state = timm_clip_to_open_clip(state)
        pos = state.get("positional_embedding")
        if pos is not None and pos.ndim == 2 and pos.shape != self.positional_embedding.shape:
            n_old = pos.shape[0] - 1
            side = math.isqrt(n_old)
            if side * side != n_old or pos.shape[1] != self.positional_embedding.shape[1]:
                return state  # not resampled: the loader reports the shape mismatch
            state = dict(state)
            state["positional_embedding"] = resample_pos_embed(
                pos[None], self.grid_size, (side, side), num_prefix=1
            )[0]  # (1 + h·w, W)
        return state


_TIMM_SWAPS = (
    ("patch_embed.proj.", "conv1."),
    ("norm_pre.", "ln_pre."),
    ("blocks.", "transformer.resblocks."),
    (".norm1.", ".ln_1."),
    (".norm2.", ".ln_2."),
    (".attn.qkv.weight", ".attn.in_proj_weight"),
    (".attn.qkv.bias", ".attn.in_proj_bias"),
    (".attn.proj.", ".attn.out_proj."),
    (".mlp.fc1.", ".mlp.c_fc."),
    (".mlp.fc2.", ".mlp.c_proj."),
)


def timm_clip_to_open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's CLIP ViT names (``vit_base_patch16_clip_224.openai``...) -> open_clip's visual
    names: the inverse of timm's ``_convert_openai_clip``.

    ``cls_token (1, 1, W) -> class_embedding (W,)``, ``pos_embed (1, 1 + n, W) ->
    positional_embedding (1 + n, W)``, ``norm -> ln_post``, ``head.weight (E, W) -> proj
    (W, E)`` (timm's zero ``head.bias`` is dropped).
    """
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k == "cls_token":
            out["class_embedding"] = v.reshape(-1)  # (W,)
        elif k == "pos_embed":
            out["positional_embedding"] = v.reshape(v.shape[-2], v.shape[-1])  # (1 + n, W)
        elif k == "head.weight":
            out["proj"] = v.t()  # (W, E)
        elif k == "head.bias":
            continue
        elif k.startswith("norm."):
            out["ln_post." + k[len("norm.") :]] = v
        else:
            for old, new in _TIMM_SWAPS:
                k = k.replace(old, new)
            out[k] = v
    return out


class ClipViT(nn.Module):
    """Clip backbone: CLIP image features per frame, then a temporal model.

    Attributes:
        encoder: :class:`ClipVisionTransformer` (open_clip names).
        temporal: :class:`~d2sp.models.former_dfer.TemporalTransformer` (class token +
            frame positions) or :class:`~d2sp.models.temporal.TemporalLSTM`.
        num_features: ``output_dim`` (transformer) or ``lstm_hidden`` (LSTM).
    """

    def __init__(self, encoder: ClipVisionTransformer, temporal: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.temporal = temporal
        self.num_features = temporal.num_features

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, C, H, W)`` -> clip embedding ``(B, num_features)``."""
        b, t = clips.shape[:2]
        feats = self.encoder.forward_features(clips.flatten(0, 1))  # (B*T, E)
        return self.temporal(feats.reshape(b, t, -1))  # (B, num_features)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.forward_features(clips)  # (B, num_features)


@register_backbone("clip_vit")
def clip_vit(
    *,
    arch: str = "ViT-B-16",
    img_size: int = 224,
    patch_size: int | None = None,
    width: int | None = None,
    layers: int | None = None,
    heads: int | None = None,
    output_dim: int | None = None,
    temporal: str = "transformer",
    temporal_layers: int = 1,
    temporal_heads: int = 8,
    num_frames: int = 16,
    lstm_hidden: int = 512,
    lstm_layers: int = 1,
    dropout: float = 0.0,
) -> ClipViT:
    """CLIP ViT per frame (``output_dim`` = 512 for ViT-B/16, 768 for ViT-L/14) -> temporal
    transformer (default) or LSTM -> ``(B, output_dim)`` or ``(B, lstm_hidden)``.

    Args:
        arch: ``"ViT-B-16"`` (default) or ``"ViT-L-14"`` (``"ViT-B/16"`` spellings too);
            ``pretrained="clip"`` loads OpenAI's CLIP weights of that model via open_clip.
        img_size: side the position table is built for (224: CLIP's; other input sizes
            resample it). Set ``data.size=224`` to train at CLIP's resolution.
        patch_size, width, layers, heads, output_dim: override the arch's values (tiny
            models for tests; published weights need the arch's values).
        temporal: ``"transformer"`` (class token + learned frame positions, ``temporal_layers``
            blocks of ``temporal_heads`` heads, as in DFER-CLIP) or ``"lstm"``.
        num_frames: length of the temporal position table (longer clips resample it).
        lstm_hidden, lstm_layers: the LSTM option's size.
        dropout: dropout in the temporal model.
    """
    name = arch.replace("/", "-")
    if name not in ARCHS:
        raise ValueError(f"clip_vit: arch: expected one of {', '.join(ARCHS)}, got {arch!r}")
    if temporal not in TEMPORAL:
        raise ValueError(
            f"clip_vit: temporal: expected one of {', '.join(TEMPORAL)}, got {temporal!r}"
        )
    p, w, n, h, e = ARCHS[name]
    enc = ClipVisionTransformer(
        img_size=img_size,
        patch_size=patch_size or p,
        width=width or w,
        layers=layers or n,
        heads=heads or h,
        output_dim=output_dim or e,
    )
    enc.arch = name
    if temporal == "lstm":
        model: nn.Module = TemporalLSTM(enc.num_features, lstm_hidden, lstm_layers, dropout)
    else:
        if enc.num_features % temporal_heads:
            raise ValueError(
                f"clip_vit: temporal_heads: expected a divisor of output_dim={enc.num_features}, "
                f"got {temporal_heads}"
            )
        model = TemporalTransformer(
            enc.num_features,
            layers=temporal_layers,
            heads=temporal_heads,
            num_frames=num_frames,
            drop=dropout,
        )
    return ClipViT(enc, model)
