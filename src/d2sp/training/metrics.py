"""WAR, UAR and the confusion matrix; precision/recall of purification vs ground truth."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class."""
    metric = MulticlassConfusionMatrix(num_classes=num_classes)
    return metric(preds.long().cpu(), targets.long().cpu()).numpy().astype(np.int64)


def war_uar(cm: np.ndarray) -> tuple[float, float]:
    """Weighted (overall accuracy) and unweighted (mean per-class recall) average recall.

    Classes absent from the targets are left out of UAR.
    """
    total = cm.sum()
    support = cm.sum(axis=1)
    war = float(np.trace(cm) / total) if total else 0.0
    present = support > 0
    uar = float((np.diag(cm)[present] / support[present]).mean()) if present.any() else 0.0
    return war, uar


def precision_recall(selected: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """Precision and recall of a boolean selection ``(N,)`` against the relevant set ``(N,)``.

    Precision is NaN when nothing is selected; recall is NaN when nothing is relevant.
    """
    selected, relevant = np.asarray(selected, bool), np.asarray(relevant, bool)
    hits = int((selected & relevant).sum())
    precision = hits / selected.sum() if selected.any() else float("nan")
    recall = hits / relevant.sum() if relevant.any() else float("nan")
    return float(precision), float(recall)


def purification_scores(
    state: np.ndarray,
    label: np.ndarray,
    *,
    low_quality: np.ndarray,
    true_label: np.ndarray,
    given_label: np.ndarray,
) -> dict[str, float]:
    """Precision/recall of pruning vs low-quality clips and of correction vs wrong labels;
    ``removed_precision``: the share of the pruned clips that are low quality or mislabelled.

    Args:
        state: ``(N,)`` final ledger states (see :mod:`d2sp.purify.ledger`).
        label: ``(N,)`` final training labels.
        low_quality: ``(N,)`` bool ground truth of unusable clips.
        true_label, given_label: ``(N,)`` ground-truth and annotated labels.

    A correction counts as right when the sample was mislabelled and its new label is the
    true one; correction recall is over the mislabelled samples that were not pruned away
    as low quality (a sample cannot be both in the ground truth of SynthDFER).
    """
    from d2sp.purify.ledger import CORRECTED, PRUNED

    pruned = state == PRUNED
    corrected = state == CORRECTED
    mislabeled = np.asarray(given_label) != np.asarray(true_label)
    right_fix = corrected & (np.asarray(label) == np.asarray(true_label))
    p_prec, p_rec = precision_recall(pruned, low_quality)
    removed, _ = precision_recall(pruned, np.asarray(low_quality) | mislabeled)
    c_prec = float(right_fix.sum() / corrected.sum()) if corrected.any() else float("nan")
    c_rec = float(right_fix.sum() / mislabeled.sum()) if mislabeled.any() else float("nan")
    return {
        "prune_precision": p_prec,
        "prune_recall": p_rec,
        "removed_precision": removed,
        "correct_precision": c_prec,
        "correct_recall": c_rec,
        "pruned": int(pruned.sum()),
        "corrected": int(corrected.sum()),
        "pruned_mislabeled": int((pruned & mislabeled).sum()),
    }
