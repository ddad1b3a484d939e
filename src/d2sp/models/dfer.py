"""The DFER model: a registered backbone (clips -> embedding) with a classifier head."""

from __future__ import annotations

import torch
from torch import nn

from d2sp.models.heads import ClassifierHead


class DFERModel(nn.Module):
    """A backbone (clips -> embedding) with a :class:`ClassifierHead`.

    ``forward(clips)`` with clips ``(B, T, C, H, W)`` returns ``(logits (B, K), weights (B,) or None)``.
    """

    def __init__(self, backbone: nn.Module, head: ClassifierHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(clips)  # (B, D)

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.forward_features(clips))
