"""What every dataset builder returns (:class:`DatasetSplit`) and the helpers builders share."""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from d2sp.data.annotations import Sample
from d2sp.data.frames import DataError


@dataclass
class DatasetSplit:
    """One split of a dataset, ready for :class:`~d2sp.data.dataset.ClipDataset`.

    Attributes:
        samples: the clips; a sample's index is its position here, stable for the run.
        class_names: names of the 0-based classes, ``K = len(class_names)``.
        source: the frame reader for ``ClipDataset(source=...)``.
        skipped: one ``"file:row: reason"`` per row dropped under ``skip_bad``.
        name, root, split, fold: what was asked for.
        annotation_files: the files the samples came from (their content is part of a
            cache's fingerprint).
        ground_truth: for a dataset with known noise (SynthDFER's training split), ``(N,)``
            arrays ``low_quality``, ``true_label``, ``given_label``, ``mislabeled``; else None.
    """

    name: str
    root: str
    split: str
    fold: int | None
    samples: list[Sample]
    class_names: tuple[str, ...]
    source: object
    skipped: list[str] = field(default_factory=list)
    annotation_files: list[str] = field(default_factory=list)
    ground_truth: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 annotated labels."""
        return np.array([s.label for s in self.samples], dtype=np.int64)


def class_counts(split: DatasetSplit) -> dict[str, int]:
    """Clips per class name, in class order (zeros included)."""
    counts = np.bincount(split.labels, minlength=split.num_classes) if len(split) else None
    return {
        name: int(counts[i]) if counts is not None else 0
        for i, name in enumerate(split.class_names)
    }


def require_fold(name: str, fold: int | None, *, folds: int = 5) -> int:
    """Validate a dataset's fold number (1..folds)."""
    if fold is None:
        raise ValueError(
            f"{name}: fold is required (the official protocol has folds 1..{folds}), got None"
        )
    if isinstance(fold, bool) or not isinstance(fold, int | np.integer) or not 1 <= fold <= folds:
        raise ValueError(f"{name}: fold expected an integer in 1..{folds}, got {fold!r}")
    return int(fold)


def format_name(template: str | PathLike, *, split: str, fold: int | None) -> str:
    """Fill ``{split}`` and ``{fold}`` in a file name template."""
    text = str(template)
    if "{fold}" in text and fold is None:
        raise ValueError(f"{text!r} needs a fold ('{{fold}}'), but fold is None")
    return text.replace("{split}", split).replace("{fold}", str(fold))


def pick_split_file(split: str, split_file, train_split_file, test_split_file):
    """The split file option that names ``split``'s file: ``train_split_file`` or
    ``test_split_file`` when given, else ``split_file`` (None: the official one)."""
    chosen = train_split_file if split == "train" else test_split_file
    return chosen if chosen is not None else split_file


def resolve_file(path: str | PathLike, root: Path, *, what: str) -> Path:
    """An annotation file given absolute, relative to ``root`` or to the working directory."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [root / p, p]
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(f"{what}: file not found (looked for {looked})")
