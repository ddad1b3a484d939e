"""Extra loss terms used by the improved purification mode (``d2sp+``)."""

from __future__ import annotations

import math

import torch


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
