#!/usr/bin/env python
"""Training clips/s end to end from disk against the same model fed from memory, in one run.

From disk is the trainer's data path: a clip cache as ``d2sp prepare`` writes it by default
(``prepare_cache`` with its defaults over a synthetic DFEW-like tree of ``--pool`` clips of
``--src-frames`` frames, then tiled to ``--clips`` clips with the cache's own writer, so the
shards hold exactly the bytes ``prepare`` writes), read through ``load_cache``,
``ClipDataset(train=True, output="uint8")`` and the trainer's ``make_loader`` (a new loader
per epoch, seeded shuffling, bad-clip checks, pinned batches on CUDA and shared buffers
reused), ``--workers`` processes (default: CPUs − 2), normalised on the device
(``to_inputs``). The training step is the trainer's: the backbone with the weight branch,
bf16 autocast and channels_last on CUDA, SGD momentum 0.9, ``purifier.batch_loss(model, x, idx)``
and ``purifier.after_step()`` of the purification mode ``--mode``.

Measured, with one model, optimizer and purifier:

- ``memory``: the step on one fixed uint8 batch already on the device (the compute ceiling);
- ``loader only``: one epoch of the loader with no training step (what the workers deliver),
  with their CPU time per clip (``/proc``: compare with ``benchmarks/speed/loader_table.py``);
- ``disk, warm``: ``--epochs`` whole epochs (each loader's start-up included) with the cache
  in the page cache; also the steady rate, leaving out each epoch's first
  ``workers × prefetch`` batches;
- ``disk, cold``: one epoch after the cache's pages were dropped (``POSIX_FADV_DONTNEED`` on
  every shard: no root needed), every clip read from the disk once.

Examples::

    python benchmarks/speed/train_from_disk.py --model r18_lstm               # GPU
    python benchmarks/speed/train_from_disk.py --model former_dfer --batch 32
    python benchmarks/speed/train_from_disk.py --tiny --device cpu            # CPU smoke, ~1 min

Prints a Markdown table (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / d) for d in ("src", "")]  # the checkout

from benchmarks.helpers import available_cpus, drop_pages, log, proc_cpu  # noqa: E402
from benchmarks.speed.tree import make_tree, tile_cache  # noqa: E402
from d2sp.data.cache import load_cache, prepare_cache  # noqa: E402
from d2sp.data.dataset import ClipDataset  # noqa: E402
from d2sp.data.registry import create_dataset  # noqa: E402
from d2sp.models import create_model  # noqa: E402
from d2sp.purify import create_purifier, purifier_class  # noqa: E402
from d2sp.training.loaders import PREFETCH, make_loader, to_inputs  # noqa: E402

# name -> (backbone kwargs, frame size, clips per batch): the sizes of throughput.py
PRESETS = {
    "r18_lstm": ({}, 112, 64),
    "former_dfer": ({}, 112, 32),
}
TINY = {
    "r18_lstm": ({"width": 4, "lstm_hidden": 16}, 32, 8),
    "former_dfer": ({"width": 8, "img_size": 32, "heads": 4}, 32, 8),
}


def build_cache(work: Path, args) -> tuple[Path, dict]:
    """The pool tree, its cache with ``prepare_cache``'s defaults, tiled to ``--clips``."""
    pool_root = work / "pool"
    t0 = time.perf_counter()
    if not (pool_root / "label" / "single_trainset_1.csv").is_file():
        make_tree(pool_root, args.pool, args.src_frames, args.src_size,
                              available_cpus(), videos=False)  # fmt: skip
    gen_s = time.perf_counter() - t0
    split = create_dataset("dfew", root=pool_root, split="train", fold=1, workers=available_cpus())
    kw = {"size": args.size}
    if args.codec:
        kw["codec"] = args.codec
    t0 = time.perf_counter()
    report = prepare_cache(split, work / "pool-cache", workers=available_cpus(), progress=False,
                           **kw)  # fmt: skip
    prep_s = time.perf_counter() - t0
    manifest = json.loads((work / "pool-cache" / "manifest.json").read_text())
    out = work / "cache"
    t0 = time.perf_counter()
    tile_cache(work / "pool-cache", out, args.clips)
    size = sum(p.stat().st_size for p in out.glob("shard-*.bin"))
    info = {
        "params": manifest["params"], "pool": args.pool, "clips": args.clips,
        "bytes": size, "kib_per_clip": size / args.clips / 1024, "generated_s": gen_s,
        "prepared_s": prep_s, "prepare_clips_s": report.num_clips / max(prep_s, 1e-9),
        "tiled_s": time.perf_counter() - t0,
    }  # fmt: skip
    return out, info


