"""One epoch of a run: training on the purifier's samples, then re-scoring without gradient."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from d2sp.training.build import Run
from d2sp.training.checks import NonFiniteLossError
from d2sp.training.loaders import to_inputs
from d2sp.training.replicas import loss_share, reduce_epoch_stats


@dataclass
class EpochStats:
    """Training figures of one epoch (over every process)."""

    loss: float
    train_acc: float
    trained: int


def stand_in(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clips (1, T, 3, S, S) uint8 zeros, indices (1,))``: what a process whose batch share
    lost every sample to unreadable clips trains on, weighted by 0 (every process must take
    part in each step of a multi-process run)."""
    ds = run.train_ds
    return torch.zeros(1, ds.num_frames, 3, ds.size, ds.size, dtype=torch.uint8), torch.zeros(
        1, dtype=torch.long
    )


def train_epoch(run: Run, epoch: int, loader, on_step: Callable[[], None]) -> EpochStats:
    """Train the model one pass over ``loader`` with the purifier's labels and loss.

    The first non-finite loss is tracked on the device (no synchronisation per step) and
    raises :class:`NonFiniteLossError` naming the epoch and batch at the end of the pass.
    A sample whose clip cannot be read is left out of its batch (see
    :mod:`d2sp.training.badclips`); a batch left empty is skipped by a single process, and
    trained as a zero-weighted stand-in by a process of a multi-process run.
    """
    model, purifier, device = run.model, run.purifier, run.device
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    seen = 0
    for step, (clips, _, idx) in enumerate(loader):
        mine, total = loader.batch_sampler.share_sizes(step)  # samples here, in all
        mine = min(mine, len(idx))  # less the samples whose clip could not be read
        if not len(idx):  # every sample of this share was unreadable
            if not run.info.enabled:
                on_step()
                continue
            clips, idx = stand_in(run)
        with run.autocast():  # the purifier runs the model (mixed inputs, a second network, ...)
            loss = purifier.batch_loss(
                run.net, to_inputs(clips, model, device), idx,
                label_smoothing=run.cfg.optim.label_smoothing, record=mine > 0,
            )  # (a stand-in for an empty share is not recorded)  # fmt: skip
        bad = ~torch.isfinite(loss.detach()) & (first_bad < 0)
        first_bad = torch.where(bad, torch.full_like(first_bad, step), first_bad)
        run.optimizer.zero_grad(set_to_none=True)
        loss_share(loss, mine, total).backward()
        run.optimizer.step()
        run.scheduler.step()
        purifier.after_step()
        if mine:
            loss_sum += loss.detach() * len(idx)
            if purifier.batch_logits is not None:  # (a mixed batch has no accuracy)
                labels = purifier.labels_for(idx).to(device, non_blocking=True)  # (B,)
                correct += (purifier.batch_logits.argmax(1) == labels).sum()
            seen += len(idx)
        on_step()
    first_bad, loss_sum, correct, seen = reduce_epoch_stats(first_bad, loss_sum, correct, seen, device)
    if int(first_bad) >= 0:
        raise NonFiniteLossError(
            f"loss became NaN or infinite at epoch {epoch + 1}, batch {int(first_bad) + 1}: "
            f"stopped; the last good checkpoint is {run.run_dir / 'last.pt'} (lower optim.lr?)"
        )
    return EpochStats(float(loss_sum) / max(1, seen), float(correct) / max(1, seen), seen)


@torch.no_grad()
def rescore(run: Run) -> None:
    """Score the purifier's :meth:`rescore_indices` on its views, without gradient (each
    process scores its share)."""
    indices = run.bad_clips.keep("train", run.purifier.rescore_indices())
    if not len(indices):
        return
    loader = run.loaders.rescore(indices)
    for clips, _, idx in loader:
        with run.autocast():
            run.purifier.rescore(idx, to_inputs(clips, run.model, run.device))
