"""The suite's training loops: an optimiser, batch size, schedule and augmentation, and the
batches :func:`d2sp.run_epoch` takes.

``sgd`` (the suite's): images SGD momentum 0.9, lr 0.05, batch 64, cosine over the run,
±2 px shifts and contrast jitter; clips Adam lr 2e-3, batch 32, cosine, shifts, flips and
contrast jitter. ``adam`` (another loop, for the generalisation check): Adam lr 1e-3, batch
128, no schedule, ±1 px shifts, random erasing and pixel noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RESCORE_BATCH = 512


@dataclass
class Loop:
    """An optimiser, batch size, schedule and augmentation (see the module docstring)."""

    name: str
    optim: str
    batch_size: int
    lr: float
    schedule: bool = True

    @staticmethod
    def for_data(data, name: str) -> Loop:
        if name == "adam":
            return Loop("adam", "adam", 128, 1e-3, schedule=False)
        if name != "sgd":
            raise ValueError(f"loop: expected sgd or adam, got {name!r}")
        if data.video:
            return Loop("sgd", "adam", 32, 2e-3)
        return Loop("sgd", "sgd", 64, 0.05)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        if self.optim == "adam":
            return torch.optim.Adam(model.parameters(), lr=self.lr)
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)

    def scheduler(self, opt: torch.optim.Optimizer, epochs: int, samples: int):
        """Cosine to 0 over ``epochs`` epochs of ``samples`` samples (None: no schedule)."""
        if not self.schedule:
            return None
        total = max(1, epochs * (samples // self.batch_size))
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, s / total))))

    def augment(self, x: torch.Tensor, gen: torch.Generator, video: bool) -> torch.Tensor:
        if self.name == "adam":
            return _erase_and_noise(_flip(_shift(x, gen, 1), gen, video), gen)
        return _contrast(_flip(_shift(x, gen, 2), gen, video), gen)

    def batches(self, x: torch.Tensor, gen: torch.Generator, video: bool, rescore_view: str):
        """``(train_batches, rescore_batches)`` for :func:`d2sp.run_epoch` over the inputs
        ``x (N, ...)``: training batches shuffled and augmented (the last partial batch
        left out); re-scoring batches in order, augmented only where the purifier's
        ``rescore_view`` is ``"train"``."""

        def train(indices: np.ndarray):
            order = torch.as_tensor(indices)[torch.randperm(len(indices), generator=gen)]  # (M,)
            for i in range(0, max(1, len(order) - self.batch_size + 1), self.batch_size):
                idx = order[i : i + self.batch_size]  # (B,)
                if len(idx) >= 2:
                    yield self.augment(x[idx], gen, video), idx

        def rescore(indices: np.ndarray):
            for idx in torch.as_tensor(indices).split(RESCORE_BATCH) if len(indices) else ():
                yield (self.augment(x[idx], gen, video) if rescore_view == "train" else x[idx]), idx

        return train, rescore


def _shift(x: torch.Tensor, gen: torch.Generator, pad: int) -> torch.Tensor:
    """Random translation of ``(B, ..., H, W)`` by up to ``pad`` px (the same over frames)."""
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    flat = x.reshape(b, -1, h, w)  # (B, C', H, W)
    xp = F.pad(flat, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    ch = torch.arange(flat.shape[1])[None, :, None, None]
    return xp[torch.arange(b)[:, None, None, None], ch, rows, cols].reshape(x.shape)


def _flip(x: torch.Tensor, gen: torch.Generator, video: bool) -> torch.Tensor:
    if not video:
        return x
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1, 1), x.flip(-1), x)


def _contrast(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Contrast towards the median, factor in [0.15, 1], half of the samples."""
    b = x.shape[0]
    shape = (b,) + (1,) * (x.ndim - 1)
    med = x.flatten(1).median(dim=1).values.view(shape)
    c = 0.15 + 0.85 * torch.rand(b, generator=gen)
    c = torch.where(torch.rand(b, generator=gen) < 0.5, c, torch.ones_like(c)).view(shape)
    return med + c * (x - med)


def _erase_and_noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A quarter-area block set to grey with probability 0.5, plus pixel noise σ = 0.05."""
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    bh, bw = h // 2, w // 2
    top = torch.randint(0, h - bh + 1, (b,), generator=gen)[:, None, None]
    left = torch.randint(0, w - bw + 1, (b,), generator=gen)[:, None, None]
    ys, xs = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    box = (ys >= top) & (ys < top + bh) & (xs >= left) & (xs < left + bw)  # (B, H, W)
    box = (box & (torch.rand(b, generator=gen) < 0.5)[:, None, None]).view(b, *([1] * (x.ndim - 3)), h, w)
    return torch.where(box, torch.full_like(x, 0.5), x) + 0.05 * torch.randn(x.shape, generator=gen)
