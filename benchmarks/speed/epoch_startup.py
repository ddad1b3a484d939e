#!/usr/bin/env python
"""An epoch's loader start-up before and after the run's loaders keep their workers, side by
side in one run.

A small synthetic clip tree (``--clips`` training and ``--test`` test clips, each a folder
of ``--frames`` JPEG frames of ``--src``², smooth noise) is read by the trainer's datasets
(``ClipDataset(output="uint8")``: 16 segment-sampled frames, random resized crop and flip,
``--size``²) with ``--workers`` loader processes. Each epoch is a training pass and a test
pass, the training step stood in by ``--step-ms`` of waiting per batch (a GPU step: the
main process waits, its CPU is free for the workers):

- ``before``: a new loader per pass (``make_loader``, what the trainer did): each pass
  starts its workers and waits for its first batches;
- ``after``: the run's loaders (``RunLoaders``): workers kept for the whole run, and the
  next epoch's training batches planned and started before the test pass.

Per epoch: the time from the epoch's start to its first training batch, and the whole
epoch (training and test pass); the first epoch (workers started in both) apart from the
warm ones. Both read the same batches (checked). Example::

    python benchmarks/speed/epoch_startup.py --out benchmarks/results/epoch_startup_cpu.md

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import d2sp  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from d2sp.config import load_config  # noqa: E402
from d2sp.data.annotations import Sample  # noqa: E402
from d2sp.data.dataset import ClipDataset  # noqa: E402
from d2sp.training.badclips import BadClips  # noqa: E402
from d2sp.training.distributed import SINGLE  # noqa: E402
from d2sp.training.loaders import make_loader  # noqa: E402
from d2sp.training.passes import RunLoaders  # noqa: E402


def make_tree(root: Path, clips: int, frames: int, size: int, seed: int) -> list[Sample]:
    """``clips`` folders of ``frames`` JPEG frames (smooth noise), as annotation rows."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    samples = []
    for c in range(clips):
        folder = root / f"{c:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        for f in range(frames):
            img = Image.fromarray(np.roll(base, f, axis=1)).resize((size, size), Image.BILINEAR)
            img.save(folder / f"{f + 1:03d}.jpg", quality=90)
        samples.append(Sample(path=str(folder), label=int(rng.integers(0, 7))))
    return samples


def datasets(work: Path, args):
    common = dict(num_frames=16, size=args.size, seed=0, output="uint8")
    train = make_tree(work / "train", args.clips, args.frames, args.src, 1)
    test = make_tree(work / "test", args.test, args.frames, args.src, 2)
    return ClipDataset(train, train=True, **common), ClipDataset(test, train=False, **common)


def run_pass(loader, step_s: float, t0: float, out: list) -> float | None:
    """Iterate ``loader`` waiting ``step_s`` per batch; the time of its first batch after
    ``t0``; the batches' indices appended to ``out``."""
    first = None
    for _, _, idx in loader:
        if first is None:
            first = time.perf_counter() - t0
        time.sleep(step_s)
        out.append(idx.tolist())
    return first


def before(train_ds, test_ds, args) -> tuple[list[dict], list]:
    """A new loader for every pass, as the trainer made them."""
    rows, seen = [], []
    indices = np.arange(len(train_ds))
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        train_ds.set_epoch(epoch)
        loader = make_loader(train_ds, indices, batch_size=args.batch, shuffle=True,
                             seed=1000 + epoch, workers=args.workers, drop_last=True,
                             pad_empty=True)  # fmt: skip
        first = run_pass(loader, args.step_ms / 1e3, t0, seen)
        test = make_loader(test_ds, None, batch_size=args.batch, shuffle=False, seed=0,
                           workers=args.workers)  # fmt: skip
        run_pass(test, args.step_ms / 1e3, t0, seen)
        rows.append({"first": first, "epoch": time.perf_counter() - t0})
    return rows, seen


def after(train_ds, test_ds, args) -> tuple[list[dict], list]:
    """The run's loaders: workers kept, the next epoch's batches started before the test
    pass."""
    cfg = load_config(None, [f"optim.batch_size={args.batch}", f"data.workers={args.workers}",
                             "seed=1"])  # fmt: skip
    loaders = RunLoaders(cfg, SINGLE, BadClips(), train_ds=train_ds, rescore_ds=train_ds,
                         test_ds=test_ds)  # fmt: skip
    rows, seen = [], []
    indices = np.arange(len(train_ds))
    try:
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            train_ds.set_epoch(epoch)
            first = run_pass(loaders.train(epoch, indices), args.step_ms / 1e3, t0, seen)
            if epoch + 1 < args.epochs:
                loaders.prefetch(epoch + 1, indices)
            run_pass(loaders.test(), args.step_ms / 1e3, t0, seen)
            rows.append({"first": first, "epoch": time.perf_counter() - t0})
    finally:
        loaders.close()
    return rows, seen


def table(results: dict[str, list[dict]], args) -> str:
    lines = [
        "| loaders | first epoch: to 1st batch | first epoch | warm epochs: to 1st batch "
        "| warm epoch | warm clips/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    clips = (args.clips // args.batch) * args.batch + args.test
    for name, rows in results.items():
        warm = rows[1:]
        first = np.mean([r["first"] for r in warm]) * 1e3
        epoch = np.mean([r["epoch"] for r in warm])
        lines.append(
            f"| {name} | {rows[0]['first'] * 1e3:.0f} ms | {rows[0]['epoch']:.2f} s "
            f"| {first:.0f} ms | {epoch:.2f} s | {clips / epoch:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=256, help="training clips")
    ap.add_argument("--test", type=int, default=64, help="test clips")
    ap.add_argument("--frames", type=int, default=16, help="frames per synthetic clip")
    ap.add_argument("--src", type=int, default=128, help="side of the synthetic frames")
    ap.add_argument("--size", type=int, default=112, help="clip side the dataset gives")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--step-ms", type=float, default=10.0, help="stand-in step per batch")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs: at least 2 (the first one is reported apart)")
    with tempfile.TemporaryDirectory(prefix="d2sp-startup-") as tmp:
        t0 = time.perf_counter()
        train_ds, test_ds = datasets(Path(tmp), args)
        print(f"tree: {args.clips} + {args.test} clips written in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)  # fmt: skip
        (rows_b, seen_b), (rows_a, seen_a) = before(train_ds, test_ds, args), after(train_ds, test_ds, args)
    if seen_a != seen_b:
        raise SystemExit("the loaders read different batches")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        "# Epoch start-up of the loaders, before and after (CPU)", "",
        f"`python benchmarks/speed/epoch_startup.py{' ' + ' '.join(argv or sys.argv[1:])}`", "",
        f"{args.epochs} epochs of {args.clips // args.batch} training batches of {args.batch} and "
        f"{-(-args.test // args.batch)} test batches (16 frames at {args.size}² from "
        f"{args.frames} JPEG frames of {args.src}²), {args.workers} workers, {args.step_ms:g} ms "
        f"stand-in step per batch; warm = epochs 2..{args.epochs}; {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the end.", "",
        table({"before: a loader per pass": rows_b, "after: kept workers + prefetch": rows_a}, args),
        "",
    ])  # fmt: skip
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
