"""Dataset registry: a plain dict from a stable name to a builder of a :class:`DatasetSplit`.

>>> from d2sp.data.registry import create_dataset, class_counts
>>> split = create_dataset("dfew", root="/data/DFEW", split="train", fold=1)
>>> class_counts(split)  # {'happiness': ..., 'sadness': ..., ...}

A builder takes explicit keyword arguments only: ``root``, ``split``, ``fold``,
``skip_bad`` and its own options (``frames=``, ``list_file=`` …), and returns a
:class:`DatasetSplit`. Registered (by importing :mod:`d2sp.data`): ``dfew``, ``ferv39k``,
``mafw``, ``list``, ``csv`` and ``synthdfer``. A dataset that generates itself (SynthDFER)
registers with ``default_root``: a function of its options giving the folder used when no
root is given; its builder creates the folder.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from os import PathLike
from pathlib import Path

from d2sp.data.common import DatasetSplit, class_counts  # noqa: F401  (re-exported)

SPLITS = ("train", "test")


DATASETS: dict[str, Callable[..., DatasetSplit]] = {}
DEFAULT_ROOTS: dict[str, Callable[[dict], Path]] = {}  # datasets that generate themselves
GROUND_TRUTH: set[str] = set()  # datasets whose training split has a noise ground truth


def register_dataset(
    name: str,
    *,
    default_root: Callable[[dict], Path] | None = None,
    ground_truth: bool = False,
) -> Callable[[Callable[..., DatasetSplit]], Callable[..., DatasetSplit]]:
    """Decorator registering a dataset builder under ``name`` (must be new).

    ``default_root(options)`` (a generated dataset): the folder used when ``root`` is None;
    ``ground_truth``: its training split carries :attr:`DatasetSplit.ground_truth`.
    """

    def decorator(fn: Callable[..., DatasetSplit]) -> Callable[..., DatasetSplit]:
        if name in DATASETS and DATASETS[name] is not fn:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        if default_root is not None:
            DEFAULT_ROOTS[name] = default_root
        if ground_truth:
            GROUND_TRUTH.add(name)
        return fn

    return decorator


def has_ground_truth(name: str) -> bool:
    """Whether dataset ``name``'s training split carries a noise ground truth."""
    return name in GROUND_TRUTH


def list_datasets() -> list[str]:
    """Sorted names of the registered datasets."""
    return sorted(DATASETS)


_COMMON = ("root", "split", "fold", "skip_bad", "progress")


def dataset_options(name: str) -> list[str] | None:
    """The builder-specific keyword options of dataset ``name`` (None: any, the builder
    checks them itself)."""
    params = inspect.signature(_builder(name)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [p for p in params if p not in _COMMON]


def _builder(name: str) -> Callable[..., DatasetSplit]:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(list_datasets()) or "(none)"
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def create_dataset(
    name: str,
    *,
    root: str | PathLike | None,
    split: str = "train",
    fold: int | None = None,
    skip_bad: bool = False,
    cache_dir: str | PathLike | None = None,
    cache_size: int = 112,
    cache_codec: str | None = None,
    progress: bool = False,
    **options,
) -> DatasetSplit:
    """Build split ``split`` (fold ``fold``) of the dataset registered under ``name``.

    Args:
        name: ``dfew``, ``ferv39k``, ``mafw``, ``list`` or ``csv`` (see :func:`list_datasets`).
        root: the dataset's folder, as distributed (None: the generated dataset's own).
        split: ``"train"`` or ``"test"``.
        fold: 1-5 for DFEW and MAFW; None where the dataset has no folds.
        skip_bad: drop bad rows (recorded in ``skipped``) instead of raising.
        cache_dir: when given, the split is packed into a clip cache there (built, or
            reused when still current; see :func:`d2sp.data.cache.prepare_cache`) and the
            returned split reads from it: same samples, labels and order.
        cache_size: frame size of that cache.
        cache_codec: its codec (``jpeg`` or ``raw``; None: ``prepare_cache``'s default).
        progress: show a progress bar where the builder has long work (generation).
        **options: the builder's own options (see :func:`dataset_options`).

    Raises:
        ValueError: unknown name, split or option (the message lists the known ones).
        DataError: bad input, naming the file and row.
    """
    builder = _builder(name)
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    known = dataset_options(name)
    unknown = [] if known is None else sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(known) or '(none)'}"
        )
    if root is None:
        if name not in DEFAULT_ROOTS:
            raise ValueError(f"data.root: dataset {name!r} needs a root folder")
        root = DEFAULT_ROOTS[name](options)
    root = Path(root)
    if name not in DEFAULT_ROOTS and not root.is_dir():
        raise ValueError(f"root: expected an existing folder, got {str(root)!r}")
    if "progress" in inspect.signature(builder).parameters:
        options = {**options, "progress": progress}
    result = builder(root=root, split=split, fold=fold, skip_bad=skip_bad, **options)
    result.name = name
    if cache_dir is not None:
        from d2sp.data.cache import load_cache, prepare_cache

        codec = {} if cache_codec is None else {"codec": cache_codec}
        prepare_cache(result, cache_dir, size=cache_size, progress=False, **codec)
        cached = load_cache(cache_dir)
        cached.ground_truth = result.ground_truth
        return cached
    return result



