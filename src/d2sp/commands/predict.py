"""``d2sp predict``: the expression of your own clips with a trained run's model.

    d2sp predict runs/dfew clip1.mp4 clip2.mp4 frames/clip3/      # -> predictions.csv
    d2sp predict runs/dfew my_list.txt --out mine.csv             # list: path num_frames label
    d2sp predict runs/dfew videos.csv --face-crop --overwrite     # CSV with a path column

A clip that cannot be read gets a row with its error; the others are still predicted. The
exit status is 0 when at least one clip was predicted.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from d2sp.commands.common import console, fail


def predict(
    run_dir: Path = typer.Argument(..., help="A run folder (config.yaml, best.pt / last.pt)"),
    paths: list[str] = typer.Argument(
        ..., help="Video files, frame folders, or list (.txt) / CSV files of them"
    ),
    out: Path = typer.Option(Path("predictions.csv"), "--out", help="CSV file to write"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists"),
    checkpoint: str = typer.Option("best", help="best (best WAR) or last (final epoch)"),
    batch_size: int = typer.Option(None, help="Clips per batch [the run's optim.batch_size]"),
    face_crop: bool = typer.Option(
        False, "--face-crop", help="Crop each clip to its largest face (OpenCV: d2sp\\[face] extra)"
    ),
    no_progress: bool = typer.Option(False, help="No progress bar"),
) -> None:
    """Predict the expression of video files and frame folders; one CSV row per clip."""
    from d2sp.data.video import is_video
    from d2sp.runs.facecrop import FaceCropUnavailableError
    from d2sp.runs.folder import RunFolderError
    from d2sp.runs.prediction import FACE_CROP_NOTE, predict_clips, write_predictions

    if out.exists() and not overwrite:
        fail(f"{out}: already exists (pass --overwrite to replace it)")
    if batch_size is not None and batch_size < 1:
        fail(f"--batch-size: expected an integer >= 1, got {batch_size}")
    try:
        rows, names = predict_clips(
            run_dir, paths, checkpoint=checkpoint, batch_size=batch_size, face_crop=face_crop,
            progress=not no_progress, console=console,
        )  # fmt: skip
        write_predictions(rows, names, out, overwrite=overwrite)
    except (RunFolderError, FaceCropUnavailableError, ValueError, OSError) as e:
        fail(str(e))
    videos = sum(is_video(r["path"]) for r in rows)
    if videos and not face_crop:
        note = f"{videos} input(s) are videos; {FACE_CROP_NOTE}"
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    failed = [r for r in rows if r["error"]]
    for r in failed[:10]:
        console.print(f"[red]failed[/] {escape(r['path'])}: {escape(r['error'])}", soft_wrap=True)
    if len(failed) > 10:
        console.print(f"... and {len(failed) - 10} more (see the error column)")
    done = len(rows) - len(failed)
    console.print(
        f"{done} of {len(rows)} clip(s) predicted, {len(failed)} failed -> {out}", soft_wrap=True
    )
    if done == 0:
        raise typer.Exit(1)
