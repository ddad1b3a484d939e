"""Video files as clips: seek-free PyAV decoding of only the frames a clip needs.

:class:`VideoSource` implements the frame-source protocol of
:class:`~d2sp.data.dataset.ClipDataset` (``read(sample, *, num_segments, train, rng) ->
(T, H, W, 3) uint8``) for ``.mp4 / .avi / .mov / .mkv / .webm / .m4v`` files; :class:`AutoSource`
reads a frame folder or a video file, whichever a sample's path is.

Decoding runs from the first frame forward and stops after the last needed frame; only the
needed frames are converted to RGB. There is no seeking, so a clip is read the same way
whatever its container's keyframe layout (seeking in short, sparsely keyed clips is slower
and less exact than decoding them).
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from d2sp.data.annotations import Sample
from d2sp.data.frames import DataError, list_frames, read_frames
from d2sp.data.sampling import segment_indices

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

_DECODE_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError)


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file (by its suffix)."""
    return str(path).lower().endswith(VIDEO_SUFFIXES)


def _open(path: str):
    """``(container, stream)`` of the first video stream; DataError naming the file."""
    if not os.path.isfile(path):
        kind = "a folder" if os.path.isdir(path) else "nothing"
        raise DataError(f"{path}: video file not found (found {kind})")
    try:
        container = av.open(path)
    except _DECODE_ERRORS as e:
        raise DataError(f"{path}: cannot open video ({type(e).__name__}: {e})") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream in the file")
    return container, container.streams.video[0]


def _count_frames(path: str, container, stream) -> int:
    """Frames in the stream: the container's count, else counted by demuxing (no decode)."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    try:
        n = sum(1 for packet in container.demux(stream) if packet.size > 0)
    except _DECODE_ERRORS as e:
        raise DataError(f"{path}: cannot read video ({type(e).__name__}: {e})") from None
    if n < 1:
        raise DataError(f"{path}: video has no frames")
    return n


def _rgb(frame) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a decoded frame, converted in this thread: swscale's slice
    threads (PyAV's default) belong to a converter cached per thread, which a forked
    process (a DataLoader worker, a cache build's pool) inherits without its threads and
    then waits on forever."""
    try:
        return frame.to_ndarray(format="rgb24", threads=1)
    except TypeError:  # a PyAV without reformat(threads=): no slice threads either
        return frame.to_ndarray(format="rgb24")


def _decode(path: str, indices: np.ndarray | None, *, threads: int) -> np.ndarray:
    """Decode frames ``indices`` (all when None) -> ``(T, H, W, 3)`` uint8.

    Indices past the real end of the stream (a container that over-reports its frame
    count) get the last decoded frame.
    """
    container, stream = _open(path)
    try:
        stream.codec_context.thread_count = threads
        if indices is None:
            wanted, last = None, None
        else:
            if len(indices) == 0:
                raise DataError(f"{path}: no frames requested")
            wanted, last = set(indices.tolist()), int(indices.max())
        got: dict[int, np.ndarray] = {}
        final = None  # the last decoded frame, for indices past the real end
        try:
            for i, frame in enumerate(container.decode(stream)):
                final = (i, frame)
                if wanted is None or i in wanted:
                    got[i] = _rgb(frame)  # (H, W, 3)
                if last is not None and i >= last:
                    break
        except _DECODE_ERRORS as e:
            raise DataError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from None
        if final is None:
            raise DataError(f"{path}: no decodable frames in the video")
        if final[0] not in got:
            got[final[0]] = _rgb(final[1])
    finally:
        container.close()
    if indices is None:
        out = [got[i] for i in sorted(got)]
    else:
        end = final[0]
        out = [got[min(i, end)] for i in indices.tolist()]
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise DataError(f"{path}: frames have different sizes {sorted(shapes)}")
    return np.stack(out)  # (T, H, W, 3)


def probe_video(path: str | Path, *, decode: str = "first") -> int:
    """Open a video and return its frame count; checks it decodes.

    Args:
        decode: ``"none"`` (open and count only), ``"first"`` (decode one frame) or
            ``"all"`` (decode every frame; the count is then the decoded count).

    Raises:
        DataError: missing, unopenable or undecodable file, naming it.
    """
    path = str(path)
    if decode not in ("none", "first", "all"):
        raise ValueError(f"decode: expected 'none', 'first' or 'all', got {decode!r}")
    if decode == "all":
        return len(_decode(path, None, threads=1))
    container, stream = _open(path)
    try:
        n = _count_frames(path, container, stream)
    finally:
        container.close()
    if decode == "first":
        _decode(path, np.zeros(1, dtype=np.int64), threads=1)
    return n


class VideoSource:
    """Reads clips stored as video files (PyAV).

    Args:
        threads: decoder threads per read; 1 suits many DataLoader workers.
    """

    def __init__(self, *, threads: int = 1):
        self.threads = threads
        self._counts: dict[str, int] = {}

    def __getstate__(self):
        return {"threads": self.threads, "_counts": {}}

    def num_frames(self, path: str) -> int:
        """Frame count of a video (remembered per process)."""
        n = self._counts.get(path)
        if n is None:
            container, stream = _open(path)
            try:
                n = _count_frames(path, container, stream)
            finally:
                container.close()
            self._counts[path] = n
        return n

    def read(self, sample: Sample, *, num_segments: int, train: bool, rng) -> np.ndarray:
        """``(num_segments, H, W, 3)`` uint8 frames sampled by segments."""
        path = str(sample.path)
        idx = segment_indices(self.num_frames(path), num_segments, train=train, rng=rng)
        return _decode(path, idx, threads=self.threads)

    def read_all(self, sample: Sample) -> np.ndarray:
        """Every frame ``(N, H, W, 3)`` uint8."""
        return _decode(str(sample.path), None, threads=self.threads)


class AutoSource:
    """Reads a sample's frame folder or video file, whichever its path is (by suffix)."""

    def __init__(self, *, threads: int = 1):
        self.video = VideoSource(threads=threads)

    def read(self, sample: Sample, *, num_segments: int, train: bool, rng) -> np.ndarray:
        """``(num_segments, H, W, 3)`` uint8 frames sampled by segments."""
        if is_video(sample.path):
            return self.video.read(sample, num_segments=num_segments, train=train, rng=rng)
        names = list_frames(sample.path)
        idx = segment_indices(len(names), num_segments, train=train, rng=rng)
        return read_frames(sample.path, names, idx)

    def read_all(self, sample: Sample) -> np.ndarray:
        """Every frame ``(N, H, W, 3)`` uint8."""
        if is_video(sample.path):
            return self.video.read_all(sample)
        names = list_frames(sample.path)
        return read_frames(sample.path, names, np.arange(len(names)))
