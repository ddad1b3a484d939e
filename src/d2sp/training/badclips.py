"""Clips that turn out unreadable while a run reads them (a truncated frame or a corrupt
video that the load-time check did not reach, a damaged cache shard).

The trainer's loaders read through :class:`CheckedItems`: an item whose read raises a
:class:`~d2sp.data.frames.DataError` comes back as a :class:`Failure` (no exception inside a
DataLoader worker), :func:`collate_checked` leaves it out of its batch and hands it to the
loader's ``on_failed``, and the batch goes on without it. The run's :class:`BadClips`
decides what a failure means:

- with ``data.skip_bad``: the sample is skipped when it is met, recorded as
  ``"file:row: reason (met at epoch E)"`` (``skipped.txt``, ``summary.json``, the report)
  and left out of every later epoch, re-scoring pass and evaluation;
- without it: a :class:`DataError` naming the file and row and saying that ``--skip-bad``
  would skip it, raised in the main process.

In a multi-process run every process reports what it met at the same points of an epoch
(:meth:`BadClips.sync`), so that all of them skip the same samples, or all stop with the
same error: none is left waiting in a collective. A batch share that lost every sample
still takes part in its training step, with a zero-weighted stand-in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from d2sp.data.frames import DataError
from d2sp.training.distributed import SINGLE, DistInfo, all_gather_object

SPLITS = ("train", "test")
HINT = "--skip-bad (data.skip_bad=true) would skip this sample and list it in skipped.txt"


@dataclass(frozen=True)
class Failure:
    """An item that could not be read: its dataset index and the error's message."""

    index: int
    message: str


