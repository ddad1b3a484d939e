"""The clip dataset: annotation rows -> ``(clip, label, index)`` training items."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from d2sp.data.annotations import Sample
from d2sp.data.frames import DataError, list_frames, read_frames
from d2sp.data.sampling import segment_indices
from d2sp.data.transforms import clip_to_tensor


class FolderSource:
    """Reads clips stored as folders of frame images."""

    def read(self, sample: Sample, *, num_segments: int, train: bool, rng) -> np.ndarray:
        """``(num_segments, H, W, 3)`` uint8 frames sampled by segments."""
        names = list_frames(sample.path)
        idx = segment_indices(len(names), num_segments, train=train, rng=rng)
        return read_frames(sample.path, names, idx)


class ClipDataset(Dataset):
    """Clips of an annotation as ``(clip (T, 3, S, S) float32, label int, index int)``.

    ``index`` is the row's position in the annotation, stable for the whole run. Sampling
    (16 segments by default), cropping and flipping draw from a generator seeded by
    ``(seed, epoch, index)``, so a run is reproducible whatever the worker count; call
    :meth:`set_epoch` before each epoch.

    Args:
        samples: annotation rows.
        num_frames: frames per clip ``T``.
        size: output side ``S``.
        train: random segment offsets, random resized crop and flip; else segment
            centres and a plain resize.
        source: the frame reader (default: frame folders).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        num_frames: int = 16,
        size: int = 112,
        train: bool,
        seed: int = 0,
        crop_scale: tuple[float, float] = (0.8, 1.0),
        flip: bool = True,
        source=None,
    ):
        if not samples:
            raise ValueError("samples: expected at least one annotation row, got none")
        self.samples = list(samples)
        self.num_frames, self.size, self.train = num_frames, size, train
        self.seed, self.epoch = seed, 0
        self.crop_scale, self.flip = crop_scale, flip
        self.source = source if source is not None else FolderSource()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 given labels."""
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index, int(self.train)])
        try:
            frames = self.source.read(
                sample, num_segments=self.num_frames, train=self.train, rng=rng
            )  # (T, H, W, 3)
        except DataError as e:
            raise DataError(f"{sample.source or sample.path}: {e}") from None
        clip = clip_to_tensor(
            frames,
            size=self.size,
            train=self.train,
            rng=rng,
            crop_scale=self.crop_scale,
            flip=self.flip,
        )  # (T, 3, S, S)
        return clip, sample.label, index
