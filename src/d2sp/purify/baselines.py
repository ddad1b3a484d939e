"""Purifiers of the baselines the trainer compares D2SP with.

- :class:`ScnPurifier` (``mode: scn``): a Self-Cure-style in-training cleaner. The weight
  branch (one linear layer + sigmoid) scales the logits as in D2SP's weighted CE, a rank
  regulariser keeps the high- and low-weight groups of each batch ``margin`` apart, and
  after warm-up a sample of the low-weight group is relabelled to the predicted class when
  ``max p − p[current label] > relabel_margin``. Nothing is pruned. Relabels accumulate:
  the current label is the one compared with, as in the original method.
- :class:`FixedPurifier`: a kept set and labels decided before training (cleanlab's
  label issues dropped, or the oracle's ground truth); it only records, so the run has a
  ledger like any other.

Both share the public API of :class:`~d2sp.purify.purifier.Purifier`.
"""

from __future__ import annotations

import numpy as np
import torch

from d2sp.losses_extra import rank_regularization
from d2sp.purify.history import History, reduce_staged
from d2sp.purify.ledger import Ledger, count_states, epoch_records, state_codes
from d2sp.purify.purifier import PurifierQueries, _as_label_tensor


def stratified_folds(labels, *, folds: int, seed: int = 0) -> np.ndarray:
    """``(N,)`` fold id in ``[0, folds)`` per sample, stratified by label and shuffled.

    Each class's samples are dealt round-robin over the folds in a random order, so every
    fold holds about ``1 / folds`` of every class.
    """
    labels = np.asarray(labels)
    if folds < 2:
        raise ValueError(f"folds: expected an integer >= 2, got {folds}")
    if len(labels) < folds:
        raise ValueError(f"folds: {folds} folds need at least {folds} samples, got {len(labels)}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold_of[idx] = (offset + np.arange(len(idx))) % folds
        offset += len(idx)  # the next class starts where this one stopped
    return fold_of


def cleanlab_label_issues(labels, probs, *, filter_by: str = "prune_by_noise_rate") -> np.ndarray:
    """Confident learning's label issues: ``(N,)`` bool from labels ``(N,)`` and out-of-sample
    probabilities ``(N, K)`` (``cleanlab.filter.find_label_issues``)."""
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(labels):
        raise ValueError(f"probs: expected shape ({len(labels)}, K), got {tuple(probs.shape)}")
    probs = probs / probs.sum(axis=1, keepdims=True)
    # n_jobs=1: cleanlab's own worker pool fails inside spawned processes (d2sp compare --jobs)
    issues = find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)
    return np.asarray(issues, dtype=bool)


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


