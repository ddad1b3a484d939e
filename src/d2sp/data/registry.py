"""Dataset registry: a plain dict from a stable name to a builder of a :class:`DatasetSplit`.

>>> from d2sp.data.registry import create_dataset, class_counts
>>> split = create_dataset("dfew", root="/data/DFEW", split="train", fold=1)
>>> class_counts(split)  # {'happiness': ..., 'sadness': ..., ...}

A builder takes explicit keyword arguments only: ``root``, ``split``, ``fold``,
``skip_bad`` and its own options (``frames=``, ``list_file=`` …), and returns a
:class:`DatasetSplit`. Registered: ``dfew``, ``ferv39k``, ``mafw``, ``list``, ``csv``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from d2sp.data.annotations import Sample
from d2sp.data.frames import DataError

SPLITS = ("train", "test")


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

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 annotated labels."""
        return np.array([s.label for s in self.samples], dtype=np.int64)


DATASETS: dict[str, Callable[..., DatasetSplit]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., DatasetSplit]], Callable[..., DatasetSplit]]:
    """Decorator registering a dataset builder under ``name`` (must be new)."""

    def decorator(fn: Callable[..., DatasetSplit]) -> Callable[..., DatasetSplit]:
        if name in DATASETS and DATASETS[name] is not fn:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        return fn

    return decorator


def list_datasets() -> list[str]:
    """Sorted names of the registered datasets."""
    return sorted(DATASETS)


def dataset_options(name: str) -> list[str]:
    """The builder-specific keyword options of dataset ``name``."""
    builder = _builder(name)
    common = {"root", "split", "fold", "skip_bad"}
    return [p for p in inspect.signature(builder).parameters if p not in common]


def _builder(name: str) -> Callable[..., DatasetSplit]:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(list_datasets()) or "(none)"
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def create_dataset(
    name: str,
    *,
    root: str | PathLike,
    split: str = "train",
    fold: int | None = None,
    skip_bad: bool = False,
    cache_dir: str | PathLike | None = None,
    cache_size: int = 112,
    **options,
) -> DatasetSplit:
    """Build split ``split`` (fold ``fold``) of the dataset registered under ``name``.

    Args:
        name: ``dfew``, ``ferv39k``, ``mafw``, ``list`` or ``csv`` (see :func:`list_datasets`).
        root: the dataset's folder, as distributed.
        split: ``"train"`` or ``"test"``.
        fold: 1-5 for DFEW and MAFW; None where the dataset has no folds.
        skip_bad: drop bad rows (recorded in ``skipped``) instead of raising.
        cache_dir: when given, the split is packed into a clip cache there (built, or
            reused when still current; see :func:`d2sp.data.cache.prepare_cache`) and the
            returned split reads from it: same samples, labels and order.
        cache_size: frame size of that cache.
        **options: the builder's own options (see :func:`dataset_options`).

    Raises:
        ValueError: unknown name, split or option (the message lists the known ones).
        DataError: bad input, naming the file and row.
    """
    builder = _builder(name)
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    known = dataset_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(known) or '(none)'}"
        )
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root: expected an existing folder, got {str(root)!r}")
    result = builder(root=root, split=split, fold=fold, skip_bad=skip_bad, **options)
    result.name = name
    if cache_dir is not None:
        from d2sp.data.cache import load_cache, prepare_cache

        prepare_cache(result, cache_dir, size=cache_size, progress=False)
        return load_cache(cache_dir)
    return result


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


def resolve_file(path: str | PathLike, root: Path, *, what: str) -> Path:
    """An annotation file given absolute, relative to ``root`` or to the working directory."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [root / p, p]
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(f"{what}: file not found (looked for {looked})")


# Registration of the shipped builders (they import this module's names defined above).
from d2sp.data import dfew, ferv39k, generic, mafw  # noqa: E402,F401
