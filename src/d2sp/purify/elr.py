"""Mode ``elr``: early-learning regularisation (Liu et al., NeurIPS 2020), a noisy-label
baseline.

Early in training a network fits the clean labels before it memorises the wrong ones. ELR
keeps, for every sample, a target ``t`` that averages the model's own predictions over
training (temporal ensembling) and adds to the cross-entropy a term that keeps the
prediction close to that target:

    p̂ = clamp(softmax(z), 1e-4, 1 − 1e-4) / Σ clamp(...)      (detached)
    t ← β · t + (1 − β) · p̂                                    (t starts at 0)
    L = CE(z, y) + λ · mean_i log(1 − ⟨p_i, t_i⟩)               (p clamped, with gradient)

The log term's gradient pushes ``p`` towards ``t``, so a sample whose label disagrees with
what the model learnt early is not memorised. Nothing is pruned or relabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from d2sp.purify.base import Decision, Purifier, expect
from d2sp.purify.records import reduce_staged
from d2sp.purify.registry import register_purifier

CLAMP = 1e-4  # the authors' clamp of the softmax


def elr_target_update(targets: torch.Tensor, probs: torch.Tensor, *, beta: float) -> torch.Tensor:
    """``(B, K)`` the new targets ``β · t + (1 − β) · p̂``.

    Args:
        targets: ``(B, K)`` the samples' targets ``t`` so far (zeros before the first update).
        probs: ``(B, K)`` softmax of the batch; clamped to ``[1e-4, 1 − 1e-4]``, renormalised
            and detached here (``p̂``).
    """
    p = probs.detach().clamp(CLAMP, 1.0 - CLAMP)  # (B, K)
    return beta * targets + (1.0 - beta) * p / p.sum(dim=1, keepdim=True)


def elr_regulariser(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` ``log(1 − ⟨p, t⟩)`` with ``p`` the clamped softmax ``(B, K)`` (with gradient)
    and ``t`` the targets ``(B, K)``."""
    p = probs.clamp(CLAMP, 1.0 - CLAMP)  # (B, K)
    return torch.log(1.0 - (targets * p).sum(dim=1))


@register_purifier("elr")
class ElrPurifier(Purifier):
    """Early-learning regularisation (``mode: elr``): CE plus a pull towards each sample's
    running-average prediction; no decision.

    Options:
        beta: the targets' momentum β in [0, 1) (the authors' CIFAR-10 configuration: 0.7).
        lam: the regulariser's weight λ ≥ 0 (the authors' CIFAR-10 configuration: 3).

    The targets are updated in every training pass (a batch given with ``record=False`` leaves
    them as they are) and saved in the mode's state; in a multi-process run every process
    updates those of its share and they are combined at the end of the epoch. Suspicion
    ``1 − t[y] / Σ t`` (NaN before a sample's first update); suggested label ``argmax t``.
    Cost: one CE run (an ``(N, K)`` table of targets).
    """

    @dataclass(frozen=True)
    class Options:
        beta: float = 0.7
        lam: float = 3.0

    @classmethod
    def check(cls, o) -> list[str]:
        problems: list[str] = []
        expect(problems, "beta", o["beta"], 0.0 <= o["beta"] < 1.0, "a value in [0, 1)")
        expect(problems, "lam", o["lam"], o["lam"] >= 0.0, "a number >= 0")
        return problems

    def setup(self) -> None:
        n, k = self.num_samples, self.num_classes
        self.targets = torch.zeros(n, k, dtype=torch.float32, device=self.device)  # (N, K)
        self.updated = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,) this epoch

    @property
    def weight_branch(self) -> bool:
        return False

    def loss(
        self, logits, weights, indices, *, label_smoothing: float = 0.0, record: bool = True
    ) -> torch.Tensor:
        """``CE(z, ỹ) + λ · mean log(1 − ⟨p, t⟩)`` on plain logits (``weights`` unused); the
        batch's targets are updated first (and the batch recorded) unless ``record=False``."""
        idx = torch.as_tensor(indices)
        targets = self.labels_for(idx).to(logits.device, non_blocking=True)  # (B,)
        ce = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
        rows = idx.to(self.device).long()  # (B,)
        probs = torch.softmax(logits.float(), dim=1)  # (B, K)
        t = elr_target_update(self.targets[rows], probs.to(self.device), beta=self.options["beta"])
        if record:
            self.targets[rows] = t
            self.updated[rows] = True
        reg = elr_regulariser(probs, t.to(probs.device)).mean()
        if record and self.train_records:
            self.record(idx, logits.detach())
        return ce + self.options["lam"] * reg

    def end_epoch(self, reduce=None) -> dict[str, int]:
        if reduce is not None:  # each sample's target was updated by the process that trained it
            reduce_staged({"targets": self.targets}, self.updated, reduce)
        self.updated.zero_()
        return super().end_epoch(reduce)

    def decide(self, seen: torch.Tensor) -> Decision:
        total = self.targets.sum(dim=1)  # (N,) 1 − β^updates
        has = total > 0  # (N,)
        t_y = self.targets.gather(1, self._labels_dev.unsqueeze(1)).squeeze(1) / total.clamp_min(
            1e-12
        )
        nan = torch.full_like(total, float("nan"))
        suspicion = torch.where(has, 1.0 - t_y, nan)  # (N,)
        suggested = torch.where(has, self.targets.argmax(dim=1), self._labels_dev)  # (N,)
        return Decision(
            keep=torch.ones_like(has), labels=self._labels_dev, decided=has,
            score=torch.where(has, t_y, nan), delta_p=nan, suspicion=suspicion, suggested=suggested,
        )  # fmt: skip

    def mode_state_dict(self) -> dict:
        return {"targets": self.targets.cpu()}

    def load_mode_state_dict(self, state: dict) -> None:
        if "targets" in state:
            if state["targets"].shape != self.targets.shape:
                raise ValueError(
                    f"elr targets: expected shape {tuple(self.targets.shape)}, "
                    f"got {tuple(state['targets'].shape)}"
                )
            self.targets.copy_(state["targets"].to(self.device))