class Trainer:
    """The model, optimizer and purifier, and the trainer's step."""

    def __init__(self, args, device: torch.device, labels: torch.Tensor):
        presets = TINY if args.tiny else PRESETS
        kwargs = presets.get(args.model, ({}, 112, 32))[0]
        cuda = device.type == "cuda"
        model = create_model(args.model, num_classes=7, weight_branch=True, **kwargs).to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        self.model, self.device = model, device
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        self.purifier = create_purifier(args.mode, labels, num_classes=7, model=model,
                                        optimizer=self.opt, device=device)  # fmt: skip
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext
        )
        model.train()

    def step(self, clips: torch.Tensor, idx: torch.Tensor) -> None:
        x = to_inputs(clips, self.model, self.device)  # (B, T, 3, S, S)
        with self.autocast():  # the purifier runs the model: (B, K) logits, (B,) weights
            loss = self.purifier.batch_loss(self.model, x, idx.to(self.device, non_blocking=True))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.purifier.after_step()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def time_memory(trainer: Trainer, args, frames: int, size: int, batch: int, n: int) -> float:
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (batch, frames, 3, size, size), dtype=torch.uint8, generator=g)
    clips = clips.to(trainer.device)
    idx = torch.randint(n, (batch,), generator=g).to(trainer.device)
    for _ in range(args.warmup):
        trainer.step(clips, idx)
    trainer.sync()
    t0 = time.perf_counter()
    steps = 0
    while time.perf_counter() - t0 < args.seconds or steps < 3:
        trainer.step(clips, idx)
        steps += 1
        if steps % 10 == 0:
            trainer.sync()
    trainer.sync()
    return steps * batch / (time.perf_counter() - t0)


