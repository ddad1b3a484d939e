#!/usr/bin/env python
"""Loader throughput per worker core for each source and codec, warm and cold, at a dataset
size larger than RAM; the disk's read bandwidth; and what they predict for a GPU machine.

What is read is the real path: ``load_cache``/``CacheSource`` (or the frame-folder and video
sources), ``ClipDataset(train=True, output="uint8")`` (16 segment-sampled frames, random
resized crop and flip, 112²), :class:`~d2sp.training.badclips.CheckedItems` and
``CheckedCollate`` in a ``DataLoader`` of ``--workers`` processes (batch ``--batch``, prefetch
2 per worker, as the trainer's). What is written is synthetic, to reach a size larger than RAM
quickly:

1. a pool of ``--pool`` distinct synthetic clips (``--src-frames`` frames at ``--src-size``²:
   texture, a moving blob, sensor noise; ``benchmarks/speed/tree.py``) as
   JPEG frame folders and H.264 videos;
2. the pool packed by ``prepare_cache`` once per codec, then tiled to ``--clips`` clips
   (the pool's clips repeated under distinct sample paths) with the cache's own shard
   writer: the shards hold exactly the bytes ``prepare_cache`` writes, ``--clips`` times
   over, so 20,000 clips of 40 frames make a raw cache of 28 GiB;
3. the pool's frame folders and videos copied to ``--tree-clips`` clips (enough that no clip
   is read twice in a cold measurement).

Each source is timed for ``--seconds`` (after ``--warmup`` batches):

- ``warm``: clips drawn from the first ``--warm-clips`` clips, read once beforehand (in the
  page cache);
- ``cold``: the page cache emptied first (``--evict drop``: ``sync; echo 3 >
  /proc/sys/vm/drop_caches``, needs root; ``fadvise``: ``POSIX_FADV_DONTNEED`` on every file of
  the source), clips drawn without replacement from all of them;
- ``warm, fresh buffers``: as ``warm`` but each batch collated into new shared memory (the
  DataLoader's default; the trainer reuses a ring of buffers when it pins batches for a GPU);
- ``cold, per-frame reads`` (caches): one ``pread`` per frame and the kernel's read-ahead,
  the read path before clip reads were grouped.

Per measurement: clips/s of one worker (wall clock), the worker's CPU time per clip (from
``/proc/PID/stat``; its inverse is the rate of one fully busy worker core, whatever else runs
on the machine), the bytes the worker fetched from the disk per clip (``/proc/PID/io``
``read_bytes``: read-ahead included) and the main process's CPU time per clip.

The disk: sequential read of a cold shard with ``dd`` (4 MiB blocks), and random reads of
cold raw-shard bytes at a few request sizes and queue depths (threads doing ``pread``).

Prediction for a ``--gpu-cores`` machine (workers = cores - 2) against a compute rate of
``--gpu-rate`` clips/s: per source, the CPU-bound rate (workers × clips per worker-core-second
× ``--core-factor``, the speed of one of its cores relative to one here), the disk-bound rate
(disk bandwidth / bytes fetched per clip, for data that is not in the page cache) and the
smaller of these and the compute rate.

    sudo python benchmarks/speed/loader_table.py --work /work/loader-table --clips 20000
    python benchmarks/speed/loader_table.py --tiny        # smoke run, a few MB, ~1 minute

Writes Markdown (the command at the top) to ``--out`` and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / d) for d in ("src", "")]  # the checkout

from torch.utils.data import DataLoader, RandomSampler, Subset  # noqa: E402

from benchmarks.helpers import drop_pages, log, proc_cpu  # noqa: E402
from benchmarks.speed.tree import make_tree, tile_cache  # noqa: E402
from d2sp.data.cache import CacheSource, load_cache, prepare_cache  # noqa: E402
from d2sp.data.common import DatasetSplit  # noqa: E402
from d2sp.data.dataset import ClipDataset  # noqa: E402
from d2sp.data.registry import create_dataset  # noqa: E402
from d2sp.training.badclips import CheckedCollate, CheckedItems  # noqa: E402

PREFETCH = 2  # as the trainer's loaders
CODECS = {"raw": ("raw", None), "jpeg": ("jpeg", 90), "jpeg-q75": ("jpeg", 75)}


def ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def proc_read_bytes(pid: int) -> int | None:
    """Bytes process ``pid`` caused to be fetched from storage, or None if not readable."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- the data


