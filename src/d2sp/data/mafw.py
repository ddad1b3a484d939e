"""MAFW: 11 single-emotion classes, five folds, frame folders or the mp4 clips.

Layout read (``root`` is the dataset folder)::

    root/
      single_label.txt                                   # optional: labels of every clip
      Train & Test Set/single/no_caption/set_{1..5}/train.txt, test.txt
      data/frames/00025/00001.jpg ...                    # media="frames" (frames=)
      data/clips/00025.mp4                               # media="video" (videos=)

Row formats (whitespace- or tab-separated; the clip id may carry ``.mp4``):

- ``single_label.txt``: ``<id>.mp4  <emotion name>  …captions``. Captions are never
  decoded (the official captioned files are not UTF-8), only the first two fields.
- Fold split files: ``<id>.mp4 <emotion name>`` (official ``no_caption``),
  ``<id>.mp4<TAB><emotion><TAB>…captions`` (official ``with_caption``), or just ``<id>``
  per line, the label then coming from ``single_label.txt``. Looked for, for fold ``k``, at
  ``Train & Test Set/single/no_caption/set_k/{split}.txt``, then ``…/with_caption/…``, then
  ``set_k/{split}.txt``; or given with ``split_file=`` (``{split}``/``{fold}`` filled in).

When a split row and ``single_label.txt`` both give a label they must agree. Labels are
names (``anger`` … ``disappointment``, any case) or official 1-based ids (1 anger … 11
disappointment), mapped by :func:`d2sp.data.labels.mafw_label` to ONE index order:
``DFER_CLASSES + MAFW_EXTRA_CLASSES`` = happiness, sadness, neutral, anger, surprise,
disgust, fear, contempt, anxiety, helplessness, disappointment.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from d2sp.data.annotations import Sample
from d2sp.data.common import (
    DatasetSplit,
    format_name,
    pick_split_file,
    require_fold,
    resolve_file,
)
from d2sp.data.frames import DataError
from d2sp.data.labels import MAFW_CLASSES, mafw_label
from d2sp.data.registry import register_dataset
from d2sp.data.validate import (
    DataWarning,
    Problems,
    check_clips,
    drop_duplicates,
    require_samples,
)
from d2sp.data.video import AutoSource

MEDIA = ("frames", "video")


def _rows(path: Path):
    """``(where, clip_id, label_or_None)`` per non-blank line, reading bytes (captions skipped)."""
    with open(path, "rb") as f:
        for row, raw in enumerate(f, start=1):
            line = raw.strip()
            if row == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line or line.startswith(b"#"):
                continue
            fields = line.split(None, 2)
            where = f"{path}:{row}"
            try:
                clip = fields[0].decode("ascii")
                label = fields[1].decode("ascii") if len(fields) > 1 else None
            except UnicodeDecodeError:
                yield where, None, f"expected '<id>.mp4 <emotion>', got {line[:60]!r}"
                continue
            stem = clip[:-4] if clip.lower().endswith(".mp4") else clip
            yield where, stem, label


@dataclass
class LabelFile:
    """What ``single_label.txt`` says, checked row by row.

    A bad row only matters to a fold that uses its clip, so its problem is kept per clip
    (``problems``) and reported by the split row that asks for the clip.

    Attributes:
        labels: ``{clip id: (label index, "file:row")}`` of the usable rows.
        problems: ``{clip id: reason}`` of clips whose rows cannot be used (an unknown
            emotion, no emotion, or more than one row: every row of it is named).
        stray: ``"file:row: reason"`` of rows that name no readable clip id (no fold can
            use them; a DataWarning).
    """

    labels: dict[str, tuple[int, str]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    stray: list[str] = field(default_factory=list)


def read_label_file(path: Path) -> LabelFile:
    """``single_label.txt`` -> :class:`LabelFile` (nothing raised for a bad row)."""
    out = LabelFile()
    rows: dict[str, list[str]] = {}
    for where, clip, label in _rows(path):
        if clip is None:
            out.stray.append(f"{where}: {label}")
            continue
        rows.setdefault(clip, []).append(where)
        if label is None:
            reason = f"expected '<id>.mp4 <emotion>', got only {clip!r}"
            out.problems.setdefault(clip, f"{where}: {reason}")
            continue
        try:
            y = mafw_label(label)
        except ValueError as e:
            if where.endswith(":1") and not clip.isdigit():
                rows.pop(clip)
                continue  # a header line
            out.problems.setdefault(clip, f"{where}: {e}")
            continue
        out.labels.setdefault(clip, (y, where))
    for clip, at in rows.items():
        if len(at) > 1:
            out.problems[clip] = f"duplicate clip {clip!r}: {len(at)} rows ({', '.join(at)})"
            out.labels.pop(clip, None)
    for clip in out.problems:
        out.labels.pop(clip, None)
    return out


def find_split_file(root: Path, split: str, fold: int) -> Path:
    """The fold split file of ``split`` under ``root``."""
    base = root / "Train & Test Set" / "single"
    candidates = [
        base / "no_caption" / f"set_{fold}" / f"{split}.txt",
        base / "with_caption" / f"set_{fold}" / f"{split}.txt",
        root / f"set_{fold}" / f"{split}.txt",
    ]
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(
        f"mafw: split file for {split} fold {fold} not found (looked for {looked}); "
        "give split_file="
    )


def _split_path(root: Path, split: str, fold, split_file) -> tuple[Path, int | None]:
    """The split file of ``split`` (the official one of ``fold``, or ``split_file``) and the
    fold it stands for."""
    if split_file is not None and "{fold}" not in split_file:
        fold = None if fold is None else require_fold("mafw", fold)
        return resolve_file(format_name(split_file, split=split, fold=fold), root, what="mafw"), fold
    fold = require_fold("mafw", fold)
    if split_file is not None:
        return resolve_file(format_name(split_file, split=split, fold=fold), root, what="mafw"), fold
    return find_split_file(root, split, fold), fold


def _media_dir(root: Path, media: str, frames: str, videos: str) -> Path:
    """The folder holding the clips (frame folders or videos); DataError when missing."""
    media_dir = Path(frames if media == "frames" else videos)
    media_dir = media_dir if media_dir.is_absolute() else root / media_dir
    if not media_dir.is_dir():
        other = "video" if media == "frames" else "frames"
        raise DataError(
            f"mafw: {media} folder {str(media_dir)!r} not found; set "
            f"{'frames' if media == 'frames' else 'videos'}= or media={other!r}"
        )
    return media_dir


def _row_label(where: str, clip, label, table: LabelFile, label_file, problems) -> int | None:
    """The 0-based label of a split row (its own, checked against the label file, or the
    label file's); None (reported to ``problems``) when the row cannot be used."""
    if clip is None:
        problems.report(where, label)
        return None
    if clip in table.problems:
        problems.report(where, f"the label file cannot label it: {table.problems[clip]}")
        return None
    known = table.labels.get(clip)
    if label is not None:
        try:
            y = mafw_label(label)
        except ValueError as e:
            problems.report(where, str(e))
            return None
        if known is not None and known[0] != y:
            problems.report(
                where,
                f"label {MAFW_CLASSES[y]!r} disagrees with {known[1]} ({MAFW_CLASSES[known[0]]!r})",
            )
            return None
        return y
    if known is not None:
        return known[0]
    problems.report(
        where,
        f"clip {clip!r} has no label here and none in "
        f"{label_file if table.labels else 'a label file (single_label.txt not found)'}",
    )
    return None


def _read_rows(path, media_dir, media, table, label_file, problems) -> list[Sample]:
    """The samples of a split file's rows (duplicates dropped or raised)."""
    samples = []
    for where, clip, label in _rows(path):
        y = _row_label(where, clip, label, table, label_file, problems)
        if y is None:
            continue
        target = media_dir / clip if media == "frames" else media_dir / f"{clip}.mp4"
        samples.append(Sample(path=str(target), label=y, source=where, meta={"video_id": clip}))
    return drop_duplicates(samples, [s.meta["video_id"] for s in samples], problems)


def _stray_rows(table: LabelFile, problems: Problems) -> None:
    """Rows of the label file that name no clip: recorded with ``skip_bad``, else one
    warning (no fold can use them, so they stop none)."""
    if not table.stray:
        return
    if problems.skip_bad:
        problems.skipped.extend(table.stray)
        return
    warnings.warn(
        f"{len(table.stray)} row(s) of the label file name no readable clip and are ignored, "
        f"e.g. {table.stray[0]}",
        DataWarning,
        stacklevel=3,
    )


@register_dataset("mafw")
def mafw(
    *,
    root: Path,
    split: str,
    fold: int | None,
    skip_bad: bool = False,
    split_file: str | None = None,
    train_split_file: str | None = None,
    test_split_file: str | None = None,
    label_file: str | None = "single_label.txt",
    media: str = "frames",
    frames: str = "data/frames",
    videos: str = "data/clips",
    check: str = "auto",
    workers: int = 8,
) -> DatasetSplit:
    """MAFW fold ``fold`` (1-5), split ``split``, 11 classes (DFER order, then MAFW's four).

    Args:
        split_file: the fold's split file instead of the official one, relative to
            ``root``; ``{split}`` becomes ``train``/``test`` and ``{fold}`` the fold number,
            e.g. ``"splits/set_{fold}/{split}.txt"``; with no ``{fold}`` in it, ``fold`` may
            be None. Without ``{split}`` one file serves both splits: the trainer refuses
            that (the test figures would be on training data) unless
            ``data.allow_shared_test=true``.
        train_split_file, test_split_file: one split's file (e.g. a cleaned training
            split file that ``d2sp export`` wrote), instead of ``split_file`` or the
            official one for that split.
        label_file: labels of every clip, relative to ``root``; used when present (needed
            when the split rows carry no label). None to ignore it.
        media: ``"frames"`` (folders ``<frames>/<id>/``) or ``"video"`` (``<videos>/<id>.mp4``
            decoded with PyAV).
        frames, videos: folders under ``root`` (or absolute).
        check: ``auto`` (``first``), ``list``, ``first``, ``sampled`` or ``full``
            (see :mod:`d2sp.data.validate`).
        workers: threads for the checks.
    """
    if media not in MEDIA:
        raise ValueError(f"media: expected one of {', '.join(MEDIA)}, got {media!r}")
    split_file = pick_split_file(split, split_file, train_split_file, test_split_file)
    path, fold = _split_path(root, split, fold, split_file)
    media_dir = _media_dir(root, media, frames, videos)
    problems = Problems(skip_bad=skip_bad)
    files = [str(path)]
    table = LabelFile()
    if label_file is not None and (root / label_file).is_file():
        table = read_label_file(root / label_file)
        files.append(str(root / label_file))
        _stray_rows(table, problems)
    samples = _read_rows(path, media_dir, media, table, label_file, problems)
    samples = check_clips(samples, problems, check=check, workers=workers)
    require_samples(samples, problems, annotation=str(path))
    return DatasetSplit(
        name="mafw",
        root=str(root),
        split=split,
        fold=fold,
        samples=samples,
        class_names=MAFW_CLASSES,
        source=AutoSource(),
        skipped=problems.skipped,
        annotation_files=files,
    )
