"""The expression of your own clips: a trained run's model on video files and frame folders.

    rows, class_names = predict_clips("runs/dfew", ["a.mp4", "clips/b/", "more.csv"])
    write_predictions(rows, class_names, "predictions.csv")

Inputs are video files (``.mp4 .avi .mov .mkv .webm .m4v``), folders of frame images, or a
list of them: a ``.txt``/``.lst`` file in the list format (``path num_frames label``, or
just ``path``) or a ``.csv`` with a ``path`` column; relative paths in a list are resolved
against the list file's folder. Clips are read as the run evaluated them (segment centres,
its ``num_frames``, ``size`` and normalisation). A bad input (missing, unreadable, a folder
without frames) gets a row with its error; the others are still predicted.

Models trained on DFER datasets (DFEW, FERV39k, MAFW, SynthDFER) saw face crops: frames of a
raw video should be cropped to the face first, or with ``face_crop=True`` (OpenCV's Haar
cascade, ``pip install 'd2sp[face]'``; see :mod:`d2sp.runs.facecrop`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch.utils.data import Dataset

from d2sp.data.frames import IMAGE_SUFFIXES
from d2sp.data.video import VIDEO_SUFFIXES, is_video
from d2sp.runs.model import load_run_model, progress_bar

LIST_SUFFIXES = (".txt", ".lst", ".list")
FACE_CROP_NOTE = (
    "models trained on face-cropped DFER data (DFEW, FERV39k, MAFW, SynthDFER) expect face "
    "crops: crop the faces first or pass --face-crop"
)


@dataclass
class ClipInput:
    """One clip to predict: ``path`` (a video or frame folder) and a problem found before
    reading it (``error``, else empty)."""

    path: str
    error: str = ""


def collect_inputs(paths) -> list[ClipInput]:
    """The clips named by ``paths`` (videos, frame folders, list or CSV files), in order. A
    row of a list naming no clip gets its error with the list's ``file:row``.

    Raises:
        ValueError: a list or CSV file that cannot be read, or a text file that is no list
            of clips (none of its rows names an existing video or frame folder), naming the
            file and its first row.
    """
    inputs: list[ClipInput] = []
    for p in map(str, paths):
        suffix = Path(p).suffix.lower()
        if not (os.path.isfile(p) and suffix in LIST_SUFFIXES + (".csv",)):
            inputs.append(check_input(p))
            continue
        try:
            rows = read_csv_paths(p) if suffix == ".csv" else read_list_paths(p)
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{p}: cannot read it as a list of clips: {e}") from None
        if rows and not any(os.path.exists(clip) for clip, _, _ in rows if clip):
            _, where, text = rows[0]
            raise ValueError(
                f"{where}: {text!r} names no video file or frame folder, nor does any other "
                f"row of {p}: expected a list of clips, one a line ('path' or 'path "
                "num_frames label'; a CSV with a 'path' column)"
            )
        for clip, where, _ in rows:
            item = check_input(clip) if clip else ClipInput(p, "a row without a path")
            item.error = f"{where}: {item.error}" if item.error else ""
            inputs.append(item)
    return inputs


def read_list_paths(path: str) -> list[tuple[str, str, str]]:
    """``(clip path, "file:row", row text)`` per row of a list file: ``path num_frames
    label`` rows (the DFER list format) or one path a line; ``#`` comments and blank lines
    skipped; relative paths against the file's folder."""
    base, out = Path(path).parent, []
    with open(path, encoding="utf-8") as f:
        for row, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split()
            clip = text
            if len(parts) >= 3 and parts[-1].lstrip("-").isdigit() and parts[-2].isdigit():
                clip = " ".join(parts[:-2])
            out.append((clip if os.path.isabs(clip) else str(base / clip), f"{path}:{row}", text))
    return out


def read_csv_paths(path: str) -> list[tuple[str, str, str]]:
    """``(clip path, "file:row", cell)`` of the ``path`` column of a CSV file (any case),
    relative to the file's folder (an empty cell: an empty path)."""
    base, out = Path(path).parent, []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if "path" not in header:
            raise ValueError(f"expected a header with a 'path' column, got {header}")
        i = header.index("path")
        for row in reader:
            if not any(row):
                continue
            cell = row[i].strip() if len(row) > i else ""
            clip = cell if not cell or os.path.isabs(cell) else str(base / cell)
            out.append((clip, f"{path}:{reader.line_num}", cell))
    return out


def check_input(path: str) -> ClipInput:
    """``path`` as a clip: an existing video file or a folder holding frame images."""
    if os.path.isdir(path):
        names = os.listdir(path)
        if any(n.lower().endswith(IMAGE_SUFFIXES) for n in names):
            return ClipInput(path)
        videos = sum(n.lower().endswith(VIDEO_SUFFIXES) for n in names)
        hint = f"; it holds {videos} video(s): pass them, e.g. {path}/*.mp4" if videos else ""
        return ClipInput(path, f"folder without frame images ({', '.join(IMAGE_SUFFIXES)}){hint}")
    if not os.path.exists(path):
        return ClipInput(path, "not found")
    if not is_video(path):
        kinds = f"not a video ({', '.join(VIDEO_SUFFIXES)}), a frame folder or a list (.txt, .csv)"
        return ClipInput(path, kinds)
    return ClipInput(path)


