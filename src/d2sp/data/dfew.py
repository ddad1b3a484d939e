"""DFEW: the official single-label splits, five folds, frames in per-clip folders.

Layouts read (``root`` is the dataset folder)::

    root/
      label/single_trainset_{1..5}.csv        # or EmoLabel_DataSplit/train(single-labeled)/set_{1..5}.csv
      label/single_testset_{1..5}.csv         # or EmoLabel_DataSplit/test(single-labeled)/set_{1..5}.csv
      clip_224x224/00001/00001_00001.jpg ...  # or Clip/clip_224x224/..., clip_112x112/..., data/...

The split files have a header ``video_name,label`` (a UTF-8 byte-order mark is tolerated);
``video_name`` is the clip number (``1`` or ``00001``), its frames are in the folder named
by the number zero-padded to five digits; ``label`` is 1-based, 1 Happy, 2 Sad, 3 Neutral,
4 Angry, 5 Surprise, 6 Disgust, 7 Fear, and is mapped to the 0-based DFER order by
:func:`d2sp.data.labels.dfew_label`. ``fold`` (1-5) is required.

The first layout is the one of the DFEW authors' reference code (``label/``, and frames in
``data/``: pass ``frames="data"``); the second that of the dataset's distribution, used by
most public DFER code (``EmoLabel_DataSplit``, ``Clip/clip_224x224``).
"""

from __future__ import annotations

import csv
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
from d2sp.data.labels import DFER_CLASSES, dfew_label
from d2sp.data.registry import register_dataset
from d2sp.data.validate import Problems, check_clips, drop_duplicates, require_samples
from d2sp.data.video import AutoSource


def find_split_file(root: Path, split: str, fold: int) -> Path:
    """The official split csv of ``split`` and ``fold`` under ``root``."""
    candidates = [
        root / "label" / f"single_{split}set_{fold}.csv",
        root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv",
        root / f"single_{split}set_{fold}.csv",
    ]
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(f"dfew: split file for {split} fold {fold} not found (looked for {looked})")


def find_frames_dir(root: Path, frames: str) -> Path:
    """The folder holding the per-clip frame folders: ``root/frames`` or ``root/Clip/frames``."""
    p = Path(frames)
    candidates = [p] if p.is_absolute() else [root / p, root / "Clip" / p]
    for c in candidates:
        if c.is_dir():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(
        f"dfew: frames folder {frames!r} not found (looked for {looked}); set frames= to the "
        "folder holding the per-clip folders (clip_224x224, clip_112x112, data, ...)"
    )


def read_split_csv(path: Path, frames_dir: Path, problems: Problems) -> list[Sample]:
    """Rows of a DFEW split csv as samples (labels mapped to the DFER order)."""
    samples = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        columns = [h.strip().lower() for h in header or []]
        if "video_name" not in columns or "label" not in columns:
            raise DataError(f"{path}:1: expected a header 'video_name,label', got {header!r}")
        iv, il = columns.index("video_name"), columns.index("label")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) <= max(iv, il):
                problems.report(where, f"expected {len(columns)} columns, got {len(row)}: {row!r}")
                continue
            name = row[iv].strip()
            if not name.isdigit():
                problems.report(where, f"expected a numeric video_name, got {name!r}")
                continue
            try:
                label = dfew_label(row[il])
            except ValueError as e:
                problems.report(where, str(e))
                continue
            video_id = f"{int(name):05d}"
            samples.append(
                Sample(
                    path=str(frames_dir / video_id),
                    label=label,
                    source=where,
                    meta={"video_id": video_id},
                )
            )
    return drop_duplicates(samples, [s.meta["video_id"] for s in samples], problems)


@register_dataset("dfew")
def dfew(
    *,
    root: Path,
    split: str,
    fold: int | None,
    skip_bad: bool = False,
    frames: str = "clip_224x224",
    split_file: str | None = None,
    train_split_file: str | None = None,
    test_split_file: str | None = None,
    check: str = "auto",
    workers: int = 8,
) -> DatasetSplit:
    """DFEW fold ``fold`` (1-5), split ``split``, 7 classes in the DFER order.

    Args:
        frames: folder of the per-clip frame folders, under ``root`` or ``root/Clip``
            (``clip_224x224``, ``clip_112x112``, ``clip_224x224_16f``, ``data``) or absolute.
        split_file: the split csv instead of the official one, relative to ``root``;
            ``{split}`` becomes ``train``/``test`` and ``{fold}`` the fold number, e.g.
            ``"my_{split}_{fold}.csv"``. Without ``{split}`` one file serves both splits:
            the trainer refuses that (the test figures would be on training data) unless
            ``data.allow_shared_test=true``.
        train_split_file, test_split_file: one split's csv (e.g. a cleaned training
            annotation that ``d2sp export`` wrote), instead of ``split_file`` or the
            official one for that split.
        check: ``auto`` (``first``), ``list``, ``first``, ``sampled`` or ``full``
            (see :mod:`d2sp.data.validate`).
        workers: threads for the checks.
    """
    fold = require_fold("dfew", fold)
    split_file = pick_split_file(split, split_file, train_split_file, test_split_file)
    if split_file is not None:
        path = resolve_file(format_name(split_file, split=split, fold=fold), root, what="dfew")
    else:
        path = find_split_file(root, split, fold)
    frames_dir = find_frames_dir(root, frames)
    problems = Problems(skip_bad=skip_bad)
    samples = read_split_csv(path, frames_dir, problems)
    samples = check_clips(samples, problems, check=check, workers=workers)
    require_samples(samples, problems, annotation=str(path))
    return DatasetSplit(
        name="dfew",
        root=str(root),
        split=split,
        fold=fold,
        samples=samples,
        class_names=DFER_CLASSES,
        source=AutoSource(),
        skipped=problems.skipped,
        annotation_files=[str(path)],
    )
