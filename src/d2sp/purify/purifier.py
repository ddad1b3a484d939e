"""The stateful purifier: record batches, end the epoch, read the kept set and labels.

Usable from any training loop::

    purifier = Purifier(labels, num_classes=7, lam=0.6, tau=0.4, t=2, warmup_epochs=3)
    for epoch in range(epochs):
        for clips, _, idx in loader_over(purifier.kept_indices()):
            logits, w = model(clips)
            loss = weighted_cross_entropy(logits, w, purifier.labels_for(idx))
            ...
            purifier.record(idx, logits.detach(), w.detach())
        for clips, _, idx in loader_over(purifier.pruned_indices()):  # revisit, no grad
            purifier.record(idx, *model(clips))
        purifier.end_epoch()
"""

from __future__ import annotations

import numpy as np
import torch

from d2sp.purify.history import History
from d2sp.purify.ledger import Ledger, count_states, epoch_records, state_codes
from d2sp.purify.stages import coarse_grained_pruning, fine_grained_correction, has_full_window

SCORES = ("max", "label")


def _as_label_tensor(labels, num_classes: int) -> torch.Tensor:
    arr = torch.as_tensor(np.asarray(labels))
    if arr.ndim != 1 or arr.numel() == 0:
        raise ValueError(f"labels: expected a non-empty 1-D array, got shape {tuple(arr.shape)}")
    if arr.is_floating_point() or arr.dtype == torch.bool:
        raise ValueError(f"labels: expected integer class indices, got dtype {arr.dtype}")
    arr = arr.long()
    bad = ((arr < 0) | (arr >= num_classes)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(
            f"labels: expected values in [0, {num_classes}), got {int(arr[i])} at index {i} "
            f"({bad.numel()} out of range in all)"
        )
    return arr


class PurifierQueries:
    """What a training loop reads from a purifier, and its resumable state; shared by both
    modes. Expects ``epoch``, ``history``, ``labels`` and ``current_labels`` (``(N,)`` CPU
    int64), ``keep_mask`` (``(N,)`` CPU bool), ``_current_dev`` (current labels on
    ``device``) and ``device``.
    """

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def labels_for(self, indices: torch.Tensor) -> torch.Tensor:
        """``(B,)`` int64 current training labels ``ỹ`` of these samples, on ``indices``' device."""
        idx = torch.as_tensor(indices)
        if idx.device == self.device:
            return self._current_dev[idx.long()]
        return self.current_labels[idx.cpu().long()].to(idx.device)

    @torch.no_grad()
    def _batch_records(self, indices, logits: torch.Tensor, weights: torch.Tensor | None):
        """Checked batch on this device: ``idx (B,)``, ``softmax(logits) (B, K)`` and the
        weights ``(B,)`` (ones when ``None``)."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits: expected shape (B, {self.num_classes}), got {tuple(logits.shape)}"
            )
        idx = torch.as_tensor(indices).to(self.device, non_blocking=True).long()  # (B,)
        if idx.shape != logits.shape[:1]:
            raise ValueError(
                f"indices: expected shape ({logits.shape[0]},) to match logits, "
                f"got {tuple(idx.shape)}"
            )
        probs = torch.softmax(logits.detach().float(), dim=1).to(self.device)  # (B, K)
        if weights is None:
            w = torch.ones(len(idx), dtype=torch.float32, device=self.device)  # (B,)
        else:
            w = weights.detach().float().reshape(-1).to(self.device)  # (B,)
        return idx, probs, w

    def kept_indices(self) -> np.ndarray:
        """Indices of the samples to train on next epoch (D3, kept), int64."""
        return self.keep_mask.nonzero().squeeze(1).numpy()

    def pruned_indices(self) -> np.ndarray:
        """Indices of the samples not trained on next epoch (D2, pruned or held out), int64."""
        return (~self.keep_mask).nonzero().squeeze(1).numpy()

    def corrected_indices(self) -> np.ndarray:
        """Indices whose current training label differs from the annotation."""
        return (self.current_labels != self.labels).nonzero().squeeze(1).numpy()

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "history": self.history.state_dict(),
            "keep_mask": self.keep_mask.clone(),
            "current_labels": self.current_labels.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.history.load_state_dict(state["history"])
        self.keep_mask = state["keep_mask"].clone().bool()
        self.current_labels = state["current_labels"].clone().long()
        self._current_dev = self.current_labels.to(self.device)


class Purifier(PurifierQueries):
    """Dynamic data purification over ``N`` training samples (DESIGN §2, ``mode: paper``).

    Args:
        labels: ``(N,)`` original annotation ``y`` (never changed).
        num_classes: ``K``.
        lam: CGP threshold λ in [0, 1].
        tau: FGC threshold τ.
        t: number of records a decision looks back over (window).
        warmup_epochs: the first epochs train on every sample with the original labels;
            the first decision is taken at the end of epoch ``warmup_epochs`` (1-based) and
            governs the next one. Records taken during warm-up count towards the window.
        cgp, fgc: stage switches (paper table 2).
        score: ``"max"`` uses ``w · p[pred]``, ``"label"`` uses ``w · p[y]``.
        device: where the history lives; put it on the model's device so that
            :meth:`record` never synchronises.
        keep_ledger: keep every epoch's arrays in :attr:`ledger`.
    """

    def __init__(
        self,
        labels,
        *,
        num_classes: int,
        lam: float = 0.6,
        tau: float = 0.4,
        t: int = 2,
        warmup_epochs: int = 0,
        cgp: bool = True,
        fgc: bool = True,
        score: str = "max",
        device: torch.device | str = "cpu",
        keep_ledger: bool = True,
    ):
        if num_classes < 2:
            raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam: expected a value in [0, 1], got {lam}")
        if not -1.0 <= tau <= 1.0:
            raise ValueError(
                f"tau: expected a value in [-1, 1] (Δp is a difference of probabilities), got {tau}"
            )
        if t < 1:
            raise ValueError(f"t: expected an integer >= 1, got {t}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs: expected >= 0, got {warmup_epochs}")
        if score not in SCORES:
            raise ValueError(f"score: expected one of {SCORES}, got {score!r}")
        self.num_classes = num_classes
        self.lam, self.tau, self.t = float(lam), float(tau), int(t)
        self.warmup_epochs = int(warmup_epochs)
        self.cgp, self.fgc, self.score = bool(cgp), bool(fgc), score
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.labels = _as_label_tensor(labels, num_classes)  # (N,) CPU
        self._labels_dev = self.labels.to(self.device)
        self.history = History(len(self.labels), self.t, device=self.device)
        self.epoch = 0  # epochs ended so far
        self.keep_mask = torch.ones(len(self.labels), dtype=torch.bool)  # (N,) CPU
        self.current_labels = self.labels.clone()  # (N,) CPU
        self._current_dev = self._labels_dev.clone()
        self.ledger = Ledger(labels=self.labels.numpy().copy()) if keep_ledger else None

    @property
    def deciding(self) -> bool:
        """Whether the epoch that has just ended took (or will take) decisions."""
        return self.epoch >= self.warmup_epochs and (self.cgp or self.fgc)

    def record(
        self,
        indices: torch.Tensor,
        logits: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> None:
        """Record one batch from a forward pass (training, or a no-grad revisit).

        Args:
            indices: ``(B,)`` int sample indices (positions in the annotation).
            logits: ``(B, K)`` classifier logits ``z`` (unweighted).
            weights: ``(B,)`` weight-branch outputs, or ``None`` (treated as 1).
        """
        idx, probs, w = self._batch_records(indices, logits, weights)  # (B,), (B, K), (B,)
        with torch.no_grad():
            p_pred, pred = probs.max(dim=1)  # (B,), (B,)
            p_label = probs.gather(1, self._labels_dev[idx].unsqueeze(1)).squeeze(1)  # (B,)
            self.history.stage_batch(idx, w, pred, p_pred, p_label)

    def combine_staged(self, reduce) -> None:
        """Combine this epoch's records across the processes of a distributed run, before
        :meth:`end_epoch`: ``reduce`` sums a tensor over the processes (e.g.
        :func:`d2sp.distributed.all_reduce_sum`), each of which recorded its own samples;
        afterwards every process holds every record and takes the same decisions."""
        self.history.combine_staged(reduce)

    def end_epoch(self) -> dict[str, int]:
        """Commit this epoch's records, recompute the kept set and labels, log the ledger.

        Returns counts for the epoch just ended: ``recorded``, ``kept``, ``pruned``,
        ``corrected``, ``undecided``.
        """
        h = self.history
        seen = h.commit()
        self.epoch += 1
        probs_for_score = h.p_pred if self.score == "max" else h.p_label
        keep, score = coarse_grained_pruning(
            h.weight, probs_for_score, h.count, lam=self.lam, t=self.t
        )
        new_labels, delta_p = fine_grained_correction(
            h.pred,
            h.p_pred,
            h.p_label,
            h.count,
            self._labels_dev,
            keep if self.cgp else torch.ones_like(keep),
            tau=self.tau,
            t=self.t,
        )
        decided = has_full_window(h.count, self.t)
        if self.deciding:
            keep = keep if self.cgp else torch.ones_like(keep)
            labels = new_labels if self.fgc else self._labels_dev
        else:
            keep = torch.ones_like(keep)
            labels = self._labels_dev
            decided = torch.zeros_like(decided)
        self._current_dev = labels.clone()
        self.keep_mask = keep.cpu()
        self.current_labels = labels.cpu()
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
