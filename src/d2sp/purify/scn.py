"""Mode ``scn``: a Self-Cure-style in-training cleaner, a baseline D2SP is compared with.

The weight branch (one linear layer + sigmoid) scales the logits as in D2SP's weighted CE, a
rank regulariser keeps the high- and low-weight groups of each batch ``rank_margin`` apart,
and after warm-up a sample of the low-weight group is relabelled to the predicted class when
``max p − p[current label] > relabel_margin``. Nothing is pruned. Relabels accumulate: the
current label is the one compared with, as in the original method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.losses import rank_regularization
from d2sp.purify.registry import register_purifier


def scn_relabel(
    probs: torch.Tensor,
    weights: torch.Tensor,
    current: torch.Tensor,
    seen: torch.Tensor,
    *,
    ratio: float = 0.7,
    margin: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-Cure relabelling over one epoch's records.

    The low-importance group is the ``1 − ratio`` share of the recorded samples with the
    lowest weight; a sample in it gets the predicted label when ``max p − p[current]`` is
    above ``margin``.

    Args:
        probs: ``(N, K)`` softmax of each sample's last record this epoch.
        weights: ``(N,)`` weight of that record.
        current: ``(N,)`` int64 current training labels.
        seen: ``(N,)`` bool, which samples were recorded this epoch.

    Returns:
        ``(new_labels (N,) int64, gap (N,) float)`` with ``gap = max p − p[current]``.
    """
    p_max, pred = probs.max(dim=1)  # (N,), (N,)
    gap = p_max - probs.gather(1, current.unsqueeze(1)).squeeze(1)  # (N,)
    n_seen = int(seen.sum())
    low = torch.zeros_like(seen)
    n_low = n_seen - int(np.ceil(ratio * n_seen))
    if n_low > 0:
        w = torch.where(seen, weights, torch.full_like(weights, float("inf")))  # (N,)
        low[torch.argsort(w)[:n_low]] = True
    relabel = low & seen & (gap > margin)  # (N,)
    return torch.where(relabel, pred, current), gap


@register_purifier("scn")
class ScnPurifier(Purifier):
    """Self-Cure-style cleaner (``mode: scn``): rank-regularised weights, relabelling of
    low-weight samples, no pruning.

    Options:
        warmup_epochs: epochs before the first relabelling.
        rank_margin: ``δ1``, the required gap between the high and low group means.
        rank_ratio: ``β``, the share of each batch in the high-weight group.
        relabel_margin: ``δ2``, the ``max p − p[label]`` above which a low-weight sample is
            relabelled.
        rank_weight: factor of the rank-regularisation term in the loss.
        fgc: relabelling on (``False`` keeps the weights and the regulariser only).
    """

    @dataclass(frozen=True)
    class Options:
        warmup_epochs: int = 10
        rank_margin: float = 0.15
        rank_ratio: float = 0.7
        relabel_margin: float = 0.2
        rank_weight: float = 1.0
        fgc: bool = True

    @classmethod
    def check(cls, o) -> list[str]:
        p: list[str] = []
        for name in ("rank_margin", "rank_ratio"):
            expect(p, name, o[name], 0.0 < o[name] < 1.0, "a value in (0, 1)")
        m = o["relabel_margin"]
        expect(p, "relabel_margin", m, 0.0 <= m <= 1.0, "a value in [0, 1]")
        for name in ("warmup_epochs", "rank_weight"):
            expect(p, name, o[name], o[name] >= 0, "a value >= 0")
        return p

    @property
    def weight_hidden(self) -> int:
        return 0  # one linear layer, as in Self-Cure

    @property
    def deciding(self) -> bool:
        """Whether the epoch that has just ended relabels."""
        return self.epoch >= self.options["warmup_epochs"] and self.options["fgc"]

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        """``rank_weight ·`` rank regularisation of the batch's weights (from the first step)."""
        o = self.options
        if weights is None or o["rank_weight"] == 0:
            return 0.0
        reg = rank_regularization(weights, margin=o["rank_margin"], ratio=o["rank_ratio"])
        return o["rank_weight"] * reg

    def rescore_indices(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)  # nothing is pruned

    def decide(self, seen: torch.Tensor) -> Decision:
        w = self.records.weight[:, 0]  # (N,)
        labels, gap = scn_relabel(
            self.records.probs, w, self._current_dev, seen,
            ratio=self.options["rank_ratio"], margin=self.options["relabel_margin"],
        )  # fmt: skip
        if not self.deciding:
            labels = self._current_dev
        decided = torch.full_like(seen, self.deciding)
        return Decision(keep=torch.ones_like(seen), labels=labels, decided=decided, score=w, delta_p=gap)
