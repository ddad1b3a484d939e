"""Mode ``cleanlab``: confident learning (cleanlab) as a baseline D2SP is compared with.

K-fold cross-validation: ``folds`` plain models, each trained on the other folds (a
resumable run folder ``RUN/cleanlab/fold<k>``), give out-of-sample probabilities;
``cleanlab.filter.find_label_issues`` flags the label issues; a plain model trains on the
rest. Suspicion is one minus cleanlab's label-quality score (self-confidence) and the
suggested label the out-of-sample prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d2sp.purify.base import expect
from d2sp.purify.fixed import FixedPurifier
from d2sp.purify.registry import register_purifier

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")


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


@register_purifier("cleanlab")
class CleanlabPurifier(FixedPurifier):
    """Confident learning's label issues dropped before training (``mode: cleanlab``).

    Options:
        folds: cross-validation folds (default 4).
        fold_epochs: epochs of each fold model (None: the run's).
        filter_by: ``find_label_issues``'s rule (default ``prune_by_noise_rate``).
    """

    @dataclass(frozen=True)
    class Options:
        folds: int = 4
        fold_epochs: int | None = None
        filter_by: str = "prune_by_noise_rate"
    selects_before_training = True

    @classmethod
    def check(cls, o) -> list[str]:
        p: list[str] = []
        f = o["folds"]
        expect(p, "folds", f, isinstance(f, int) and not isinstance(f, bool) and f >= 2, "an integer >= 2")
        e = o["fold_epochs"]
        expect(p, "fold_epochs", e, e is None or (isinstance(e, int) and e >= 1), "None or an integer >= 1")
        expect(p, "filter_by", o["filter_by"], o["filter_by"] in FILTERS, f"one of {FILTERS}")
        return p

    @classmethod
    def select(cls, context, options) -> dict:
        folds = int(options["folds"])
        epochs = int(options["fold_epochs"] or context.epochs)
        labels = np.asarray(context.labels)
        fold_of = stratified_folds(labels, folds=folds, seed=context.seed)  # (N,)
        probs = np.zeros((len(labels), context.num_classes), dtype=np.float64)  # (N, K)
        cv_dir = context.run_dir / "cleanlab"
        for k in range(folds):
            held = np.flatnonzero(fold_of == k)
            probs[held] = _fold_probs(context, fold_of != k, held, cv_dir / f"fold{k}", k, folds, epochs)
        issues = quality = None
        if context.is_main:  # the same training set on every process: rank 0's
            issues = cleanlab_label_issues(labels, probs, filter_by=options["filter_by"])
            quality = _label_quality(labels, probs)
            np.save(cv_dir / "out_of_sample_probs.npy", probs.astype(np.float32))
            np.save(cv_dir / "label_issues.npy", issues)
        issues, quality = context.broadcast((issues, quality))
        context.log(f"[bold]cleanlab[/]: {int(issues.sum())} label issues dropped")
        return {"keep": ~issues, "suspicion": 1.0 - quality, "suggested": probs.argmax(1)}


def _fold_probs(context, train_mask, held, out, k: int, folds: int, epochs: int) -> np.ndarray:
    """Out-of-sample probabilities of fold ``k``, read back when a finished fold saved them."""
    saved = out / "heldout_probs.npy"
    if context.broadcast(saved.is_file() and (out / "summary.json").is_file()):
        return np.load(saved)
    context.log(f"[bold]cleanlab[/]: fold {k + 1}/{folds} ({len(held)} held out)")
    probs = context.heldout_probs(
        train_mask, held, run_dir=out, seed=context.seed * 100 + k, epochs=epochs
    )
    if context.is_main:
        np.save(saved, probs)
    return probs


def _label_quality(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(N,)`` cleanlab's self-confidence label-quality score (higher = more likely right)."""
    from cleanlab.rank import get_label_quality_scores

    probs = probs / probs.sum(axis=1, keepdims=True)
    return np.asarray(get_label_quality_scores(labels, probs), dtype=np.float32)
