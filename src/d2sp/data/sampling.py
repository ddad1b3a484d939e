"""Which frames of a clip to read: segment sampling (separate from decoding)."""

from __future__ import annotations

import numpy as np


def segment_indices(
    num_frames: int,
    num_segments: int = 16,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices ``(num_segments,)`` for a clip of ``num_frames`` frames.

    The clip is split into ``num_segments`` equal segments; training takes a random frame
    inside each segment, testing the segment centre. A clip shorter than ``num_segments``
    is read whole and padded with its last frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    if num_frames < num_segments:
        idx = np.arange(num_segments)
        return np.minimum(idx, num_frames - 1)
    edges = np.linspace(0, num_frames, num_segments + 1)  # (S + 1,)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        starts, ends = np.floor(edges[:-1]), np.floor(edges[1:])
        offsets = rng.random(num_segments) * (ends - starts)
        idx = np.floor(starts + offsets)
    else:
        idx = np.floor((edges[:-1] + edges[1:]) / 2)
    return np.clip(idx.astype(np.int64), 0, num_frames - 1)
