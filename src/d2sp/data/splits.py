"""From a run's data config to the train or test split it names, and the check that the
two splits are not the same clips."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from d2sp.data.common import DatasetSplit
from d2sp.data.registry import create_dataset, dataset_options
from d2sp.data.validate import DataWarning

# options naming an annotation file: (any split, train only, test only)
FILE_OPTIONS = (
    ("list_file", "train_list", "test_list"),
    ("csv_file", "train_csv", "test_csv"),
    ("split_file", "train_split_file", "test_split_file"),
)
ALLOW = "data.allow_shared_test=true"


class SharedTestError(ValueError):
    """The test split would repeat the training clips (test figures on training data)."""


def load_split(data_cfg, split: str, *, progress: bool = True) -> DatasetSplit:
    """The ``split`` ("train" or "test") of the dataset a :class:`~d2sp.config.DataConfig`
    names, through :func:`d2sp.data.registry.create_dataset` (packed into a clip cache under
    ``data.cache/<split>`` when ``data.cache`` is set; a generated dataset such as
    ``synthdfer`` is generated on first use).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    return create_dataset(
        data_cfg.dataset,
        root=data_cfg.root,
        split=split,
        fold=data_cfg.fold,
        skip_bad=data_cfg.skip_bad,
        cache_dir=None if data_cfg.cache is None else Path(data_cfg.cache) / split,
        cache_size=data_cfg.size,
        cache_codec=data_cfg.cache_codec,
        progress=progress,
        **data_cfg.options,
    )


def _fill(template: str, split: str, fold) -> str:
    return str(template).replace("{split}", split).replace("{fold}", str(fold))


def _file_groups(data_cfg):
    """The option groups of :data:`FILE_OPTIONS` the dataset reads (FERV39k reads
    ``split_file`` only without ``list_file``)."""
    if data_cfg.dataset == "ferv39k" and data_cfg.options.get("list_file") is not None:
        return FILE_OPTIONS[:1]
    return FILE_OPTIONS


def shared_file_problem(data_cfg) -> str | None:
    """Why the data options make the training annotation file the test file too (None when
    they do not): an option without ``{split}`` that serves both splits, or a train and a
    test option naming one file."""
    options = data_cfg.options
    try:
        takes = dataset_options(data_cfg.dataset)
    except ValueError:  # an unknown dataset: refused elsewhere, by name
        takes = None
    for any_key, train_key, test_key in _file_groups(data_cfg):
        if takes is not None and train_key not in takes:
            train_key = test_key = None  # never suggest an option the dataset does not take
        train = options.get(train_key) if train_key else None
        test = options.get(test_key) if test_key else None
        train = train if train is not None else options.get(any_key)
        test = test if test is not None else options.get(any_key)
        if train is None or test is None:
            continue
        if _fill(train, "train", data_cfg.fold) != _fill(test, "test", data_cfg.fold):
            continue
        if options.get(train_key) is None and options.get(test_key) is None:
            example = Path(str(train))
            named = f"{example.stem}_{{split}}{example.suffix}"
            return (
                f"data.options.{any_key}={train!r} has no '{{split}}', so the training file "
                f"is also the test file and the test figures would be measured on training "
                f"data. Put {{split}} in the name ({any_key}={named!r} reads "
                f"{_fill(named, 'train', None)} and {_fill(named, 'test', None)}; {{fold}} is "
                f"filled in with data.fold)"
                + (f" or give {train_key}= and {test_key}=" if train_key else "")
            )
        return (
            f"data.options: the training and test annotation ({train_key or any_key}, "
            f"{test_key or any_key}) are the same file {_fill(train, 'train', data_cfg.fold)!r},"
            " so the test figures would be measured on training data. Name a separate test file"
        )
    return None


def _clip_key(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def check_shared_test(data_cfg, train: DatasetSplit | None, test: DatasetSplit | None) -> None:
    """Refuse (:class:`SharedTestError`) a test split that is the training split, or whose
    clips are at least half training clips, unless ``data.allow_shared_test``; a smaller
    overlap is one DataWarning naming how many clips are shared.

    Called with ``train=test=None`` it checks only the data options (before any file is read
    or a cache is built); with both splits it compares their clips.
    """
    if data_cfg.allow_shared_test:
        return
    if train is None or test is None:
        problem = shared_file_problem(data_cfg)
        if problem is not None:
            raise SharedTestError(f"{problem}; or set {ALLOW} to train anyway")
        return
    seen = {_clip_key(s.path) for s in train.samples}
    shared = [s for s in test.samples if _clip_key(s.path) in seen]
    if not shared:
        return
    what = (
        f"{len(shared)} of the {len(test.samples)} test clips are also training clips "
        f"(the training split has {len(train.samples)}; e.g. {shared[0].source or shared[0].path})"
    )
    if 2 * len(shared) >= len(test.samples):
        raise SharedTestError(
            f"data: {what}, so the test figures would be measured on training data. Give the "
            "test split its own annotation (an option naming the file takes '{split}', e.g. "
            f"list_file='clips_{{split}}.txt'), or set {ALLOW} to train anyway"
        )
    warnings.warn(
        f"data: {what}; their test figures are on training data", DataWarning, stacklevel=2
    )