class _RecordingPurifier(PurifierQueries):
    """Shared set-up and one-record-per-epoch staging of the baselines."""

    def _setup(self, labels, num_classes: int, device, keep_ledger: bool) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.device = torch.device(device)
        self.labels = _as_label_tensor(labels, num_classes)  # (N,) CPU
        self._labels_dev = self.labels.to(self.device)
        n = len(self.labels)
        self.history = History(n, 1, device=self.device)
        self._probs = torch.zeros(
            n, num_classes, dtype=torch.float32, device=self.device
        )  # (N, K) this epoch
        self.epoch = 0
        self.keep_mask = torch.ones(n, dtype=torch.bool)
        self.current_labels = self.labels.clone()
        self._current_dev = self._labels_dev.clone()
        self.ledger = Ledger(labels=self.labels.numpy().copy()) if keep_ledger else None

    def record(self, indices, logits: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Record one batch: ``indices (B,)``, ``logits (B, K)``, ``weights (B,)`` or ``None``."""
        idx, probs, w = self._batch_records(indices, logits, weights)  # (B,), (B, K), (B,)
        with torch.no_grad():
            p_pred, pred = probs.max(dim=1)  # (B,), (B,)
            p_label = probs.gather(1, self._labels_dev[idx].unsqueeze(1)).squeeze(1)  # (B,)
            self._probs[idx] = probs
            self.history.stage_batch(idx, w, pred, p_pred, p_label)

    def combine_staged(self, reduce) -> None:
        """Combine this epoch's records across the processes of a distributed run, before
        :meth:`end_epoch`; ``reduce`` sums a tensor over the processes (see
        :meth:`Purifier.combine_staged <d2sp.purify.purifier.Purifier.combine_staged>`)."""
        h = self.history
        reduce_staged({**h.stage, "probs": self._probs}, h.seen, reduce)

    def _log(self, seen, decided, keep, labels, score, delta_p) -> dict[str, int]:
        state = state_codes(decided, keep, labels != self._labels_dev)
        if self.ledger is not None:
            self.ledger.append(
                **epoch_records(seen, self.history.stage),
                score=score.cpu().numpy().astype(np.float32),
                delta_p=delta_p.cpu().numpy().astype(np.float32),
                state=state.cpu().numpy(),
                label=labels.cpu().numpy().astype(np.int16),
            )
        return count_states(state, seen)


class ScnPurifier(_RecordingPurifier):
    """Self-Cure-style cleaner (``mode: scn``): rank-regularised weights, relabelling of
    low-weight samples, no pruning.

    Args:
        labels: ``(N,)`` annotation.
        num_classes: ``K``.
        warmup_epochs: epochs before the first relabelling.
        rank_margin: ``δ1``, the required gap between the high and low group means.
        rank_ratio: ``β``, the share of each batch in the high-weight group.
        relabel_margin: ``δ2``, the ``max p − p[label]`` above which a low-weight sample is
            relabelled.
        rank_weight: factor of the rank-regularisation term in the loss.
        fgc: relabelling on (``False`` keeps the weights and the regulariser only).
        cgp: accepted for a uniform config; SCN prunes nothing.
    """

    def __init__(
        self,
        labels,
        *,
        num_classes: int,
        warmup_epochs: int = 10,
        rank_margin: float = 0.15,
        rank_ratio: float = 0.7,
        relabel_margin: float = 0.2,
        rank_weight: float = 1.0,
        fgc: bool = True,
        cgp: bool = True,
        device: torch.device | str = "cpu",
        keep_ledger: bool = True,
    ):
        for name, value in (("rank_margin", rank_margin), ("rank_ratio", rank_ratio)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name}: expected a value in (0, 1), got {value}")
        if not 0.0 <= relabel_margin <= 1.0:
            raise ValueError(f"relabel_margin: expected a value in [0, 1], got {relabel_margin}")
        if warmup_epochs < 0 or rank_weight < 0:
            raise ValueError(
                f"warmup_epochs and rank_weight: expected >= 0, got {warmup_epochs}, {rank_weight}"
            )
        self._setup(labels, num_classes, device, keep_ledger)
        self.warmup_epochs = int(warmup_epochs)
        self.rank_margin, self.rank_ratio = float(rank_margin), float(rank_ratio)
        self.relabel_margin, self.rank_weight = float(relabel_margin), float(rank_weight)
        self.fgc, self.cgp = bool(fgc), False

    @property
    def deciding(self) -> bool:
        return self.epoch >= self.warmup_epochs and self.fgc

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        """``rank_weight ·`` rank regularisation of the batch's weights (from the first step)."""
        if weights is None or self.rank_weight == 0:
            return 0.0
        reg = rank_regularization(weights, margin=self.rank_margin, ratio=self.rank_ratio)
        return self.rank_weight * reg

    def end_epoch(self) -> dict[str, int]:
        """Commit the epoch's records and relabel (after warm-up); returns the epoch's counts."""
        seen = self.history.commit()
        self.epoch += 1
        w = self.history.weight[:, 0]  # (N,)
        labels, gap = scn_relabel(
            self._probs,
            w,
            self._current_dev,
            seen,
            ratio=self.rank_ratio,
            margin=self.relabel_margin,
        )
        decided = torch.full_like(seen, self.deciding)
        if not self.deciding:
            labels = self._current_dev
        self._current_dev = labels.clone()
        self.current_labels = labels.cpu()
        return self._log(seen, decided, torch.ones_like(seen), labels, w, gap)


class FixedPurifier(_RecordingPurifier):
    """A kept set and labels fixed before training; records every epoch for the ledger.

    Args:
        labels: ``(N,)`` annotation.
        num_classes: ``K``.
        keep: ``(N,)`` bool, the samples trained on (default all).
        targets: ``(N,)`` labels trained with (default the annotation).
    """

    def __init__(
        self,
        labels,
        *,
        num_classes: int,
        keep=None,
        targets=None,
        device: torch.device | str = "cpu",
        keep_ledger: bool = True,
        **_ignored,
    ):
        self._setup(labels, num_classes, device, keep_ledger)
        n = len(self.labels)
        if keep is not None:
            keep = torch.as_tensor(np.asarray(keep, dtype=bool))
            if keep.shape != (n,):
                raise ValueError(f"keep: expected shape ({n},), got {tuple(keep.shape)}")
            self.keep_mask = keep.clone()
        if targets is not None:
            self.current_labels = _as_label_tensor(targets, num_classes)
            if self.current_labels.shape != (n,):
                raise ValueError(
                    f"targets: expected shape ({n},), got {tuple(self.current_labels.shape)}"
                )
            self._current_dev = self.current_labels.to(self.device)
        self.warmup_epochs, self.cgp, self.fgc = 0, True, True

    deciding = True

    def end_epoch(self) -> dict[str, int]:
        """Commit the epoch's records; the kept set and labels do not change."""
        seen = self.history.commit()
        self.epoch += 1
        keep = self.keep_mask.to(self.device)
        score = self.history.weight[:, 0] * self.history.p_pred[:, 0]  # (N,)
        delta_p = torch.zeros_like(score)
        return self._log(seen, torch.ones_like(seen), keep, self._current_dev, score, delta_p)
