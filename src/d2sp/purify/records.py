"""Per-sample records of the training run: the epoch's staging row and the recent history.

A record is what one forward pass says about one sample: its weight ``w`` and its class
probabilities ``p = softmax(z)``. Records arrive batch by batch into one staging row
(the last record of a sample in an epoch wins: a re-scored record overrides the training
pass's) and are committed once per epoch into an ordered history of the newest ``W``
records, column 0 the newest, from which every purifier mode takes its decisions.
Memory is ``O(N · K)`` for the staging row and ``O(N · W)`` for the history.

Shapes: ``N`` samples, ``K`` classes, ``W`` records kept per sample, ``B`` a batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

FIELDS = ("weight", "pred", "p_pred", "p_label")


def reduce_staged(
    staged: dict[str, torch.Tensor],
    seen: torch.Tensor,
    reduce: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Combine the records that several processes staged this epoch, in place.

    Every process calls this with its own ``staged`` tensors (``(N, ...)`` each) and ``seen``
    mask (``(N,)`` bool); ``reduce`` sums a tensor over the processes (e.g.
    :func:`d2sp.training.distributed.all_reduce_sum`). Each sample must be recorded by at most one
    process per pass: a record is then the sum of itself and zeros, exactly. Afterwards
    every process holds every record and ``seen`` is the union; entries no process recorded
    keep their (identical) earlier values, as in a single process.
    """
    count = reduce(seen.to(torch.int32))  # (N,) processes that recorded each sample
    if bool((count > 1).any()):
        raise RuntimeError(
            f"{int((count > 1).sum())} samples were recorded by more than one process this epoch"
        )
    union = count > 0  # (N,)
    for t in staged.values():
        shape = (-1, *([1] * (t.ndim - 1)))
        mine = torch.where(seen.reshape(shape), t, torch.zeros_like(t))  # (N, ...) own records
        t.copy_(torch.where(union.reshape(shape), reduce(mine), t))
    seen.copy_(union)


class Records:
    """The staging row of the epoch in progress and the newest ``width`` records per sample.

    Args:
        labels: ``(N,)`` int64 annotation ``y`` on ``device`` (``p_label = p[y]``).
        num_classes: ``K``.
        width: records kept per sample (the longest window a mode reads).
        device: where everything lives; put it on the model's device so that staging a
            batch never synchronises.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, width: int, *, device):
        dev = torch.device(device)
        n = len(labels)
        self.labels = labels.to(dev)
        self.width = int(width)
        # staging row of the epoch in progress
        self.probs = torch.zeros(n, num_classes, dtype=torch.float32, device=dev)  # (N, K)
        self.staged_weight = torch.zeros(n, dtype=torch.float32, device=dev)  # (N,)
        self.seen = torch.zeros(n, dtype=torch.bool, device=dev)  # (N,)
        self.rescored = torch.zeros(n, dtype=torch.bool, device=dev)  # (N,) by a re-score pass
        self.last_rescored = torch.zeros(n, dtype=torch.bool, device=dev)  # of the last commit
        # committed history, newest first
        self.weight = torch.zeros(n, width, dtype=torch.float32, device=dev)  # (N, W)
        self.pred = torch.zeros(n, width, dtype=torch.int16, device=dev)  # (N, W)
        self.p_pred = torch.zeros(n, width, dtype=torch.float32, device=dev)  # (N, W)
        self.p_label = torch.zeros(n, width, dtype=torch.float32, device=dev)  # (N, W)
        self.count = torch.zeros(n, dtype=torch.int64, device=dev)  # (N,) records so far

    def stage(self, idx: torch.Tensor, probs: torch.Tensor, weight: torch.Tensor, *, rescored: bool) -> None:
        """Stage one batch: ``idx (B,)`` int64, ``probs (B, K)``, ``weight (B,)``, all on this
        device (no host synchronisation: index copies and fills only; a sample staged twice
        in one batch keeps one of its records)."""
        self.probs.index_copy_(0, idx, probs)
        self.staged_weight.index_copy_(0, idx, weight)
        self.seen.index_fill_(0, idx, True)
        self.rescored.index_fill_(0, idx, rescored)

    def combine(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Combine the staged records of several processes (see :func:`reduce_staged`)."""
        staged = {"probs": self.probs, "weight": self.staged_weight, "rescored": self.rescored}
        reduce_staged(staged, self.seen, reduce)

    def commit(self) -> torch.Tensor:
        """Push the staged records into the history as its newest column; returns the
        ``(N,)`` mask of the samples recorded this epoch. The staged probabilities stay
        readable (``probs``, ``staged_weight``, ``last_rescored``: which of them came from a
        re-scoring pass) until the next epoch's records overwrite them."""
        seen = self.seen.clone()
        # every sample recorded (the usual epoch): plain slices, no gather/scatter of N rows
        idx = slice(None) if bool(seen.all()) else seen.nonzero().squeeze(1)  # (M,)
        probs = self.probs[idx]  # (M, K)
        p_pred, pred = probs.max(dim=1)  # (M,), (M,)
        p_label = probs.gather(1, self.labels[idx].unsqueeze(1)).squeeze(1)  # (M,)
        new = {"weight": self.staged_weight[idx], "pred": pred, "p_pred": p_pred, "p_label": p_label}
        for f in FIELDS:
            buf = getattr(self, f)
            rows = buf[idx]  # (M, W)
            buf[idx] = torch.cat([new[f].to(buf.dtype).unsqueeze(1), rows[:, :-1]], dim=1)
        self.count[idx] += 1
        self.last_rescored = self.rescored.clone()
        self.seen.zero_()
        self.rescored.zero_()
        return seen

    def newest(self) -> dict[str, torch.Tensor]:
        """``(N,)`` views of the newest committed record of each field."""
        return {f: getattr(self, f)[:, 0] for f in FIELDS}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f: getattr(self, f).cpu() for f in (*FIELDS, "count")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for f in (*FIELDS, "count"):
            target = getattr(self, f)
            if state[f].shape != target.shape:
                raise ValueError(
                    f"records field {f!r}: expected shape {tuple(target.shape)}, "
                    f"got {tuple(state[f].shape)}"
                )
            target.copy_(state[f].to(target.device))