def epoch(trainer: Trainer | None, ds, args, batch: int, seed: int) -> dict:
    """One epoch of the trainer's loader (and step, unless ``trainer`` is None)."""
    loader = make_loader(ds, None, batch_size=batch, shuffle=True, seed=seed,
                         workers=args.workers, drop_last=True)  # fmt: skip
    fill = max(1, args.workers * PREFETCH)  # batches in flight when the loader starts
    t0 = time.perf_counter()
    clips = steady_clips = 0
    t_fill = cpu0 = None
    pids: list[int] = []
    cpu = 0.0
    for k, (x, _, idx) in enumerate(loader):
        if k == 0:
            pids = [p.pid for p in mp.active_children()]  # the loader's workers
        if trainer is not None:
            trainer.step(x, idx)
        clips += len(idx)
        if k + 1 == fill:
            if trainer is not None:
                trainer.sync()
            t_fill = time.perf_counter()
            cpu0 = sum(proc_cpu(p) for p in pids)
        elif k + 1 > fill:
            steady_clips += len(idx)
            if k + 2 == len(loader) and cpu0 is not None:  # workers still running
                cpu = sum(proc_cpu(p) for p in pids) - cpu0
    if trainer is not None:
        trainer.sync()
    t1 = time.perf_counter()
    out = {"clips": clips, "seconds": t1 - t0, "rate": clips / (t1 - t0)}
    if t_fill is not None and steady_clips:
        out["steady_rate"] = steady_clips / (t1 - t_fill)
        out["startup_s"] = t_fill - t0
        if cpu > 0:
            out["worker_cpu_ms"] = 1e3 * cpu / steady_clips
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="r18_lstm")
    ap.add_argument("--mode", default="paper", help="purification mode")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default per model (r18: 64)")
    ap.add_argument("--size", type=int, default=None, help="frame size (default per model)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--codec", default=None, help="cache codec (default: prepare's default)")
    ap.add_argument("--pool", type=int, default=256, help="distinct synthetic clips")
    ap.add_argument("--src-frames", type=int, default=40)
    ap.add_argument("--src-size", type=int, default=112, help="synthetic source frame size")
    ap.add_argument("--clips", type=int, default=8192, help="clips in the tiled cache")
    ap.add_argument("--workers", type=int, default=max(1, available_cpus() - 2))
    ap.add_argument("--epochs", type=int, default=3, help="timed warm epochs")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds from memory")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps from memory")
    ap.add_argument("--work", default=None, help="data folder (default: a temp dir)")
    ap.add_argument("--tiny", action="store_true", help="tiny model and data (CPU smoke run)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--target-pct", type=float, default=None,
                    help="print whether warm disk epochs reach this %% of memory")
    ap.add_argument("--target-rate", type=float, default=None,
                    help="print whether warm disk epochs reach this many clips/s")
    args = ap.parse_args(argv)
    try:
        purifier_class(args.mode)
    except (KeyError, ValueError) as e:
        ap.error(str(e))
    if args.tiny:
        args.pool, args.src_frames, args.src_size = 8, 12, 48
        args.clips, args.epochs, args.seconds, args.warmup = 64, 2, 1.0, 1
        args.frames = 4
    presets = TINY if args.tiny else PRESETS
    _, size, batch = presets.get(args.model, ({}, 112, 32))
    args.size = args.size or size
    args.batch = args.batch or batch
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    if device.type == "cpu":  # the step on one core, the loader workers on the others
        torch.set_num_threads(1)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="d2sp-fromdisk-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, device, work, "python benchmarks/speed/train_from_disk.py " + " ".join(argv))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def run(args, device, work: Path, command: str) -> int:
    cache, info = build_cache(work, args)
    split = load_cache(cache)
    ds = ClipDataset(split.samples, num_frames=args.frames, size=args.size, train=True,
                     source=split.source, output="uint8")  # fmt: skip
    labels = torch.as_tensor(split.labels)
    trainer = Trainer(args, device, labels)
    log(f"cache ready ({info['kib_per_clip']:.0f} KiB/clip, {info['params']['codec']})")
    rows = {}
    rows["memory"] = {"rate": time_memory(trainer, args, args.frames, args.size, args.batch,
                                          len(split))}  # fmt: skip
    log(f"memory: {rows['memory']['rate']:.0f} clips/s")
    epoch(trainer, ds, args, args.batch, seed=99)  # warm-up: cuDNN, page cache, workers
    rows["loader only"] = epoch(None, ds, args, args.batch, seed=0)
    log(f"loader only: {rows['loader only']['rate']:.0f} clips/s")
    warm = [epoch(trainer, ds, args, args.batch, seed=1 + e) for e in range(args.epochs)]
    clips = sum(e["clips"] for e in warm)
    seconds = sum(e["seconds"] for e in warm)
    steady = [e["steady_rate"] for e in warm if "steady_rate" in e]
    rows["disk, warm"] = {
        "rate": clips / seconds, "epochs": len(warm),
        "steady_rate": float(np.mean(steady)) if steady else None,
        "startup_s": float(np.mean([e.get("startup_s", 0.0) for e in warm])),
    }  # fmt: skip
    log(f"disk, warm: {rows['disk, warm']['rate']:.0f} clips/s")
    drop_pages(cache)
    rows["disk, cold"] = epoch(trainer, ds, args, args.batch, seed=50)
    log(f"disk, cold: {rows['disk, cold']['rate']:.0f} clips/s")

    mem = rows["memory"]["rate"]
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    p = info["params"]
    print(
        f"**{args.model}{' (tiny)' if args.tiny else ''} trained from disk vs from memory** — "
        f"{dev}, {available_cpus()} CPUs, torch {torch.__version__}, mode {args.mode}, batch "
        f"{args.batch}, {args.frames} frames at {args.size}², {args.workers} loader workers "
        f"(prefetch {PREFETCH}); cache: codec {p['codec']}"
        f"{'' if p['codec'] == 'raw' else ' q' + str(p['quality'])}, {args.clips} clips "
        f"({info['kib_per_clip']:.0f} KiB/clip, {info['bytes'] / 2**30:.2f} GiB) tiled from "
        f"{args.pool} synthetic clips of {args.src_frames} frames at {args.src_size}² "
        f"(prepared at {info['prepare_clips_s']:.0f} clips/s).\n\n`{command}`\n"
    )
    print("| fed from | clips/s | % of memory | steady clips/s (% of memory) | notes |")
    print("|---|---:|---:|---:|---|")
    for name, r in rows.items():
        steady = r.get("steady_rate")
        st = f"{steady:.0f} ({100 * steady / mem:.0f}%)" if steady else "–"
        notes = []
        if "startup_s" in r:
            notes.append(f"first {args.workers * PREFETCH} batches after {r['startup_s']:.2f} s")
        if "worker_cpu_ms" in r:
            notes.append(f"worker CPU {r['worker_cpu_ms']:.2f} ms/clip "
                         f"({1e3 / r['worker_cpu_ms']:.0f} clips per worker-core-s)")  # fmt: skip
        if "epochs" in r:
            notes.append(f"{r['epochs']} epochs of {args.clips // args.batch} steps")
        print(f"| {name} | {r['rate']:.0f} | {100 * r['rate'] / mem:.0f}% | {st} | "
              f"{'; '.join(notes)} |")  # fmt: skip
    warm = rows["disk, warm"]["rate"]
    if args.target_pct is not None:
        met = "met" if 100 * warm / mem >= args.target_pct else "NOT met"
        print(f"\ntarget: {args.model} from disk >= {args.target_pct:g}% of memory: {met} "
              f"({100 * warm / mem:.1f}%: {warm:.0f} of {mem:.0f} clips/s, whole warm epochs)")
    if args.target_rate is not None:
        met = "met" if warm >= args.target_rate else "NOT met"
        print(f"\ntarget: {args.model} from disk >= {args.target_rate:g} clips/s: {met} "
              f"({warm:.0f} clips/s, whole warm epochs; {mem:.0f} from memory)")
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