class _SafeClips(Dataset):
    """``(clip (T, 3, S, S) uint8, position, error)``: a clip that cannot be read is zeros
    with its error text, so that one bad input never stops the others."""

    def __init__(self, clips, shape: tuple[int, ...]):
        self.clips, self.shape = clips, shape

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        try:
            clip, _, _ = self.clips[i]
            return clip.contiguous(), i, ""
        except Exception as e:  # noqa: BLE001 - any failure to read an input is its row's error
            text = str(e) or type(e).__name__
            return torch.zeros(self.shape, dtype=torch.uint8), i, text


def predict_clips(
    run_dir: str | Path,
    paths,
    *,
    checkpoint: str = "best",
    batch_size: int | None = None,
    face_crop: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> tuple[list[dict], tuple[str, ...]]:
    """Predict the expression of every clip ``paths`` name (see :func:`collect_inputs`).

    Returns:
        ``(rows, class_names)``: one row per clip, in order, with ``path``,
        ``predicted_index`` and ``predicted`` (None when it failed), ``probs`` (``(K,)``
        float32 softmax, or None) and ``error`` (empty when predicted).

    Raises:
        RunFolderError: no run or checkpoint. FaceCropUnavailableError: ``face_crop``
        without OpenCV (the message names the extra to install). ValueError: a list file
        that cannot be read or is no list of clips (file and row named).
    """
    if face_crop:
        from d2sp.runs.facecrop import require_cv2

        require_cv2()
    inputs = collect_inputs(paths)
    loaded = load_run_model(run_dir, checkpoint=checkpoint)
    rows = [{"path": c.path, "error": c.error, "probs": None} for c in inputs]
    todo = [i for i, c in enumerate(inputs) if not c.error]
    if todo:
        probs, errors = _predict_batches(
            loaded, [inputs[i].path for i in todo], batch_size=batch_size, face_crop=face_crop,
            progress=progress, console=console,
        )  # fmt: skip
        for j, i in enumerate(todo):
            rows[i]["probs"], rows[i]["error"] = probs[j], errors[j]
    for row in rows:
        k = None if row["probs"] is None else int(np.argmax(row["probs"]))
        row["predicted_index"] = k
        row["predicted"] = None if k is None else loaded.class_names[k]
    return rows, loaded.class_names


def _predict_batches(loaded, paths: list[str], *, batch_size, face_crop, progress, console):
    """``(probs, errors)``: per path a ``(K,)`` softmax (None on error) and an error text."""
    from d2sp.data.annotations import Sample
    from d2sp.data.video import AutoSource
    from d2sp.training.loaders import to_inputs

    cfg, model = loaded.cfg, loaded.model
    source = AutoSource()
    if face_crop:
        from d2sp.runs.facecrop import FaceCropSource

        source = FaceCropSource(source)
    clips = loaded.clips([Sample(path=p, label=0) for p in paths], source)
    shape = (cfg.data.num_frames, 3, cfg.data.size, cfg.data.size)
    loader = loaded.loader(_SafeClips(clips, shape), batch_size)
    probs: list = [None] * len(paths)
    errors = [""] * len(paths)
    with progress_bar(console, progress, "predicting") as bar, torch.no_grad():
        task = bar.add_task("batches", total=len(loader))
        for batch, positions, texts in loader:
            ok = [k for k, text in enumerate(texts) if not text]
            if ok:
                with loaded.autocast():
                    logits, _ = model(to_inputs(batch[ok], model, loaded.device))  # (B', K)
                p = torch.softmax(logits.float(), dim=1).cpu().numpy()  # (B', K)
                for row, k in zip(p, ok, strict=True):
                    probs[int(positions[k])] = row
            for k, text in enumerate(texts):
                if text:
                    errors[int(positions[k])] = _short_error(text, paths[int(positions[k])])
            bar.advance(task)
    return probs, errors


def _short_error(text: str, path: str) -> str:
    """The error without the clip's own path in front (the row names it already)."""
    while text.startswith(path + ": "):
        text = text[len(path) + 2 :]
    return text


def write_predictions(
    rows: list[dict], class_names, out: str | Path, *, overwrite: bool = False
) -> Path:
    """Write ``rows`` of :func:`predict_clips` as a CSV: ``path, predicted, predicted_index,
    p_<class>`` for each of the K classes, ``error``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        probs_header = [f"p_{n}" for n in class_names]
        w.writerow(["path", "predicted", "predicted_index", *probs_header, "error"])
        for r in rows:
            probs = [""] * len(class_names)
            if r["probs"] is not None:
                probs = [f"{x:.6f}" for x in r["probs"]]
            k = "" if r["predicted_index"] is None else r["predicted_index"]
            w.writerow([r["path"], r["predicted"] or "", k, *probs, r["error"]])
    return out
