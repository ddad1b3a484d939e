"""Build-time checks of a dataset's clips and the bookkeeping of skipped rows.

Every loader sends its rows through :func:`check_clips`. A bad row either raises a
:class:`~d2sp.data.frames.DataError` naming the annotation file and row, or, with
``skip_bad=True``, is dropped and recorded as ``"file:row: reason"`` in the split's
``skipped`` list. A clip id given by more than one row is such a bad row too
(:func:`drop_duplicates`): every row of it is named, and with ``skip_bad`` every row of it is
skipped (which of them is meant cannot be told).

Check levels (``check=``), and what each costs per clip:

``"list"``
    One ``listdir`` of the frame folder (missing or empty folder; the frame count), or one
    ``stat`` of a video file (missing or empty file): about 0.2 ms per local clip (2 s for
    10,000). A corrupt video or an undecodable frame then surfaces while the run reads it.
``"first"``
    The default (``"auto"``): the run's pre-flight check. ``"list"`` plus, for a video,
    opening its container, counting its frames and decoding its first frame; for a frame
    folder, decoding its first frame. A video that cannot be opened stops the run before
    its first epoch (or, with ``skip_bad``, is skipped and listed) instead of after one.
    About 0.8 ms per 112² frame folder and 3.5 ms per 32-frame 112² mp4 on 2 busy cores.
``"sampled"``
    ``"list"`` plus, for frame folders, reading the 16 frames that testing samples
    (segment centres), checking the JPEG start and end markers (a truncated JPEG has no
    end-of-image marker) and decoding them; for videos, as ``"first"``. 16 decodes, about
    5 ms of CPU per 224² clip (DFEW's 16k clips: about 80 s of CPU, shared by ``workers``
    threads).
``"full"``
    Every frame decoded (every image of a folder, every frame of a video): about 0.2 ms
    per 224² JPEG frame, the cost of one epoch of decoding. Catches bad frames that random
    training offsets would hit and the sampled check misses.

Every level runs in ``workers`` threads; every level but ``"list"`` remembers the clips that
passed by the stat of the files it read (:mod:`d2sp.data.checked`): checking the same clips again
decodes nothing (a few stat calls per clip), and a clip whose files changed is checked
again.

The annotated ``num_frames`` of a row (list format) is never trusted: the folder is. When
they differ the folder's count is used and ONE :class:`DataWarning` tells how many rows
differed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from d2sp.data.annotations import Sample
from d2sp.data.checked import CheckRecord, stat_signature
from d2sp.data.frames import DataError, decode_image, list_frames
from d2sp.data.sampling import segment_indices
from d2sp.data.video import is_video, probe_video

CHECK_LEVELS = ("list", "first", "sampled", "full")
DEFAULT_LEVEL = "first"  # what "auto" means: the pre-flight check


class DataWarning(UserWarning):
    """Something in the data was repaired or ignored (never silently)."""


class Problems:
    """Collects bad rows: raises at the first one, or records it when ``skip_bad``."""

    def __init__(self, *, skip_bad: bool):
        self.skip_bad = skip_bad
        self.skipped: list[str] = []

    def report(self, where: str, reason: str) -> None:
        """A bad row at ``where`` (``"file:row"``): raise, or record ``"file:row: reason"``."""
        message = f"{where}: {reason}"
        if not self.skip_bad:
            raise DataError(message)
        self.skipped.append(message)


def resolve_check(check: str, *, skip_bad: bool = False) -> str:
    """``"auto"`` -> ``"first"`` (with or without ``skip_bad``, so that turning skipping on
    never changes which clips a run checks); validates the value."""
    if check == "auto":
        return DEFAULT_LEVEL
    if check not in CHECK_LEVELS:
        raise ValueError(f"check: expected 'auto' or one of {', '.join(CHECK_LEVELS)}, got {check!r}")
    return check


def check_image(path: str) -> None:
    """Raise DataError if an image file is unreadable, truncated or undecodable."""
    if path.lower().endswith((".jpg", ".jpeg")):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise DataError(f"{path}: cannot read frame ({e.strerror or e})") from None
        if not data.startswith(b"\xff\xd8"):
            raise DataError(f"{path}: not a JPEG (no start-of-image marker)")
        if not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    decode_image(path)


def _picked(count: int, level: str, num_segments: int) -> list[int]:
    """The frames of a folder of ``count`` that ``level`` decodes."""
    if level == "full":
        return list(range(count))
    if level == "first":
        return [0]
    return np.unique(segment_indices(count, num_segments, train=False)).tolist()


def check_frame_folder(
    path: str, *, level: str, num_segments: int = 16, record: CheckRecord | None = None
) -> int:
    """Check a clip's frame folder at ``level``; returns its frame count. Frames that passed
    before with the same stat (``record``) are not decoded again."""
    names = list_frames(path)
    if level == "list":
        return len(names)
    files = [os.path.join(path, names[i]) for i in _picked(len(names), level, num_segments)]
    record = record or CheckRecord.disabled()
    signature = stat_signature(files, extra=str(len(names)))
    if not record.lookup(path, level, signature)[0]:
        for file in files:
            check_image(file)
        record.add(path, level, signature, len(names))
    return len(names)


def check_video_file(path: str, *, level: str, record: CheckRecord | None = None) -> int | None:
    """Check a video file at ``level``; returns its frame count (None at ``"list"``). A file
    that passed before with the same stat (``record``) is not opened again."""
    if level == "list":
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise DataError(f"{path}: video file not found") from None
        if os.path.isdir(path):
            raise DataError(f"{path}: expected a video file, found a folder")
        if size == 0:
            raise DataError(f"{path}: video file is empty (0 bytes)")
        return None
    record = record or CheckRecord.disabled()
    signature = stat_signature([path]) if os.path.isfile(path) else None
    known, frames = record.lookup(path, level, signature)
    if known:
        return frames
    frames = probe_video(path, decode="all" if level == "full" else "first")
    record.add(path, level, signature, frames)
    return frames


def check_clip(
    sample: Sample, *, level: str, num_segments: int = 16, record: CheckRecord | None = None
) -> int | None:
    """Check one sample's frames (folder or video); returns its frame count."""
    if is_video(sample.path):
        return check_video_file(sample.path, level=level, record=record)
    return check_frame_folder(sample.path, level=level, num_segments=num_segments, record=record)