def make_pool(root: Path, args) -> DatasetSplit:
    """The pool tree (JPEG folders in the DFEW layout, H.264 videos); its DFEW split."""
    if not (root / "label" / "single_trainset_1.csv").is_file():
        t0 = time.perf_counter()
        make_tree(root, args.pool, args.src_frames, args.src_size, args.gen_workers)
        log(f"pool of {args.pool} clips written in {time.perf_counter() - t0:.0f} s")
    return create_dataset("dfew", root=root, split="train", fold=1, workers=args.gen_workers)


def tile_tree(pool: DatasetSplit, pool_root: Path, out: Path, n: int) -> None:
    """``n`` frame folders and ``n`` videos copied from the pool, with a csv for each."""
    if out.exists():
        shutil.rmtree(out)
    (out / "f").mkdir(parents=True)
    (out / "v").mkdir()
    folder_rows, video_rows = [], []
    for k in range(n):
        s = pool.samples[k % len(pool.samples)]
        vid = Path(s.path).name
        shutil.copytree(s.path, out / "f" / f"{k:06d}")
        shutil.copyfile(pool_root / "videos" / f"{vid}.mp4", out / "v" / f"{k:06d}.mp4")
        folder_rows.append(f"f/{k:06d},{s.label}\n")
        video_rows.append(f"v/{k:06d}.mp4,{s.label}\n")
    (out / "folders.csv").write_text("path,label\n" + "".join(folder_rows))
    (out / "videos.csv").write_text("path,label\n" + "".join(video_rows))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ------------------------------------------------------------------------ page cache


def evict(paths: list[Path], how: str) -> str:
    """Empty the page cache of ``paths`` (files or folders); returns how it was done."""
    if how == "drop":
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return "drop_caches"
        except OSError:
            how = "fadvise"
    drop_pages(paths)
    return "fadvise"


def prefetch_cache(out: Path, clips: int) -> None:
    """Read the shard bytes of the first ``clips`` clips of a cache (into the page cache)."""
    index = np.load(out / "clips.npy")
    frames = np.load(out / "frames.npy")
    last = frames[int(index[min(clips, len(index) - 1)]) - 1]
    for shard in range(int(last["shard"]) + 1):
        size = int(last["offset"] + last["length"]) if shard == last["shard"] else None
        with open(out / f"shard-{shard:05d}.bin", "rb") as f:
            left = size if size is not None else 1 << 62
            while left > 0:
                block = f.read(min(left, 8 << 20))
                if not block:
                    break
                left -= len(block)


def prefetch_files(paths: list[str]) -> None:
    for p in paths:
        q = Path(p)
        for f in [q] if q.is_file() else sorted(q.iterdir()):
            f.read_bytes()


# ------------------------------------------------------------------------ measuring


