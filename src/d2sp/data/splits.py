"""From a run's data config to the train or test split it names."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from d2sp.data.annotations import DFER_CLASSES, read_list_file
from d2sp.data.dataset import FolderSource
from d2sp.data.registry import DatasetSplit, create_dataset


def cache_dir() -> Path:
    """The user cache folder: ``$D2SP_CACHE`` or ``~/.cache/d2sp``."""
    return Path(os.environ.get("D2SP_CACHE", Path.home() / ".cache" / "d2sp"))


def synthdfer_root(options: dict) -> Path:
    """Where SynthDFER with these generator options (and version) lives in the cache folder."""
    from d2sp.data.synth import SYNTH_VERSION

    key = {k: v for k, v in sorted(options.items()) if k not in ("workers", "progress")}
    key["version"] = SYNTH_VERSION
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir() / f"synthdfer-{digest}"


def load_synthdfer(root: str | Path | None, split: str, options: dict, *, progress=True):
    """Generate SynthDFER once (cached) and read one of its splits."""
    from d2sp.data.synth import generate_synthdfer

    root = Path(root) if root else synthdfer_root(options)
    opts = {"progress": progress, **options}
    generate_synthdfer(root, **opts)
    samples = read_list_file(root / f"{split}_list.txt", root=root)
    return DatasetSplit(
        name="synthdfer",
        root=str(root),
        split=split,
        fold=None,
        samples=samples,
        class_names=DFER_CLASSES,
        source=FolderSource(),
        annotation_files=[str(root / f"{split}_list.txt")],
    )


def load_split(data_cfg, split: str, *, progress: bool = True):
    """The ``split`` ("train" or "test") of the dataset a :class:`DataConfig` names.

    ``synthdfer`` is generated into the cache folder on first use; every other name goes
    through :func:`d2sp.data.registry.create_dataset` (packed into a clip cache under
    ``data.cache/<split>`` when ``data.cache`` is set).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if data_cfg.dataset == "synthdfer":
        return load_synthdfer(data_cfg.root, split, data_cfg.options, progress=progress)
    if data_cfg.root is None:
        raise ValueError(f"data.root: dataset {data_cfg.dataset!r} needs a root folder")
    return create_dataset(
        data_cfg.dataset,
        root=data_cfg.root,
        split=split,
        fold=data_cfg.fold,
        skip_bad=data_cfg.skip_bad,
        cache_dir=None if data_cfg.cache is None else Path(data_cfg.cache) / split,
        cache_size=data_cfg.size,
        **data_cfg.options,
    )
