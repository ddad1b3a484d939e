"""The loaders of a run's passes, whose worker processes stay up for the whole run.

A loader made per pass (:func:`~d2sp.training.loaders.make_loader`) starts its worker
processes when the pass starts, and the pass waits for its first batches while they start
and read them; on a large training set that wait comes back every epoch. A run's passes
instead go through two :class:`PassLoader` objects (:class:`RunLoaders`): one for the
training batches, one for the re-scoring and test batches. Each keeps its workers between
passes (``persistent_workers``), and the next epoch's training batches are planned, and
their first ones read, as soon as the purifier has decided that epoch's training set:
while the test pass, the checkpoint and the epoch's records run.

What a pass reads does not change: its batches are fixed when it is planned (the order
that a loader made for it with the same seed draws), and each item names the dataset and
the epoch it is read for, so that a worker made epochs ago reads it with that epoch's
augmentation (:class:`PassItems`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from d2sp.config import RunConfig, resolve_workers
from d2sp.training.badclips import BadClips, CheckedLoader, raise_failure, read_checked
from d2sp.training.distributed import SINGLE, DistInfo, ShardedBatchSampler
from d2sp.training.loaders import data_loader


class PassItems(Dataset):
    """Items of several datasets, asked for as ``(dataset, epoch, index)``: ``dataset[index]``
    of ``datasets[dataset]`` read at ``epoch`` (its :meth:`set_epoch` first; ``None`` for a
    dataset without epochs), or a :class:`~d2sp.training.badclips.Failure`."""

    def __init__(self, datasets: Sequence):
        self.datasets = list(datasets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, key: tuple[int, int | None, int]):
        which, epoch, index = key
        dataset = self.datasets[which]
        if epoch is not None and dataset.epoch != epoch:
            dataset.set_epoch(epoch)
        return read_checked(dataset, index)


class PassBatches(Sampler[list[tuple[int, int | None, int]]]):
    """The batch sampler of a :class:`PassLoader`: this process's batches of the pass
    planned last, as :class:`PassItems` keys, fixed when it is planned."""

    def __init__(self, batch_size: int, info: DistInfo = SINGLE):
        self.batch_size, self.info = int(batch_size), info
        self.sharded = ShardedBatchSampler(0, self.batch_size, world_size=info.world_size, rank=info.rank)
        self.batches: list[list[tuple[int, int | None, int]]] = []

    def plan(self, which: int, epoch: int | None, indices: np.ndarray, *, seed: int, shuffle: bool,
             drop_last: bool, pad_empty: bool) -> None:  # fmt: skip
        """Fix the batches over ``indices`` of dataset ``which`` at ``epoch``: the batches
        of ``make_loader(dataset, indices, shuffle=, seed=, drop_last=, pad_empty=)``."""
        gen = torch.Generator().manual_seed(seed)
        # a loader made for the pass draws its workers' seed from ``gen`` before the order
        torch.empty((), dtype=torch.int64).random_(generator=gen)
        self.sharded = ShardedBatchSampler(
            len(indices), self.batch_size, rank=self.info.rank, world_size=self.info.world_size,
            shuffle=shuffle, generator=gen, drop_last=drop_last, pad_empty=pad_empty,
        )  # fmt: skip
        positions = np.asarray(indices, dtype=np.int64).tolist()
        self.batches = [[(which, epoch, positions[p]) for p in share] for share in self.sharded]

    def __len__(self) -> int:
        return len(self.sharded)

    def share_sizes(self, step: int) -> tuple[int, int]:
        """See :meth:`ShardedBatchSampler.share_sizes`."""
        return self.sharded.share_sizes(step)

    def __iter__(self):
        return iter(self.batches)


class PassLoader(CheckedLoader):
    """Passes over the items of ``datasets`` through one DataLoader whose ``workers``
    processes stay up from the first pass to :meth:`close`: :meth:`plan` fixes the next
    pass's batches, :meth:`start` has the workers begin reading them, and iterating it runs
    the pass (started then if it was not), yielding what a :func:`make_loader` over the same
    items yields. Planning again drops a started pass that was not run."""

    def __init__(self, datasets: Sequence, *, batch_size: int, workers: int, info: DistInfo = SINGLE,
                 seed: int = 0):  # fmt: skip
        self.passes = PassBatches(batch_size, info)
        generator = torch.Generator().manual_seed(seed)  # the workers' seed
        loader = data_loader(PassItems(datasets), self.passes, generator, workers, persistent=True)
        super().__init__(loader, None, keep_empty=False)
        self._started = None

    def plan(self, which: int, indices: np.ndarray, *, epoch: int | None, seed: int = 0,
             shuffle: bool = False, drop_last: bool = False, pad_empty: bool = False,
             on_failed: Callable | None = None) -> PassLoader:  # fmt: skip
        """Fix the next pass (see :func:`~d2sp.training.loaders.make_loader` for the
        arguments; ``epoch`` is the one dataset ``which`` is read at); returns self."""
        self._started = None
        self.passes.plan(which, epoch, indices, seed=seed, shuffle=shuffle, drop_last=drop_last,
                         pad_empty=pad_empty)  # fmt: skip
        self.on_failed, self.keep_empty = on_failed or raise_failure, pad_empty
        return self

    def start(self) -> PassLoader:
        """Have the workers begin reading the planned pass's first batches now."""
        if self._started is None:
            self._started = iter(self.loader)
        return self

    def __iter__(self):
        batches = self.start()._started
        self._started = None
        return self.checked(batches)

    def close(self) -> None:
        """Stop the worker processes (a later pass starts them again)."""
        self._started = None
        running = getattr(self.loader, "_iterator", None)
        if running is not None:
            running._shutdown_workers()
            self.loader._iterator = None


