"""The model over a loader without gradients: probabilities (:func:`predict_loader`), the
confusion matrix of each epoch's test pass (:func:`evaluate_loader`) and the held-out
probabilities some purifiers ask for (:func:`heldout_probabilities`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch

from d2sp.training.distributed import all_reduce_sum, current_info
from d2sp.training.loaders import to_inputs
from d2sp.training.metrics import confusion_matrix


@torch.no_grad()
def predict_loader(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    autocast: Callable = nullcontext,
    on_batch: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model (eval mode) over every batch of ``loader``: ``probs (M, K)`` float32,
    ``targets (M,)`` and ``indices (M,)``, on the CPU, in the loader's order (this
    process's share in a multi-process run); ``on_batch()`` after each batch."""
    model.eval()
    probs, targets, indices = [], [], []
    for clips, labels, idx in loader:
        with autocast():
            logits, _ = model(to_inputs(clips, model, device))  # (B, K)
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        targets.append(torch.as_tensor(labels))
        indices.append(torch.as_tensor(idx))
        if on_batch is not None:
            on_batch()
    k = model.head.fc.out_features
    if not probs:
        return torch.zeros(0, k), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(probs), torch.cat(targets).long(), torch.cat(indices).long()


def evaluate_loader(model, loader, device, autocast: Callable = nullcontext) -> tuple[np.ndarray, torch.Tensor]:
    """Confusion matrix ``(K, K)`` (rows true, columns predicted) and predictions ``(M,)`` over
    a loader (eval mode). In a multi-process run the matrix is summed over the processes
    (each evaluates its share of the loader's samples); the predictions are this process's."""
    probs, targets, _ = predict_loader(model, loader, device, autocast)
    preds = probs.argmax(1)  # (M,)
    cm = confusion_matrix(preds, targets, probs.shape[1])  # (K, K)
    if current_info().enabled:
        cm = all_reduce_sum(torch.from_numpy(cm)).numpy()
    return cm, preds


def heldout_probabilities(model, loader, num_rows: int, row_of: dict[int, int], device, autocast) -> np.ndarray:
    """``(num_rows, K)`` float64 softmax of ``model`` on the loader's samples, each put at
    ``row_of[sample index]``; summed over the processes of a multi-process run (each
    predicted its share)."""
    probs, _, idx = predict_loader(model, loader, device, autocast)
    out = torch.zeros(num_rows, probs.shape[1], dtype=torch.float64)  # (M, K)
    if len(idx):
        rows = torch.tensor([row_of[int(i)] for i in idx])  # (B,)
        out[rows] = probs.double()
    if current_info().enabled:  # each row was predicted by exactly one process
        out = all_reduce_sum(out)
    return out.numpy()