def measure(dataset, indices, args, *, replacement: bool, reuse: bool) -> dict:
    """One worker (``args.workers``) reading ``dataset`` at ``indices`` for ``args.seconds``."""
    items = Subset(CheckedItems(dataset), list(indices))
    total = (args.warmup + 100_000) * args.batch if replacement else len(items)
    sampler = RandomSampler(items, replacement=replacement, num_samples=total,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    loader = DataLoader(
        items, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
        prefetch_factor=PREFETCH, persistent_workers=True, drop_last=True,
        collate_fn=CheckedCollate(PREFETCH + 2 if reuse else 0),
    )  # fmt: skip
    it = iter(loader)
    for _ in range(args.warmup):
        next(it)
    pids = [w.pid for w in it._workers]
    cpu0 = [proc_cpu(p) for p in pids]
    io0 = [proc_read_bytes(p) for p in pids]
    main0, t0 = time.process_time(), time.perf_counter()
    clips = 0
    while time.perf_counter() - t0 < args.seconds:
        try:
            batch = next(it)
        except StopIteration:
            break
        clips += len(batch[2])
        del batch  # the consumer is done with it (the trainer pins it at once)
    wall = time.perf_counter() - t0
    main = time.process_time() - main0
    cpu = sum(proc_cpu(p) - c for p, c in zip(pids, cpu0, strict=True))
    io1 = [proc_read_bytes(p) for p in pids]
    disk = None
    if None not in io0 and None not in io1:
        disk = sum(b - a for a, b in zip(io0, io1, strict=True))
    del it, loader
    return {
        "clips": clips,
        "rate": clips / wall,
        "cpu_ms": 1e3 * cpu / max(clips, 1),
        "core_rate": clips / cpu if cpu > 0 else float("nan"),
        "disk_kib": None if disk is None else disk / max(clips, 1) / 1024,
        "main_ms": 1e3 * main / max(clips, 1),
        "seconds": wall,
    }


def disk_tests(files: list[Path], args) -> dict:
    """Sequential (dd) and random (pread threads) reads of cold ``files``."""
    out = {"dd": None, "random": []}
    how = evict(files, args.evict)
    dd = shutil.which("dd")
    seq = sorted(files)[: args.dd_files]
    if dd and seq:
        total, seconds = 0, 0.0
        for f in seq:  # one cold file after another, as a loader reading shard after shard
            res = subprocess.run([dd, f"if={f}", "of=/dev/null", "bs=4M"], capture_output=True,
                                 text=True)  # fmt: skip
            m = re.search(r"^(\d+) bytes .* copied, ([\d.e-]+) s", res.stderr, re.M)
            if not m:
                break
            total, seconds = total + int(m.group(1)), seconds + float(m.group(2))
        if seconds > 0:
            out["dd"] = {"files": len(seq), "bytes": total, "seconds": seconds,
                         "mb_s": total / seconds / 1e6, "evicted": how}  # fmt: skip
    sizes = [(37_632, "a 112² raw frame"), (100 * 1024, "a JPEG clip's sampled span"),
             (1_505_280, "a 40-frame raw clip")]  # fmt: skip
    fds = []
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        fds.append((fd, p.stat().st_size))
    try:
        for size, what in sizes:
            for depth in args.depths:
                evict(files, args.evict)
                stop = time.perf_counter() + args.disk_seconds
                counts = [0] * depth

                def reader(slot: int, size=size, stop=stop, counts=counts) -> None:
                    rng = np.random.default_rng(slot)
                    while time.perf_counter() < stop:
                        fd, n = fds[int(rng.integers(len(fds)))]
                        off = int(rng.integers(0, max(1, n - size))) // 4096 * 4096
                        os.pread(fd, size, off)
                        counts[slot] += 1

                t0 = time.perf_counter()
                threads = [threading.Thread(target=reader, args=(s,)) for s in range(depth)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                dt = time.perf_counter() - t0
                n = sum(counts)
                out["random"].append({
                    "size": size, "what": what, "depth": depth, "iops": n / dt,
                    "mb_s": n * size / dt / 1e6, "latency_ms": 1e3 * dt * depth / max(n, 1),
                })  # fmt: skip
                log(f"disk random {size} B x{depth}: {n / dt:.0f} IOPS, "
                    f"{n * size / dt / 1e6:.0f} MB/s")  # fmt: skip
    finally:
        for fd, _ in fds:
            os.close(fd)
    return out


# ------------------------------------------------------------------------------ main


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=None, help="folder for the data (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the data (reused when rerun)")
    ap.add_argument("--pool", type=int, default=48, help="distinct synthetic clips")
    ap.add_argument("--src-frames", type=int, default=40)
    ap.add_argument("--src-size", type=int, default=224)
    ap.add_argument("--size", type=int, default=112, help="cache and training frame size")
    ap.add_argument("--frames", type=int, default=16, help="frames per training clip")
    ap.add_argument("--clips", type=int, default=20000, help="clips in each cache")
    ap.add_argument("--tree-clips", type=int, default=3000, help="frame folders and videos")
    ap.add_argument("--codecs", default="raw,jpeg", help=f"caches: {', '.join(CODECS)}")
    ap.add_argument("--sources", default="cache,folder,video", help="cache, folder, video")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=12.0, help="timed window per measurement")
    ap.add_argument("--warmup", type=int, default=4, help="untimed batches first")
    ap.add_argument("--warm-clips", type=int, default=1024, help="clips of the warm set")
    ap.add_argument("--evict", choices=("drop", "fadvise"), default="drop")
    ap.add_argument("--depths", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--disk-seconds", type=float, default=3.0)
    ap.add_argument("--dd-files", type=int, default=8, help="shards read by dd (256 MiB each)")
    ap.add_argument("--gpu-rate", type=float, default=2844.0, help="clips/s from memory")
    ap.add_argument("--gpu-cores", type=int, default=16)
    ap.add_argument("--core-factor", type=float, nargs="+", default=[1.0, 0.36],
                    help="speed of one GPU-machine core relative to one here (a few)")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    ap.add_argument("--tiny", action="store_true", help="smoke run: tiny sizes and windows")
    ap.add_argument("--gen-workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    if args.tiny:
        args.pool, args.src_frames, args.src_size = 6, 12, 64
        args.clips, args.tree_clips, args.warm_clips = 120, 60, 16
        args.batch, args.seconds, args.warmup = 4, 1.0, 1
        args.depths, args.disk_seconds = [1, 2], 0.3
        args.size, args.frames = 32, 8
    args.codecs = [c for c in args.codecs.split(",") if c]
    args.sources = [s for s in args.sources.split(",") if s]
    for c in args.codecs:
        if c not in CODECS:
            ap.error(f"unknown codec {c!r}; known: {', '.join(CODECS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    torch.set_num_threads(1)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="d2sp-loader-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work, "python benchmarks/speed/loader_table.py " + " ".join(argv))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, command: str) -> int:
    pool = make_pool(work / "pool", args)
    kw = dict(num_frames=args.frames, size=args.size, train=True, output="uint8")
    sources: dict[str, dict] = {}
    if "cache" in args.sources:
        for name in args.codecs:
            codec, quality = CODECS[name]
            pool_cache = work / f"pool-{name}"
            prepare_cache(pool, pool_cache, size=args.size, codec=codec, quality=quality or 90,
                          workers=args.gen_workers, progress=False)  # fmt: skip
            out = work / f"cache-{name}"
            manifest = out / "manifest.json"
            if not (manifest.is_file() and json.loads(manifest.read_text())["num_clips"]
                    == args.clips):  # fmt: skip
                t0 = time.perf_counter()
                tile_cache(pool_cache, out, args.clips)
                log(f"cache-{name}: {args.clips} clips written in {time.perf_counter() - t0:.0f} s")
            split = load_cache(out)
            size = du(out)
            sources[f"cache-{name}"] = {
                "split": split, "paths": [out], "bytes": size, "clips": len(split),
                "warm": lambda out=out: prefetch_cache(out, args.warm_clips),
                "old": lambda out=out: CacheSource(out, max_gap=-1, advise_random=False),
            }  # fmt: skip
    if {"folder", "video"} & set(args.sources):
        tree = work / "tree"
        if not (tree / "videos.csv").is_file() or len(
            (tree / "videos.csv").read_text().splitlines()
        ) != args.tree_clips + 1:
            t0 = time.perf_counter()
            tile_tree(pool, work / "pool", tree, args.tree_clips)
            log(f"{args.tree_clips} folders and videos copied in {time.perf_counter() - t0:.0f} s")
        for name, csv, sub in (("folder", "folders.csv", "f"), ("video", "videos.csv", "v")):
            if name not in args.sources:
                continue
            split = create_dataset("csv", root=tree, csv_file=csv, check="list")
            warm_paths = [s.path for s in split.samples[: args.warm_clips]]
            sources[name] = {
                "split": split, "paths": [tree / sub], "bytes": du(tree / sub),
                "clips": len(split), "warm": lambda p=warm_paths: prefetch_files(p), "old": None,
            }  # fmt: skip

    rows = []
    evicted = "-"
    for name, src in sources.items():
        split = src["split"]
        ds = ClipDataset(split.samples, source=split.source, **kw)
        n_warm = min(args.warm_clips, len(split))
        plan = [("warm", range(n_warm), True, True, ds), ("warm, fresh buffers", range(n_warm),
                True, False, ds), ("cold", range(len(split)), False, True, ds)]  # fmt: skip
        if src["old"] is not None:
            old = ClipDataset(split.samples, source=src["old"](), **kw)
            plan.append(("cold, per-frame reads", range(len(split)), False, True, old))
        for state, indices, replacement, reuse, dataset in plan:
            if state.startswith("warm"):
                src["warm"]()
            else:
                evicted = evict(src["paths"], args.evict)
            m = measure(dataset, indices, args, replacement=replacement, reuse=reuse)
            rows.append({"source": name, "state": state, "bytes": src["bytes"],
                         "clips_total": src["clips"], **m})  # fmt: skip
            log(f"{name} {state}: {m['rate']:.0f} clips/s, {m['cpu_ms']:.2f} ms CPU/clip, "
                f"{m['disk_kib'] if m['disk_kib'] is None else round(m['disk_kib'])} KiB/clip "
                "from disk")  # fmt: skip

    disk = None
    if "cache-raw" in sources:
        shards = sorted(p for p in (work / "cache-raw").glob("shard-*.bin"))
        disk = disk_tests(shards, args)
    report = render(args, command, rows, disk, evicted)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


def render(args, command: str, rows: list[dict], disk: dict | None, evicted: str) -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    lines = [
        f"`{command}`",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu}), {ram_bytes() / 2**30:.1f} GiB RAM, torch "
        f"{torch.__version__}; {args.workers} DataLoader worker(s), batch {args.batch}, "
        f"{args.frames} frames at {args.size}² per clip (uint8, augmentation on); sources "
        f"tiled from {args.pool} synthetic clips of {args.src_frames} frames at "
        f"{args.src_size}²; {args.seconds:.0f} s per measurement; cold = page cache emptied "
        f"({evicted}) first, every clip read at most once.",
        "",
        "| source | on disk | per clip | state | clips/s (1 worker) | worker CPU ms/clip "
        "| clips per worker-core-s | KiB from disk per clip | main CPU ms/clip |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        disk_kib = "–" if r["disk_kib"] is None else f"{r['disk_kib']:.0f}"
        lines.append(
            f"| {r['source']} | {r['bytes'] / 2**30:.2f} GiB ({r['clips_total']} clips) | "
            f"{r['bytes'] / r['clips_total'] / 2**10:.0f} KiB | {r['state']} | {r['rate']:.0f} | "
            f"{r['cpu_ms']:.2f} | {r['core_rate']:.0f} | {disk_kib} | {r['main_ms']:.2f} |"
        )
    if disk:
        lines += ["", "**Disk** (the raw cache's shards, cold):", ""]
        if disk["dd"]:
            d = disk["dd"]
            lines.append(f"- sequential: `dd if=SHARD of=/dev/null bs=4M` over {d['files']} cold "
                         f"shard(s) ({d['evicted']}): {d['bytes'] / 2**20:.0f} MiB in "
                         f"{d['seconds']:.2f} s, **{d['mb_s']:.0f} MB/s**")  # fmt: skip
        lines += ["", "| random read | queue depth | IOPS | MB/s | latency ms |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for r in disk["random"]:
            lines.append(f"| {r['size']:,} B ({r['what']}) | {r['depth']} | {r['iops']:.0f} | "
                         f"{r['mb_s']:.0f} | {r['latency_ms']:.2f} |")  # fmt: skip
    lines += prediction(args, rows, disk)
    return "\n".join(lines) + "\n"


def prediction(args, rows: list[dict], disk: dict | None) -> list[str]:
    workers = args.gpu_cores - 2
    deepest = {}  # request size -> MB/s at the largest queue depth measured
    for r in (disk or {}).get("random", []):
        if r["depth"] >= deepest.get(r["size"], (0, 0))[0]:
            deepest[r["size"]] = (r["depth"], r["mb_s"])
    out = ["", f"**Prediction** for a {args.gpu_cores}-core machine ({workers} workers) against "
           f"{args.gpu_rate:.0f} clips/s from memory. CPU-bound = {workers} × clips per "
           "worker-core-s (warm) × core factor (the speed of one of its cores against one "
           "here); disk MB/s needed = the compute rate × KiB fetched per clip (cold); "
           "disk-bound here = this disk's random-read MB/s at its deepest queue (37,632 B "
           "reads for the raw cache, 100 KiB for the others) ÷ KiB fetched per clip; fed = the "
           "smallest of the compute rate, the CPU-bound rate and (when the data is not in the "
           "page cache) the disk-bound rate.", ""]  # fmt: skip
    facs = args.core_factor
    head = "| source | " + " | ".join(f"CPU-bound ×{f:g}" for f in facs)
    head += f" | disk MB/s needed at {args.gpu_rate:.0f} | disk-bound here "
    head += "| fed, in page cache | fed, cold from this disk |"
    out += [head, "|---|" + "---:|" * (len(facs) + 4)]
    by = {(r["source"], r["state"]): r for r in rows}
    for source in dict.fromkeys(r["source"] for r in rows):
        warm, cold = by.get((source, "warm")), by.get((source, "cold"))
        if warm is None:
            continue
        cpu_rates = [workers * warm["core_rate"] * f for f in facs]
        need = disk_rate = None
        if cold and cold["disk_kib"]:
            need = args.gpu_rate * cold["disk_kib"] * 1024 / 1e6
            size = 37_632 if source == "cache-raw" else 100 * 1024
            if size in deepest:
                disk_rate = deepest[size][1] * 1e6 / (cold["disk_kib"] * 1024)
        inf = float("inf")
        fed_mem = " / ".join(f"{min(args.gpu_rate, c):.0f}" for c in cpu_rates)
        fed_disk = " / ".join(f"{min(args.gpu_rate, c, disk_rate or inf):.0f}" for c in cpu_rates)
        out.append(
            f"| {source} | {' | '.join(f'{c:.0f}' for c in cpu_rates)} | "
            f"{'–' if need is None else f'{need:.0f}'} | "
            f"{'–' if disk_rate is None else f'{disk_rate:.0f}'} | {fed_mem} | {fed_disk} |"
        )
    if len(facs) > 1:
        out += ["", "(Cells with several values: one per core factor, in the order of the "
                "CPU-bound columns.)"]  # fmt: skip
    return out


if __name__ == "__main__":
    raise SystemExit(main())
