"""``d2sp prepare``: pack a dataset split into a clip cache and print what was done.

    d2sp prepare dfew /data/DFEW /cache/dfew-train-1 --fold 1
    d2sp prepare ferv39k /data/FERV39k /cache/ferv-test --split test
    d2sp prepare csv /data/mine /cache/mine -o csv_file=train.csv -o class_names=a,b,c
    d2sp prepare dfew /data/DFEW /cache/dfew-train-1-raw --fold 1 --codec raw

The default codec, JPEG (quality 90), is about 14× smaller than ``--codec raw``, which
stores the resized frames as plain uint8 pixels: no decode when training (twice the clips
per loader core, lossless), at ``frames × h × w × 3`` bytes per clip (37,632 B per 112²
frame, 1.5 MB for a 40-frame clip; ``--max-frames`` bounds it), and six times the disk
reads when the cache is not in the page cache (see :mod:`d2sp.data.cache`).

Train from it with ``d2sp.data.cache.load_cache(out)`` (same samples, labels and order).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from d2sp.commands.common import console, fail
from d2sp.data.cache import DEFAULT_CODEC, prepare_cache
from d2sp.data.frames import DataError
from d2sp.data.registry import class_counts, create_dataset, list_datasets


def parse_options(pairs: list[str] | None) -> dict:
    """``["key=value", ...]`` -> builder options (ints, true/false and none converted)."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option: expected KEY=VALUE, got {pair!r}")
        text = value.strip()
        lowered = text.lower()
        if lowered in ("true", "false"):
            parsed: object = lowered == "true"
        elif lowered in ("none", "null"):
            parsed = None
        else:
            try:
                parsed = int(text)
            except ValueError:
                parsed = text
        options[key.strip()] = parsed
    return options




def prepare(
    dataset: str = typer.Argument(..., help=f"Dataset: {', '.join(list_datasets())}"),
    root: Path = typer.Argument(..., help="The dataset folder (never written)"),
    out: Path = typer.Argument(..., help="Cache folder (created; empty or an earlier cache)"),
    split: str = typer.Option("train", help="train or test"),
    fold: int = typer.Option(None, help="Fold 1-5 (DFEW, MAFW)"),
    size: int = typer.Option(112, help="Frame size: short side (or square side)"),
    codec: str = typer.Option(
        DEFAULT_CODEC,
        help="jpeg (compact, decoded when read) or raw (uint8 pixels, no decode, lossless; "
        "frames x h x w x 3 bytes per clip: 37,632 B per 112x112 frame, 1.5 MB for 40 frames)",
    ),
    quality: int = typer.Option(90, help="JPEG quality of the cached frames (jpeg codec)"),
    resize: str = typer.Option("short", help="short (keep aspect) or square"),
    max_frames: int = typer.Option(None, help="Keep at most this many frames per clip"),
    workers: int = typer.Option(os.cpu_count() or 1, help="Decode/encode processes"),
    skip_bad: bool = typer.Option(False, "--skip-bad/--no-skip-bad", help="Skip bad clips"),
    check: str = typer.Option("auto", help="Build-time check: auto (first), list, first, sampled, full"),
    force: bool = typer.Option(False, help="Rebuild even if the cache is current"),
    option: list[str] = typer.Option(
        None, "--option", "-o", help="Dataset option KEY=VALUE, repeatable (frames=clip_112x112)"
    ),
    quiet: bool = typer.Option(False, help="No progress bar"),
) -> None:
    """Pack a dataset split into a clip cache (frames resized once, a few large files)."""
    try:
        options = parse_options(option)
        options.setdefault("check", check)
        options.setdefault("workers", workers)
        data = create_dataset(
            dataset, root=root, split=split, fold=fold, skip_bad=skip_bad, **options
        )
        report = prepare_cache(
            data, out, size=size, codec=codec, quality=quality, resize=resize,
            max_frames=max_frames, workers=workers, skip_bad=skip_bad, force=force,
            progress=not quiet,
        )  # fmt: skip
    except (DataError, ValueError) as e:
        fail(str(e))
        return

    where = f"{dataset} {split}" + (f" fold {fold}" if fold is not None else "")
    console.print(f"[bold]{where}[/]: {len(data)} clips")
    counts = Table(show_edge=False)
    counts.add_column("class")
    counts.add_column("clips", justify="right")
    for name, n in class_counts(data).items():
        counts.add_row(name, str(n))
    console.print(counts)
    if report.skipped:
        console.print(f"[yellow]skipped {len(report.skipped)} bad row(s)[/], e.g.:")
        for line in report.skipped[:5]:
            console.print(f"  {line}", soft_wrap=True)
    verb = "built" if report.built else "reused"
    rate = report.num_clips / report.seconds if report.built and report.seconds > 0 else None
    summary = Table(show_header=False, show_edge=False)
    summary.add_row("cache", f"{out} ({verb}: {report.reason})")
    summary.add_row("clips / frames", f"{report.num_clips} / {report.num_frames}")
    summary.add_row(
        "size",
        f"{report.bytes / 2**20:.1f} MiB in {report.shards} shard(s), {codec}, "
        f"{report.bytes / max(report.num_clips, 1) / 2**10:.0f} KiB per clip",
    )
    summary.add_row("time", f"{report.seconds:.1f} s" + (f" ({rate:.0f} clips/s)" if rate else ""))
    console.print(summary)
