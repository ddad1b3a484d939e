"""The distributed bookkeeping of a training run, in one place: what the processes of a
``torchrun`` launch exchange so that they train, score and decide as one process would.
In a world of one every function here is the identity (or does nothing)."""

from __future__ import annotations

import torch

from d2sp.training.distributed import (
    all_reduce_min,
    all_reduce_sum,
    broadcast_buffers,
    check_replicas,
    check_same,
    current_info,
)


def loss_share(loss: torch.Tensor, mine: int, total: int) -> torch.Tensor:
    """The loss a process back-propagates: DDP averages the processes' gradients, so each
    share's mean loss is weighted by its size, giving the gradient of the whole batch's mean
    (a stand-in share of 0 samples contributes nothing)."""
    info = current_info()
    if not info.enabled:
        return loss
    return loss * (mine * info.world_size / total)


def reduce_epoch_stats(first_bad: torch.Tensor, loss_sum, correct, seen: int, device):
    """Sum the processes' training statistics; the earliest non-finite batch of any process
    (``-1``: none)."""
    if not current_info().enabled:
        return first_bad, loss_sum, correct, seen
    never = torch.full_like(first_bad, 2**62)
    first_bad = all_reduce_min(torch.where(first_bad < 0, never, first_bad))
    first_bad = torch.where(first_bad == never, -1, first_bad)
    seen = int(all_reduce_sum(torch.tensor(seen, device=device)))
    return first_bad, all_reduce_sum(loss_sum), all_reduce_sum(correct), seen


def align_replicas(model: torch.nn.Module, others: list[torch.nn.Module]) -> None:
    """Make every process's model (and a purifier's teacher) hold rank 0's buffers, and check
    that the replicas agree, before anything is scored."""
    if not current_info().enabled:
        return
    for m in (model, *others):
        broadcast_buffers(m)  # per-process batch statistics -> rank 0's
    check_replicas(model, *others, what="model and teacher")


def records_reduce():
    """The ``reduce`` to give :meth:`Purifier.end_epoch` (None in a world of one)."""
    return all_reduce_sum if current_info().enabled else None


def check_decisions(keep_mask: torch.Tensor, labels: torch.Tensor) -> None:
    """The next epoch's steps must be the same on every process."""
    if current_info().enabled:
        check_same(torch.cat([keep_mask.long(), labels]), "the kept samples and their labels")
