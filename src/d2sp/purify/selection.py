"""What a mode that decides its training set before training (:attr:`~d2sp.purify.base.
Purifier.selects_before_training`) is given to decide it with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SelectionContext:
    """The run a selection is made for; built by the trainer.

    Attributes:
        labels: ``(N,)`` int64 annotation of the training split.
        num_classes: ``K``.
        seed: the run's seed.
        epochs: the run's number of epochs.
        run_dir: the run folder (a mode may keep its own files in a sub-folder).
        split: the training split (:class:`d2sp.data.registry.DatasetSplit`; ``root`` and
            ``samples`` say where it came from).
        dataset: the registered dataset name.
        heldout_probs: ``heldout_probs(train_mask (N,) bool, heldout (M,) int, *, run_dir,
            seed, epochs) -> (M, K)`` softmax of a plain model trained (or resumed) in
            ``run_dir`` on the samples of ``train_mask``, evaluated on ``heldout``.
        log: prints a line on the run's console (nothing on other processes).
        is_main: this process writes files (rank 0).
        broadcast: rank 0's value of any picklable object on every process.
    """

    labels: np.ndarray
    num_classes: int
    seed: int
    epochs: int
    run_dir: Path
    split: Any
    dataset: str
    heldout_probs: Callable[..., np.ndarray]
    log: Callable[[str], None]
    is_main: bool = True
    broadcast: Callable[[Any], Any] = lambda x: x
