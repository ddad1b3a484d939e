"""Frame encoder + LSTM: the shared clip backbone of ``r18_lstm``, ``r50_lstm``,
``vgg13_lstm``, ``vgg16_lstm`` and ``vit_lstm``.

Every frame of a clip goes through the same 2D encoder (``encoder.forward_features``:
``(N, C, H, W) -> (N, F)``), the ``T`` frame embeddings go through an LSTM, and the clip
embedding is the last layer's final hidden state ``(B, lstm_hidden)``.
"""

from __future__ import annotations

import torch
from torch import nn


class TemporalLSTM(nn.Module):
    """LSTM over frame embeddings: ``(B, T, F) -> (B, hidden)`` (last layer's final hidden state).

    ``dropout`` is applied to the frame embeddings and between stacked LSTM layers.
    """

    def __init__(self, in_features: int, hidden: int = 512, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.num_features = hidden
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lstm = nn.LSTM(
            in_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)  # (B, T, F)
        _, (h, _) = self.lstm(x)  # h: (layers, B, hidden)
        return h[-1]  # (B, hidden)


class FrameLSTM(nn.Module):
    """Clip backbone: per-frame ``encoder`` then :class:`TemporalLSTM`.

    Attributes:
        encoder: the 2D frame encoder (torchvision/timm-compatible parameter names, the
            target of :func:`~d2sp.models.pretrained.load_pretrained`).
        temporal: the LSTM.
        num_features: ``lstm_hidden``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        lstm_hidden: int = 512,
        lstm_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.encoder = encoder
        self.temporal = TemporalLSTM(encoder.num_features, lstm_hidden, lstm_layers, dropout)
        self.num_features = self.temporal.num_features

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, C, H, W)`` -> clip embedding ``(B, lstm_hidden)``."""
        b, t = clips.shape[:2]
        frames = clips.flatten(0, 1)  # (B*T, C, H, W)
        feats = self.encoder.forward_features(frames)  # (B*T, F)
        feats = feats.reshape(b, t, -1)  # (B, T, F)
        return self.temporal(feats)  # (B, lstm_hidden)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.forward_features(clips)  # (B, lstm_hidden)
