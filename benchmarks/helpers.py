"""What the benchmarks share: log lines, the CPUs a process may use, the CPU time of a
process, dropping files from the page cache, WAR/UAR of predictions and the AUROC of a suspicion score.

WAR/UAR and precision/recall are the package's (:mod:`d2sp.training.metrics`); this module
only adapts them to arrays of predictions.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]  # the checkout


def log(msg: str) -> None:
    """One time-stamped line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drop_pages(paths) -> None:
    """Drop the page-cache pages of ``paths`` (files, or every file under a folder), written
    back first (``POSIX_FADV_DONTNEED``: no root needed)."""
    for root in map(Path, paths):
        files = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
        for p in files:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def war_uar(pred, true, num_classes: int) -> tuple[float, float]:
    """WAR and UAR of predictions ``pred (M,)`` against ``true (M,)`` (classes absent from
    ``true`` are left out of UAR), through the package's confusion matrix."""
    from d2sp.training.metrics import confusion_matrix
    from d2sp.training.metrics import war_uar as of_matrix

    cm = confusion_matrix(torch.as_tensor(np.asarray(pred)), torch.as_tensor(np.asarray(true)), num_classes)
    return of_matrix(cm)


def auroc(score, positive) -> float:
    """Area under the ROC curve of ``score (N,)`` (higher = more suspicious) for the samples
    ``positive (N,)``; a sample never scored (NaN) counts as the least suspicious. NaN when
    every sample, or none, is positive."""
    from sklearn.metrics import roc_auc_score

    score, positive = np.asarray(score, dtype=float), np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return float("nan")
    finite = np.isfinite(score)
    low = score[finite].min() - 1.0 if finite.any() else 0.0
    return float(roc_auc_score(positive, np.where(finite, score, low)))
