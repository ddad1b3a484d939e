"""Clip transforms: one random resized crop and flip for all frames, resize, normalise."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    scale: tuple[float, float] = (0.8, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A crop box ``(top, left, h, w)`` covering a random area share and aspect ratio."""
    area = height * width
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def clip_to_tensor(
    frames: np.ndarray,
    *,
    size: int,
    train: bool,
    rng: np.random.Generator | None = None,
    crop_scale: tuple[float, float] = (0.8, 1.0),
    flip: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 frames -> ``(T, 3, size, size)`` float32 clip.

    Training applies the same random resized crop and horizontal flip to every frame;
    testing resizes the whole frame. Values are normalised with ImageNet mean and std.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
    _, _, h, w = x.shape
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        top, left, ch, cw = random_resized_crop_box(h, w, rng, scale=crop_scale)
        x = x[:, :, top : top + ch, left : left + cw]
        if flip and rng.random() < 0.5:
            x = x.flip(-1)
    x = x.float().div_(255.0)  # (T, 3, h, w)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous()  # (T, 3, size, size)
