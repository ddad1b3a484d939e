"""Annotation rows and the list format of the public DFER code (``path num_frames label``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from d2sp.data.frames import DataError
from d2sp.data.labels import DFER_CLASSES


@dataclass
class Sample:
    """One clip of an annotation: where its frames are and its given (0-based) label."""

    path: str  # frame folder or video file, absolute or relative to the working directory
    label: int
    num_frames: int | None = None  # as annotated; the folder is the truth
    source: str = ""  # "file:row" used in error messages
    meta: dict = field(default_factory=dict)


def read_list_file(
    path: str | Path,
    *,
    root: str | Path | None = None,
    num_classes: int = len(DFER_CLASSES),
    on_error: Callable[[str, str], None] | None = None,
) -> list[Sample]:
    """Read a list-format annotation: one ``path num_frames label`` row per clip.

    Labels are 0-based. Relative paths are resolved against ``root`` (default: the folder
    holding the list file). Blank lines and lines starting with ``#`` are ignored.

    Args:
        on_error: called as ``on_error("file:row", reason)`` for a malformed row, which is
            then skipped (it may raise instead); by default such a row raises.

    Raises:
        DataError: a malformed row or an out-of-range label, naming the file and row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    base = Path(root) if root is not None else path.parent
    samples = []
    skipped = 0

    def bad(where: str, reason: str) -> None:
        nonlocal skipped
        if on_error is None:
            raise DataError(f"{where}: {reason}")
        skipped += 1
        on_error(where, reason)

    with open(path, encoding="utf-8") as f:
        for row, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{row}"
            parts = text.split()
            if len(parts) < 3:
                bad(where, f"expected 'path num_frames label', got {len(parts)} field(s): {text!r}")
                continue
            clip, frames, label = " ".join(parts[:-2]), parts[-2], parts[-1]
            try:
                n, y = int(frames), int(label)
            except ValueError:
                bad(where, f"expected integer num_frames and label, got {frames!r} and {label!r}")
                continue
            if not 0 <= y < num_classes:
                bad(where, f"label {y} out of range [0, {num_classes})")
                continue
            full = clip if os.path.isabs(clip) else str(base / clip)
            samples.append(Sample(path=full, label=y, num_frames=n, source=where))
    if not samples:
        detail = f" ({skipped} malformed row(s) skipped)" if skipped else ""
        raise DataError(f"{path}: annotation file has no rows{detail}")
    return samples
