"""Mode ``gce``: the generalized cross-entropy loss (Zhang & Sabuncu, NeurIPS 2018), a
noisy-label baseline.

The loss of a sample is the negative Box-Cox transform of the probability of its label,

    L_q = (1 − p_y^q) / q,        q ∈ (0, 1]

which is the cross-entropy as q → 0 and the mean absolute error at q = 1: a wrong label the
model does not fit costs at most 1/q, and its gradient ``p_y^q · ∂(−log p_y)`` is
down-weighted by ``p_y^q``. Nothing is pruned or relabelled; the training pass is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.registry import register_purifier


def gce_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, q: float, label_smoothing: float = 0.0
) -> torch.Tensor:
    """``(B,)`` the generalized cross-entropy ``(1 − p_y^q) / q`` of each sample.

    Args:
        logits: ``(B, K)`` logits ``z``; ``p = softmax(z)``.
        targets: ``(B,)`` int64 labels ``y``.
        q: in (0, 1].
        label_smoothing: ``ε``: ``p_y`` is replaced by ``(1 − ε) p_y + ε · mean_k p_k``, the
            probability of the smoothed target (``ε = 0``: the paper's loss).
    """
    probs = torch.softmax(logits.float(), dim=1)  # (B, K)
    p_y = probs.gather(1, targets.unsqueeze(1)).squeeze(1)  # (B,)
    if label_smoothing:
        p_y = (1.0 - label_smoothing) * p_y + label_smoothing * probs.mean(1)
    return (1.0 - p_y.clamp_min(1e-7) ** q) / q  # (the clamp keeps the gradient finite)


@register_purifier("gce")
class GcePurifier(Purifier):
    """Generalized cross-entropy (``mode: gce``): a loss bounded for the samples the model does
    not fit, no decision.

    Options:
        q: the exponent in (0, 1] (the paper's 0.7, its value for CIFAR-10 and CIFAR-100).

    Suspicion ``1 − p[y]`` of the newest training-pass record; suggested label: its
    prediction. Cost: one CE run (the loss is as cheap as CE). The paper's truncated variant
    (``L_q`` with pruning) is not this mode.
    """

    @dataclass(frozen=True)
    class Options:
        q: float = 0.7

    @classmethod
    def check(cls, o) -> list[str]:
        problems: list[str] = []
        expect(problems, "q", o["q"], 0.0 < o["q"] <= 1.0, "a value in (0, 1]")
        return problems

    @property
    def weight_branch(self) -> bool:
        return False

    def loss(
        self, logits, weights, indices, *, label_smoothing: float = 0.0, record: bool = True
    ) -> torch.Tensor:
        """Mean ``(1 − p_y^q) / q`` over the batch on plain logits (``weights`` unused)."""
        idx = torch.as_tensor(indices)
        targets = self.labels_for(idx).to(logits.device, non_blocking=True)  # (B,)
        loss = gce_loss(
            logits, targets, q=self.options["q"], label_smoothing=label_smoothing
        ).mean()
        if record and self.train_records:
            self.record(idx, logits.detach())
        return loss

    def decide(self, seen: torch.Tensor) -> Decision:
        r = self.records
        recorded = r.count > 0  # (N,)
        nan = torch.full_like(r.p_label[:, 0], float("nan"))
        suspicion = torch.where(recorded, 1.0 - r.p_label[:, 0], nan)  # (N,)
        suggested = torch.where(recorded, r.pred[:, 0].long(), self._labels_dev)  # (N,)
        return Decision(
            keep=torch.ones_like(recorded), labels=self._labels_dev, decided=recorded,
            score=torch.where(recorded, r.p_label[:, 0], nan), delta_p=nan,
            suspicion=suspicion, suggested=suggested,
        )  # fmt: skip