def check_unique(keys: Iterable[tuple[str, str]]) -> None:
    """Raise DataError at the first repeated key; ``keys`` are ``(key, "file:row")``."""
    seen: dict[str, str] = {}
    for key, where in keys:
        if key in seen:
            raise DataError(f"{where}: duplicate clip {key!r} (first at {seen[key]})")
        seen[key] = where


def drop_duplicates(
    samples: Sequence[Sample], keys: Sequence[str], problems: Problems
) -> list[Sample]:
    """The samples whose key (clip id or path, ``keys[i]`` for ``samples[i]``) no other row
    gives. A repeated key raises at its second row, naming both rows; with ``skip_bad``
    every row of that key is skipped and recorded, naming the other rows (which of them is
    meant cannot be told)."""
    rows: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        rows.setdefault(key, []).append(i)
    if not problems.skip_bad:
        check_unique((key, s.source or s.path) for key, s in zip(keys, samples, strict=True))
        return list(samples)
    kept = []
    for i, (key, sample) in enumerate(zip(keys, samples, strict=True)):
        at = rows[key]
        if len(at) == 1:
            kept.append(sample)
            continue
        others = ", ".join(samples[j].source or samples[j].path for j in at if j != i)
        problems.report(sample.source or sample.path, f"duplicate clip {key!r} (also at {others})")
    return kept


def check_clips(
    samples: Sequence[Sample],
    problems: Problems,
    *,
    check: str = "auto",
    workers: int = 8,
    num_segments: int = 16,
    record: CheckRecord | None = None,
) -> list[Sample]:
    """Check every sample's frames; returns the good samples in their order.

    Sets ``sample.num_frames`` to the real frame count (folder listing or video probe)
    and warns once, with a count, where that differs from the annotated number.

    Args:
        samples: rows to check (their ``source`` is the ``"file:row"`` of messages).
        problems: raises or records each bad row.
        check: ``"auto"`` (``"first"``), ``"list"``, ``"first"``, ``"sampled"`` or
            ``"full"`` (see the module docstring).
        workers: threads for the checks (listing and decoding release the GIL).
        record: the clips known to have passed (default: the user cache's record, see
            :mod:`d2sp.data.checked`; :meth:`CheckRecord.disabled` checks every clip).
    """
    level = resolve_check(check, skip_bad=problems.skip_bad)
    record = CheckRecord.default() if record is None else record
    if level != "list":
        record.load([s.path for s in samples], level)

    def one(sample: Sample):
        try:
            count = check_clip(sample, level=level, num_segments=num_segments, record=record)
            return count, None
        except DataError as e:
            return None, str(e)

    if workers > 1 and len(samples) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, samples, chunksize=16))
    else:
        results = [one(s) for s in samples]
    record.save()
    kept, differ, example = [], 0, ""
    for sample, (count, error) in zip(samples, results, strict=True):
        if error is not None:
            problems.report(sample.source or sample.path, error)
            continue
        if count is not None:
            if sample.num_frames is not None and sample.num_frames != count:
                differ += 1
                example = example or (
                    f"{sample.source}: annotated {sample.num_frames}, folder has {count}"
                )
            sample.num_frames = count
        kept.append(sample)
    if differ:
        warnings.warn(
            f"{differ} of {len(samples)} rows give a num_frames that differs from their "
            f"clip (the clip's own count is used), e.g. {example}",
            DataWarning,
            stacklevel=3,
        )
    return kept


def require_samples(samples: Sequence[Sample], problems: Problems, *, annotation: str) -> None:
    """Raise DataError when no row of ``annotation`` survived."""
    if samples:
        return
    if problems.skipped:
        raise DataError(
            f"{annotation}: no usable rows ({len(problems.skipped)} skipped; first: "
            f"{problems.skipped[0]})"
        )
    raise DataError(f"{annotation}: annotation has no rows")
