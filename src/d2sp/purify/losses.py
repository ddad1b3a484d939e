"""Loss functions: the weighted cross-entropy of D2SP (paper eq. 7), plain CE, and the rank
regularisation of per-sample weights (Self-Cure; the `scn` baseline)."""

from __future__ import annotations

import math

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


def rank_regularization(
    weights: torch.Tensor,
    *,
    margin: float = 0.15,
    ratio: float = 0.7,
) -> torch.Tensor:
    """Rank regularisation of per-sample weights (as in Self-Cure Network).

    The batch's weights are sorted; the top ``ceil(ratio · B)`` form the high group, the rest
    the low group, and the loss is ``max(0, margin − (mean(high) − mean(low)))``. It is zero
    once the two groups are ``margin`` apart, so it spreads the weights without dictating
    which samples get the low ones: the weighted cross-entropy decides that (samples whose
    label does not fit are pushed down).

    Args:
        weights: ``(B,)`` weight-branch outputs in (0, 1), with gradient.
        margin: required gap between the group means, in ``(0, 1)``.
        ratio: share of the batch in the high group, in ``(0, 1)``.

    Returns:
        A scalar tensor; zero (with gradient graph kept) when the batch has fewer than two
        samples.
    """
    if not 0.0 < margin < 1.0:
        raise ValueError(f"margin: expected a value in (0, 1), got {margin}")
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio: expected a value in (0, 1), got {ratio}")
    w = weights.reshape(-1).float()  # (B,)
    b = w.numel()
    if b < 2:
        return w.sum() * 0.0
    high = min(b - 1, max(1, math.ceil(ratio * b)))
    ordered, _ = torch.sort(w, descending=True)  # (B,)
    gap = ordered[:high].mean() - ordered[high:].mean()  # ()
    return torch.clamp(margin - gap, min=0.0)
