"""Modes whose kept set and labels are fixed before training: ``ce`` (plain cross-entropy on
everything, or on a given selection) and ``oracle`` (SynthDFER's ground truth: the usable
clips with their true labels). They record every epoch, so the run has a ledger like any
other; the model has no weight branch.
"""

from __future__ import annotations

import numpy as np
import torch

from d2sp.purify.base import Decision, Purifier, as_label_tensor
from d2sp.purify.registry import register_purifier


@register_purifier("ce")
class FixedPurifier(Purifier):
    """A kept set and labels fixed before training (``mode: ce`` trains on everything).

    Besides the common arguments it takes a selection made before training (by a selecting
    mode's :meth:`select`, or by a caller), none of them an option of the mode:
        keep: ``(N,)`` bool, the samples trained on (default all).
        targets: ``(N,)`` labels trained with (default the annotation).
        suspicion, suggested: ``(N,)`` per-sample suspicion scores and suggested labels
            known before training (default: from the records, as every mode).
    """

    def __init__(self, labels, *, num_classes: int, keep=None, targets=None, suspicion=None,
                 suggested=None, **kwargs):  # fmt: skip
        self._selection = dict(keep=keep, targets=targets, suspicion=suspicion, suggested=suggested)
        super().__init__(labels, num_classes=num_classes, **kwargs)

    @property
    def weight_branch(self) -> bool:
        return False

    def setup(self) -> None:
        n, o = self.num_samples, self._selection
        keep = torch.ones(n, dtype=torch.bool) if o["keep"] is None else _mask(o["keep"], n)
        targets = self.labels if o["targets"] is None else as_label_tensor(o["targets"], self.num_classes)
        if targets.shape != (n,):
            raise ValueError(f"targets: expected shape ({n},), got {tuple(targets.shape)}")
        self._set_selection(keep, targets)
        self._given = None
        if o["suspicion"] is not None:
            suggested = targets if o["suggested"] is None else torch.as_tensor(np.asarray(o["suggested"]))
            score = torch.as_tensor(np.asarray(o["suspicion"], dtype=np.float32))
            self._given = (score.to(self.device), suggested.long().to(self.device))

    def rescore_indices(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)  # nothing ever comes back

    def decide(self, seen: torch.Tensor) -> Decision:
        r = self.records
        keep, labels = self.keep_mask.to(self.device), self._current_dev
        score = r.weight[:, 0] * r.p_pred[:, 0]  # (N,)
        suspicion, suggested = self._given if self._given is not None else (None, None)
        return Decision(
            keep=keep, labels=labels, decided=torch.ones_like(keep), score=score,
            delta_p=torch.zeros_like(score), suspicion=suspicion, suggested=suggested,
        )  # fmt: skip


def _mask(keep, n: int) -> torch.Tensor:
    mask = torch.as_tensor(np.asarray(keep, dtype=bool))
    if mask.shape != (n,):
        raise ValueError(f"keep: expected shape ({n},), got {tuple(mask.shape)}")
    return mask


@register_purifier("oracle")
class OraclePurifier(FixedPurifier):
    """The upper bound (``mode: oracle``): trains on the usable clips with their true labels,
    from the ground truth that SynthDFER writes (no other dataset has one)."""

    selects_before_training = True

    @classmethod
    def schedule_problems(cls, o, *, epochs: int, dataset: str) -> list[str]:
        if dataset != "synthdfer":
            return [
                "purify.mode: oracle trains on the ground truth, which only synthdfer has; "
                f"got data.dataset {dataset!r}"
            ]
        return []

    @classmethod
    def select(cls, context, options) -> dict:
        from d2sp.data.synth import load_ground_truth

        gt = load_ground_truth(context.split.root, split="train")
        if len(gt["true_label"]) != len(context.labels):
            raise ValueError(
                f"{context.split.root}: ground truth has {len(gt['true_label'])} rows for "
                f"{len(context.labels)} training clips"
            )
        noisy = np.asarray(gt["low_quality"], bool) | (gt["true_label"] != context.labels)
        return {
            "keep": ~np.asarray(gt["low_quality"], dtype=bool),
            "targets": np.asarray(gt["true_label"]),
            "suspicion": noisy.astype(np.float32),
            "suggested": np.asarray(gt["true_label"]),
        }
