"""Batches for the trainer: this process's share of seeded global batches, and model inputs."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from d2sp.data.dataset import normalize_clips
from d2sp.training.badclips import CheckedCollate, CheckedItems, CheckedLoader
from d2sp.training.distributed import SINGLE, DistInfo, ShardedBatchSampler


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


PREFETCH = 2  # batches each DataLoader worker prepares ahead (the DataLoader's default)


def data_loader(items, batches, generator: torch.Generator, workers: int, *, persistent=False):
    """The DataLoader of the trainer's loaders over ``items`` (a :class:`CheckedItems`) in the
    batches of the batch sampler ``batches``: pinned batches on CUDA, whose clips ``workers``
    processes stack into shared buffers they reuse (pinned batches are copied as they
    arrive); ``persistent`` keeps the worker processes between passes. ``generator`` gives
    the workers' seed (the global RNG is never drawn from)."""
    pin = torch.cuda.is_available()
    reuse = PREFETCH + 2 if pin and workers > 0 else 0
    return DataLoader(
        items,
        batch_sampler=batches,
        generator=generator,
        num_workers=workers,
        collate_fn=CheckedCollate(reuse),
        pin_memory=pin,
        prefetch_factor=PREFETCH if workers > 0 else None,
        persistent_workers=persistent and workers > 0,
    )


def make_loader(
    dataset,
    indices: np.ndarray | None,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    workers: int,
    drop_last: bool = False,
    info: DistInfo = SINGLE,
    pad_empty: bool = False,
    on_failed: Callable[[list[tuple[int, str]]], None] | None = None,
) -> CheckedLoader:
    """This process's batches over ``dataset`` (or its ``indices``): its share of global
    batches of ``batch_size`` in one seeded order (:class:`ShardedBatchSampler`); every batch
    is ``(clips (B, T, C, H, W) uint8, labels (B,), indices (B,))``.

    An item whose read raises a DataError is left out of its batch and passed, as ``(index,
    message)``, to ``on_failed`` (default: raise a DataError naming it, in this process, with
    no worker traceback); see :mod:`d2sp.training.badclips`. A batch that lost every item
    is still yielded (empty) with ``pad_empty``, skipped otherwise."""
    gen = torch.Generator().manual_seed(seed)
    n = len(dataset) if indices is None else len(indices)
    batches = ShardedBatchSampler(
        n,
        batch_size,
        rank=info.rank,
        world_size=info.world_size,
        shuffle=shuffle,
        generator=gen,
        drop_last=drop_last,
        pad_empty=pad_empty,
    )
    items = CheckedItems(dataset)
    loader = data_loader(
        Subset(items, indices.tolist()) if indices is not None else items, batches, gen, workers
    )  # (the loader draws its worker seed from ``gen`` before the first batch)
    return CheckedLoader(loader, on_failed, keep_empty=pad_empty)


def to_inputs(clips: torch.Tensor, model: torch.nn.Module, device: torch.device) -> torch.Tensor:
    """uint8 clips of a batch -> normalised clips ``(B, T, C, H, W)`` in the model's dtype."""
    dtype = next(model.parameters()).dtype
    x = normalize_clips(clips.to(device, non_blocking=True), dtype)  # (B, T, C, H, W)
    if device.type == "cpu":  # oneDNN's CPU convolutions: contiguous is as fast, and its
        x = x.contiguous()  # channels-last backward corrupts the heap on narrow layers
    return x
