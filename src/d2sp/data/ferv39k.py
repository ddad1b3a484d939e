"""FERV39k: 22 scenes, 7 emotions, one official train/test split (no folds).

Three ways to give it, tried in this order (``root`` is the dataset folder):

1. ``list_file=``: the list format of the public DFER code (``path num_frames label``,
   0-based DFER labels; ``{split}`` is filled in, e.g. ``list_file="FERV39k_{split}.txt"``).
   Relative clip paths are resolved against ``root``.
2. The official split files (or ``split_file=``): ``4_setups/All_scenes/train_All.csv`` and
   ``test_All.csv`` (also looked for in ``All_scenes/`` and ``root``), one clip per line,
   ``<Scene>/<Emotion>/<id> <Emotion>``, e.g. ``Action/Sad/0010 Sad`` (a header line, if
   any, is skipped). Clip folders are ``<frames>/<Scene>/<Emotion>/<id>/`` with
   ``frames="2_ClipsforFaceCrop"`` (falls back to ``root`` itself when that is absent).
3. A split folder tree, when there are no split files: ``<root>/<split>/<Scene>/<Emotion>/<id>/``
   (or ``<frames>/<split>/...``), e.g. ``root/train/Action/Happy/0001/``.

Emotion names (``Happy, Sad, Neutral, Angry, Surprise, Disgust, Fear``, any case) are mapped
to the DFER order by :func:`d2sp.data.labels.ferv39k_label`. Every sample keeps its scene in
``meta["scene"]`` (for per-scene metrics) and its ``<Scene>/<Emotion>/<id>`` in
``meta["video_id"]``.
"""

from __future__ import annotations

import re
from pathlib import Path

from d2sp.data.annotations import Sample, read_list_file
from d2sp.data.common import DatasetSplit, format_name, pick_split_file, resolve_file
from d2sp.data.frames import DataError
from d2sp.data.labels import DFER_CLASSES, FERV39K_EMOTIONS, ferv39k_label
from d2sp.data.registry import register_dataset
from d2sp.data.validate import Problems, check_clips, drop_duplicates, require_samples
from d2sp.data.video import AutoSource

_EMOTIONS_LOWER = {e.lower() for e in FERV39K_EMOTIONS}


def scene_of(path: str) -> str | None:
    """The scene of a ``.../<Scene>/<Emotion>/<id>`` path, None when it has no such shape."""
    parts = Path(path).parts
    if len(parts) >= 3 and parts[-2].lower() in _EMOTIONS_LOWER:
        return parts[-3]
    return None


def find_split_file(root: Path, split: str) -> Path | None:
    """The official ``{split}_All.csv``, or None."""
    name = f"{split}_All.csv"
    for c in (root / "4_setups" / "All_scenes" / name, root / "All_scenes" / name, root / name):
        if c.is_file():
            return c
    return None


def read_split_file(path: Path, clips_dir: Path, problems: Problems) -> list[Sample]:
    """Rows ``<Scene>/<Emotion>/<id> <Emotion>`` of an official split file."""
    samples = []
    with open(path, encoding="utf-8-sig") as f:
        for row, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{row}"
            fields = [t for t in re.split(r"[\s,]+", text) if t]
            rel = fields[0].strip("/").replace("\\", "/")
            parts = rel.split("/")
            if len(parts) < 3:
                if row == 1 and not any(p.lower() in _EMOTIONS_LOWER for p in fields):
                    continue  # a header line
                problems.report(
                    where, f"expected '<Scene>/<Emotion>/<id> <Emotion>', got {text!r}"
                )
                continue
            scene, folder_emotion, clip_id = parts[-3:]
            try:
                label = ferv39k_label(fields[1] if len(fields) > 1 else folder_emotion)
            except ValueError as e:
                problems.report(where, str(e))
                continue
            samples.append(
                Sample(
                    path=str(clips_dir / rel),
                    label=label,
                    source=where,
                    meta={"scene": scene, "video_id": f"{scene}/{folder_emotion}/{clip_id}"},
                )
            )
    keys = [Path(s.path).relative_to(clips_dir).as_posix() for s in samples]
    return drop_duplicates(samples, keys, problems)


