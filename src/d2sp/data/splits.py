"""From a run's data config to the train or test split it names."""

from __future__ import annotations

from pathlib import Path

from d2sp.data.common import DatasetSplit
from d2sp.data.registry import create_dataset


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
        progress=progress,
        **data_cfg.options,
    )
