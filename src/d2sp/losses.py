"""Loss functions: the weighted cross-entropy of D2SP (paper eq. 7) and plain CE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_cross_entropy(
    logits: torch.Tensor,
    weights: torch.Tensor | None,
    labels: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``CE(w_i · z_i, ỹ_i)`` averaged over the batch.

    Args:
        logits: ``(B, K)`` classifier logits ``z``.
        weights: ``(B,)`` weight-branch outputs in (0, 1), or ``None`` for plain CE.
        labels: ``(B,)`` int64 current training labels ``ỹ``.
    """
    if weights is not None:
        logits = logits * weights.unsqueeze(-1).to(logits.dtype)  # (B, K)
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