def scan_split_tree(base: Path, problems: Problems) -> list[Sample]:
    """Clips of a ``<base>/<Scene>/<Emotion>/<id>/`` tree, in sorted order."""
    samples = []
    for scene in sorted(p for p in base.iterdir() if p.is_dir()):
        for emotion in sorted(p for p in scene.iterdir() if p.is_dir()):
            try:
                label = ferv39k_label(emotion.name)
            except ValueError as e:
                problems.report(str(emotion), str(e))
                continue
            for clip in sorted(p for p in emotion.iterdir() if p.is_dir()):
                samples.append(
                    Sample(
                        path=str(clip),
                        label=label,
                        source=str(clip),
                        meta={
                            "scene": scene.name,
                            "video_id": f"{scene.name}/{emotion.name}/{clip.name}",
                        },
                    )
                )
    return samples


def read_ferv39k_list(path: Path, root: Path, problems: Problems) -> list[Sample]:
    """Rows of a list-format FERV39k annotation, scenes from the clip paths."""
    samples = read_list_file(path, root=root, num_classes=len(DFER_CLASSES), on_error=problems.report)
    for s in samples:
        scene = scene_of(s.path)
        if scene is not None:
            s.meta["scene"] = scene
    return drop_duplicates(samples, [s.path for s in samples], problems)


@register_dataset("ferv39k")
def ferv39k(
    *,
    root: Path,
    split: str,
    fold: int | None = None,
    skip_bad: bool = False,
    list_file: str | None = None,
    split_file: str | None = None,
    train_split_file: str | None = None,
    test_split_file: str | None = None,
    frames: str = "2_ClipsforFaceCrop",
    check: str = "auto",
    workers: int = 8,
) -> DatasetSplit:
    """FERV39k split ``split``, 7 classes in the DFER order, scenes in ``meta["scene"]``.

    Args:
        fold: must be None (FERV39k has one official split).
        list_file: a list-format annotation, relative to ``root``; ``{split}`` becomes
            ``train``/``test``, e.g. ``"FERV39k_{split}.txt"``.
        split_file: an official-format split file instead of ``{split}_All.csv``
            (``{split}`` filled in the same way). Without ``{split}`` in ``list_file`` or
            ``split_file`` one file serves both splits: the trainer refuses that (the test
            figures would be on training data) unless ``data.allow_shared_test=true``.
        frames: folder of ``<Scene>/<Emotion>/<id>/`` under ``root``.
        check: ``auto`` (``first``), ``list``, ``first``, ``sampled`` or ``full``
            (see :mod:`d2sp.data.validate`).
        workers: threads for the checks.
    """
    if fold is not None:
        raise ValueError(f"ferv39k: has no folds (one official train/test split), got fold={fold!r}")
    problems = Problems(skip_bad=skip_bad)
    clips_dir = root / frames if (root / frames).is_dir() else root
    split_file = pick_split_file(split, split_file, train_split_file, test_split_file)
    if list_file is not None:
        path = resolve_file(format_name(list_file, split=split, fold=None), root, what="ferv39k")
        samples = read_ferv39k_list(path, root, problems)
        annotation, files = str(path), [str(path)]
    else:
        path = (
            resolve_file(format_name(split_file, split=split, fold=None), root, what="ferv39k")
            if split_file is not None
            else find_split_file(root, split)
        )
        if path is not None:
            samples = read_split_file(path, clips_dir, problems)
            annotation, files = str(path), [str(path)]
        else:
            tree = next((b / split for b in (clips_dir, root) if (b / split).is_dir()), None)
            if tree is None:
                raise DataError(
                    f"ferv39k: no {split} split found under {root}: give list_file= or "
                    f"split_file=, or put 4_setups/All_scenes/{split}_All.csv there, or a "
                    f"{split}/<Scene>/<Emotion>/<id>/ folder tree"
                )
            samples = scan_split_tree(tree, problems)
            annotation, files = str(tree), []
    samples = check_clips(samples, problems, check=check, workers=workers)
    require_samples(samples, problems, annotation=annotation)
    return DatasetSplit(
        name="ferv39k",
        root=str(root),
        split=split,
        fold=None,
        samples=samples,
        class_names=DFER_CLASSES,
        source=AutoSource(),
        skipped=problems.skipped,
        annotation_files=files,
    )
