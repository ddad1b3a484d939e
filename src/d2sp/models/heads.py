"""Heads over a clip embedding: the linear classifier and the D2SP weight branch.

A head maps the embedding ``(B, D)`` to logits ``(B, K)`` and, for D2SP, per-sample
weights ``(B,)`` from the weight branch (paper eq. 1). The loss is a plain function in
:mod:`d2sp.purify.losses`; the assembled model (backbone + head) is :class:`d2sp.models.dfer.DFERModel`.
"""

from __future__ import annotations

import torch
from torch import nn


def default_weight_hidden(num_features: int) -> int:
    """Default hidden width of the weight branch: ``max(32, D // 4)``."""
    return max(32, num_features // 4)


class WeightBranch(nn.Module):
    """``w = sigmoid(W2 · relu(W1 · x + b1) + b2)``: embedding ``(B, D)`` -> weights ``(B,)``.

    ``hidden=None`` takes :func:`default_weight_hidden`; ``hidden=0`` is one linear layer,
    ``w = sigmoid(W2 · x + b2)`` (the Self-Cure baseline's branch).
    """

    def __init__(self, num_features: int, hidden: int | None = None):
        super().__init__()
        if hidden is None:
            hidden = default_weight_hidden(num_features)
        if hidden < 0:
            raise ValueError(f"hidden: expected >= 0, got {hidden}")
        self.fc1 = nn.Linear(num_features, hidden) if hidden else None
        self.fc2 = nn.Linear(hidden or num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.fc1 is None else torch.relu(self.fc1(x))  # (B, H)
        return torch.sigmoid(self.fc2(h)).squeeze(-1)  # (B,)


class ClassifierHead(nn.Module):
    """Linear classifier plus an optional weight branch.

    ``forward(x)`` with ``x`` of shape ``(B, D)`` returns ``(logits (B, K), weights (B,) or None)``.
    Without a weight branch the head is the plain linear classifier of the "Original" row.
    """

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        *,
        weight_branch: bool = True,
        weight_hidden: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(num_features, num_classes)
        self.weight = WeightBranch(num_features, weight_hidden) if weight_branch else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.fc(self.dropout(x))  # (B, K)
        w = self.weight(x) if self.weight is not None else None  # (B,) or None
        return logits, w