TRAIN_LOADER, RESCORE, TEST = 0, 0, 1  # the datasets of each loader: (train,), (rescore, test)


class RunLoaders:
    """The passes of a run (see the module docstring): :meth:`train` (an epoch's training
    batches, planned ahead by :meth:`prefetch`), :meth:`rescore` and :meth:`test`, each
    without the samples found unreadable so far (``bad_clips``)."""

    def __init__(self, cfg: RunConfig, info: DistInfo, bad_clips: BadClips, *, train_ds,
                 rescore_ds, test_ds):  # fmt: skip
        self.cfg, self.bad_clips = cfg, bad_clips
        self.sizes = {"train": len(train_ds), "test": len(test_ds)}
        args = dict(batch_size=cfg.optim.batch_size, workers=resolve_workers(cfg.data.workers),
                    info=info, seed=cfg.seed)  # fmt: skip
        self.train_loader = PassLoader([train_ds], **args)
        self.eval_loader = PassLoader([rescore_ds, test_ds], **args)
        self.train_epochs = hasattr(train_ds, "set_epoch")  # augmentation drawn per epoch
        self.eval_datasets = (rescore_ds, test_ds)
        self._ahead: tuple[int, np.ndarray] | None = None  # (epoch, indices) prefetched

    def train(self, epoch: int, indices: np.ndarray):
        """The shuffled training batches of ``epoch`` over ``indices`` (every process takes
        part in every step): those :meth:`prefetch` planned when it planned the same."""
        indices = np.asarray(indices, dtype=np.int64)
        ahead, self._ahead = self._ahead, None
        if not len(indices):
            return []
        if ahead is None or ahead[0] != epoch or not np.array_equal(ahead[1], indices):
            self._plan_train(epoch, indices)
        return self.train_loader

    def prefetch(self, epoch: int, indices: np.ndarray) -> None:
        """Plan the training batches of ``epoch`` now and have the workers begin reading them
        (while the current epoch ends); :meth:`train` then runs them."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices):
            self._plan_train(epoch, indices).start()
            self._ahead = (epoch, indices.copy())

    def _plan_train(self, epoch: int, indices: np.ndarray) -> PassLoader:
        batch = self.cfg.optim.batch_size
        return self.train_loader.plan(
            TRAIN_LOADER, indices, epoch=epoch if self.train_epochs else None,
            seed=self.cfg.seed * 1000 + epoch, shuffle=True, drop_last=len(indices) > batch,
            pad_empty=True, on_failed=self.bad_clips.handler("train"),
        )  # fmt: skip

    def rescore(self, indices: np.ndarray) -> PassLoader:
        """Batches of the training samples ``indices`` in the views the purifier re-scores."""
        return self._plan_eval(RESCORE, "train", indices)

    def test(self) -> PassLoader:
        """Batches of the test clips not found unreadable so far."""
        return self._plan_eval(TEST, "test", np.arange(self.sizes["test"]))

    def _plan_eval(self, which: int, split: str, indices: np.ndarray) -> PassLoader:
        ds = self.eval_datasets[which]  # read at its epoch now (the test clips: always 0)
        return self.eval_loader.plan(
            which, self.bad_clips.keep(split, indices), epoch=getattr(ds, "epoch", None),
            seed=self.cfg.seed, on_failed=self.bad_clips.handler(split),
        )  # fmt: skip

    def close(self) -> None:
        """Stop every worker process of the run's loaders."""
        self._ahead = None
        self.train_loader.close()
        self.eval_loader.close()
