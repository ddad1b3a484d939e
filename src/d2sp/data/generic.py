"""Generic annotations: the DFER list format (``list``) and a ``path,label`` CSV (``csv``).

``list``
    One ``path num_frames label`` row per clip (the format of the public DFER code),
    0-based labels, ``path`` a frame folder (or a video file). ``num_frames`` is checked
    against the folder, which wins (one warning with a count).
``csv``
    A header naming at least ``path`` and ``label`` (any case, any order; other columns
    are kept in ``Sample.meta``). ``label`` is a 0-based integer or a class name of
    ``class_names`` (case-insensitive, ``Happy`` matches ``happiness``). ``path`` is a frame
    folder or a video file (``.mp4 .avi .mov .mkv .webm .m4v``, decoded with PyAV).

Files: ``list_file=`` / ``csv_file=`` for any split, or ``train_list=``/``test_list=``
(``train_csv=``/``test_csv=``) per split; ``{split}`` and ``{fold}`` are filled in, so
``list_file="DFEW_set_{fold}_{split}.txt"`` serves both splits of every fold. Without
``{split}`` (and without ``train_…``/``test_…``) one file serves both splits: the trainer
refuses that (the test figures would be on training data) unless
``data.allow_shared_test=true``. Annotation files and relative clip paths are resolved
against ``root``.

Classes: ``class_names=`` (a sequence or a comma-separated string) or ``num_classes=``
(default 7: the DFER names; 11: the MAFW names; other K: ``class_0`` …).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from d2sp.data.annotations import Sample, read_list_file
from d2sp.data.common import DatasetSplit, format_name, resolve_file
from d2sp.data.frames import DataError
from d2sp.data.labels import class_index, default_class_names
from d2sp.data.registry import register_dataset
from d2sp.data.validate import Problems, check_clips, drop_duplicates, require_samples
from d2sp.data.video import AutoSource

CLASS_HINT = (
    "; name your own classes, in label order, with data.options.class_names=[name, ...] "
    "(docs/datasets.md#your-own-classes)"
)


def resolve_classes(
    class_names: Sequence[str] | str | None, num_classes: int | None
) -> tuple[str, ...]:
    """The class names from ``class_names`` and/or ``num_classes`` (they must agree)."""
    if isinstance(class_names, str):
        class_names = [c.strip() for c in class_names.split(",") if c.strip()]
    if class_names is not None:
        names = tuple(class_names)
        if not names:
            raise ValueError("class_names: expected at least one name, got none")
        if len(set(n.lower() for n in names)) != len(names):
            raise ValueError(f"class_names: expected distinct names, got {names}")
        if num_classes is not None and num_classes != len(names):
            raise ValueError(
                f"num_classes={num_classes} disagrees with {len(names)} class_names {names}"
            )
        return names
    return default_class_names(7 if num_classes is None else int(num_classes))


def pick_file(
    name: str, root: Path, split: str, fold: int | None, *, any_split, train, test, option: str
) -> Path:
    """The annotation file of ``split``: ``train``/``test`` if given, else ``any_split``."""
    chosen = train if split == "train" else test
    chosen = chosen if chosen is not None else any_split
    if chosen is None:
        raise ValueError(
            f"{name}: no annotation file: give {option}_file= (or train_{option}=/test_{option}=)"
        )
    return resolve_file(format_name(chosen, split=split, fold=fold), root, what=name)


def _finish(name, root, split, fold, samples, problems, path, classes, check, workers):
    samples = drop_duplicates(samples, [os.path.normpath(s.path) for s in samples], problems)
    samples = check_clips(samples, problems, check=check, workers=workers)
    require_samples(samples, problems, annotation=str(path))
    return DatasetSplit(
        name=name,
        root=str(root),
        split=split,
        fold=fold,
        samples=samples,
        class_names=classes,
        source=AutoSource(),
        skipped=problems.skipped,
        annotation_files=[str(path)],
    )


@register_dataset("list")
def list_dataset(
    *,
    root: Path,
    split: str,
    fold: int | None = None,
    skip_bad: bool = False,
    list_file: str | None = None,
    train_list: str | None = None,
    test_list: str | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | str | None = None,
    check: str = "auto",
    workers: int = 8,
) -> DatasetSplit:
    """Clips of a list-format file (``path num_frames label``, 0-based labels)."""
    classes = resolve_classes(class_names, num_classes)
    path = pick_file(
        "list", root, split, fold, any_split=list_file, train=train_list, test=test_list,
        option="list",
    )
    problems = Problems(skip_bad=skip_bad)

    def bad_row(where: str, reason: str) -> None:
        problems.report(where, reason + (CLASS_HINT if "out of range" in reason else ""))

    samples = read_list_file(path, root=root, num_classes=len(classes), on_error=bad_row)
    return _finish("list", root, split, fold, samples, problems, path, classes, check, workers)


def read_csv_file(
    path: Path, root: Path, classes: tuple[str, ...], problems: Problems
) -> list[Sample]:
    """Rows of a ``path,label`` CSV (header required) as samples."""
    samples = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        columns = [h.strip().lower() for h in header or []]
        if "path" not in columns or "label" not in columns:
            raise DataError(f"{path}:1: expected a header with columns 'path,label', got {header!r}")
        ip, il = columns.index("path"), columns.index("label")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) != len(columns):
                problems.report(where, f"expected {len(columns)} columns, got {len(row)}: {row!r}")
                continue
            clip = row[ip].strip()
            if not clip:
                problems.report(where, "empty path")
                continue
            try:
                label = class_index(row[il], classes)
            except ValueError as e:
                problems.report(where, f"{e}{CLASS_HINT}")
                continue
            meta = {c: row[i] for i, c in enumerate(columns) if i not in (ip, il)}
            full = clip if os.path.isabs(clip) else str(root / clip)
            samples.append(Sample(path=full, label=label, source=where, meta=meta))
    return samples


@register_dataset("csv")
def csv_dataset(
    *,
    root: Path,
    split: str,
    fold: int | None = None,
    skip_bad: bool = False,
    csv_file: str | None = None,
    train_csv: str | None = None,
    test_csv: str | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | str | None = None,
    check: str = "auto",
    workers: int = 8,
) -> DatasetSplit:
    """Clips of a ``path,label`` CSV: frame folders or video files, labels ints or names."""
    classes = resolve_classes(class_names, num_classes)
    path = pick_file(
        "csv", root, split, fold, any_split=csv_file, train=train_csv, test=test_csv,
        option="csv",
    )
    problems = Problems(skip_bad=skip_bad)
    samples = read_csv_file(path, root, classes, problems)
    return _finish("csv", root, split, fold, samples, problems, path, classes, check, workers)
