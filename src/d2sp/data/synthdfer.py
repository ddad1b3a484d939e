"""The ``synthdfer`` dataset: SynthDFER generated once into the user cache folder (or a given
root) and read back like any list-format dataset, its training split with its ground truth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from d2sp.data.annotations import read_list_file
from d2sp.data.checked import user_cache_dir
from d2sp.data.common import DatasetSplit
from d2sp.data.dataset import FolderSource
from d2sp.data.labels import DFER_CLASSES
from d2sp.data.registry import register_dataset
from d2sp.data.synth import SYNTH_VERSION, generate_synthdfer, load_ground_truth

_NOT_PART_OF_THE_DATA = ("workers", "progress")


def cache_dir() -> Path:
    """The user cache folder: ``$D2SP_CACHE`` or ``~/.cache/d2sp``."""
    return user_cache_dir()


def synthdfer_root(options: dict) -> Path:
    """Where SynthDFER with these generator options (and version) lives in the cache folder."""
    key = {k: v for k, v in sorted(options.items()) if k not in _NOT_PART_OF_THE_DATA}
    key["version"] = SYNTH_VERSION
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir() / f"synthdfer-{digest}"


@register_dataset("synthdfer", default_root=synthdfer_root, ground_truth=True)
def synthdfer(
    *,
    root: Path,
    split: str,
    fold: int | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    **generator_options,
) -> DatasetSplit:
    """SynthDFER's ``split``, generated under ``root`` first if it is not there yet.

    ``generator_options`` are :func:`d2sp.data.synth.generate_synthdfer`'s (``num_train``,
    ``num_test``, ``size``, noise rates, ``seed``, ``workers``); the same options always
    give the same clips. SynthDFER has no folds and no bad rows (``fold``, ``skip_bad``
    are accepted for a uniform call).
    """
    if fold is not None:
        raise ValueError(f"synthdfer: has no folds, got fold {fold!r}")
    generate_synthdfer(root, progress=progress, **generator_options)
    listing = root / f"{split}_list.txt"
    samples = read_list_file(listing, root=root)
    truth = load_ground_truth(root, split="train") if split == "train" else None
    return DatasetSplit(
        name="synthdfer",
        root=str(root),
        split=split,
        fold=None,
        samples=samples,
        class_names=DFER_CLASSES,
        source=FolderSource(),
        annotation_files=[str(listing)],
        ground_truth=truth,
    )
