"""The six-call loop: one epoch of any training loop driving a purifier, written once.

Every mode takes the same calls; this function is the loop of the README, the tests and the
benchmark suite. Your own loop can be this function or a copy of its body::

    for x, idx in train_batches(purifier.train_indices()):      # 1: who trains this epoch
        loss = purifier.batch_loss(model, x, idx)                # 2: runs the model, the loss
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        purifier.after_step()                                    # 3: e.g. a teacher follows
    for x, idx in rescore_batches(purifier.rescore_indices()):   # 4: who is scored again
        purifier.rescore(idx, x)                                 # 5: no gradient
    purifier.end_epoch()                                         # 6: decisions for the next epoch
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from d2sp.purify.base import Purifier

Batches = Callable[[np.ndarray], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def run_epoch(
    purifier: Purifier,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    train_batches: Batches,
    rescore_batches: Batches,
    scheduler=None,
) -> dict[str, int]:
    """Train ``model`` one epoch on the purifier's samples, re-score, take the decisions.

    Args:
        train_batches: ``indices (M,) -> iterable of (inputs (B, ...), indices (B,))``: the
            samples in training order, augmented as the loop trains.
        rescore_batches: the same for re-scoring, with the views of
            :attr:`Purifier.rescore_view` (``"eval"``: un-augmented).
        scheduler: stepped after every optimiser step, when given.

    Returns the counts of :meth:`Purifier.end_epoch` (kept, pruned, corrected, ...).
    """
    model.train()
    for x, idx in train_batches(purifier.train_indices()):
        loss = purifier.batch_loss(model, x, idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        purifier.after_step()
    for x, idx in rescore_batches(purifier.rescore_indices()):
        purifier.rescore(idx, x)
    return purifier.end_epoch()
