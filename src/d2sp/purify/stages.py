"""The two purification stages of D2SP as pure functions over per-sample histories.

Every function takes tensors holding the last ``t`` records of each sample (a ring of
width ``t``: the order of the records inside a row does not matter, only which are
valid) and returns masks or labels. Nothing here touches a model.

Shapes: ``N`` samples, ``t`` records per sample.
"""

from __future__ import annotations

import torch


def has_full_window(count: torch.Tensor, t: int) -> torch.Tensor:
    """``(N,)`` bool: the sample has at least ``t`` records, so a decision can be taken."""
    return count >= t


def weighted_scores(weights: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Weighted score ``s = w · p`` (paper eqs. 2–4), elementwise over ``(N, t)`` histories.

    ``probs`` is ``p[pred]`` for ``score="max"`` or ``p[y]`` for ``score="label"``.
    """
    return weights * probs


def coarse_grained_pruning(
    weights: torch.Tensor,
    probs: torch.Tensor,
    count: torch.Tensor,
    *,
    lam: float,
    t: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coarse-Grained Pruning (paper eqs. 2–6): keep ``{i : mean_t(w·p) > λ}``.

    Args:
        weights: ``(N, t)`` weight-branch outputs of the last ``t`` records.
        probs: ``(N, t)`` probability used for the score (``p[pred]`` or ``p[y]``).
        count: ``(N,)`` number of records taken so far; rows with fewer than ``t`` are
            undecided and kept.
        lam: threshold λ in [0, 1].
        t: window length.

    Returns:
        ``keep (N,) bool`` (the set D3) and ``score (N,) float`` (``S_i``; NaN when undecided).
    """
    score = weighted_scores(weights, probs).mean(dim=1)  # (N,)
    decided = has_full_window(count, t)  # (N,)
    keep = ~decided | (score > lam)  # (N,)
    score = torch.where(decided, score, torch.full_like(score, float("nan")))
    return keep, score


def fine_grained_correction(
    preds: torch.Tensor,
    p_pred: torch.Tensor,
    p_label: torch.Tensor,
    count: torch.Tensor,
    labels: torch.Tensor,
    keep: torch.Tensor,
    *,
    tau: float,
    t: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fine-Grained Correction (paper eqs. 8–13), on kept samples only.

    Sample i is relabelled to ``ŷ`` when its predicted label was the same ``ŷ ≠ y_i`` in
    each of its last ``t`` records and ``Δp = mean(p[ŷ]) − mean(p[y_i]) > τ``.

    Args:
        preds: ``(N, t)`` int predicted labels of the last ``t`` records.
        p_pred: ``(N, t)`` ``p[pred]`` of those records.
        p_label: ``(N, t)`` ``p[y]`` of those records, ``y`` the original annotation.
        count: ``(N,)`` records taken so far.
        labels: ``(N,)`` int64 original annotation ``y``.
        keep: ``(N,)`` bool kept set D3 (from CGP, or all True when CGP is off).
        tau: threshold τ.
        t: window length.

    Returns:
        ``new_labels (N,) int64`` (``ŷ`` where corrected, else ``y``) and
        ``delta_p (N,) float`` (``Δp`` where the prediction was stable, else 0; NaN when undecided).
    """
    first = preds[:, 0]  # (N,)
    stable = (preds == first.unsqueeze(1)).all(dim=1)  # (N,)
    decided = has_full_window(count, t)  # (N,)
    delta_p = p_pred.mean(dim=1) - p_label.mean(dim=1)  # (N,)
    delta_p = torch.where(stable, delta_p, torch.zeros_like(delta_p))
    correct = keep & decided & stable & (first.long() != labels) & (delta_p > tau)  # (N,)
    new_labels = torch.where(correct, first.long(), labels)  # (N,)
    delta_p = torch.where(decided, delta_p, torch.full_like(delta_p, float("nan")))
    return new_labels, delta_p