class CheckedItems(Dataset):
    """``dataset[i]``, or a :class:`Failure` where reading it raises a DataError."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return read_checked(self.dataset, index)


def read_checked(dataset, index: int):
    """``dataset[index]``, or a :class:`Failure` where reading it raises a DataError."""
    try:
        return dataset[index]
    except DataError as e:
        return Failure(int(index), str(e))


class CheckedCollate:
    """``collate(items) -> (clips, labels, indices, failed)``: the readable items collated as
    usual (empty tensors when none is) and ``failed``, ``[(index, message)]`` of the others.

    With ``reuse=R > 0``, a DataLoader worker stacks the clips of its batches into a ring of
    ``R`` shared-memory tensors that it allocates once and then reuses, instead of a new
    shared-memory tensor per batch (whose pages the kernel must map and zero every time: about
    15 ms for a batch of 32 clips of 16×112² on a 2-core VM, a third of what a worker spends
    on a clip of the raw cache). A worker overwrites a buffer ``R`` batches after it sent it,
    so the consumer must be done with a batch before the worker gets that far: true when the
    DataLoader pins memory (its pinning thread copies each batch as it arrives; a worker is
    never handed more than ``prefetch_factor`` batches that the loader has not yet returned),
    with ``R >= prefetch_factor + 1``. :func:`~d2sp.training.loaders.make_loader` turns it on
    only then. In the main process (no workers) it collates as usual.
    """

    def __init__(self, reuse: int = 0):
        self.reuse = int(reuse)
        self._pid: int | None = None
        self._ring: list[torch.Tensor | None] = []
        self._count = 0

    def __getstate__(self):
        return {"reuse": self.reuse, "_pid": None, "_ring": [], "_count": 0}

    def __call__(self, items: list) -> tuple:
        good = [x for x in items if not isinstance(x, Failure)]
        failed = [(f.index, f.message) for f in items if isinstance(f, Failure)]
        if not good:
            clips = torch.zeros(0, dtype=torch.uint8)
            labels = indices = torch.zeros(0, dtype=torch.long)
        elif self.reuse > 0 and get_worker_info() is not None:
            clips = self._stack([x[0] for x in good])
            labels, indices = default_collate([x[1:] for x in good])
        else:
            clips, labels, indices = default_collate(good)
        return clips, labels, indices, failed

    def _stack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """``torch.stack(tensors)`` into the ring's next shared buffer (made on first use, or
        again when the batch has another shape)."""
        if self._pid != os.getpid():
            self._pid, self._ring, self._count = os.getpid(), [None] * self.reuse, 0
        first = tensors[0]
        shape = (len(tensors), *first.shape)
        slot = self._count % self.reuse
        self._count += 1
        buf = self._ring[slot]
        if buf is None or buf.shape != shape or buf.dtype != first.dtype:
            storage = first._typed_storage()._new_shared(math.prod(shape), device=first.device)
            buf = first.new(storage).resize_(shape)
            self._ring[slot] = buf
        return torch.stack(tensors, out=buf)


collate_checked = CheckedCollate()  # no reuse: safe for any consumer


def raise_failure(failed: list[tuple[int, str]]) -> None:
    """The ``on_failed`` of a loader that has no run to report to."""
    raise DataError(f"{failed[0][1]}; {HINT}")


class CheckedLoader:
    """Iterates a DataLoader over :class:`CheckedItems`, yielding ``(clips, labels,
    indices)``; the failures of each batch go to ``on_failed`` first. A batch left empty is
    yielded only with ``keep_empty`` (a training step every process must take)."""

    def __init__(self, loader, on_failed: Callable | None, *, keep_empty: bool):
        self.loader = loader
        self.on_failed = on_failed or raise_failure
        self.keep_empty = keep_empty

    @property
    def batch_sampler(self):
        return self.loader.batch_sampler

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return self.checked(iter(self.loader))

    def checked(self, batches):
        """``(clips, labels, indices)`` of the DataLoader iterator ``batches``, the failures
        of each batch passed to ``on_failed`` first."""
        for clips, labels, indices, failed in batches:
            if failed:
                self.on_failed([(int(i), str(m)) for i, m in failed])
            if len(indices) or self.keep_empty:
                yield clips, labels, indices


@dataclass
class BadClips:
    """The samples of a run found unreadable while it reads them (see the module docstring).

    Attributes:
        skip_bad: skip them (else the first one stops the run).
        info: this process's world.
        epoch: the 0-based epoch being run (for the records).
        lines: ``"file:row: reason (met at epoch E)"`` of every sample skipped so far.
        excluded: ``{"train": set, "test": set}`` of skipped dataset indices.
    """

    skip_bad: bool = False
    info: DistInfo = SINGLE
    epoch: int = 0
    lines: list[str] = field(default_factory=list)
    excluded: dict[str, set[int]] = field(default_factory=lambda: {s: set() for s in SPLITS})
    _pending: list[tuple[str, int, str, int]] = field(default_factory=list)

    def handler(self, split: str) -> Callable[[list[tuple[int, str]]], None]:
        """The ``on_failed`` of a loader over ``split``'s samples."""
        return lambda failed: self.met(split, failed)

    def met(self, split: str, failed: list[tuple[int, str]]) -> None:
        """Failures met in one batch: raised at once in a single process without
        ``skip_bad``, else kept for :meth:`sync`."""
        for index, message in failed:
            if index in self.excluded[split]:
                continue
            if not self.skip_bad and not self.info.enabled:
                raise DataError(f"{message} (met at epoch {self.epoch + 1}); {HINT}")
            self._pending.append((split, index, message, self.epoch))

    def sync(self) -> list[str]:
        """Combine the failures every process met since the last call (every process calls
        this at the same point) and skip them; returns the new lines.

        Raises:
            DataError: without ``skip_bad``, for the first failure (on every process).
        """
        gathered = all_gather_object(self._pending)
        self._pending = []
        new = []
        for split, index, message, epoch in sorted({t for part in gathered for t in part}):
            if index in self.excluded[split]:
                continue
            if not self.skip_bad:
                raise DataError(f"{message} (met at epoch {epoch + 1}); {HINT}")
            self.excluded[split].add(index)
            new.append(f"{message} (met at epoch {epoch + 1})")
        self.lines += new
        return new

    def keep(self, split: str, indices) -> np.ndarray:
        """``indices`` (int64) without the skipped samples of ``split``."""
        indices = np.asarray(indices, dtype=np.int64)
        if not self.excluded[split]:
            return indices
        gone = np.fromiter(self.excluded[split], dtype=np.int64)
        return indices[~np.isin(indices, gone)]

    def state_dict(self) -> dict:
        """Plain values for a checkpoint."""
        excluded = {split: sorted(indices) for split, indices in self.excluded.items()}
        return {"lines": list(self.lines), "excluded": excluded}

    def load_state_dict(self, state: dict) -> None:
        self.lines = list(state.get("lines", []))
        for split in SPLITS:
            self.excluded[split] = {int(i) for i in state.get("excluded", {}).get(split, [])}
